"""`bench NAME [--json] [--quick]`: run one benchmark module (compliance.benchmarks.NAME:
benchmarks use every layer, so they sit on top), or `all` of them; each module has
`run(quick: bool) -> dict` and measures its baseline in the same run."""
from __future__ import annotations

import importlib
import inspect
import pkgutil
import statistics

from django.apps import apps
from django.db import DatabaseError, connection

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
        parser.add_argument("--runs", type=int, default=1,
                            help="run each benchmark this many times and print the median of every figure")
        parser.add_argument("--size", type=int, default=None,
                            help="how many records the benchmark fills (the benchmarks that take one: dashboard)")

    def run(self, **o):
        benches = available()
        if o["name"] == "all":
            names = sorted(benches)
        elif o["name"] in benches:
            names = [o["name"]]
        else:
            raise ValueError(f"unknown benchmark {o['name']!r}; available: {', '.join(sorted(benches)) or 'none'}")
        refuse_unready_database()
        modules = {name: importlib.import_module(benches[name]) for name in names}
        if o["size"] is not None:
            if o["size"] < 1:
                raise ValueError("--size must be a positive number of records")
            takes = [n for n, m in modules.items() if "size" in inspect.signature(m.run).parameters]
            if not takes:
                raise ValueError(f"--size applies to {', '.join(n for n, t in available_modules() if t)} only")
        results = {}
        for name, module in modules.items():
            kwargs = {"quick": o["quick"]}
            if o["size"] is not None and "size" in inspect.signature(module.run).parameters:
                kwargs["size"] = o["size"]
            if not 1 <= o["runs"] <= 9:
                raise ValueError("--runs must be between 1 and 9")
            runs = [module.run(**kwargs) for _ in range(o["runs"])]
            results[name] = median_of(runs) | ({"runs": o["runs"]} if o["runs"] > 1 else {})
        data = results[names[0]] if len(names) == 1 else results
        lines = []
        for name, result in results.items():
            lines.append(f"{name}:")
            lines.extend(f"  {key}: {value}" for key, value in result.items())
        return "\n".join(lines), data


def median_of(runs: list):
    """Every number the median over the runs (dicts key by key), anything else as the first run had it."""
    first = runs[0]
    if isinstance(first, dict):
        return {k: median_of([r.get(k) for r in runs if isinstance(r, dict) and k in r]) for k in first}
    if isinstance(first, (int, float)) and not isinstance(first, bool) and all(
            isinstance(r, (int, float)) and not isinstance(r, bool) for r in runs):
        value = statistics.median(runs)
        return round(value, 4) if isinstance(value, float) else value
    return first


def available_modules():
    """(name, takes --size) for every benchmark."""
    for name, path in sorted(available().items()):
        yield name, "size" in inspect.signature(importlib.import_module(path).run).parameters


def refuse_unready_database() -> None:
    """One clear sentence, not a traceback, when the configured database cannot be
    reached, is not this application's, or is not migrated (every benchmark reads the
    configured database or copies its settings into a scratch one)."""
    from django.db.migrations.executor import MigrationExecutor

    name = connection.settings_dict.get("NAME")
    try:
        connection.ensure_connection()
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RuntimeError(f"cannot use database {name!s} for benchmarks: {reason}") from None
    if pending:
        applied = executor.loader.applied_migrations
        what = "is not a TraceLedger database" if applied and not any(app in ("compliance", "lineage")
                                                                     for app, _ in applied) else "is not migrated"
        raise RuntimeError(f"database {name!s} {what} ({len(pending)} migrations pending): "
                           f"run `manage.py migrate` on it first")
