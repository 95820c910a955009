"""Seed a realistic end-to-end dataset, idempotently.

Users per role, two models (a credit-scoring MLP with its training-data digest, and a
two-input fraud model with an int64 input and a dynamic batch axis), builds in several
precisions, signed engines, deployments, ≥10,000 real predictions, one refused load of
a tampered engine with its alert.  Prints the logins and one disputed inference id.
"""
from __future__ import annotations

import json
import os
import secrets
import time

import numpy as np
from django.conf import settings
from django.contrib.auth.models import Group, User

from compliance.ledger.checkpoints import make_checkpoint
from compliance.lib import roles
from compliance.lib.cli import ContractCommand
from compliance.lib.store import default_store
from inference import samples
from inference.build_requests import do_request_build
from inference.loader import EngineRefused, load_verified
from inference.provenance.recorder import ListRecorder
from inference.runtime import AuditedService
from inference.specs import parse_profile
from lineage.actions import do_deploy, do_register_model, live_deployment
from lineage.models import Build, ModelSource, Prediction

REPO = "https://git.example.com/risk/credit-models"
COMMIT_CREDIT = "3f9c2e1a7b4d5c6e8f90a1b2c3d4e5f6a7b8c9d0"
COMMIT_FRAUD = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"


class Command(ContractCommand):
    help = "Seed the demo dataset (idempotent); print logins and a disputed inference id."

    def add_command_arguments(self, parser):
        parser.add_argument("--predictions", type=int, default=10_000)

    def run(self, **o):
        state_file = settings.TRACELEDGER_HOME / "demo.json"
        passwords = self._users()
        state = json.loads(state_file.read_text()) if state_file.exists() else {}
        if not state.get("disputed_inference_id") or not Prediction.objects.filter(
                inference_id=state["disputed_inference_id"]).exists():
            state = self._seed(o["predictions"])
            state_file.write_text(json.dumps(state))
        lines = ["TraceLedger demo ready.", "Logins:"]
        for name, pw in passwords.items():
            lines.append(f"  {name:<9} {pw}")
        lines.append(f"Disputed inference id: {state['disputed_inference_id']}")
        lines.append(f"  python manage.py trace {state['disputed_inference_id']}")
        return "\n".join(lines), {"users": passwords, "disputed_inference_id": state["disputed_inference_id"],
                                  "predictions": Prediction.objects.count()}

    def _users(self) -> dict[str, str]:
        roles.ensure_groups()
        env_pw = os.environ.get("TRACELEDGER_DEMO_PASSWORD", "")
        shown = {}
        for name in (roles.AUDITOR, roles.ENGINEER, roles.ADMIN):
            user, created = User.objects.get_or_create(username=name, defaults={"email": f"{name}@example.com"})
            if created or env_pw:
                password = env_pw or secrets.token_urlsafe(12)
                user.set_password(password)
                shown[name] = password
            else:
                shown[name] = "(unchanged)"
            user.is_staff = name == roles.ADMIN
            user.is_superuser = name == roles.ADMIN
            user.save()
            user.groups.add(Group.objects.get(name=name))
        return shown

    def _build(self, model, precision, profiles=None, submitter="engineer") -> Build:
        build = do_request_build(model, precision=precision, profiles=profiles or {}, submitter=submitter,
                                 commit=model.commit)
        deadline = time.monotonic() + 300
        while build.status not in Build.FINAL:
            if time.monotonic() > deadline:
                raise RuntimeError(f"build {build.id} did not finish: is a worker consuming the gpu queue?")
            time.sleep(0.2)
            build.refresh_from_db()
        if build.status != Build.SUCCEEDED:
            raise RuntimeError(f"demo build {build.id} failed: {build.error}")
        return build

    def _seed(self, count: int) -> dict:
        credit_bytes, data_digest = samples.credit_model_bytes()
        credit, _ = do_register_model(
            credit_bytes, name="credit-scoring-mlp", repo=REPO, commit=COMMIT_CREDIT, registered_by="maria.chen",
            training_run_url="https://mlflow.example.com/#/experiments/4/runs/7c1e", training_data_ref="s3://risk-data/applications/2026-09-batch-17.parquet",
            training_data_sha256=data_digest)
        fraud, _ = do_register_model(samples.two_input_model_bytes(), name="fraud-screening", repo=REPO,
                                     commit=COMMIT_FRAUD, registered_by="li.wei")
        prod = self._existing_or_build(credit, "fp32", "maria.chen")
        self._existing_or_build(credit, "fp16", "maria.chen")
        shadow = self._existing_or_build(credit, "int8", "ci-bot")
        fraud_build = self._existing_or_build(fraud, "fp32", "li.wei",
                                              dict([parse_profile("features=1x4:8x4:64x4"), parse_profile("category=1:8:64")]))
        for service, build in (("credit-scoring", prod), ("fraud-screening", fraud_build), ("credit-scoring-shadow", shadow)):
            current = live_deployment(service)
            if current is None or current.engine_id != build.engine.id:
                do_deploy(build.engine, service=service, acting_user="ops.jansen")

        disputed = self._predict(count)
        self._tamper_shadow(shadow)
        make_checkpoint()
        return {"disputed_inference_id": disputed}

    def _existing_or_build(self, model: ModelSource, precision: str, submitter: str, profiles=None) -> Build:
        done = model.builds.filter(precision=precision, status=Build.SUCCEEDED).first()
        return done or self._build(model, precision, profiles, submitter)

    def _predict(self, count: int) -> str:
        """Score applicants for real on the verified engines, with their real times:
        a backdated prediction would appear to predate the deployment that served it."""
        rng = np.random.default_rng(11)
        recorder = ListRecorder()
        credit = AuditedService.open("credit-scoring", recorder=recorder)
        fraud = AuditedService.open("fraud-screening", recorder=recorder)
        x, _ = samples.credit_training_data(n=count, seed=99)
        disputed = ""
        for i in range(count):
            if i % 5 == 4:
                n = int(rng.integers(1, 4))
                fraud.predict({"features": rng.normal(size=(n, 4)).astype(np.float32),
                               "category": rng.integers(0, 10, n).astype(np.int64)})
            else:
                credit.predict({"X": x[i:i + 1]})
            if i == count - 7:
                disputed = str(recorder.records[-1].inference_id)
            if len(recorder.records) >= 2000:
                recorder.flush()
        recorder.flush()
        return disputed

    def _tamper_shadow(self, build: Build) -> None:
        """An attacker flips one byte of the shadow engine on disk; the next load is refused."""
        path = default_store().path_for(build.engine.sha256)
        os.chmod(path, 0o644)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        try:
            load_verified("credit-scoring-shadow")
        except EngineRefused:
            pass
        else:
            raise RuntimeError("tampered engine was not refused")
