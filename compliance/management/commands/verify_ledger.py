import os

from django.conf import settings

from compliance.ledger.verify import verify_ledger
from compliance.lib.cli import ContractCommand
from compliance.lib.progress import progress


class Command(ContractCommand):
    help = ("Recompute every entry, Merkle node and checkpoint from the rows; exit 0 when all agree with the "
            "signed checkpoints, else exit 1 naming the first bad entry.")

    def add_command_arguments(self, parser):
        parser.add_argument("--since-last", action="store_true",
                            help="verify only what is new since the last verified checkpoint")
        parser.add_argument("--alert", action="store_true", help="raise a ledger.verification_failed alert on failure")
        parser.add_argument("--workers", type=int, default=None,
                            help="worker processes (default TRACELEDGER_VERIFY_WORKERS; 0: one per CPU; 1: none)")

    def run(self, **o):
        workers = settings.TRACELEDGER_VERIFY_WORKERS if o["workers"] is None else o["workers"]
        if workers < 0:
            raise ValueError("--workers must be 0 (one per CPU) or more")
        workers = workers or os.cpu_count() or 1
        with progress(None, "verifying ledger", unit="entries") as bar:
            result = verify_ledger(since_last=o["since_last"], alert=o["alert"], workers=workers,
                                   progress=bar.advance_to)
        data = result.to_dict()
        if not result.ok:
            data["_exit_code"] = 1
            self.stderr.write(result.summary())
            return "", data
        return result.summary(), data
