from compliance.lib.cli import ContractCommand, ci_user
from inference.calibration import register_calibration_file
from lineage.actions import get_model


class Command(ContractCommand):
    help = "Register an .npz calibration set for a model (validated against its inputs)."

    def add_command_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--model", required=True, help="model id or sha256")
        parser.add_argument("--user", default="")

    def run(self, **o):
        calibration = register_calibration_file(o["path"], get_model(o["model"]), registered_by=o["user"] or ci_user())
        return (f"calibration set {calibration.id}: sha256 {calibration.sha256}, {calibration.sample_count} samples",
                calibration.to_dict())
