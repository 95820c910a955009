from compliance.ledger.checkpoints import make_checkpoint
from compliance.lib.cli import ContractCommand


class Command(ContractCommand):
    help = "Make, store and export a signed checkpoint of the ledger; print it."

    def run(self, **o):
        checkpoint = make_checkpoint()
        return checkpoint.note.rstrip("\n"), checkpoint.to_dict()
