"""The service image's entry point: which service it runs, with which container defaults, and
the HEALTHCHECK's answer."""

from __future__ import annotations

import pytest
from hms_kit import container
from hms_stack.natsserver import free_port


def test_the_package_names_the_service_and_its_module() -> None:
    assert container.service_of("hms-worker-pool") == ("worker-pool", "hms_worker_pool")
    with pytest.raises(ValueError, match="expected hms-<service>"):
        container.service_of("worker-pool")


def test_container_defaults_use_the_service_prefix() -> None:
    defaults = container.container_defaults("incident-engine")
    assert defaults["HMS_INCIDENT_ENGINE_HTTP_HOST"] == "0.0.0.0"
    assert defaults["HMS_INCIDENT_ENGINE_HTTP_PORT"] == "8080"
    assert defaults["HMS_INCIDENT_ENGINE_STATE_DIR"] == "/var/lib/hms"


def test_health_fails_when_nothing_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HMS_SERVICE_PACKAGE", "hms-evaluator")
    monkeypatch.setenv("HMS_EVALUATOR_HTTP_PORT", str(free_port()))
    assert container.main(["health"]) == 1


def test_an_unknown_command_or_a_missing_package_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HMS_SERVICE_PACKAGE", raising=False)
    with pytest.raises(SystemExit, match="HMS_SERVICE_PACKAGE is not set"):
        container.main(["run"])
    with pytest.raises(SystemExit, match="usage"):
        container.main(["dance"])
