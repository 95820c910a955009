"""Settings for benchmark child processes: ours, plus django-auditlog (a dev dependency)
as the baseline the ledger's append rate is compared with."""
import importlib.util

from compliance.project.settings import *  # noqa: F401,F403
from compliance.project.settings import INSTALLED_APPS

if importlib.util.find_spec("auditlog"):
    INSTALLED_APPS = [*INSTALLED_APPS, "auditlog"]
TRACELEDGER_INPROCESS_SCHEDULER = False
