from compliance.lib.cli import ContractCommand
from compliance.lib.store import default_store
from lineage.models import Build, CalibrationSet, Engine, ModelSource


class Command(ContractCommand):
    help = ("Re-hash every file the database names in the artifact store (ONNX models, calibration sets, "
            "engines, build byproducts); exit 1 naming the first missing or altered one. Read only: "
            "deploy/restore.sh runs it on a restored copy.")

    def run(self, **o):
        store = default_store()
        named: dict[str, str] = {}
        for sha256, pk in ModelSource.objects.values_list("sha256", "id"):
            named.setdefault(sha256, f"model {pk}")
        for sha256, pk in CalibrationSet.objects.values_list("sha256", "id"):
            named.setdefault(sha256, f"calibration set {pk}")
        for sha256, pk in Engine.objects.values_list("sha256", "id"):
            named.setdefault(sha256, f"engine {pk}")
        for pk, artifacts in Build.objects.exclude(artifacts={}).values_list("id", "artifacts"):
            for name, item in artifacts.items():
                named.setdefault(item["sha256"], f"build {pk} {name}")
        bad = [(what, sha256, reason) for sha256, what in sorted(named.items(), key=lambda kv: kv[1])
               if (reason := store.verify(sha256)) is not None]
        data = {"ok": not bad, "checked": len(named),
                "bad": [{"what": w, "sha256": s, "reason": r} for w, s, r in bad]}
        if bad:
            what, sha256, reason = bad[0]
            data["_exit_code"] = 1
            self.stderr.write(f"{len(bad)} of {len(named)} stored files fail; first: {what} {sha256}: {reason}")
            return "", data
        return f"all {len(named)} stored files present and matching their digests", data
