import getpass

from django.contrib.auth.models import Group, User
from django.db import transaction

from compliance.api import tokens
from compliance.lib.cli import ContractCommand
from compliance.lib.roles import SERVICE, ensure_groups


def service_user(name: str, *, create: bool) -> User | None:
    """The machine identity of service `name` (a user in the `service` group)."""
    name = name.strip()
    if not name or len(name) > 100 or not all(c.isalnum() or c in "-_." for c in name):
        raise ValueError("service name must be 1-100 characters of letters, digits, - _ .")
    ensure_groups()
    user = User.objects.filter(username=name).first()
    if user is not None and not user.groups.filter(name=SERVICE).exists():
        raise ValueError(f"user {name!r} exists and is not a service identity")
    if user is None and create:
        user = User.objects.create_user(name)  # no usable password: token only
        user.groups.add(Group.objects.get(name=SERVICE))
    return user


class Command(ContractCommand):
    help = ("Create the machine identity of an inference service (a user in the `service` group) and print its "
            "API token once. The token acts for the service named NAME only, and expires (see `tokens`).")

    def add_command_arguments(self, parser):
        parser.add_argument("name", help="the service name, as deployed")
        parser.add_argument("--rotate", action="store_true", help="revoke the service's tokens and issue a new one")
        parser.add_argument("--days", type=int, default=None, help="lifetime in days (TRACELEDGER_TOKEN_DAYS, 90)")

    def run(self, **o):
        name = o["name"].strip()
        actor = f"cli:{getpass.getuser()}"
        with transaction.atomic():
            user = service_user(name, create=True)
            live = user.api_tokens.filter(service=name, revoked_at=None).exists()
            if live and not o["rotate"]:
                raise ValueError(f"service {name!r} already has a token; pass --rotate to replace it")
            token, secret = tokens.rotate_service(user, name, days=o["days"], created_by=actor)
        return (f"token for service {name} (shown once, keep it in your secret store; expires "
                f"{token.expires_at:%Y-%m-%d}):\n{secret}",
                {"service": name, "token": secret, "id": token.id, "expires_at": token.expires_at.isoformat()})
