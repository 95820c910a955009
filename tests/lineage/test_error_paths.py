"""Errors name no internal path (issue 22, finding 5): an ONNX file whose external data
points at the key directory is refused in words, and a failed build's error and log
shown to readers carry no server path."""
from __future__ import annotations

import logging

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from onnx import TensorProto, helper

from compliance.lib.redact import redact_paths
from lineage.actions import do_fail_build
from lineage.models import Build, ModelSource
from tests.conftest import register

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def model_with_external_data(location: str) -> bytes:
    weight = helper.make_tensor("w", TensorProto.FLOAT, [2], [0.0, 0.0])
    weight.ClearField("float_data")
    weight.data_location = TensorProto.EXTERNAL
    entry = weight.external_data.add()
    entry.key, entry.value = "location", location
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])], initializer=[weight])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


@pytest.mark.parametrize("location", ["../../../keys/ledger.pem", "weights.bin"])
def test_it_refuses_external_data_without_naming_a_server_path(client, bob, location):
    client.force_login(bob)
    upload = SimpleUploadedFile("m.onnx", model_with_external_data(location))
    response = client.post("/api/v1/models/", {"file": upload, "repo": "https://git.example.com/m", "commit": "a" * 40})
    error = response.json()["error"]
    assert response.status_code == 400 and "external files" in error
    assert str(settings.TRACELEDGER_HOME) not in error and "/tmp" not in error and "/" not in error.replace("ONNX", "")
    assert not ModelSource.objects.exists()


def test_it_refuses_external_data_in_the_build_form_too(client, bob):
    client.force_login(bob)
    response = client.post("/builds/new/", {"onnx_file": SimpleUploadedFile("m.onnx", model_with_external_data("x.bin")),
                                            "repo": "https://git.example.com/m", "commit": "a" * 40,
                                            "backend": "onnxruntime", "precision": "fp32"})
    page = response.content.decode()
    assert response.status_code == 400 and "external files" in page and str(settings.TRACELEDGER_HOME) not in page


def test_it_redacts_server_paths_from_build_errors_and_logs(credit_onnx, caplog):
    from inference.build_requests import do_request_build

    build = do_request_build(register(credit_onnx), submitter="bob", commit="c" * 40)
    secret = f"{settings.TRACELEDGER_HOME}/store/sha256/ab/cdef"
    with caplog.at_level(logging.WARNING):
        do_fail_build(build, f"OrtFail: could not open {secret}.onnx: no such file",
                      log_text=f"reading /var/lib/traceledger/keys/build.pem\nfailed at {secret}")
    build.refresh_from_db()
    assert build.status == Build.FAILED
    assert str(settings.TRACELEDGER_HOME) not in build.error and "<server path>" in build.error
    assert "/var/lib" not in build.log and str(settings.TRACELEDGER_HOME) not in build.log


def test_it_keeps_urls_and_relative_names_in_messages():
    text = "see https://git.example.com/a/b and x=1x3/4, file m.onnx; path /srv/store/ab/cd: gone"
    assert redact_paths(text) == "see https://git.example.com/a/b and x=1x3/4, file m.onnx; path <server path>: gone"
