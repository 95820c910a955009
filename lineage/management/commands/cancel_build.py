from compliance.lib.cli import ContractCommand, ci_user
from lineage.actions import do_cancel_build, get_build


class Command(ContractCommand):
    help = "Cancel a queued build."

    def add_command_arguments(self, parser):
        parser.add_argument("build", help="build id")
        parser.add_argument("--reason", default="")
        parser.add_argument("--user", default="")

    def run(self, **o):
        build = do_cancel_build(get_build(o["build"]), acting_user=o["user"] or ci_user(), reason=o["reason"])
        return f"build {build.id}: {build.status}", {"build_id": build.id, "status": build.status}
