"""Base for the command-line contract: a short human summary by default, `--json`
for machines, and a one-line reason with a non-zero exit on bad input."""
from __future__ import annotations

import getpass
import json
import os

from django.core.management.base import BaseCommand, CommandError


class ContractCommand(BaseCommand):
    #: exceptions whose message is shown as the one-line reason
    user_errors: tuple[type[BaseException], ...] = (ValueError, LookupError, RuntimeError)

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        self.add_command_arguments(parser)

    def add_command_arguments(self, parser):
        pass

    def run(self, **options) -> tuple[str, dict]:
        raise CommandError("command has no run()")

    def progress(self, total: int | None, description: str, *, unit: str = "it"):
        """A progress bar (compliance.lib.progress) on this command's stderr, drawn only
        when that is a terminal: stdout, where `--json` goes, is never written to."""
        from compliance.lib.progress import progress

        # the raw stream under Django's OutputWrapper, which would end every write with a newline
        return progress(total, description, unit=unit, stream=getattr(self.stderr, "_out", self.stderr))

    def handle(self, *args, **options):
        try:
            summary, data = self.run(**options)
        except CommandError:
            raise
        except self.user_errors as exc:
            raise CommandError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
        exit_code = data.pop("_exit_code", None) if isinstance(data, dict) else None
        if options["json"]:
            self.stdout.write(json.dumps(data, indent=None, sort_keys=True, default=str))
        else:
            self.stdout.write(summary)
        if exit_code:
            raise SystemExit(exit_code)


def ci_user() -> str:
    """Who runs this: the CI system's user when set, else the OS user."""
    for name in ("TRACELEDGER_USER", "GITLAB_USER_LOGIN", "GITHUB_ACTOR", "BUILD_USER"):
        if os.environ.get(name):
            return os.environ[name]
    return getpass.getuser()


def ci_commit() -> str:
    """The commit CI is building, or an empty string."""
    for name in ("GIT_COMMIT", "CI_COMMIT_SHA", "GITHUB_SHA"):
        if os.environ.get(name):
            return os.environ[name]
    return ""
