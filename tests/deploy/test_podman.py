"""The images and compose.yaml for real, with Debian's podman and runc: build the images from
infra/Containerfile on a base made here (no registry can be pulled: a Debian rootfs from
debootstrap, imported), then ``docker-compose up`` (Debian's, talking to podman's Docker API on
a socket of its own) starts NATS, the provisioner and every service; each turns healthy; the
worker-pool scales to 3 and back to 1.

Podman runs health checks from systemd timers, and this machine has no systemd: the test runs
``podman healthcheck run`` on every container of the project each second instead (what the
timers would do), so compose's ``depends_on: condition: service_healthy`` works as it does
under Docker.

The base rootfs is cached by content (suite, packages, mirror, the machine's CA bundle) in
``HMS_CONTAINER_CACHE`` (default ``~/.cache/hms-ops/containers``): debootstrap takes about a
minute once; later runs import the cached tarball.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from hms_contracts import topology
from hms_devtools import natsconf
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
    for svc in topology.SERVICES:  # compose's image names, for the services run from hms-stack
        if svc.name != "worker-pool":
            built[svc.name] = f"localhost/hms-ops/{svc.name}:t{tag}"
            podman("tag", built["stack"], built[svc.name])
    with tempfile.TemporaryDirectory() as ctx:
        shutil.copy(nats_server_binary(), Path(ctx) / "nats-server")
        (Path(ctx) / "Containerfile").write_text(
            f"FROM {base_image}\nCOPY nats-server /usr/local/bin/nats-server\nUSER 65534:65534\n"
        )
        built["nats"] = f"localhost/hms-ops/nats:t{tag}"
        podman("build", "-t", built["nats"], ctx, timeout=300)
    yield {**built, "tag": f"t{tag}"}
    for image in built.values():
        podman("rmi", "-f", image, check=False)


class PodmanApi:
    """``podman system service`` on a socket of its own: the Docker API docker-compose talks to."""

    def __init__(self, directory: Path) -> None:
        self.socket = directory / "podman.sock"
        self.proc = subprocess.Popen(
            ["podman", "system", "service", "--time=0", f"unix://{self.socket}"],
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=(directory / "podman-service.log").open("wb"),
        )

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Project:
    """One compose project: ``docker-compose -p <name>`` with the test's environment."""

    def __init__(self, name: str, api: PodmanApi, env: dict[str, str]) -> None:
        self.name = name
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "DOCKER_HOST": api.docker_host,
            "COMPOSE_HTTP_TIMEOUT": "300",
            **env,
        }
        #: every volume the project's containers used: compose leaves the anonymous ones of
        #: the containers it removes on a scale-down, even with ``down -v``
        self.volumes: set[str] = set()

    def remember_volumes(self) -> None:
        fmt = '{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}} {{end}}{{end}}'
        for container in self.containers():
            out = podman("inspect", "--format", fmt, container, check=False)
            self.volumes.update(out.stdout.split())

    def remove_volumes(self) -> None:
        for volume in sorted(self.volumes):
            podman("volume", "rm", "-f", volume, check=False)

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            ["docker-compose", "-p", self.name, "-f", str(ROOT / "compose.yaml"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=ROOT,
        )
        assert out.returncode == 0, f"docker-compose {' '.join(args)}:\n{out.stderr[-3000:]}"
        return out

    def containers(self, service: str | None = None) -> list[str]:
        label = f"label=com.docker.compose.project={self.name}"
        args = ["ps", "--filter", label, "--format", "{{.Names}}"]
        if service:
            args[1:1] = ["--filter", f"label=com.docker.compose.service={service}"]
        return podman(*args).stdout.split()

    def health(self, container: str) -> str:
        out = podman("inspect", "--format", "{{.State.Health.Status}}", container, check=False)
        return out.stdout.strip()

    def not_healthy(self) -> list[str]:
        label = f"label=com.docker.compose.project={self.name}"
        rows = podman("ps", "--filter", label, "--format", "{{.Names}}|{{.Status}}").stdout
        return [row.split("|")[0] for row in rows.splitlines() if "(healthy)" not in row]

    def check_health(self, container: str) -> None:
        """What podman's systemd timer would do for one container: run its health check."""
        podman("healthcheck", "run", container, check=False, timeout=30)

    def logs(self, container: str) -> str:
        out = podman("logs", "--tail", "30", container, check=False)
        return out.stdout[-3000:] + out.stderr[-3000:]


async def pump_health(project: Project) -> None:
    """Each second, the health check of every container not yet healthy (until cancelled):
    compose waits on NATS's, the test on the services'; checking the healthy ones again would
    only load this 2-core machine."""
    while True:
        waiting = await asyncio.to_thread(project.not_healthy)
        await asyncio.gather(*(asyncio.to_thread(project.check_health, c) for c in waiting))
        await asyncio.sleep(1)


async def wait_healthy(project: Project, containers: list[str], timeout: float = 120) -> None:
    try:
        await wait_until(
            lambda: all(project.health(c) == "healthy" for c in containers),
            timeout=timeout,
            interval=1,
        )
    except AssertionError:
        sick = [c for c in containers if project.health(c) != "healthy"]
        raise AssertionError(
            "not healthy: "
            + ", ".join(f"{c} ({project.health(c)}):\n{project.logs(c)}" for c in sick)
        ) from None


async def registry_count(url: str, password: str, service: str) -> int | None:
    try:
        nc = await nats.connect(url, user="hms-admin", password=password, connect_timeout=5)
    except (OSError, nats.errors.Error, TimeoutError):
        return None
    try:
        beats = await read_registry(nc.jetstream())
    finally:
        await nc.close()
    return sum(1 for b in beats if b.service == service)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[PodmanApi]:
    service = PodmanApi(tmp_path)
    try:
        yield service
    finally:
        service.stop()


async def test_compose_runs_the_images_under_podman_and_the_worker_pool_scales(
    images: dict[str, str], api: PodmanApi
) -> None:
    tag = images["tag"]
    users = [natsconf.ADMIN_USER, *(natsconf.service_user(s.name) for s in topology.SERVICES)]
    passwords = {natsconf.password_variable(u): natsconf.new_password() for u in users}
    nats_port = free_port()
    project = Project(
        f"hms{tag}",
        api,
        {
            **passwords,
            "HMS_NATS_IMAGE": images["nats"],
            "HMS_IMAGE_PREFIX": "localhost/hms-ops",
            "HMS_TAG": tag,
            "HMS_NATS_PORT": str(nats_port),
            "HMS_NATS_MONITOR_PORT": str(free_port()),
            "HMS_CONSOLE_PORT": str(free_port()),
        },
    )
    url = f"nats://127.0.0.1:{nats_port}"
    admin_pw = passwords["HMS_NATS_ADMIN_PASSWORD"]

    async def workers_registered(n: int) -> bool:
        return await registry_count(url, admin_pw, "worker-pool") == n

    await wait_until(lambda: api.socket.exists(), timeout=20, message="podman's API socket")
    pump = asyncio.create_task(pump_health(project))
    try:
        # nats healthy, then the provisioner once, then every service (compose's depends_on)
        await asyncio.to_thread(project.compose, "up", "-d", "--no-build")
        services = {svc.name: project.containers(svc.name) for svc in topology.SERVICES}
        assert all(len(names) == 1 for names in services.values()), services
        await wait_healthy(project, [n for names in services.values() for n in names])
        (worker,) = services["worker-pool"]
        assert podman("exec", worker, "id", "-u").stdout.strip() == "10001"
        assert podman("exec", worker, "cat", "/proc/1/comm").stdout.strip() == "tini"
        await wait_until(
            lambda: workers_registered(1), timeout=30, interval=1, message="one worker"
        )

        await asyncio.to_thread(
            project.compose, "up", "-d", "--no-build", "--scale", "worker-pool=3"
        )
        project.remember_volumes()
        workers = project.containers("worker-pool")
        assert len(workers) == 3
        await wait_healthy(project, workers)
        await wait_until(
            lambda: workers_registered(3), timeout=30, interval=1, message="three workers"
        )

        # back to one: compose stops two with SIGTERM; each drains and takes itself out of the
        # registry at once (a killed one would linger until its entry lapses, 20 s)
        await asyncio.to_thread(
            project.compose, "up", "-d", "--no-build", "--scale", "worker-pool=1"
        )
        assert len(project.containers("worker-pool")) == 1
        await wait_until(
            lambda: workers_registered(1), timeout=15, interval=0.5, message="back to one"
        )
    finally:
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump
        project.remember_volumes()
        await asyncio.to_thread(project.compose, "down", "-v", "-t", "5")
        project.remove_volumes()
