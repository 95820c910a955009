from pathlib import Path

from compliance.ledger.receipts import ReceiptError, make_receipt
from compliance.lib.cli import ContractCommand
from compliance.lib.ids import parse_inference_id


class Command(ContractCommand):
    help = ("Write a prediction's receipt: its ledger entry, inclusion proof and cosigned checkpoint in the C2SP "
            "tlog-proof format, verifiable offline with `python -m compliance.verify_bundle FILE --trust TRUST`.")
    user_errors = ContractCommand.user_errors + (ReceiptError,)

    def add_command_arguments(self, parser):
        parser.add_argument("inference_id")
        parser.add_argument("--out", required=True, metavar="FILE", help="where to write the .tlog-proof file")

    def run(self, **o):
        receipt = make_receipt(parse_inference_id(o["inference_id"]))
        out = Path(o["out"])
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(receipt.text)
        tmp.replace(out)
        state = "witnessed" if receipt.witnessed else "NOT yet witnessed by the quorum"
        return (f"wrote {out}: entry #{receipt.index} in checkpoint size {receipt.checkpoint.size} ({state})\n"
                f"verify: python -m compliance.verify_bundle {out} --trust TRUST.json"), {
            "path": str(out.resolve()), "index": receipt.index, "checkpoint_size": receipt.checkpoint.size,
            "witnessed": receipt.witnessed}
