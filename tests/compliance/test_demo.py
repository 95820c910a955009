"""The demo seeds the whole chain idempotently and its disputed prediction traces clean."""
from __future__ import annotations

import json
from io import StringIO

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from compliance.models import Alert, Checkpoint
from lineage.models import Build, EngineLoad, Prediction
from lineage.trace import trace

pytestmark = [pytest.mark.embedded, pytest.mark.django_db(transaction=True)]


def demo() -> dict:
    out = StringIO()
    call_command("demo", "--predictions", "300", "--json", stdout=out)
    return json.loads(out.getvalue())


def test_it_seeds_a_realistic_dataset_once(worker, settings):
    first = demo()
    assert Prediction.objects.count() == 300
    assert set(Build.objects.filter(status="succeeded").values_list("precision", flat=True)) >= {"fp32", "fp16", "int8"}
    assert EngineLoad.objects.filter(verdict="digest_mismatch").count() == 1
    assert Alert.objects.filter(kind="engine.load_refused").count() == 1
    assert Checkpoint.objects.exists()
    for name in ("auditor", "engineer", "admin"):
        assert authenticate(username=name, password="demo-password-for-tests")
    result = trace(__import__("uuid").UUID(first["disputed_inference_id"]))
    assert result.ok, result.to_dict()
    assert [l.kind for l in result.links][-1] == "training_data"

    second = demo()
    assert second["disputed_inference_id"] == first["disputed_inference_id"]
    assert Prediction.objects.count() == 300 and Build.objects.count() == 4
