"""The Django project's wiring: settings (embedded default and production), the root URL
configuration, the Celery application (`celery -A compliance.project`), WSGI, and the
in-process scheduler the embedded default runs instead of Celery beat."""
