import os

from django.conf import settings

from compliance.ledger import trustcheck, trustfile
from compliance.ledger.verify import verify_ledger
from compliance.lib.cli import ContractCommand


class Command(ContractCommand):
    help = ("Recompute every entry, Merkle node and checkpoint from the rows; exit 0 when all agree with the "
            "signed checkpoints, else exit 1 naming the first bad entry.")

    def add_command_arguments(self, parser):
        parser.add_argument("--since-last", action="store_true",
                            help="verify only what is new since the last verified checkpoint")
        parser.add_argument("--alert", action="store_true", help="raise a ledger.verification_failed alert on failure")
        parser.add_argument("--trust", metavar="FILE",
                            help="also prove the ledger extends the trust file's checkpoint, that later checkpoints "
                                 "are signed by pinned (or chained) keys and that the key table agrees with the ledger")
        parser.add_argument("--witness-state", action="append", default=[], metavar="DIR",
                            help="with --trust: also prove the ledger extends what the witness keeping DIR (its "
                                 "state.json, or a copy) last cosigned; repeatable")
        parser.add_argument("--workers", type=int, default=None,
                            help="worker processes (default TRACELEDGER_VERIFY_WORKERS; 0: one per CPU; 1: none)")

    user_errors = ContractCommand.user_errors + (trustfile.TrustFileError,)

    def run(self, **o):
        if o["witness_state"] and not o.get("trust"):
            raise ValueError("--witness-state needs --trust FILE")
        if o.get("trust"):
            return self._answer(trustcheck.verify(o["trust"], o["witness_state"]))
        workers = settings.TRACELEDGER_VERIFY_WORKERS if o["workers"] is None else o["workers"]
        if workers < 0:
            raise ValueError("--workers must be 0 (one per CPU) or more")
        workers = workers or os.cpu_count() or 1
        with self.progress(None, "verifying ledger", unit="entries") as bar:
            result = verify_ledger(since_last=o["since_last"], alert=o["alert"], workers=workers,
                                   progress=bar.advance_to)
        return self._answer(result)

    def _answer(self, result):
        """The summary and JSON of a verification (of the ledger, or against a trust
        file); a failure exits 1 with its summary on stderr."""
        data = result.to_dict()
        if not result.ok:
            data["_exit_code"] = 1
            self.stderr.write(result.summary())
            return "", data
        return result.summary(), data
