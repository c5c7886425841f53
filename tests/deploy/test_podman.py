"""The images for real, with Debian's podman and runc: build them from infra/Containerfile on a
base made here (no registry can be pulled: a Debian rootfs from debootstrap, imported), run NATS,
the provisioner and every service as compose.yaml describes them, check their health, scale the
worker-pool to 3 and back.

Differences from ``docker compose up``, and why: containers use the host's network on loopback
(each with its own port) rather than a bridge, so no test traffic leaves 127.0.0.1; health is
checked with ``podman healthcheck run`` and the compose health command, since podman schedules
health checks through systemd, which this machine does not run.

The base rootfs is cached by content (suite, packages, mirror, the machine's CA bundle) in
``HMS_CONTAINER_CACHE`` (default ``~/.cache/hms-ops/containers``): debootstrap takes about a
minute once; later runs import the cached tarball.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import nats
import pytest
import yaml
from hms_contracts import topology
from hms_devtools import natsconf
from hms_kit.settings import env_prefix
from hms_ops.registry import read_registry
from hms_stack.natsserver import free_port, nats_server_binary
from hms_testing.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "infra" / "podman" / "containers.conf"
SUITE = "bookworm"
PACKAGES = ("python3", "python3-venv", "tini", "ca-certificates", "wget")
MIRROR = os.environ.get("HMS_DEBIAN_MIRROR", "http://deb.debian.org/debian")
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
CACHE = Path(
    os.environ.get("HMS_CONTAINER_CACHE", Path.home() / ".cache" / "hms-ops" / "containers")
)


def _env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONF)}


def podman(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        ["podman", *args], env=_env(), capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and out.returncode != 0:
        raise AssertionError(f"podman {' '.join(args[:3])} ... failed: {out.stderr[-2000:]}")
    return out


def why_not() -> str | None:
    """Why podman cannot run containers here, or None."""
    for tool in ("podman", "runc", "debootstrap", "docker-compose"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (.ci/run installs podman runc debootstrap)"
    out = podman("info", "--format", "{{.Host.OCIRuntime.Name}}", check=False, timeout=60)
    if out.returncode != 0:
        return f"podman info fails: {out.stderr.strip()[-300:]}"
    return None


REASON = why_not()
pytestmark = [
    pytest.mark.containers,
    pytest.mark.slow,
    pytest.mark.timeout(900),
    pytest.mark.skipif(REASON is not None, reason=REASON or ""),
]


def base_key() -> str:
    digest = hashlib.sha256()
    for part in (SUITE, MIRROR, *PACKAGES):
        digest.update(part.encode() + b"\0")
    digest.update(CA_BUNDLE.read_bytes() if CA_BUNDLE.exists() else b"")
    return digest.hexdigest()[:16]


def base_tarball(key: str) -> Path:
    """A minimal Debian with Python, made once per content key."""
    tarball = CACHE / f"debian-{SUITE}-{key}.tar"
    if tarball.exists():
        return tarball
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        root = Path(tmp) / "rootfs"
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                SUITE,
                str(root),
                MIRROR,
            ],
            check=True,
            capture_output=True,
            timeout=900,
        )
        if CA_BUNDLE.exists():  # this machine's trust store (a proxy's CA, if any)
            shutil.copy(CA_BUNDLE, root / "etc" / "ssl" / "certs" / "ca-certificates.crt")
        shutil.rmtree(root / "var" / "cache" / "apt" / "archives", ignore_errors=True)
        shutil.rmtree(root / "var" / "lib" / "apt" / "lists", ignore_errors=True)
        partial = tarball.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(root), "-cf", str(partial), "."], check=True)
        partial.rename(tarball)
    return tarball


@pytest.fixture(scope="module")
def base_image() -> str:
    key = base_key()
    tag = f"localhost/hms-base:{SUITE}-{key}"
    if podman("image", "exists", tag, check=False).returncode != 0:
        podman("import", "--change", 'CMD ["/bin/bash"]', str(base_tarball(key)), tag, timeout=300)
    return tag


def build(base: str, package: str, tag: str) -> None:
    podman(
        "build",
        "--format",
        "docker",  # keeps HEALTHCHECK in the image
        "-f",
        str(ROOT / "infra" / "Containerfile"),
        "--build-arg",
        f"BASE={base}",
        "--build-arg",
        f"PACKAGE={package}",
        "-t",
        tag,
        str(ROOT),
        timeout=900,
    )


@pytest.fixture(scope="module")
def images(base_image: str) -> Iterator[dict[str, str]]:
    """The worker-pool's own image, and hms-stack's (the provisioner; it holds every service,
    so the other services run from it with their HMS_SERVICE_PACKAGE): two builds, not eight."""
    tag = secrets.token_hex(3)
    built = {
        "worker-pool": f"localhost/hms-ops/worker-pool:t{tag}",
        "stack": f"localhost/hms-ops/stack:t{tag}",
    }
    build(base_image, "hms-worker-pool", built["worker-pool"])
    build(base_image, "hms-stack", built["stack"])
    with tempfile.TemporaryDirectory() as ctx:
        shutil.copy(nats_server_binary(), Path(ctx) / "nats-server")
        (Path(ctx) / "Containerfile").write_text(
            f"FROM {base_image}\nCOPY nats-server /usr/local/bin/nats-server\nUSER 65534:65534\n"
        )
        built["nats"] = f"localhost/hms-ops/nats:t{tag}"
        podman("build", "-t", built["nats"], ctx, timeout=300)
    yield built
    for image in built.values():
        podman("rmi", "-f", image, check=False)


def compose_config(env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "compose.yaml"), "config"],
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=ROOT,
    )
    data: dict[str, Any] = yaml.safe_load(out.stdout)
    return data


class Containers:
    """The containers this test starts (by name), removed at the end."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.names: list[str] = []
        self.volumes: list[str] = []

    def run(self, name: str, *args: str, env: dict[str, str]) -> str:
        """``podman run -d`` on the host's network; ``args``: options, image, command."""
        full = f"hms-{self.tag}-{name}"
        argv = ["run", "-d", "--name", full, "--network", "host"]
        for key, value in env.items():
            argv.append(f"--env={key}={value}")
        self.names.append(full)
        podman(*argv, *args, timeout=120)
        return full

    def remove(self) -> None:
        for name in reversed(self.names):
            podman("rm", "-f", "-v", "-t", "2", name, check=False, timeout=60)
        for volume in self.volumes:
            podman("volume", "rm", "-f", volume, check=False)


