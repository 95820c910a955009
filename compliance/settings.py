"""TraceLedger settings, read from the environment.

Embedded default (no variables set): SQLite under TRACELEDGER_HOME, tasks run
in-process, keys generated into TRACELEDGER_HOME/keys.  Production sets
DATABASE_URL, REDIS_URL, SECRET_KEY and uses compliance.settings_production.
"""
import os
from pathlib import Path

import dj_database_url
import plotly

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name: str, default: str = "False") -> bool:
    value = os.environ.get(name, default)
    if value not in ("True", "False", "true", "false", "1", "0"):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value in ("True", "true", "1")


def envint(name: str, default: str) -> int:
    return int(os.environ.get(name, default))


TRACELEDGER_HOME = Path(os.environ.get("TRACELEDGER_HOME", BASE_DIR / "var")).resolve()
TRACELEDGER_STORE_DIR = Path(os.environ.get("TRACELEDGER_STORE_DIR", TRACELEDGER_HOME / "store"))
TRACELEDGER_KEYS_DIR = Path(os.environ.get("TRACELEDGER_KEYS_DIR", TRACELEDGER_HOME / "keys"))
TRACELEDGER_SPOOL_DIR = Path(os.environ.get("TRACELEDGER_SPOOL_DIR", TRACELEDGER_HOME / "spool"))
TRACELEDGER_CHECKPOINT_DIR = Path(
    os.environ.get("TRACELEDGER_CHECKPOINT_DIR", TRACELEDGER_HOME / "checkpoints")
)
TRACELEDGER_HOME.mkdir(parents=True, exist_ok=True)
# The ledger's origin line in checkpoints: unique per deployment of TraceLedger.
TRACELEDGER_LOG_ORIGIN = os.environ.get("TRACELEDGER_LOG_ORIGIN", "traceledger.local/ledger")
# Largest ONNX upload or calibration set accepted, in bytes.
TRACELEDGER_MAX_UPLOAD_BYTES = envint("TRACELEDGER_MAX_UPLOAD_BYTES", str(512 * 1024 * 1024))
# Provenance recorder (inference/recorder.py): records per spool write and per database
# transaction, longest wait in memory before spooling, records in memory before callers
# wait; and the most records one ingestion API request may carry.
TRACELEDGER_PROVENANCE_BATCH = envint("TRACELEDGER_PROVENANCE_BATCH", "5000")
TRACELEDGER_PROVENANCE_INTERVAL_MS = envint("TRACELEDGER_PROVENANCE_INTERVAL_MS", "50")
TRACELEDGER_PROVENANCE_BUFFER_MAX = envint("TRACELEDGER_PROVENANCE_BUFFER_MAX", "100000")
TRACELEDGER_INGEST_MAX_BATCH = envint("TRACELEDGER_INGEST_MAX_BATCH", "5000")
# Generate missing signing keys on first use (embedded default). Production mounts them.
TRACELEDGER_GENERATE_KEYS = envbool("TRACELEDGER_GENERATE_KEYS", "True")

SECRET_KEY = os.environ.get("SECRET_KEY", "dev-only-insecure-key-do-not-use-in-production")
DEBUG = envbool("DEBUG", "True")
ALLOWED_HOSTS = [h for h in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",") if h]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "compliance.apps.ComplianceConfig",
    "lineage.apps.LineageConfig",
    "inference.apps.InferenceConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "compliance.urls"
WSGI_APPLICATION = "compliance.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": TRACELEDGER_HOME / "traceledger.sqlite3",
            # Wait for the write lock instead of failing when the worker thread and a
            # request write at once; IMMEDIATE so a transaction takes it up front.
            "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# plotly.js is served from the plotly package itself: no vendored copy, no build step.
STATICFILES_DIRS = [BASE_DIR / "static", ("plotly", Path(plotly.__file__).parent / "package_data")]
STATIC_ROOT = TRACELEDGER_HOME / "staticfiles"

# Uploads larger than this go to a temporary file instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 32 * 1024 * 1024

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["compliance.roles.RolePermission"],
    "EXCEPTION_HANDLER": "compliance.api.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
}

# Celery: a Redis broker and real workers when REDIS_URL is set; otherwise tasks run
# in-process (the embedded default needs no services).
REDIS_URL = os.environ.get("REDIS_URL", "")
CELERY_BROKER_URL = REDIS_URL or "memory://localhost/"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {"inference.tasks.build_engine": {"queue": "gpu"}}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
}
