"""The entry point of the service image (``infra/Containerfile``): one image recipe, any service.

``python -m hms_kit.container run`` runs the service the image was built for
(``HMS_SERVICE_PACKAGE``, e.g. ``hms-worker-pool``) in this process, with the container's
defaults for settings that are not set: HTTP on every address, port 8080 (probes come from
outside the container), state in ``/var/lib/hms``, JSON logs.

The image's HEALTHCHECK (and compose's) is :data:`HEALTHCHECK`, ``infra/healthcheck.py``: the
standard library only, exit 0 only when ``/healthz`` answers 200.
"""

from __future__ import annotations

import os
import runpy
import sys
from collections.abc import Sequence

from .settings import env_prefix

PACKAGE_VARIABLE = "HMS_SERVICE_PACKAGE"
HTTP_PORT = 8080
STATE_DIR = "/var/lib/hms"

#: the health check command (``infra/healthcheck.py``, copied into the image)
HEALTHCHECK = ("python", "-S", "/opt/hms/healthcheck.py")


def service_of(package: str) -> tuple[str, str]:
    """``hms-worker-pool`` -> (``worker-pool``, ``hms_worker_pool``)."""
    if not package.startswith("hms-") or package == "hms-":
        raise ValueError(f"{PACKAGE_VARIABLE}={package!r}: expected hms-<service>")
    service = package.removeprefix("hms-")
    return service, package.replace("-", "_")


def container_defaults(service: str) -> dict[str, str]:
    prefix = env_prefix(service)
    return {
        prefix + "HTTP_HOST": "0.0.0.0",
        prefix + "HTTP_PORT": str(HTTP_PORT),
        prefix + "STATE_DIR": STATE_DIR,
        prefix + "LOG_FORMAT": "json",
    }


def _package() -> str:
    package = os.environ.get(PACKAGE_VARIABLE, "")
    if not package:
        raise SystemExit(f"error: {PACKAGE_VARIABLE} is not set (the image's build argument)")
    return package


def run() -> None:
    service, module = service_of(_package())
    for name, value in container_defaults(service).items():
        os.environ.setdefault(name, value)
    sys.argv = [module]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args else "run"
    try:
        if command == "run":
            run()
            return 0
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    raise SystemExit(f"usage: python -m hms_kit.container [run], not {command!r}")


if __name__ == "__main__":
    raise SystemExit(main())
