"""Container tasks (``image:``) through the Docker Engine API (``aiodocker``), against any
engine that speaks it: Docker, or podman's compatible service (``podman system service``).

The container gets the run's minimal environment (its ids, an item's payload) and nothing of
the worker's; it is stopped on timeout (SIGTERM, SIGKILL after the grace), its output capped
like a command's, and removed whatever happened. No image is pulled by the worker's choice:
the engine resolves the reference as it is configured to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import aiodocker
from aiodocker.exceptions import DockerError

from .core import cap_output
from .runner import OUTPUT_CAP, TaskResult

log = logging.getLogger(__name__)


async def _stop(container: Any, grace_s: float) -> None:
    with contextlib.suppress(DockerError):
        await container.kill(signal="SIGTERM")
    with contextlib.suppress(TimeoutError, DockerError):
        await asyncio.wait_for(container.wait(), grace_s)
        return
    with contextlib.suppress(DockerError):
        await container.kill(signal="SIGKILL")


async def run_image(
    image: str,
    *,
    engine: str,
    env: Mapping[str, str],
    timeout_s: float | None,
    grace_s: float,
    labels: Mapping[str, str],
    output_cap: int = OUTPUT_CAP,
) -> TaskResult:
    """Run ``image`` to its end on the engine at ``engine`` (e.g. ``unix:///run/podman/podman.sock``)."""
    docker = aiodocker.Docker(url=engine)
    container: Any = None
    try:
        try:
            container = await docker.containers.create(
                config={
                    "Image": image,
                    "Env": [f"{k}={v}" for k, v in env.items()],
                    "Labels": dict(labels),
                }
            )
            await container.start()
        except DockerError as exc:
            return TaskResult(ok=False, error=f"image {image!r} could not start: {exc.message}")
        timed_out = False
        try:
            status = await asyncio.wait_for(container.wait(), timeout_s)
        except TimeoutError:
            timed_out = True
            await _stop(container, grace_s)
            status = {}
        except asyncio.CancelledError:
            await asyncio.shield(_stop(container, grace_s))
            raise
        lines = await container.log(stdout=True, stderr=True)
        text, cut = cap_output("".join(lines).encode(), output_cap)
        code = status.get("StatusCode")
        if timed_out:
            error = f"image {image!r} timed out after {timeout_s:g} s; its container was killed"
        elif code != 0:
            error = f"image {image!r} exited with {code}"
        else:
            error = ""
        return TaskResult(
            ok=not timed_out and code == 0,
            error=error,
            exit_code=code,
            output=text,
            truncated=cut,
            timed_out=timed_out,
        )
    except DockerError as exc:
        return TaskResult(
            ok=False, error=f"image {image!r}: the container engine said {exc.message}"
        )
    except OSError as exc:
        return TaskResult(
            ok=False, error=f"image {image!r}: no container engine at {engine}: {exc}"
        )
    finally:
        if container is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(container.delete(force=True))
        await docker.close()
