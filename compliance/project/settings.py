"""TraceLedger settings, read from the environment.

Embedded default (no variables set): SQLite under TRACELEDGER_HOME, tasks run
in-process, keys generated into TRACELEDGER_HOME/keys.  Production sets
DATABASE_URL, REDIS_URL, SECRET_KEY and uses compliance.project.settings_production.
"""
import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parents[2]  # the repository root (compliance/project/settings.py)


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
if not TRACELEDGER_HOME.exists():
    TRACELEDGER_HOME.mkdir(parents=True, mode=0o700)  # keys, the database and salts live here
# The ledger's origin line in checkpoints: unique per deployment of TraceLedger.
TRACELEDGER_LOG_ORIGIN = os.environ.get("TRACELEDGER_LOG_ORIGIN", "traceledger.local/ledger")
# Largest ONNX upload or calibration set accepted, in bytes.
TRACELEDGER_MAX_UPLOAD_BYTES = envint("TRACELEDGER_MAX_UPLOAD_BYTES", str(512 * 1024 * 1024))
# Hostile input is bounded before work is done (README "Security"): bytes one tensor may
# hold once unpacked (a disclosed input's array, a predict input) and bytes one request
# may unpack or send in all.  Calibration sets use 4 x TRACELEDGER_MAX_UPLOAD_BYTES.
TRACELEDGER_MAX_TENSOR_BYTES = envint("TRACELEDGER_MAX_TENSOR_BYTES", str(16 * 1024 * 1024))
TRACELEDGER_MAX_REQUEST_BYTES = envint("TRACELEDGER_MAX_REQUEST_BYTES", str(64 * 1024 * 1024))
# Deepest nesting of lists/objects a JSON request body may have.
TRACELEDGER_MAX_JSON_DEPTH = envint("TRACELEDGER_MAX_JSON_DEPTH", "32")
# Repeated refusals (unknown services, a token used for another service) raise one
# alert per this many seconds with a count, not one alert per request.
TRACELEDGER_ALERT_AGGREGATE_S = envint("TRACELEDGER_ALERT_AGGREGATE_S", "3600")
# API tokens (compliance/api/tokens.py) expire after this many days unless issued with --days.
TRACELEDGER_TOKEN_DAYS = envint("TRACELEDGER_TOKEN_DAYS", "90")
# Days a prediction's input salt is kept (the ledger itself is never pruned). EU AI Act
# Art. 19 and 26(6): logs are kept at least six months; production refuses less.
TRACELEDGER_RETENTION_DAYS = envint("TRACELEDGER_RETENTION_DAYS", "190")
# Provenance recorder (inference/provenance/recorder.py): records per spool write and per database
# transaction, longest wait in memory before spooling, records in memory before callers
# wait; and the most records one ingestion API request may carry.
TRACELEDGER_PROVENANCE_BATCH = envint("TRACELEDGER_PROVENANCE_BATCH", "5000")
TRACELEDGER_PROVENANCE_INTERVAL_MS = envint("TRACELEDGER_PROVENANCE_INTERVAL_MS", "50")
TRACELEDGER_PROVENANCE_BUFFER_MAX = envint("TRACELEDGER_PROVENANCE_BUFFER_MAX", "100000")
# "process": BufferedRecorder writes to PostgreSQL from a child process, off the GIL
# of the serving process; "thread": from a thread of it (always so on SQLite)
TRACELEDGER_PROVENANCE_SHIPPER = os.environ.get("TRACELEDGER_PROVENANCE_SHIPPER", "process")
TRACELEDGER_INGEST_MAX_BATCH = envint("TRACELEDGER_INGEST_MAX_BATCH", "5000")
# Generate missing signing keys on first use (embedded default). Production mounts them.
TRACELEDGER_GENERATE_KEYS = envbool("TRACELEDGER_GENERATE_KEYS", "True")
# Matching a disclosed input against a commitment is a recorded act, and rate-limited so
# that it cannot serve as an oracle for guessing an input (compliance.investigation.disclosure).
TRACELEDGER_DISCLOSURES_PER_USER_PER_HOUR = envint("TRACELEDGER_DISCLOSURES_PER_USER_PER_HOUR", "10")
TRACELEDGER_DISCLOSURES_PER_PREDICTION_PER_DAY = envint("TRACELEDGER_DISCLOSURES_PER_PREDICTION_PER_DAY", "5")



