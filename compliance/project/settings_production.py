"""Production settings: everything secret or host-specific comes from the environment.

DJANGO_SETTINGS_MODULE=compliance.project.settings_production requires SECRET_KEY,
DATABASE_URL and ALLOWED_HOSTS; `manage.py check --deploy` is clean with them.
"""
import os

from django.core.exceptions import ImproperlyConfigured

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
