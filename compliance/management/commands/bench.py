"""`manage.py bench NAME [--json] [--quick]`: run a benchmark module's `run(quick)` and
print its result (one JSON object with --json).  Benchmarks live in
`compliance.benchmarks.<name>` or `<app>.benchmarks.<name>` for the project's apps;
`bench all` runs every one found."""
from __future__ import annotations

import importlib
import pkgutil

from compliance.cli import ContractCommand

APPS = ("compliance", "lineage", "inference")


def available() -> dict[str, str]:
    found = {}
    for app in APPS:
        try:
            package = importlib.import_module(f"{app}.benchmarks")
        except ModuleNotFoundError:
            continue
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_"):
                found.setdefault(info.name, f"{app}.benchmarks.{info.name}")
    return found


class Command(ContractCommand):
    help = "Run a benchmark (or all) and print ratios against baselines measured in the same run."

    def add_command_arguments(self, parser):
        parser.add_argument("name", help="benchmark name, or 'all'")
        parser.add_argument("--quick", action="store_true", help="smaller inputs, fewer repetitions")

    def run(self, **o):
        modules = available()
        if o["name"] == "all":
            names = sorted(modules)
        elif o["name"] in modules:
            names = [o["name"]]
        else:
            choices = ", ".join(sorted(modules)) or "none"
            raise ValueError(f"unknown benchmark {o['name']!r}; choose one of {choices}, or all")
        results = {name: importlib.import_module(modules[name]).run(quick=o["quick"]) for name in names}
        data = results[names[0]] if o["name"] != "all" else results
        lines = []
        for name, result in results.items():
            lines.append(f"{name}:")
            lines += [f"  {key}: {value}" for key, value in result.items() if not isinstance(value, dict)]
        return "\n".join(lines), data
