from compliance.lib.cli import ContractCommand
from lineage.queries import engine_at, parse_time


class Command(ContractCommand):
    help = "Which engine served SERVICE at TIME (ISO 8601 with a time zone); exit 1 if none was deployed."

    def add_command_arguments(self, parser):
        parser.add_argument("service")
        parser.add_argument("time", help="e.g. 2026-11-26T10:00:00Z")
        parser.add_argument("--environment", default=None)

    def run(self, **o):
        moment = parse_time(o["time"], "time")
        served = engine_at(o["service"], moment, o["environment"])
        if not served:
            raise ValueError(f"no deployment of service {o['service']!r} was live at {moment.isoformat()}")
        lines = [f"{o['service']} at {moment.isoformat()}:"]
        for s in served:
            d, load = s.deployment, s.last_verified_load
            lines.append(f"  {d.environment}: engine {d.engine_id} {d.engine_sha256} (deployment {d.id}, "
                         f"build {d.engine.build_id}, deployed {d.created_at.isoformat()} by {d.created_by})")
            lines.append(f"    last verified load: {load.created_at.isoformat()} on {load.host}" if load
                         else "    no verified load recorded at or before that time")
        return "\n".join(lines), {"service": o["service"], "t": moment.isoformat(),
                                  "served_by": [s.to_dict() for s in served]}
