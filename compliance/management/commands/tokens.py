import argparse
import getpass

from django.contrib.auth.models import User

from compliance.api import tokens
from compliance.lib.cli import ContractCommand
from compliance.management.commands.create_service_token import service_user
from compliance.models import ApiToken


class Command(ContractCommand):
    help = ("API tokens (stored hashed, expiring): `tokens issue --service NAME | --user USERNAME [--days N]`, "
            "`tokens revoke ID_OR_PREFIX`, `tokens list`.")

    def add_command_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        issue = sub.add_parser("issue", help="issue a token (its secret is shown once)")
        who = issue.add_mutually_exclusive_group(required=True)
        who.add_argument("--service", help="a service token, bound to this inference service")
        who.add_argument("--user", help="a personal token (CI) acting as this user")
        issue.add_argument("--days", type=int, default=None, help="lifetime in days (TRACELEDGER_TOKEN_DAYS, 90)")
        revoke = sub.add_parser("revoke", help="revoke a token now")
        revoke.add_argument("token", help="the token's id or prefix, from `tokens list`")
        for p in (issue, revoke, sub.add_parser("list", help="every token, without secrets")):
            p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON object")

    def run(self, **o):
        actor = f"cli:{getpass.getuser()}"
        if o["action"] == "issue":
            if o["service"]:
                user, service = service_user(o["service"], create=True), o["service"].strip()
            else:
                user, service = User.objects.filter(username=o["user"]).first(), ""
                if user is None:
                    raise ValueError(f"no user {o['user']!r}")
            token, secret = tokens.issue(user, service=service, days=o["days"], created_by=actor)
            return (f"token {token.id} ({token.prefix}…) for {service or user.get_username()}, expires "
                    f"{token.expires_at:%Y-%m-%d}; shown once:\n{secret}", token.to_dict() | {"token": secret})
        if o["action"] == "revoke":
            token = tokens.find(o["token"])
            revoked = tokens.revoke(token, acting_user=actor)
            return (f"token {token.id} ({token.prefix}…) {'revoked' if revoked else 'was already revoked'}",
                    token.to_dict() | {"already_revoked": not revoked})
        rows = [t.to_dict() for t in ApiToken.objects.select_related("user")]
        lines = [f"{'id':>5} {'prefix':<12} {'service / user':<24} {'expires':<11} {'state':<8} uses"]
        for t in rows:
            state = "revoked" if t["revoked_at"] else "live"
            lines.append(f"{t['id']:>5} {t['prefix']:<12} {(t['service'] or t['user'])[:24]:<24} "
                         f"{t['expires_at'][:10]:<11} {state:<8} {t['use_count']}")
        return "\n".join(lines), {"tokens": rows}
