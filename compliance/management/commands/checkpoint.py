from compliance.cli import ContractCommand
from compliance.ledger.checkpoints import make_checkpoint


class Command(ContractCommand):
    help = "Make, store and export a signed checkpoint of the ledger; print it."

    def run(self, **o):
        checkpoint = make_checkpoint()
        return checkpoint.note.rstrip("\n"), checkpoint.to_dict()
