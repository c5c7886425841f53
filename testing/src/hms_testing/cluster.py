"""A 3-node NATS cluster on loopback: three nats-server children routed to each other.

The same shape as ``infra/nats/cluster/`` (cluster ``hms``, JetStream with
``sync_interval: always`` on every node), with free ports instead of fixed host names, so a test
can kill -9 one node and restart it on the same port and store.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hms_stack.natsserver import NatsServer, free_port

#: the cluster's name, as in infra/nats/cluster/
CLUSTER_NAME = "hms"


class LocalCluster:
    """``size`` nats-server processes forming one JetStream cluster on 127.0.0.1."""

    def __init__(
        self,
        root: Path,
        size: int = 3,
        *,
        users: Mapping[str, Mapping[str, Any]] | None = None,
        tls: Mapping[str, Any] | None = None,
    ) -> None:
        tag = secrets.token_hex(3)
        routes = [free_port() for _ in range(size)]
        self.nodes: list[NatsServer] = []
        for i in range(size):
            name = f"hms-test-{tag}-n{i + 1}"
            self.nodes.append(
                NatsServer(
                    store_dir=root / name,
                    name=name,
                    users=users,
                    tls=tls,
                    log_file=root / f"{name}.log",
                    monitor_port=free_port(),
                    cluster={
                        "name": CLUSTER_NAME,
                        "listen": f"127.0.0.1:{routes[i]}",
                        "routes": [
                            f"nats-route://127.0.0.1:{port}"
                            for j, port in enumerate(routes)
                            if j != i
                        ],
                    },
                )
            )

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        """Every node, comma-separated (the services' ``nats_url`` form)."""
        return ",".join(self.urls)

    def node(self, name: str) -> NatsServer:
        return next(n for n in self.nodes if n.name == name)

    def start(self, timeout: float = 30.0) -> None:
        """Start every node, then wait until the cluster has elected its JetStream leader."""
        for node in self.nodes:
            node.spawn()
        for node in self.nodes:
            node.wait_ready(timeout)
        self.wait_healthy(timeout=timeout)

    def wait_healthy(self, nodes: list[NatsServer] | None = None, timeout: float = 30.0) -> None:
        """Until each node's ``/healthz`` says ok (JetStream current with the meta leader)."""
        deadline = time.monotonic() + timeout
        for node in nodes or self.nodes:
            while not healthy(node):
                if time.monotonic() > deadline:
                    raise AssertionError(f"{node.name} not healthy: {node.log_file}")
                time.sleep(0.2)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def monitor(node: NatsServer, path: str) -> dict[str, Any]:
    """GET a monitoring endpoint of one node (``/jsz?streams=true`` ...)."""
    assert node.monitor_url is not None
    with urllib.request.urlopen(node.monitor_url + path, timeout=3) as resp:  # noqa: S310
        data: dict[str, Any] = json.load(resp)
    return data


def healthy(node: NatsServer) -> bool:
    try:
        return monitor(node, "/healthz").get("status") == "ok"
    except (OSError, urllib.error.URLError, ValueError):
        return False


def local_streams(node: NatsServer) -> dict[str, dict[str, Any]]:
    """The streams as this node itself holds them (its replica's state), by name."""
    jsz = monitor(node, "/jsz?streams=true")
    found: dict[str, dict[str, Any]] = {}
    for account in jsz.get("account_details") or []:
        for stream in account.get("stream_detail") or []:
            found[stream["name"]] = stream
    return found
