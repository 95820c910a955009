from compliance.ledger import trustcheck, trustfile
from compliance.lib.cli import ContractCommand


class Command(ContractCommand):
    help = ("The auditor's trust file: `trust export FILE` writes the log origin, the pinned ledger, build and "
            "witness keys and the newest witnessed checkpoint; `trust update FILE` moves it forward only after "
            "a consistency proof from the checkpoint it holds.")
    user_errors = ContractCommand.user_errors + (trustfile.TrustFileError, OSError)

    def add_command_arguments(self, parser):
        parser.add_argument("action", choices=["export", "update"])
        parser.add_argument("file", help="the trust file (JSON, traceledger-trust/v1)")

    def run(self, **o):
        if o["action"] == "export":
            trust = trustcheck.export(o["file"])
            pinned = ", ".join(f"{len(trust.pinned(p))} {p}" for p in trustfile.PURPOSES)
            return (f"wrote {o['file']}: {trust.origin} at size {trust.size}, root {trustcheck.root_b64(trust)}; "
                    f"pinned keys: {pinned}; witness quorum {trust.quorum}\n"
                    "keep this file where the operator cannot change it"), trust.to_dict()
        trust, before = trustcheck.update(o["file"])
        if trust.size == before:
            return f"{o['file']} already holds the newest witnessed checkpoint (size {before})", trust.to_dict()
        return (f"moved {o['file']} from size {before} to {trust.size} after a consistency proof; "
                f"{len(trust.keys)} pinned keys"), trust.to_dict()
