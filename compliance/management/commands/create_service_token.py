from django.contrib.auth.models import Group, User
from django.db import transaction
from rest_framework.authtoken.models import Token

from compliance.lib.cli import ContractCommand
from compliance.lib.roles import SERVICE, ensure_groups


class Command(ContractCommand):
    help = ("Create the machine identity of an inference service (a user in the `service` group) and print its "
            "API token once. The token may report predictions and engine loads for the service named NAME only.")

    def add_command_arguments(self, parser):
        parser.add_argument("name", help="the service name, as deployed")
        parser.add_argument("--rotate", action="store_true", help="replace the token of an existing service identity")

    def run(self, **o):
        name = o["name"].strip()
        if not name or len(name) > 100 or not all(c.isalnum() or c in "-_." for c in name):
            raise ValueError("service name must be 1-100 characters of letters, digits, - _ .")
        ensure_groups()
        with transaction.atomic():
            user = User.objects.filter(username=name).first()
            if user is not None:
                if not user.groups.filter(name=SERVICE).exists():
                    raise ValueError(f"user {name!r} exists and is not a service identity")
                if not o["rotate"]:
                    raise ValueError(f"service {name!r} already has a token; pass --rotate to replace it")
                Token.objects.filter(user=user).delete()
            else:
                user = User.objects.create_user(name)  # no usable password: token only
                user.groups.add(Group.objects.get(name=SERVICE))
            token = Token.objects.create(user=user)
        return (f"token for service {name} (shown once, keep it in your secret store):\n{token.key}",
                {"service": name, "token": token.key})
