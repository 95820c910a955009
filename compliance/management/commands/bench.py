"""`bench NAME [--json] [--quick]`: run one benchmark module (compliance.benchmarks.NAME:
benchmarks use every layer, so they sit on top), or `all` of them; each module has
`run(quick: bool) -> dict` and measures its baseline in the same run."""
from __future__ import annotations

import importlib
import pkgutil

from django.apps import apps

from compliance.lib.cli import ContractCommand

LOCAL_APPS = ("compliance", "lineage", "inference")


def available() -> dict[str, str]:
    """Benchmark name -> module path, over our apps' `benchmarks` packages."""
    found = {}
    for app in LOCAL_APPS:
        if not apps.is_installed(app):
            continue
        try:
            package = importlib.import_module(f"{app}.benchmarks")
        except ModuleNotFoundError:
            continue
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_") and info.name != "settings":
                found.setdefault(info.name, f"{app}.benchmarks.{info.name}")
    return found


class Command(ContractCommand):
    help = "Run a benchmark (or `all`); --json prints one JSON object."

    def add_command_arguments(self, parser):
        parser.add_argument("name", help="benchmark name, or `all`")
        parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")

    def run(self, **o):
        benches = available()
        if o["name"] == "all":
            names = sorted(benches)
        elif o["name"] in benches:
            names = [o["name"]]
        else:
            raise ValueError(f"unknown benchmark {o['name']!r}; available: {', '.join(sorted(benches)) or 'none'}")
        results = {name: importlib.import_module(benches[name]).run(quick=o["quick"]) for name in names}
        data = results[names[0]] if len(names) == 1 else results
        lines = []
        for name, result in results.items():
            lines.append(f"{name}:")
            lines.extend(f"  {key}: {value}" for key, value in result.items())
        return "\n".join(lines), data
