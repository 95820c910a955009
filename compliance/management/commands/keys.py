import argparse
import getpass

from compliance.ledger import keys
from compliance.lib.cli import ContractCommand


class Command(ContractCommand):
    help = ("Signing keys: `keys init --purpose P...`, `keys list`, `keys rotate --purpose P`, "
            "`keys revoke KEY_ID --reason R`, `keys register-witness VKEY`, "
            "`keys purge` (destroy retired private keys that earlier versions kept).")
    user_errors = ContractCommand.user_errors + (keys.KeyFileError,)  # WitnessError is a ValueError

    def add_command_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("list", help="registered public keys and which one is current")
        init = sub.add_parser("init", help="make the keys of these purposes where their files are missing")
        init.add_argument("--purpose", required=True, nargs="+", choices=keys.PURPOSES)
        rotate = sub.add_parser("rotate", help="make a new key for a purpose and retire the old one")
        rotate.add_argument("--purpose", required=True, choices=keys.PURPOSES)
        revoke = sub.add_parser("revoke", help="revoke a key: what it signs from now on no longer verifies")
        revoke.add_argument("key_id", help="key id or an unambiguous prefix (8+ hex digits)")
        revoke.add_argument("--reason", required=True)
        sub.add_parser("purge", help="destroy the retired/revoked private key files earlier versions kept on disk")
        witness = sub.add_parser("register-witness", help="register the key of a witness that runs on another host")
        witness.add_argument("vkey", help="the witness's vkey (remotewitness init prints it)")
        for p in (init, rotate, revoke, witness, sub.choices["list"], sub.choices["purge"]):
            p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON object")

    def run(self, **o):
        actor = f"cli:{getpass.getuser()}"
        if o["action"] == "init":
            made = [(purpose, *keys.init(purpose)) for purpose in o["purpose"]]
            lines = [f"{'made' if new else 'kept'} {purpose} key {signer.key_id}" for purpose, signer, new in made]
            return "\n".join(lines), {"keys": [{"purpose": purpose, "key_id": signer.key_id, "made": new}
                                               for purpose, signer, new in made]}
        if o["action"] == "rotate":
            new, old = keys.rotate(o["purpose"], actor=actor)
            lines = [f"new {new.purpose} key {new.key_id}"]
            if old:
                lines.append(f"retired {old.key_id}: its private key is destroyed")
            if new.purpose == "ledger":
                from compliance.ledger.checkpoints import ledger_vkey

                vkey = ledger_vkey()
                lines.append(f"ledger vkey: {vkey}\nwitnesses: manage.py witness --trust-vkey {vkey}")
            return "\n".join(lines), {"new": new.to_dict(), "retired": old.to_dict() if old else None}
        if o["action"] == "register-witness":
            from compliance.ledger import witnesses

            key = witnesses.register_remote(o["vkey"], actor=actor)
            return (f"registered witness {key.name} key {key.key_id} (ledger entry #{key.registered_index}); "
                    "auditors pin it with `trust export` or in their trust file"), {"key": key.to_dict()}
        if o["action"] == "revoke":
            key, replacement = keys.revoke(o["key_id"], reason=o["reason"], actor=actor)
            lines = [f"revoked {key.purpose} key {key.key_id} at {key.revoked_at.isoformat()}: {key.revocation_reason}"]
            if replacement:
                lines.append(f"it was current: new {key.purpose} key {replacement.key_id}")
            return "\n".join(lines), {"revoked": key.to_dict(),
                                      "replacement": replacement.to_dict() if replacement else None}
        if o["action"] == "purge":
            destroyed = keys.purge(actor=actor)
            lines = [f"destroyed {name}" for name in destroyed] or ["no retired private key on disk"]
            return "\n".join(lines), {"destroyed": destroyed}
        rows = keys.list_keys()
        lines = [f"{'key id':<18} {'purpose':<8} {'state':<8} current  created"]
        for k in rows:
            lines.append(f"{k['key_id'][:16]:<18} {k['purpose']:<8} {k['state']:<8} {'yes' if k['current'] else '':<8} "
                         f"{k['created_at']}")
        return "\n".join(lines), {"keys": rows}
