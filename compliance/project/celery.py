"""The Celery application. Imported from ComplianceConfig.ready() rather than from the
package __init__, so that `python -m compliance.verify_bundle` needs only cryptography."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "compliance.project.settings")

app = Celery("traceledger")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
