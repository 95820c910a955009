from compliance.ledger.witness import Witness
from compliance.lib.cli import ContractCommand


class Command(ContractCommand):
    help = ("Cosign the newest checkpoint after verifying its signature and its consistency with the last "
            "checkpoint this witness cosigned; refuse and raise an alert on a fork or a rollback.")

    def add_command_arguments(self, parser):
        parser.add_argument("--name", help="witness key name (default TRACELEDGER_WITNESS_NAME)")
        parser.add_argument("--dir", help="witness state directory (default TRACELEDGER_WITNESS_DIR)")
        parser.add_argument("--trust-vkey", metavar="VKEY",
                            help="pin one more ledger verifier key (after `keys rotate --purpose ledger`), then cosign")

    def run(self, **o):
        witness = Witness(o.get("name"), o.get("dir"))
        if o.get("trust_vkey"):
            witness.trust(o["trust_vkey"])
        done = witness.cosign_latest()
        since = f" (extends size {done.previous_size})" if done.previous_size is not None else " (first cosignature)"
        summary = (f"{done.status} checkpoint #{done.checkpoint_id} at size {done.size}{since}\n"
                   f"witness vkey: {done.witness_vkey}\nwitnessed note: {done.exported}")
        return summary, done.to_dict()
