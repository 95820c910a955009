"""deploy/compose.yaml and deploy/systemd/ describe the topology of the README: read here
because containers cannot run in CI (tests/deploy/test_production.py starts the same
commands directly)."""
from __future__ import annotations

import configparser
import re
import shlex

import pytest

from tests.conftest import ROOT
from tests.deploy.production import compose, compose_commands

pytestmark = pytest.mark.embedded
APP_SERVICES = {"setup", "web", "worker-gpu", "worker-default", "beat", "witness"}


def mounts(service: dict) -> dict[str, str]:
    return {v.split(":")[1]: v.split(":")[0] for v in service.get("volumes", [])}


def test_it_starts_the_whole_topology():
    services = compose()["services"]
    assert set(services) == {"postgres", "redis"} | APP_SERVICES
    commands = compose_commands()
    assert commands["web"] == ["gunicorn", "-c", "deploy/gunicorn.conf.py", "compliance.project.wsgi"]
    assert commands["worker-gpu"][:5] == ["celery", "-A", "compliance.project", "worker", "-Q"]
    assert commands["worker-gpu"][5] == "gpu" and commands["worker-gpu"][6:8] == ["-c", "1"]
    assert commands["worker-default"][4:6] == ["-Q", "default"]
    assert [name for name, c in commands.items() if "beat" in c] == ["beat"], "exactly one beat"
    assert services["web"]["healthcheck"]["test"][-1].endswith("urlopen('http://127.0.0.1:8000/readyz', timeout=5)")
    assert services["setup"]["command"] == ["deploy/setup.sh"]
    for name in APP_SERVICES - {"setup"}:
        assert services[name]["depends_on"]["setup"] == {"condition": "service_completed_successfully"}


def test_the_app_runs_as_the_restricted_role_and_only_setup_as_the_owner():
    services = compose()["services"]
    for name in APP_SERVICES:
        url = services[name]["environment"]["DATABASE_URL"]
        role = re.match(r"postgres://(\w+):", url).group(1)
        assert role == ("traceledger_owner" if name == "setup" else "traceledger_app"), name
    assert services["setup"]["environment"]["TRACELEDGER_APP_ROLE"] == "traceledger_app"
    init = (ROOT / "deploy" / "postgres" / "init-roles.sh").read_text()
    assert "CREATE DATABASE traceledger OWNER traceledger_owner" in init and "CREATE ROLE traceledger_app" in init


def test_configuration_comes_from_the_environment_and_secrets_are_required():
    text = (ROOT / "deploy" / "compose.yaml").read_text()
    for secret in ("SECRET_KEY", "ALLOWED_HOSTS", "POSTGRES_PASSWORD", "TRACELEDGER_OWNER_PASSWORD",
                   "TRACELEDGER_APP_PASSWORD", "TRACELEDGER_LOG_ORIGIN"):
        assert re.search(r"\$\{" + secret + r":\?", text), f"{secret} must be required, not defaulted"
    example = (ROOT / "deploy" / "traceledger.env.example").read_text()
    for name in re.findall(r"\$\{(\w+):\?", text):
        assert f"{name}=" in example, f"{name} is missing from traceledger.env.example"
    web = compose()["services"]["web"]["environment"]
    assert web["DJANGO_SETTINGS_MODULE"] == "compliance.project.settings_production"


def test_each_key_lives_only_where_it_is_used():
    services = compose()["services"]
    holders = {}
    for name, service in services.items():
        for target, volume in mounts(service).items():
            holders.setdefault(volume, set()).add(name)
    assert holders["build-keys"] == {"worker-gpu"}
    assert holders["witness"] == {"witness"}, "the witness's state and key are its own"
    assert holders["keys"] == {"setup", "web", "worker-default"}
    assert "keys:/run/traceledger/keys:ro" in services["web"]["volumes"]
    assert holders["store"] == {"setup", "web", "worker-gpu", "worker-default"}
    witness = services["witness"]["environment"]
    assert witness["TRACELEDGER_KEYS_DIR"].startswith("/var/lib/traceledger-witness/")
    assert "keys init --purpose witness" in services["witness"]["command"][2]


def test_the_systemd_units_run_the_same_commands():
    commands = compose_commands()
    units = {}
    for path in (ROOT / "deploy" / "systemd").glob("*.service"):
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str
        parser.read(path)
        units[path.stem] = parser["Service"]
    assert set(units) == {"traceledger-setup", "traceledger-web", "traceledger-worker-gpu", "traceledger-worker",
                          "traceledger-beat", "traceledger-witness"}
    for unit in units.values():
        assert unit["EnvironmentFile"].startswith("/etc/traceledger/")
        assert unit["User"].startswith("traceledger")

    def argv(unit: str) -> list[str]:
        words = shlex.split(units[unit]["ExecStart"].replace("%%", "%"))
        return [words[0].rsplit("/", 1)[1], *words[1:]]

    assert argv("traceledger-web") == commands["web"]
    assert argv("traceledger-worker-gpu") == commands["worker-gpu"]
    assert argv("traceledger-worker") == commands["worker-default"]
    assert argv("traceledger-beat")[:4] == commands["beat"][:4]
    assert "witness" in units["traceledger-witness"]["ExecStart"]
