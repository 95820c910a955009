from compliance.lib.cli import ContractCommand, ci_user
from compliance.lib.ids import parse_inference_id
from lineage.actions import do_erase_input_salt


class Command(ContractCommand):
    help = ("Erase the input salt of a prediction (GDPR erasure): the input can no longer be linked to it; "
            "the ledger is untouched and keeps verifying.")

    def add_command_arguments(self, parser):
        parser.add_argument("inference_id")
        parser.add_argument("--reference", default="", help="ticket id of the erasure request (no personal data)")
        parser.add_argument("--user", default="")

    def run(self, **o):
        iid = parse_inference_id(o["inference_id"])
        erased = do_erase_input_salt(iid, acting_user=o["user"] or ci_user(), reference=o["reference"])
        summary = f"input salt of {iid} erased" if erased else f"input salt of {iid} was already erased"
        return summary, {"inference_id": str(iid), "erased": erased, "already_erased": not erased}
