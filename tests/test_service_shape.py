"""Every service folder has the shape a new one copies: README, settings, app, handlers, core."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from types import ModuleType

import pytest
from faststream.nats import NatsRouter
from hms_contracts import topology
from hms_kit import Clock, Service, ServiceSettings, env_prefix

ROOT = Path(__file__).resolve().parents[1]
#: what a service's decisions may import: no bus, no database, no network, no clock of its own
IO_MODULES = {"nats", "faststream", "aiosqlite", "sqlite3", "aiohttp", "aiosmtplib", "socket",
              "subprocess", "asyncio", "hms_kit", "os", "time"}  # fmt: skip


def module(svc: topology.ServiceSpec, name: str) -> ModuleType:
    return importlib.import_module(f"{svc.module}.{name}")


def settings_class(svc: topology.ServiceSpec) -> type[ServiceSettings]:
    found = [
        v
        for v in vars(module(svc, "settings")).values()
        if isinstance(v, type) and issubclass(v, ServiceSettings) and v is not ServiceSettings
    ]
    assert len(found) == 1, f"{svc.module}.settings must hold one settings class: {found}"
    return found[0]


SERVICES = pytest.mark.parametrize("svc", topology.SERVICES, ids=lambda s: s.name)


@SERVICES
def test_the_readme_names_what_the_service_consumes_emits_and_every_setting(
    svc: topology.ServiceSpec,
) -> None:
    readme = (ROOT / "services" / svc.name / "README.md").read_text()
    for heading in ("consumes", "emits", "## Run it alone", "## Settings"):
        assert heading in readme, f"{svc.name}/README.md lacks {heading!r}"
    prefix = env_prefix(svc.name)
    for field in settings_class(svc).model_fields:
        assert f"{prefix}{field.upper()}" in readme, f"{svc.name}/README.md: {field} undocumented"


@SERVICES
def test_settings_read_the_services_own_prefix(
    svc: topology.ServiceSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(env_prefix(svc.name) + "HEARTBEAT_INTERVAL_S", "7.5")
    monkeypatch.setenv("HMS_OTHER_HEARTBEAT_INTERVAL_S", "99")
    assert settings_class(svc)().heartbeat_interval_s == 7.5


@SERVICES
async def test_the_app_builds_the_named_service_with_its_router_and_a_clock(
    svc: topology.ServiceSpec,
) -> None:
    app = module(svc, "app")
    service = app.create_service(settings_class(svc)(nats_url="nats://127.0.0.1:1"))
    assert isinstance(service, Service)
    assert service.name == svc.name
    assert isinstance(module(svc, "handlers").router, NatsRouter)
    async with app.resources(service) as opened:
        assert isinstance(opened["clock"], Clock)


@SERVICES
def test_core_holds_decisions_only_no_io(svc: topology.ServiceSpec) -> None:
    src = ROOT / "services" / svc.name / "src" / svc.module
    # core.py, or a core/ package once it outgrows one module
    files = [src / "core.py"] if (src / "core.py").exists() else sorted(src.glob("core/*.py"))
    assert files, f"{svc.module} has no core"
    imported: set[str] = set()
    nodes = (node for f in files for node in ast.walk(ast.parse(f.read_text())))
    for node in nodes:
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert not imported & IO_MODULES, f"{svc.module}.core imports {imported & IO_MODULES}"
