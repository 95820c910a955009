"""The layers stay put (DESIGN.md "Layout", README "Where things are").

Every import between our modules, read from the source with `ast` (lazy imports inside
functions included), must follow one of the arrows allowed below, there must be no
file-level import cycle, and no module but a migration may pass 500 lines. The offline
verifier must import only the standard library, `cryptography` and its own pure helpers.

A new upward import fails here with the file and the arrow it adds. To change a layer on
purpose, change ALLOWED (and the README's map) in the same commit.
"""
from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

import pytest

pytestmark = pytest.mark.embedded

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("compliance", "lineage", "inference")

# Each layer of ours, by module prefix (the longest matching prefix wins), bottom first.
LAYERS = {
    "compliance.lib": "lib",                # helpers importing nothing of ours
    "compliance.models": "models",          # the compliance app's tables
    "compliance.ledger": "core",            # the trust core
    "lineage": "lineage",                   # the graph
    "inference": "inference",               # engines and provenance
    "compliance.investigation": "investigation",
    "compliance.tasks": "tasks",
    "compliance.web": "web",
    "compliance.templatetags": "web",
    "compliance.api": "api",
    "compliance.admin": "entry",
    "compliance.management": "entry",
    "compliance.benchmarks": "entry",
    "compliance.verify_bundle": "entry",
    "compliance.migrations": "entry",
    "lineage.migrations": "entry",
    "compliance.project": "project",
    "compliance.apps": "project",
}

BELOW_INVESTIGATION = {"lib", "models", "core", "lineage", "inference"}
# layer -> the layers it may import (besides itself)
ALLOWED = {
    "lib": set(),
    "models": set(),
    "core": {"models"},
    "lineage": {"lib", "models", "core"},
    "inference": {"lib", "models", "core", "lineage"},
    "investigation": BELOW_INVESTIGATION,
    "tasks": BELOW_INVESTIGATION | {"investigation"},
    "web": BELOW_INVESTIGATION | {"investigation", "tasks"},
    "api": BELOW_INVESTIGATION | {"investigation", "tasks", "web"},
    "entry": BELOW_INVESTIGATION | {"investigation", "tasks", "web", "api", "project"},
    "project": BELOW_INVESTIGATION | {"investigation", "tasks", "web", "api", "entry"},
}

# The offline verifier runs where only the standard library and cryptography exist.
OFFLINE = ("compliance.verify_bundle", "compliance.ledger.offline", "compliance.ledger.merkle", "compliance.ledger.purposes",
           "compliance.ledger.notes", "compliance.ledger.dsse", "compliance.ledger.keylog",
           "compliance.ledger.trustfile", "compliance.ledger.remotewitness")  # the last runs on a witness's host
OFFLINE_THIRD_PARTY = ("cryptography",)
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The module of ours that `name` (a module or a name inside one) refers to."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path) -> list[tuple[str, int]]:
    """(imported name, line) for every import in the file, absolute."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names] or [(base, node.lineno)]
    return found


def _graph() -> dict[str, set[str]]:
    graph = defaultdict(set)
    for module, path in MODULES.items():
        for name, _ in _imports(module, path):
            target = _resolve(name)
            if target and target != module:
                graph[module].add(target)
    return graph


def layer_of(module: str) -> str:
    best = max((prefix for prefix in LAYERS if module == prefix or module.startswith(prefix + ".")),
               key=len, default=None)
    if best is None:
        raise AssertionError(f"{module} belongs to no layer: add it to LAYERS in tests/test_layers.py")
    return LAYERS[best]


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    problems = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            source_layer, target_layer = layer_of(module), layer_of(target)
            if source_layer != target_layer and target_layer not in ALLOWED[source_layer]:
                problems.append(f"{module} ({source_layer}) imports {target} ({target_layer})")
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], [0]
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_it_allows_only_downward_imports():
    assert upward_imports(_graph()) == []


def test_it_has_no_import_cycle():
    assert cycles(_graph()) == []


def test_it_keeps_the_trust_core_self_contained():
    """The core imports nothing of ours but itself and compliance.models."""
    graph = _graph()
    outside = {f"{m} -> {t}" for m, targets in graph.items() if layer_of(m) == "core"
               for t in targets if layer_of(t) not in ("core", "models")}
    assert outside == set()


def test_it_keeps_the_offline_verifier_to_the_standard_library_and_cryptography():
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    problems = []
    for module, path in MODULES.items():
        if not module.startswith(OFFLINE):
            continue
        for name, line in _imports(module, path):
            top = name.split(".")[0]
            ours = _resolve(name)
            if ours:
                if not ours.startswith(OFFLINE) and ours not in ("compliance", "compliance.ledger"):
                    problems.append(f"{path.relative_to(ROOT)}:{line} imports {ours}")
            elif top not in stdlib and top not in OFFLINE_THIRD_PARTY:
                problems.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert problems == []


def test_it_keeps_modules_under_500_lines():
    long = {str(p.relative_to(ROOT)): n for m, p in MODULES.items()
            if ".migrations." not in m and (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


@pytest.mark.parametrize(("graph", "expected"), [
    ({"lineage.trace": {"inference.loader"}}, ["lineage.trace (lineage) imports inference.loader (inference)"]),
    ({"compliance.ledger.verify": {"compliance.investigation.alerts"}},
     ["compliance.ledger.verify (core) imports compliance.investigation.alerts (investigation)"]),
    ({"inference.loader": {"lineage.models"}}, []),
])
def test_it_names_an_upward_import(graph, expected):
    assert upward_imports(graph) == expected


def test_it_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]

