import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "compliance.project.settings")
application = get_wsgi_application()

# Embedded default (no REDIS_URL): checkpoints and verification run on a thread here,
# in the serving process of `runserver` or of any WSGI server; Celery beat otherwise.
from compliance.project.scheduler import start_in_process  # noqa: E402

start_in_process()
