"""`bench NAME [--json] [--quick]`: run the benchmark module NAME (a `run(quick) -> dict`
function in compliance.benchmarks.NAME or <app>.benchmarks.NAME); `bench all` runs
every one found.  Prints one JSON object with --json."""
from __future__ import annotations

import importlib
import importlib.util
import pkgutil

from compliance.cli import ContractCommand

APPS = ("compliance", "lineage", "inference")


def _module(name: str):
    for app in APPS:
        path = f"{app}.benchmarks.{name}"
        if importlib.util.find_spec(f"{app}.benchmarks") and importlib.util.find_spec(path):
            return importlib.import_module(path)
    return None


def _all() -> list[str]:
    names = []
    for app in APPS:
        if importlib.util.find_spec(f"{app}.benchmarks"):
            package = importlib.import_module(f"{app}.benchmarks")
            names += [m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_")]
    return sorted(set(names))


class Command(ContractCommand):
    help = "Run a benchmark (or all) and print its figures."

    def add_command_arguments(self, parser):
        parser.add_argument("name", help="benchmark name, or 'all'")
        parser.add_argument("--quick", action="store_true", help="smaller data, for a smoke run")

    def run(self, **o):
        names = _all() if o["name"] == "all" else [o["name"]]
        results = {}
        for name in names:
            module = _module(name)
            if module is None:
                raise LookupError(f"no benchmark named {name!r}; have: {', '.join(_all()) or 'none'}")
            results[name] = module.run(quick=o["quick"])
        data = results if o["name"] == "all" else results[names[0]]
        summary = "\n".join(f"{n}: " + ", ".join(f"{k}={v}" for k, v in r.items() if not isinstance(v, dict))
                            for n, r in results.items())
        return summary, data
