from compliance.lib.cli import ContractCommand
from inference.reverify import reverify_engines


class Command(ContractCommand):
    help = "Re-hash every stored engine and check its signature; exit 1 if any drifted."

    def run(self, **o):
        run = reverify_engines()
        data = run.to_dict()
        lines = [f"re-verified {data['checked']} engine(s): {data['verified']} ok, {len(data['drifted'])} drifted"]
        lines += [f"  engine {r.engine_id}: {r.verdict} ({r.detail})" for r in run.results if not r.ok]
        if not run.ok:
            data["_exit_code"] = 1
        return "\n".join(lines), data
