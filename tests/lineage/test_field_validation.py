"""The API validates exactly as the forms do (issue 22, finding 4): one validator per
field (lineage/validators.py), shared by the deploy form, the deploy API and the CLI."""
from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from lineage.models import Deployment, ModelSource
from tests.dashboard_data import seed

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

BAD = [
    ({"environment": "<b>prod</b>"}, "environment must be 1-50 characters"),
    ({"environment": "p" * 51}, "environment must be 1-50 characters"),
    ({"service": ".."}, "cannot be '.' or '..'"),
    ({"service": "."}, "cannot be '.' or '..'"),
    ({"service": "a/b"}, "service name must be 1-100 characters"),
    ({"service": "s" * 101}, "service name must be 1-100 characters"),
]


@pytest.fixture
def engine(credit_onnx):
    return seed(credit_onnx, predictions=0).engine


@pytest.mark.parametrize("change,message", BAD)
def test_it_refuses_through_the_api_what_the_form_refuses(client, bob, engine, change, message):
    client.force_login(bob)
    before = Deployment.objects.count()
    body = {"engine": engine.id, "service": "credit", "environment": "staging"} | change
    api = client.post("/api/v1/deployments/", body, content_type="application/json")
    assert api.status_code == 400 and message in api.json()["error"]
    form = client.post("/deployments/new/", body)
    assert form.status_code == 400 and message in form.content.decode().replace("&#x27;", "'")
    with pytest.raises(CommandError, match=message.replace(".", r"\.").replace("(", r"\(")):
        call_command("deploy", str(engine.id), "--service", body["service"], "--environment", body["environment"])
    assert Deployment.objects.count() == before


def test_it_accepts_the_same_good_values_everywhere(client, bob, engine):
    client.force_login(bob)
    api = client.post("/api/v1/deployments/", {"engine": engine.id, "service": "credit.v2", "environment": "eu-west_1"},
                      content_type="application/json")
    assert api.status_code == 201 and api.json()["environment"] == "eu-west_1"


def test_it_refuses_an_overlong_model_name_or_repo_from_the_api(client, bob, credit_onnx):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(bob)
    for field, value, message in [("name", "n" * 201, "model name must be at most 200"),
                                  ("repo", "r" * 501, "repo must be at most 500"),
                                  ("commit", "xyz", "not a git commit hash")]:
        body = {"repo": "https://git.example.com/credit", "commit": "a" * 40, field: value,
                "file": SimpleUploadedFile("m.onnx", credit_onnx)}
        response = client.post("/api/v1/models/", body)
        assert response.status_code == 400 and message in response.json()["error"], response.json()
    assert not ModelSource.objects.exists()
