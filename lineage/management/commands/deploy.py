from compliance.lib.cli import ContractCommand, ci_user
from lineage.actions import do_deploy, get_engine


class Command(ContractCommand):
    help = "Deploy an engine to a named service (pins its digest and manifest)."

    def add_command_arguments(self, parser):
        parser.add_argument("engine", help="engine id or sha256")
        parser.add_argument("--service", required=True)
        parser.add_argument("--environment", default="production")
        parser.add_argument("--user", default="")

    def run(self, **o):
        deployment = do_deploy(get_engine(o["engine"]), service=o["service"], environment=o["environment"],
                               acting_user=o["user"] or ci_user())
        return (f"deployment {deployment.id}: {deployment.service}/{deployment.environment} → engine "
                f"{deployment.engine_id} ({deployment.engine_sha256[:16]})",
                {"deployment_id": deployment.id, "service": deployment.service,
                 "environment": deployment.environment, "engine_sha256": deployment.engine_sha256})
