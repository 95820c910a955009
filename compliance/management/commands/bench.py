"""`manage.py bench NAME [--json] [--quick]`: run one benchmark (or `all`) and print its
figures; each benchmark module has `run(quick: bool) -> dict` and lives in
`compliance/benchmarks/NAME.py` or `<app>/benchmarks/NAME.py`."""
from __future__ import annotations

import importlib
import json
import pkgutil

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError


def _modules() -> dict[str, str]:
    found = {}
    for config in apps.get_app_configs():
        package = f"{config.name}.benchmarks"
        try:
            module = importlib.import_module(package)
        except ImportError:
            continue
        for info in pkgutil.iter_modules(module.__path__):
            if not info.name.startswith("_"):
                found[info.name] = f"{package}.{info.name}"
    return found


class Command(BaseCommand):
    help = "Run a benchmark (or `all`); prints one JSON object with --json."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")

    def handle(self, *args, **options):
        modules = _modules()
        name = options["name"]
        if name != "all" and name not in modules:
            raise CommandError(f"unknown benchmark {name!r} (have: {', '.join(sorted(modules)) or 'none'}, all)")
        names = sorted(modules) if name == "all" else [name]
        results = {n: importlib.import_module(modules[n]).run(quick=options["quick"]) for n in names}
        result = results[name] if name != "all" else results
        if options["json"]:
            self.stdout.write(json.dumps(result, sort_keys=True))
        else:
            for bench, figures in results.items():
                self.stdout.write(f"{bench}:")
                for key, value in figures.items():
                    self.stdout.write(f"  {key}: {value}")
