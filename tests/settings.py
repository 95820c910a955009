"""Test settings: a private TRACELEDGER_HOME per run (store, keys, checkpoints), shared
with the Celery worker process the tests start. DATABASE_URL / REDIS_URL decide
PostgreSQL + Redis (CI) or the embedded SQLite default."""
import os
import tempfile

os.environ.setdefault("TRACELEDGER_HOME", tempfile.mkdtemp(prefix="traceledger-test-"))
os.environ.setdefault("TRACELEDGER_DEMO_PASSWORD", "demo-password-for-tests")

from compliance.project.settings import *  # noqa: E402,F401,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests only
TRACELEDGER_INPROCESS_SCHEDULER = False  # tests that want the scheduler thread start it themselves
