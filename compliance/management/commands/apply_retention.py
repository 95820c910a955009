import getpass

from compliance.investigation.retention import do_apply_retention
from compliance.lib.cli import ContractCommand


class Command(ContractCommand):
    help = ("Erase the input salts of predictions older than TRACELEDGER_RETENTION_DAYS, except those under "
            "legal hold; ledger entries are never removed. Records a retention.applied ledger entry.")

    def add_command_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="count only; erase nothing, record nothing")

    def run(self, **o):
        if o["dry_run"]:  # one count: nothing to show progress of
            result = do_apply_retention(dry_run=True, acting_user=getpass.getuser())
        else:
            with self.progress(None, "erasing salts", unit="salts") as bar:
                result = do_apply_retention(acting_user=getpass.getuser(), progress=bar.advance_to)
        if o["dry_run"]:
            summary = (f"dry run: {result['salts_expired']} salt(s) older than {result['retention_days']} days "
                       f"would be erased; {result['held_by_legal_hold']} kept under legal hold")
        else:
            summary = (f"erased {result['salts_erased']} salt(s) older than {result['retention_days']} days; "
                       f"{result['held_by_legal_hold']} kept under legal hold; ledger entry #{result['ledger_index']}")
        return summary, result
