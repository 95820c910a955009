import time

from compliance.lib.cli import ContractCommand, ci_commit, ci_user
from inference.build_requests import check_build_request, do_request_build
from inference.specs import parse_profile
from lineage.actions import get_model
from lineage.models import Build


class Command(ContractCommand):
    help = "Request an engine build (submitter and commit from flags or CI variables)."

    def add_command_arguments(self, parser):
        parser.add_argument("--model", required=True, help="model id or sha256")
        parser.add_argument("--backend", default="onnxruntime")
        parser.add_argument("--precision", default="fp32")
        parser.add_argument("--calibration", default="",
                            help=".npz of named input arrays: INT8 static quantization and parity inputs")
        parser.add_argument("--shape", action="append", default=[], help="NAME=MIN:OPT:MAX")
        parser.add_argument("--commit", default="")
        parser.add_argument("--user", default="")
        parser.add_argument("--wait", action="store_true", help="wait for the build to finish")
        parser.add_argument("--timeout", type=int, default=3600)

    def run(self, **o):
        model = get_model(o["model"])
        profiles = dict(parse_profile(p) for p in o["shape"])
        submitter = o["user"] or ci_user()
        # Refuse a bad spec before the calibration set is stored.
        check_build_request(model, backend=o["backend"], precision=o["precision"], profiles=profiles)
        calibration = None
        if o["calibration"]:
            from inference.calibration import register_calibration_file

            calibration = register_calibration_file(o["calibration"], model, registered_by=submitter)
        build = do_request_build(model, backend=o["backend"], precision=o["precision"], profiles=profiles,
                                 submitter=submitter, commit=o["commit"] or ci_commit(), calibration=calibration)
        if o["wait"]:
            deadline = time.monotonic() + o["timeout"]
            stages = [Build.QUEUED, Build.BUILDING, Build.VERIFYING, Build.SIGNING]
            with self.progress(len(stages), f"build {build.id}", unit="stage") as bar:
                while True:
                    build.refresh_from_db()
                    if build.status in Build.FINAL or time.monotonic() > deadline:
                        bar.advance_to(len(stages) if build.status == Build.SUCCEEDED else bar_done(bar))
                        break
                    if build.status in stages:
                        bar.describe(f"build {build.id}: {build.status}")
                        bar.advance_to(stages.index(build.status))
                    time.sleep(0.2)
        engine = getattr(build, "engine", None) if build.status == Build.SUCCEEDED else None
        data = {"build_id": build.id, "status": build.status, "engine_id": engine.id if engine else None,
                "engine_sha256": engine.sha256 if engine else None, "error": build.error or None,
                "submitter": build.submitter, "commit": build.commit,
                "calibration_sha256": calibration.sha256 if calibration else None,
                "parity_ok": build.parity_ok}
        summary = f"build {build.id}: {build.status}"
        if engine:
            summary += f"; engine {engine.id} sha256 {engine.sha256}"
            if build.parity_ok is False:
                summary += "; FLAGGED: outside its parity tolerance"
            elif (build.parity or {}).get("status") == "not_run":
                summary += f"; parity not run: {build.parity.get('reason', '')}"
        if build.error:
            summary += f"; {build.error}"
        if o["wait"] and build.status != Build.SUCCEEDED:
            data["_exit_code"] = 1
        return summary, data


def bar_done(bar) -> int:
    return bar.bar.n if bar.bar is not None else 0
