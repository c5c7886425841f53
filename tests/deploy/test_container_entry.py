"""The service image's entry point: which service it runs, with which container defaults, and
the HEALTHCHECK's answer."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hms_kit import container
from hms_stack.natsserver import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_the_package_names_the_service_and_its_module() -> None:
    assert container.service_of("hms-worker-pool") == ("worker-pool", "hms_worker_pool")
    with pytest.raises(ValueError, match="expected hms-<service>"):
        container.service_of("worker-pool")


def test_container_defaults_use_the_service_prefix() -> None:
    defaults = container.container_defaults("incident-engine")
    assert defaults["HMS_INCIDENT_ENGINE_HTTP_HOST"] == "0.0.0.0"
    assert defaults["HMS_INCIDENT_ENGINE_HTTP_PORT"] == "8080"
    assert defaults["HMS_INCIDENT_ENGINE_STATE_DIR"] == "/var/lib/hms"


class Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def run_healthcheck(port: int) -> int:
    """The image's HEALTHCHECK as the engine runs it, against ``port``."""
    argv = [sys.executable, "-S", str(ROOT / "infra" / "healthcheck.py")]
    env = {"HMS_SERVICE_PACKAGE": "hms-worker-pool", "HMS_WORKER_POOL_HTTP_PORT": str(port)}
    return subprocess.run(argv, env=env, capture_output=True, timeout=30, check=False).returncode


@pytest.mark.parametrize(("status", "code"), [(200, 0), (503, 1)])
def test_the_healthcheck_passes_only_on_200(status: int, code: int) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("H", (Health,), {"status": status}))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert run_healthcheck(server.server_address[1]) == code
    finally:
        server.shutdown()
        server.server_close()


def test_the_healthcheck_fails_when_nothing_answers() -> None:
    assert run_healthcheck(free_port()) == 1


def test_the_image_and_compose_run_the_same_healthcheck() -> None:
    command = json.dumps(list(container.HEALTHCHECK))
    containerfile = (ROOT / "infra" / "Containerfile").read_text()
    assert f"CMD {command}" in containerfile
    assert "COPY infra/healthcheck.py /opt/hms/healthcheck.py" in containerfile
    assert f'["CMD", {command[1:]}' in (ROOT / "compose.yaml").read_text()


def test_an_unknown_command_or_a_missing_package_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HMS_SERVICE_PACKAGE", raising=False)
    with pytest.raises(SystemExit, match="HMS_SERVICE_PACKAGE is not set"):
        container.main(["run"])
    with pytest.raises(SystemExit, match="usage"):
        container.main(["dance"])
    monkeypatch.setenv("HMS_SERVICE_PACKAGE", "scheduler")
    with pytest.raises(SystemExit, match="expected hms-<service>"):
        container.main(["run"])
