"""nats-server configurations for containers and clusters, generated from the contracts.

``infra/nats/auth.conf`` holds one user per service with the least-privilege permissions of
``hms_contracts.topology`` (the same as ``infra/nats/permissions.json``) and the admin user;
passwords are never in a file: each is an environment variable of the nats-server process
(``$HMS_NATS_<USER>_PASSWORD``), so the file can be committed and the secrets come from
compose's environment or a Kubernetes Secret. nats-server reads such a variable as a config
value, so a password must start with a letter (one starting with digits would be read as a
number or a date): :func:`new_password` makes one.
``infra/nats/nats.conf`` is one node (compose); ``infra/nats/cluster/nats-<n>.conf`` are the
three nodes of a cluster whose routes authenticate each other with TLS certificates.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from hms_contracts import topology

ADMIN_USER = "hms-admin"
CLUSTER_NAME = "hms"
CLUSTER_SIZE = 3
#: where the containers mount the certificates (a Secret in Kubernetes)
TLS_DIR = "/etc/nats/tls"

AUTH_PATH = "infra/nats/auth.conf"
K8S_DIR = "infra/k8s/base/nats"
SINGLE_PATH = "infra/nats/nats.conf"
CLUSTER_DIR = "infra/nats/cluster"

_HEADER = (
    "# Generated from hms_contracts by `uv run python -m hms_devtools.docs`; do not edit.\n"
    "# nats-server reads this format (JSON plus $VARIABLES taken from its environment).\n"
)


class Env(str):
    """A value nats-server takes from its environment when it reads the file."""


def password_variable(user: str) -> str:
    """The environment variable holding a NATS user's password: ``hms-worker-pool`` ->
    ``HMS_NATS_WORKER_POOL_PASSWORD`` (``hms-admin`` -> ``HMS_NATS_ADMIN_PASSWORD``)."""
    return "HMS_NATS_" + user.removeprefix("hms-").upper().replace("-", "_") + "_PASSWORD"


def new_password() -> str:
    """A random password nats-server reads back as a string from its environment."""
    return "hms" + secrets.token_hex(24)


def service_user(service: str) -> str:
    return f"hms-{service}"


def users() -> list[dict[str, Any]]:
    """The admin, then one user per service with its generated permissions."""
    found: list[dict[str, Any]] = [
        {"user": ADMIN_USER, "password": Env(password_variable(ADMIN_USER))}
    ]
    for svc in topology.SERVICES:
        user = service_user(svc.name)
        found.append(
            {
                "user": user,
                "password": Env(password_variable(user)),
                "permissions": topology.nats_permissions(svc),
            }
        )
    return found


def dumps(value: Any, indent: int = 0) -> str:
    """nats-server's config syntax: JSON, where an :class:`Env` is a bare ``$NAME``."""
    pad = "  " * (indent + 1)
    if isinstance(value, Env):
        return f"${value}"
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{pad}{json.dumps(k)}: {dumps(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * indent + "}"
    if isinstance(value, list | tuple):
        if not value:
            return "[]"
        items = [pad + dumps(v, indent + 1) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + "  " * indent + "]"
    return json.dumps(value)


def _jetstream() -> dict[str, Any]:
    # every write fsynced before the ack: an acknowledged message survives a power cut
    return {"store_dir": "/data/jetstream", "sync_interval": "always"}


def single_node() -> dict[str, Any]:
    """One nats-server for compose: JetStream on /data, monitoring on 8222 (compose publishes
    it on the host's loopback only), the generated users."""
    return {
        "server_name": "hms-nats",
        "listen": "0.0.0.0:4222",
        "http": "0.0.0.0:8222",
        "max_payload": 8 * 1024 * 1024,
        "jetstream": _jetstream(),
    }


def cluster_node(n: int) -> dict[str, Any]:
    """Node ``n`` (1-3) of the cluster: routes to the other two (host names ``nats-<i>``),
    mutual TLS on the routes, TLS for clients."""
    routes = [f"nats-route://nats-{i}:6222" for i in range(1, CLUSTER_SIZE + 1) if i != n]
    return {
        "server_name": f"nats-{n}",
        "listen": "0.0.0.0:4222",
        "http": "0.0.0.0:8222",
        "max_payload": 8 * 1024 * 1024,
        "jetstream": _jetstream(),
        "tls": {
            "cert_file": f"{TLS_DIR}/server.pem",
            "key_file": f"{TLS_DIR}/server-key.pem",
            "ca_file": f"{TLS_DIR}/ca.pem",
            "timeout": 2,
        },
        "cluster": {
            "name": CLUSTER_NAME,
            "listen": "0.0.0.0:6222",
            "routes": routes,
            # a route is accepted only with a certificate from the cluster's CA
            "tls": {
                "cert_file": f"{TLS_DIR}/route.pem",
                "key_file": f"{TLS_DIR}/route-key.pem",
                "ca_file": f"{TLS_DIR}/ca.pem",
                "verify": True,
                "timeout": 2,
            },
        },
    }


def kubernetes_node() -> dict[str, Any]:
    """A pod of the NATS StatefulSet (``nats-0`` ... ``nats-2`` behind the headless Service
    ``nats-headless``): its name from the pod (``$POD_NAME``), routes to every pod; routes are
    confined to the NATS pods by a NetworkPolicy, client TLS comes from ``tls.conf`` (empty in
    the base, set by an overlay)."""
    routes = [f"nats-route://nats-{i}.nats-headless:6222" for i in range(CLUSTER_SIZE)]
    return {
        "server_name": Env("POD_NAME"),
        "listen": "0.0.0.0:4222",
        "http": "0.0.0.0:8222",
        "max_payload": 8 * 1024 * 1024,
        "lame_duck_duration": "30s",
        "pid_file": "/var/run/nats/nats.pid",  # for the preStop lame-duck signal
        "jetstream": _jetstream(),
        "cluster": {"name": CLUSTER_NAME, "listen": "0.0.0.0:6222", "routes": routes},
    }


def _with_auth(config: dict[str, Any], *includes: str) -> str:
    body = dumps(config)
    # nats-server's include directive sits inside the top-level block
    lines = "".join(f"\n  include {json.dumps(name)}" for name in includes)
    return _HEADER + body[:-2] + lines + "\n}\n"


def render() -> dict[str, str]:
    """Every generated nats-server file, relative path to content."""
    auth = _HEADER + '"authorization": ' + dumps({"users": users()}) + "\n"
    files = {
        AUTH_PATH: auth,
        SINGLE_PATH: _with_auth(single_node(), "auth.conf"),
        # kustomize reads files only under its own folder: the same users, copied
        f"{K8S_DIR}/auth.conf": auth,
        f"{K8S_DIR}/nats.conf": _with_auth(kubernetes_node(), "auth.conf", "tls.conf"),
    }
    for n in range(1, CLUSTER_SIZE + 1):
        files[f"{CLUSTER_DIR}/nats-{n}.conf"] = _with_auth(cluster_node(n), "../auth.conf")
    return files
