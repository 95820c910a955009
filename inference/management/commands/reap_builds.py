from compliance.lib.cli import ContractCommand
from inference.reaper import reap_builds


class Command(ContractCommand):
    help = ("Fail builds whose worker stopped reporting (TRACELEDGER_BUILD_STALE_S) or that ran past "
            "TRACELEDGER_BUILD_TIMEOUT_S, and sweep what killed builds left in the store.")

    def run(self, **o):
        reaped = reap_builds()
        summary = f"reaped {len(reaped)} build(s)" + (f": {', '.join(map(str, reaped))}" if reaped else "")
        return summary, {"reaped": reaped}
