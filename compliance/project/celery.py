"""The Celery application. Imported from ComplianceConfig.ready() rather than from the
package __init__, so that `python -m compliance.verify_bundle` needs only cryptography."""
import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "compliance.project.settings")

app = Celery("traceledger")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


_task_log_context: dict[str, tuple] = {}


@signals.task_prerun.connect
def _log_with_task_id(task_id=None, **kwargs):
    """A worker's task logs with its task id where a request logs with the request id;
    a task run in-process (the embedded default) keeps the request's."""
    from compliance.lib import logcontext

    if logcontext.request_id.get() == "-":
        _task_log_context[task_id] = (logcontext.request_id.set(f"task:{task_id}"), logcontext.user.set("-"))


@signals.task_postrun.connect
def _log_context_done(task_id=None, **kwargs):
    from compliance.lib import logcontext

    tokens = _task_log_context.pop(task_id, None)
    if tokens:
        logcontext.request_id.reset(tokens[0])
        logcontext.user.reset(tokens[1])