def _private_file(path: Path, initial: bytes = b"") -> Path:
    """Create `path` 0600 (with `initial` content) unless it exists; tighten it to 0600 if it does."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)
    else:
        with os.fdopen(fd, "wb") as f:
            f.write(initial)
    return path


def _embedded_secret_key() -> str:
    """The embedded default's own random SECRET_KEY, made on first run (0600): a key
    written in the source would let anyone forge its sessions."""
    import secrets

    path = _private_file(TRACELEDGER_HOME / "secret_key", secrets.token_urlsafe(50).encode())
    return path.read_text().strip()


SECRET_KEY = os.environ.get("SECRET_KEY") or _embedded_secret_key()
# Off unless asked for: a traceback page shows settings and code to whoever triggers it.
DEBUG = envbool("DEBUG", "False")
ALLOWED_HOSTS = [h for h in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",") if h]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "axes",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "compliance.apps.ComplianceConfig",
    "lineage.apps.LineageConfig",
    "inference.apps.InferenceConfig",
]

MIDDLEWARE = [
    # /healthz and /readyz answer before host checks and the HTTPS redirect: a load
    # balancer probes by IP over plain HTTP.
    "compliance.web.health.HealthMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # 400 for NUL bytes and lone surrogates in paths, queries, forms and JSON (issue 22)
    "compliance.web.input_guard.InputGuardMiddleware",
    "compliance.api.middleware.api_body_limit",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # a request id and the user on every log line; request counts for /metrics
    "compliance.web.observability.RequestContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # last, as django-axes asks: it turns a locked-out login into its lockout response
    "axes.middleware.AxesMiddleware",
]

# Content-Security-Policy (django-csp): scripts only from our own static files (no
# inline script, no eval: charts are drawn by static/js/dashboard.js from json_script
# data), nothing framed, no plugins, forms post only to us.  Styles allow inline
# attributes because plotly.js sets style attributes on the SVG it draws; a style
# cannot run code.  ReDoc starts its search worker from a blob: URL.
from csp.constants import NONE, SELF, UNSAFE_INLINE  # noqa: E402

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF, "data:"],
        "connect-src": [SELF],
        "worker-src": [SELF, "blob:"],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    },
}

# A signed-in session lasts TRACELEDGER_SESSION_AGE_S seconds (8 hours by default,
# one working day), not Django's two weeks.
SESSION_COOKIE_AGE = envint("TRACELEDGER_SESSION_AGE_S", str(8 * 3600))
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

# Expensive exports (PDF reports, evidence bundles) each user may start per window;
# more get 429 with Retry-After.  The counter lives in Django's cache.
TRACELEDGER_EXPORTS_PER_WINDOW = envint("TRACELEDGER_EXPORTS_PER_WINDOW", "5")
TRACELEDGER_EXPORT_WINDOW_S = envint("TRACELEDGER_EXPORT_WINDOW_S", "300")
# A cache shared by every web process (rate limits, cached aggregates): a Redis URL of
# its own, never the Celery broker's database. Unset: each process's memory.
TRACELEDGER_CACHE_URL = os.environ.get("TRACELEDGER_CACHE_URL", "")
if TRACELEDGER_CACHE_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": TRACELEDGER_CACHE_URL}}


# Login throttling (django-axes): after AXES_FAILURE_LIMIT wrong passwords for one
# username from one address, that pair is locked out for AXES_COOLOFF_TIME hours;
# each lockout is a ledger entry and an alert (compliance.investigation.lockouts).
AUTHENTICATION_BACKENDS = ["compliance.web.lockout.LoginThrottleBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = envint("AXES_FAILURE_LIMIT", "5")
AXES_COOLOFF_TIME = float(os.environ.get("AXES_COOLOFF_HOURS", "1"))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "compliance.web.lockout.lockout_response"
AXES_VERBOSE = False
# Argon2id first (argon2-cffi); the others only to check, and upgrade, older hashes.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
# Cookies and headers that hold on the embedded default too (production adds HTTPS-only
# cookies and HSTS in settings_production.py).
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

ROOT_URLCONF = "compliance.project.urls"
WSGI_APPLICATION = "compliance.project.wsgi.application"

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
                "compliance.web.context.dashboard",
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
            # created 0600 (SQLite gives its -wal and -shm files the database file's mode)
            "NAME": _private_file(TRACELEDGER_HOME / "traceledger.sqlite3"),
            # Wait for the write lock instead of failing when the worker thread and a
            # request write at once; IMMEDIATE so a transaction takes it up front.
            # WAL: readers (pages, the heartbeat's reaper, verify_ledger) never block
            # the writer nor wait for it.  Synchronous stays FULL: a ledger commit
            # must survive a power cut.
            "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL"},
        }
    }
# A PostgreSQL streaming replica the dashboard's page views may read from
# (compliance/project/dbrouter.py); writes and everything outside GET pages use the primary.
DATABASE_REPLICA_URL = os.environ.get("DATABASE_REPLICA_URL", "")
if DATABASE_URL and DATABASE_REPLICA_URL:
    DATABASES["replica"] = dj_database_url.parse(DATABASE_REPLICA_URL, conn_max_age=60)
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
    DATABASE_ROUTERS = ["compliance.project.dbrouter.ReplicaRouter"]
    MIDDLEWARE.append("compliance.project.dbrouter.replica_reads")
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
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "compliance.web.staticfinders.PlotlyFinder",  # plotly.min.js from the plotly package
]
STATIC_ROOT = TRACELEDGER_HOME / "staticfiles"

# Uploads larger than this go to a temporary file instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024 * 1024
# Bodies other than file uploads (forms, JSON): the same bound as the API's.
DATA_UPLOAD_MAX_MEMORY_SIZE = TRACELEDGER_MAX_REQUEST_BYTES
# uploads (a disclosed input) hold personal data: owner-only, like exports
FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: an anonymous API call then gets 401 with a WWW-Authenticate header.
        "compliance.api.tokens.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["compliance.lib.roles.RolePermission"],
    "DEFAULT_PARSER_CLASSES": ["compliance.api.parsers.JSONParser", "rest_framework.parsers.FormParser",
                               "rest_framework.parsers.MultiPartParser"],
    "EXCEPTION_HANDLER": "compliance.api.errors.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "compliance.api.schema.TraceLedgerSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "TraceLedger API",
    "DESCRIPTION": "Provenance of ML inference: models, engine builds, signed engines, deployments, "
                   "traces, alerts, cases and the ledger. Errors are {\"error\": one line}.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["compliance.lib.roles.RolePermission"],
    # Swagger UI and ReDoc from the drf-spectacular-sidecar package: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# /metrics: Prometheus scrapers send `Authorization: Bearer <token>`; people with a read
# role may open it logged in. Empty token: logged-in access only.
TRACELEDGER_METRICS_TOKEN = os.environ.get("TRACELEDGER_METRICS_TOKEN", "")
# Extra metric collectors (dotted paths to functions returning compliance.web.metrics.Metric
# lists); a path whose module does not exist is skipped.
TRACELEDGER_METRICS_COLLECTORS = [p for p in os.environ.get("TRACELEDGER_METRICS_COLLECTORS", "").split(",") if p]

# Webhooks (compliance/investigation/webhooks.py) never reach loopback, private,
# link-local or multicast addresses except these networks (CIDRs, comma-separated);
# a delivery waits at most TIMEOUT_S and reads at most MAX_RESPONSE_BYTES of the answer.
TRACELEDGER_WEBHOOK_ALLOWED_NETWORKS = [n for n in os.environ.get("TRACELEDGER_WEBHOOK_ALLOWED_NETWORKS", "").split(",")
                                        if n.strip()]
TRACELEDGER_WEBHOOK_TIMEOUT_S = envint("TRACELEDGER_WEBHOOK_TIMEOUT_S", "5")
TRACELEDGER_WEBHOOK_MAX_RESPONSE_BYTES = envint("TRACELEDGER_WEBHOOK_MAX_RESPONSE_BYTES", "65536")

# Alert e-mail. The console backend prints mail in development; production sets SMTP.
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EMAIL_PORT", "25")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "traceledger@localhost")

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

# The ledger's witness (`manage.py witness`): its key name and its own state directory,
# which it trusts instead of our database.
TRACELEDGER_WITNESS_NAME = os.environ.get("TRACELEDGER_WITNESS_NAME", "traceledger.local/witness")
TRACELEDGER_WITNESS_DIR = Path(os.environ.get("TRACELEDGER_WITNESS_DIR", TRACELEDGER_HOME / "witness"))
# A checkpoint counts as witnessed when this many of the registered (pinned) witness
# keys cosigned it: N of M.  0 means no witness is required.
TRACELEDGER_WITNESS_QUORUM = envint("TRACELEDGER_WITNESS_QUORUM", "1")
# Periodic ledger work, in seconds (0 turns a job off): signed checkpoints, a
# verification of what is new since the last verified checkpoint, and a full one.
TRACELEDGER_CHECKPOINT_INTERVAL_S = envint("TRACELEDGER_CHECKPOINT_INTERVAL_S", "300")
TRACELEDGER_VERIFY_INTERVAL_S = envint("TRACELEDGER_VERIFY_INTERVAL_S", "900")
TRACELEDGER_VERIFY_FULL_INTERVAL_S = envint("TRACELEDGER_VERIFY_FULL_INTERVAL_S", "86400")
# Celery beat runs the schedule when REDIS_URL is set; otherwise the web process runs it
# on a thread (compliance.project.scheduler), so the embedded default needs no extra process.
TRACELEDGER_INPROCESS_SCHEDULER = envbool("TRACELEDGER_INPROCESS_SCHEDULER", "False" if REDIS_URL else "True")
# A requested full verification that shows no result after this long is given up,
# so that a lost worker cannot block the next request for ever.
TRACELEDGER_VERIFY_STALE_S = envint("TRACELEDGER_VERIFY_STALE_S", "3600")
CELERY_BEAT_SCHEDULE = {
    name: {"task": task, "schedule": float(every), "kwargs": kwargs}
    for name, task, every, kwargs in [
        ("ledger-checkpoint", "compliance.tasks.make_checkpoint", TRACELEDGER_CHECKPOINT_INTERVAL_S, {}),
        ("ledger-verify-since-last", "compliance.tasks.verify_ledger", TRACELEDGER_VERIFY_INTERVAL_S,
         {"since_last": True}),
        ("ledger-verify-full", "compliance.tasks.verify_ledger", TRACELEDGER_VERIFY_FULL_INTERVAL_S,
         {"since_last": False}),
    ]
    if every > 0
}

# Log lines: plain text in development; "json" (production's default) writes one JSON
# object per line with the request id and the user (compliance.lib.logcontext).
TRACELEDGER_LOG_FORMAT = os.environ.get("TRACELEDGER_LOG_FORMAT", "text")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "compliance.lib.logcontext.RequestContextFilter"}},
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s %(user)s] %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(user)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["context"],
                             "formatter": TRACELEDGER_LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
}
# Readiness (/readyz): the purposes whose private key this process must be able to read.
# Empty: none (the embedded default generates keys on first use).
TRACELEDGER_READY_KEYS = [p for p in os.environ.get("TRACELEDGER_READY_KEYS", "").split(",") if p]

# Engine builds (inference/builder.py).  Backends the build workers offer, comma-separated;
# empty: those that import here.  A request for any other backend is refused up front.
TRACELEDGER_BUILD_BACKENDS = [b for b in os.environ.get("TRACELEDGER_BUILD_BACKENDS", "").split(",") if b]
# A build still building/verifying/signing after this long is failed by the reaper.
TRACELEDGER_BUILD_TIMEOUT_S = envint("TRACELEDGER_BUILD_TIMEOUT_S", "7200")
# The worker refreshes Build.heartbeat_at this often; a build whose heartbeat is older
# than TRACELEDGER_BUILD_STALE_S has lost its worker and is failed by the reaper.
TRACELEDGER_BUILD_HEARTBEAT_S = envint("TRACELEDGER_BUILD_HEARTBEAT_S", "10")
TRACELEDGER_BUILD_STALE_S = envint("TRACELEDGER_BUILD_STALE_S", "120")
# Fewest samples a calibration set may hold.
TRACELEDGER_MIN_CALIBRATION_SAMPLES = envint("TRACELEDGER_MIN_CALIBRATION_SAMPLES", "16")
# Parity check after each build: golden inputs run through the engine and through the
# ONNX model in FP32; an element passes when |engine - reference| <= atol + rtol * |reference|
# (numpy.allclose).  Decimal strings: they are copied into signed attestations.
TRACELEDGER_PARITY_TOLERANCE = {
    "fp32": {"atol": "1e-4", "rtol": "1e-4"},
    "fp16": {"atol": "1e-2", "rtol": "1e-2"},
    "bf16": {"atol": "5e-2", "rtol": "5e-2"},
    "int8": {"atol": "1e-1", "rtol": "1e-1"},
}
# `manage.py verify_ledger` checks whole subtrees in this many worker processes
# (0: one per CPU); the periodic task and "Verify now" run in one process.
TRACELEDGER_VERIFY_WORKERS = envint("TRACELEDGER_VERIFY_WORKERS", "0")
TRACELEDGER_PARITY_SAMPLES = envint("TRACELEDGER_PARITY_SAMPLES", "8")
TRACELEDGER_REVERIFY_INTERVAL_S = envint("TRACELEDGER_REVERIFY_INTERVAL_S", "86400")
# An unacknowledged build message is redelivered after this long (acks_late); it must
# outlast the longest build, or a healthy build would be delivered twice.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": envint("TRACELEDGER_BROKER_VISIBILITY_TIMEOUT_S", str(TRACELEDGER_BUILD_TIMEOUT_S + 600)),
    # Look for such messages every 10 s (kombu's default scans every 100 s).
    "unacked_restore_interval": 10,
    "unacked_restore_throttle": 1,
}
CELERY_BEAT_SCHEDULE |= {
    "reverify-engines": {"task": "inference.tasks.reverify_engines", "schedule": float(TRACELEDGER_REVERIFY_INTERVAL_S)},
    "reap-builds": {"task": "inference.tasks.reap_builds", "schedule": 60.0},
}
