"""gunicorn settings for TraceLedger's web processes, from the environment.

    gunicorn -c deploy/gunicorn.conf.py compliance.project.wsgi

Sync workers: requests are short database reads and writes, and a slow one (a report
export) should hold one worker, not stall others on a shared event loop. Start with
2 x cores + 1 and measure. /metrics needs PROMETHEUS_MULTIPROC_DIR so that a scrape sums
every worker's counters; it is emptied here when gunicorn starts and a dead worker's
gauges are dropped, its counters kept.
"""
import multiprocessing
import os
import shutil
import tempfile

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
worker_class = "sync"
# A request taking longer than this is killed and its worker replaced; report exports
# are the slowest pages (a PDF of a service's month).
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
# Recycle workers now and then, jittered so that they do not all restart at once.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "2000"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "200"))
# Only the load balancer's addresses may set X-Forwarded-Proto/-For: Django trusts
# X-Forwarded-Proto (SECURE_PROXY_SSL_HEADER) to know a request came over HTTPS.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# TLS in gunicorn itself, for a host with no load balancer in front (or a re-encrypting one);
# usually the load balancer terminates TLS and sets X-Forwarded-Proto.
certfile = os.environ.get("GUNICORN_CERTFILE") or None
keyfile = os.environ.get("GUNICORN_KEYFILE") or None
# Request bodies: ONNX uploads are limited by TRACELEDGER_MAX_UPLOAD_BYTES in Django;
# header limits stay gunicorn's defaults.
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR", "/dev/shm" if os.path.isdir("/dev/shm") else None)
# Our middleware writes one JSON access line per request with its id and user.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "pythonjsonlogger.json.JsonFormatter",
                            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
                            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"}}},
    "handlers": {"error_console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
    "root": {"handlers": ["error_console"], "level": "INFO"},  # Django's LOGGING takes over in the workers
    "loggers": {"gunicorn.error": {"handlers": ["error_console"], "level": loglevel.upper(), "propagate": False},
                "gunicorn.access": {"handlers": [], "level": "INFO", "propagate": False}},
}

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "compliance.project.settings_production")
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", os.path.join(tempfile.gettempdir(), "traceledger-prometheus"))


def on_starting(server):
    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(path, ignore_errors=True)  # counters of a previous run would be summed in
    os.makedirs(path, mode=0o700)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
