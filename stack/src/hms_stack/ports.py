"""Ports of a stack, checked before anything starts."""

from __future__ import annotations

import socket
from collections.abc import Mapping

from .errors import StackError


def check_ports(host: str, ports: Mapping[str, int], *, free: bool = True) -> None:
    """Each role (``"NATS (--nats-port)"`` -> port) has its own port, free on ``host``
    (with ``free=False`` only the first is checked)."""
    seen: dict[int, str] = {}
    for role, port in ports.items():
        if port in seen:
            raise StackError(f"{seen[port]} and {role} are both {port}: give each its own port")
        seen[port] = role
    if not free:
        return
    for role, port in ports.items():
        if in_use(host, port):
            raise StackError(
                f"port {port} on {host} for {role} is already in use (another program, or "
                "another stack): stop it or choose another port"
            )


def in_use(host: str, port: int) -> bool:
    """Something listens on ``host:port`` (a socket in TIME_WAIT does not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False
