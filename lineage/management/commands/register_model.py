import os

from compliance.lib.cli import ContractCommand, ci_commit, ci_user
from lineage.actions import do_register_model


class Command(ContractCommand):
    help = "Register an ONNX model: validate, store content-addressed, record in the ledger."

    def add_command_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--repo", required=True)
        parser.add_argument("--commit", default="", help="git commit (default: CI variables)")
        parser.add_argument("--name", default="")
        parser.add_argument("--user", default="", help="who registers it (default: CI variables, else OS user)")
        parser.add_argument("--training-run-url", default="")
        parser.add_argument("--training-data", default="", help="reference to the training data batch")
        parser.add_argument("--training-data-sha256", default="")

    def run(self, **o):
        commit = o["commit"] or ci_commit()
        if not os.path.isfile(o["path"]):
            raise ValueError(f"no such file: {o['path']}")
        with open(o["path"], "rb") as f:
            model, created = do_register_model(
                f, name=o["name"] or os.path.splitext(os.path.basename(o["path"]))[0], repo=o["repo"],
                commit=commit, registered_by=o["user"] or ci_user(), training_run_url=o["training_run_url"],
                training_data_ref=o["training_data"], training_data_sha256=o["training_data_sha256"],
            )
        verb = "registered" if created else "already registered"
        return (f"model {model.id} {verb}: sha256 {model.sha256}",
                {"id": model.id, "sha256": model.sha256, "created": created, "inputs": model.inputs,
                 "outputs": model.outputs, "opset": model.opset})
