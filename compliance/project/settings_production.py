"""Production settings: everything secret or host-specific comes from the environment.

DJANGO_SETTINGS_MODULE=compliance.project.settings_production requires SECRET_KEY,
DATABASE_URL and ALLOWED_HOSTS; `manage.py check --deploy` is clean with them.
"""
import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from whitenoise.compress import Compressor

from compliance.project.settings import *  # noqa: F403

DEBUG = False
for _name in ("SECRET_KEY", "DATABASE_URL", "ALLOWED_HOSTS"):
    if not os.environ.get(_name):
        raise ImproperlyConfigured(f"{_name} must be set in production")
SECRET_KEY = os.environ["SECRET_KEY"]
if TRACELEDGER_RETENTION_DAYS < 183:  # noqa: F405
    raise ImproperlyConfigured("TRACELEDGER_RETENTION_DAYS must be at least 183 (six months, EU AI Act Art. 19/26)")
# Keys are mounted from a secret store; never generate a signing identity silently.
TRACELEDGER_GENERATE_KEYS = envbool("TRACELEDGER_GENERATE_KEYS", "False")  # noqa: F405

SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", "True")  # noqa: F405
# X-Forwarded-Proto is believed only when the deployment says a proxy in front of us
# sets it (and strips it from clients): otherwise any client could claim https.
if envbool("TRACELEDGER_TRUSTED_PROXY", "False"):  # noqa: F405
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = 31536000
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SECURE = True
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Static files: whitenoise serves what `manage.py collectstatic` put in STATIC_ROOT, from
# each web process, compressed (gzip, brotli where installed) and under hashed names with a
# year's cache lifetime. No front server to configure, and the files travel with the app image;
# a CDN or load balancer in front caches them.
MIDDLEWARE = [*MIDDLEWARE[:2], "whitenoise.middleware.WhiteNoiseMiddleware", *MIDDLEWARE[2:]]  # noqa: F405
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Source maps are fetched only by a developer's browser tools: not worth compressing.
WHITENOISE_SKIP_COMPRESS_EXTENSIONS = (*Compressor.SKIP_COMPRESS_EXTENSIONS, "map")
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", STATIC_ROOT))  # noqa: F405

# One JSON object per log line (request id, user); workers log through the same handler.
TRACELEDGER_LOG_FORMAT = os.environ.get("TRACELEDGER_LOG_FORMAT", "json")
LOGGING["handlers"]["console"]["formatter"] = TRACELEDGER_LOG_FORMAT  # noqa: F405
LOGGING["root"]["level"] = os.environ.get("LOG_LEVEL", "INFO")  # noqa: F405
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# The web processes sign webhooks and checkpoints on demand: they are not ready without those keys.
TRACELEDGER_READY_KEYS = [p for p in os.environ.get("TRACELEDGER_READY_KEYS", "ledger,webhook").split(",") if p]

