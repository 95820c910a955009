"""Verdicts: one Check per link, collected into a Result."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    problems: list[str] = field(default_factory=list)
    label: str = ""


@dataclass
class Result:
    checks: list[Check]
    pinned: bool
    scope: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "keys_pinned": self.pinned, "scope": self.scope,
                "checks": [{"name": c.name, "label": c.label, "ok": c.ok, "detail": c.detail, "problems": c.problems}
                           for c in self.checks]}


class _Link:
    """Collects the problems of one link; becomes one Check."""

    def __init__(self, name: str, label: str = ""):
        self.name = name
        self.label = label
        self.problems: list[str] = []

    def need(self, condition: bool, problem: str) -> bool:
        if not condition:
            self.problems.append(problem)
        return bool(condition)

    def check(self, ok_detail: str) -> Check:
        prefix = f"{self.label}: " if self.label else ""
        if self.problems:
            return Check(self.name, False, prefix + self.problems[0], self.problems, self.label)
        return Check(self.name, True, prefix + ok_detail, [], self.label)
