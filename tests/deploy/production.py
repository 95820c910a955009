"""The production processes for tests/deploy, started with the commands of
deploy/compose.yaml: gunicorn with deploy/gunicorn.conf.py and the production settings,
the gpu-queue and default Celery workers and beat, all against this run's PostgreSQL
test database and Redis."""
from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import django
from django.conf import settings

from tests.conftest import ROOT

SECRET = "smoke-test-secret-" + "x" * 50


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1, so that the browser talks HTTPS as it would to the
    load balancer (secure cookies, CSRF's origin check) while gunicorn terminates TLS."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


def production_env(**extra: str) -> dict[str, str]:
    db = settings.DATABASES["default"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRACELEDGER_", "PROMETHEUS_"))}
    return env | {
        "DJANGO_SETTINGS_MODULE": "compliance.project.settings_production",
        "SECRET_KEY": SECRET,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "TRACELEDGER_HOME": str(settings.TRACELEDGER_HOME),
        "PYTHONPATH": str(ROOT),
    } | extra


def static_root() -> Path:
    """collectstatic's output for the current static sources, made once and kept: it
    compresses 40 MB (gzip and brotli) and takes a minute, the rest of the smoke test less."""
    from django.contrib.staticfiles import finders

    digest = hashlib.sha256(f"{django.__version__} {version('whitenoise')}".encode())
    for finder in finders.get_finders():
        for path, storage in finder.list(["CVS", ".*", "*~"]):
            st = os.stat(storage.path(path))
            digest.update(f"{getattr(storage, 'prefix', '') or ''}/{path} {st.st_size} {st.st_mtime_ns}\n".encode())
    root = Path(tempfile.gettempdir()) / f"traceledger-static-{digest.hexdigest()[:16]}"
    if not (root / "staticfiles.json").exists():
        building = Path(f"{root}.{os.getpid()}")
        shutil.rmtree(building, ignore_errors=True)
        subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=ROOT, check=True,
                       env=production_env(STATIC_ROOT=str(building)))
        try:
            building.rename(root)
        except OSError:  # another run made it meanwhile
            shutil.rmtree(building, ignore_errors=True)
    return root


@dataclass
class Topology:
    base: Path
    url: str = ""
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    def start(self, name: str, args: list[str]) -> None:
        """Run a compose command (`gunicorn …`, `celery …`) with this interpreter."""
        self.logs[name] = self.base / f"{name}.log"
        out = open(self.logs[name], "wb")
        self.procs[name] = subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=self.env, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def log(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace")

    def wait(self, name: str, ready, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if self.procs[name].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start:\n{self.log(name)[-4000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, 15)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
            _wait_for_group(proc.pid)  # gunicorn's and celery's children hold database sessions


def _wait_for_group(pgid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            os.killpg(pgid, 0)
            time.sleep(0.1)
        os.killpg(pgid, 9)
    except ProcessLookupError:
        pass


UNVERIFIED = ssl._create_unverified_context()  # our own self-signed certificate


def compose() -> dict:
    import yaml

    return yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())


def compose_commands() -> dict[str, list[str]]:
    """The command of each application service in deploy/compose.yaml, as an argument
    list; a `sh -c "… && exec CMD"` wrapper gives its exec'd command."""
    commands = {}
    for name, service in compose()["services"].items():
        command = service.get("command")
        if not command:
            continue
        if command[:2] == ["sh", "-c"]:
            exec_part = command[2].split("exec ", 1)
            if len(exec_part) == 1:
                continue
            command = shlex.split(exec_part[1])
        commands[name] = command
    return commands


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=UNVERIFIED) as response:
            return response.status == 200
    except OSError:
        return False


def start_topology(base: Path, metrics_token: str) -> Topology:
    port = free_port()
    topology = Topology(base, url=f"https://127.0.0.1:{port}")
    cert, key = self_signed_certificate(base)
    topology.env = production_env(
        STATIC_ROOT=str(static_root()), GUNICORN_BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY="2",
        GUNICORN_CERTFILE=str(cert), GUNICORN_KEYFILE=str(key),
        PROMETHEUS_MULTIPROC_DIR=str(base / "prometheus"), TRACELEDGER_METRICS_TOKEN=metrics_token,
        TRACELEDGER_CHECKPOINT_INTERVAL_S="2", TRACELEDGER_PROVENANCE_SHIPPER="thread")
    commands = compose_commands()
    topology.start("web", commands["web"])
    topology.start("worker-gpu", commands["worker-gpu"])
    topology.start("worker-default", commands["worker-default"])
    beat = commands["beat"]
    topology.start("beat", [*beat[:beat.index("-s")], "-s", str(base / "celerybeat-schedule")])
    try:
        topology.wait("web", lambda: answers(f"{topology.url}/healthz"))
        for worker in ("worker-gpu", "worker-default"):
            topology.wait(worker, lambda: "ready." in topology.log(worker))
    except BaseException:
        topology.stop()  # a worker left running would take the next run's tasks
        raise
    return topology
