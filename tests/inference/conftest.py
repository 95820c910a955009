"""Deployments of real engines for the provenance tests: the real builder runs
in-process (as in the embedded default) instead of on a Celery worker, which keeps
these tests fast; tests/lineage/test_chain.py covers the worker path."""
from __future__ import annotations

import pytest

from tests.conftest import register


def deploy_model(onnx_bytes: bytes, service: str, name: str = "m"):
    from compliance.project.celery import app as celery_app
    from inference.build_requests import do_request_build
    from inference.builder import run_build
    from lineage.actions import do_deploy
    from lineage.models import Build

    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        build = do_request_build(register(onnx_bytes, name=name), submitter="bob", commit="b" * 40)
        build.refresh_from_db()
        if build.status == Build.QUEUED:  # on_commit does not fire inside a test transaction
            run_build(build.id)
            build.refresh_from_db()
    finally:
        celery_app.conf.task_always_eager = eager
    assert build.status == Build.SUCCEEDED, build.error
    return do_deploy(build.engine, service=service, acting_user="bob")


@pytest.fixture(autouse=True)
def _no_recorder_outlives_its_test():
    yield
    from inference.provenance.spooling_recorder import live_recorders

    for recorder in live_recorders():
        recorder.close(timeout=5)


@pytest.fixture
def credit_deployment(db, credit_onnx):
    return deploy_model(credit_onnx, "credit")