def healthy(container: str, test: list[str]) -> bool:
    """The compose health command, run in the container as the engine would."""
    assert test[0] in ("CMD", "CMD-SHELL")
    return podman("exec", container, *test[1:], check=False, timeout=30).returncode == 0


async def wait_healthy(container: str, test: list[str], timeout: float = 120) -> None:
    try:
        await wait_until(partial(healthy, container, test), timeout=timeout, interval=1)
    except AssertionError:
        logs = podman("logs", "--tail", "30", container, check=False)
        state = podman(
            "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", container, check=False
        ).stdout
        raise AssertionError(
            f"{container} not healthy within {timeout:g} s ({state.strip()}):\n"
            f"{logs.stdout[-3000:]}{logs.stderr[-3000:]}"
        ) from None


async def registry_count(url: str, password: str, service: str) -> int:
    nc = await nats.connect(url, user="hms-admin", password=password, connect_timeout=5)
    try:
        beats = await read_registry(nc.jetstream())
    finally:
        await nc.close()
    return sum(1 for b in beats if b.service == service)


@pytest.fixture
def containers() -> Iterator[Containers]:
    c = Containers(secrets.token_hex(3))
    try:
        yield c
    finally:
        c.remove()


async def test_images_run_the_compose_stack_and_the_worker_pool_scales(
    tmp_path: Path, images: dict[str, str], containers: Containers
) -> None:
    users = [natsconf.ADMIN_USER, *(natsconf.service_user(s.name) for s in topology.SERVICES)]
    passwords = {natsconf.password_variable(u): natsconf.new_password() for u in users}
    config = compose_config(passwords)["services"]
    port, monitor = free_port(), free_port()
    url = f"nats://127.0.0.1:{port}"

    # NATS: compose's config and users, on this machine's loopback
    etc = tmp_path / "etc-nats"
    shutil.copytree(ROOT / "infra" / "nats", etc)
    conf = (etc / "nats.conf").read_text()
    conf = conf.replace('"0.0.0.0:4222"', f'"127.0.0.1:{port}"')
    conf = conf.replace('"0.0.0.0:8222"', f'"127.0.0.1:{monitor}"')
    (etc / "nats.conf").write_text(conf)
    data = f"hms-{containers.tag}-nats-data"
    containers.volumes.append(data)
    nats_spec = config["nats"]
    nats_name = containers.run(
        "nats",
        "-v",
        f"{etc}:/etc/nats:ro",
        "-v",
        f"{data}:/data",
        images["nats"],
        *nats_spec["command"],
        env=nats_spec["environment"],
    )
    nats_test = [
        t.replace("127.0.0.1:8222", f"127.0.0.1:{monitor}")
        for t in nats_spec["healthcheck"]["test"]
    ]
    await wait_healthy(nats_name, nats_test, timeout=60)

    # the one-shot provisioner, as the admin
    prov = config["provision"]
    out = podman(
        "run",
        "--rm",
        "--network",
        "host",
        *[f"--env={k}={v}" for k, v in {**prov["environment"], "HMS_NATS_URL": url}.items()],
        images["stack"],
        *prov["command"],
        timeout=180,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr

    def service_env(svc: str) -> dict[str, str]:
        prefix = env_prefix(svc)
        env = dict(config[svc]["environment"])
        env[prefix + "NATS_URL"] = url
        env[prefix + "HTTP_HOST"] = "127.0.0.1"
        env[prefix + "HTTP_PORT"] = str(free_port())
        env[prefix + "HEARTBEAT_INTERVAL_S"] = "1"
        return env

    hardening = [
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
    ]
    started: dict[str, list[tuple[str, dict[str, str]]]] = {}
    for svc in topology.SERVICES:
        image = images["worker-pool"] if svc.name == "worker-pool" else images["stack"]
        env = service_env(svc.name)
        volume: list[str] = []
        if svc.name != "worker-pool":  # a named volume each, as compose; workers: anonymous
            vol = f"hms-{containers.tag}-{svc.name}-state"
            containers.volumes.append(vol)
            volume = ["-v", f"{vol}:/var/lib/hms"]
        name = containers.run(svc.name, *hardening, *volume, image, env=env)
        started[svc.name] = [(name, env)]

    for svc in topology.SERVICES:
        ((name, _),) = started[svc.name]
        test = [*config[svc.name]["healthcheck"]["test"]]
        await wait_healthy(name, test)
    # the image's own HEALTHCHECK, as the engine runs it
    ((worker, _),) = started["worker-pool"]
    assert podman("healthcheck", "run", worker, check=False).returncode == 0
    assert podman("exec", worker, "id", "-u").stdout.strip() == "10001"
    assert podman("exec", worker, "cat", "/proc/1/comm").stdout.strip() == "tini"

    admin_pw = passwords["HMS_NATS_ADMIN_PASSWORD"]
    # scale the worker-pool to 3
    for n in (2, 3):
        env = service_env("worker-pool")
        name = containers.run(f"worker-pool-{n}", *hardening, images["worker-pool"], env=env)
        started["worker-pool"].append((name, env))
    test = config["worker-pool"]["healthcheck"]["test"]
    for name, _ in started["worker-pool"]:
        await wait_healthy(name, test)
    await wait_until(
        lambda: _count_is(url, admin_pw, 3),
        timeout=30,
        interval=1,
        message="three worker-pool instances in the registry",
    )

    # and back to 1: SIGTERM through tini, a drain, exit 0
    for name, _ in started["worker-pool"][1:]:
        podman("stop", "-t", "30", name, timeout=60)
        code = podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
        assert code == "0", podman("logs", "--tail", "20", name, check=False).stderr
    await wait_until(
        lambda: _count_is(url, admin_pw, 1),
        timeout=60,
        interval=1,
        message="one worker-pool instance left in the registry",
    )
    assert healthy(worker, test)


async def _count_is(url: str, password: str, n: int) -> bool:
    try:
        return await registry_count(url, password, "worker-pool") == n
    except (OSError, nats.errors.Error, TimeoutError):
        return False
