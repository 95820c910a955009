"""The bench dispatcher finds benchmark modules by name (the benchmarks themselves are
run by `make bench`, not by the test suite)."""
from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from compliance.management.commands.bench import available

pytestmark = [pytest.mark.embedded]


def test_it_lists_the_ledger_benchmark_and_refuses_unknown_names():
    assert available()["ledger"] == "compliance.benchmarks.ledger"
    with pytest.raises(CommandError, match="unknown benchmark 'nosuch'; available: .*ledger"):
        call_command("bench", "nosuch")
