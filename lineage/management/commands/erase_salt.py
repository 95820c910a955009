from compliance.lib.cli import ContractCommand, ci_user
from compliance.lib.ids import parse_inference_id
from lineage.actions import do_erase_input_salt
from lineage.models import Prediction


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
        linkable = Prediction.objects.get(inference_id=iid).outputs_linkable_without_salt
        if linkable:
            summary += (f"\nWARNING: {iid} was recorded before output commitments were salted: its output digest "
                        "is a plain hash, so anyone with its ledger entry and the engine can still test guessed "
                        "inputs against its outputs (see the README, \"What erasure removes\")")
        return summary, {"inference_id": str(iid), "erased": erased, "already_erased": not erased,
                         "outputs_still_linkable": linkable}
