from compliance.ledger.verify import verify_ledger
from compliance.lib.cli import ContractCommand


class Command(ContractCommand):
    help = ("Recompute every entry, Merkle node and checkpoint from the rows; exit 0 when all agree with the "
            "signed checkpoints, else exit 1 naming the first bad entry.")

    def add_command_arguments(self, parser):
        parser.add_argument("--since-last", action="store_true",
                            help="verify only what is new since the last verified checkpoint")
        parser.add_argument("--alert", action="store_true", help="raise a ledger.verification_failed alert on failure")

    def run(self, **o):
        result = verify_ledger(since_last=o["since_last"], alert=o["alert"])
        data = result.to_dict()
        if not result.ok:
            data["_exit_code"] = 1
            self.stderr.write(result.summary())
            return "", data
        return result.summary(), data
