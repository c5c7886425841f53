"""TLS between the services and NATS, switched on by settings; ``hms-ops up`` never exposes
NATS beyond loopback without it."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from hms_kit import ServiceSettings
from hms_kit.errors import TlsError
from hms_kit.settings import env_prefix
from hms_kit.tls import client_tls
from hms_stack.natsserver import NatsServer, free_port
from hms_stack.stack import provision_with
from hms_testing.processes import ServiceLauncher
from hms_testing.stacks import start_stack, stop_stack
from hms_testing.tlsca import Issued, TestCA

WORKER = env_prefix("worker-pool")
#: what nats-py raises when the TLS handshake or the connection is refused
REFUSED = (OSError, nats.errors.Error, EOFError)


@pytest.fixture
def ca(tmp_path: Path) -> TestCA:
    return TestCA(tmp_path / "tls")


@pytest.fixture
def server_cert(ca: TestCA) -> Issued:
    return ca.issue("nats", hosts=("localhost", "127.0.0.1"), client=False, stem="server")


@pytest.fixture
def tls_nats(tmp_path: Path, ca: TestCA, server_cert: Issued) -> Iterator[NatsServer]:
    """nats-server requiring TLS from every client, and a certificate from our CA (mTLS)."""
    server = NatsServer(
        store_dir=tmp_path / "nats",
        name="hms-test-tls",
        log_file=tmp_path / "nats.log",
        tls={
            "cert_file": str(server_cert.cert),
            "key_file": str(server_cert.key),
            "ca_file": str(ca.cert),
            "verify": True,
        },
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def plaintext_session(port: int) -> tuple[dict[str, object], bytes]:
    """A client that speaks the NATS protocol without TLS: the INFO it reads, then what the
    server answers to CONNECT and PING (PONG would mean it was let in)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.settimeout(5)
        info = sock.recv(65536).split(b"\r\n", 1)[0]
        sock.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n')
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return json.loads(info[5:]), answer


async def test_a_service_connects_over_tls_and_a_plaintext_client_is_refused(
    tmp_path: Path, ca: TestCA, tls_nats: NatsServer
) -> None:
    admin = ca.issue("hms-admin", server=False, stem="admin")
    # hms-ops provision's path, over TLS with the admin's certificate
    await provision_with(tls_nats.url, "", "", tls=client_tls(ca.cert, admin.cert, admin.key))
    client = ca.issue("hms-worker-pool", server=False, stem="worker-pool")
    launcher = ServiceLauncher(tmp_path / "services", tls_nats.url)
    try:
        worker = await launcher(
            "hms_worker_pool",
            env={
                WORKER + "NATS_TLS_CA": str(ca.cert),
                WORKER + "NATS_TLS_CERT": str(client.cert),
                WORKER + "NATS_TLS_KEY": str(client.key),
            },
            timeout=40,
        )
        status, body = await worker.healthz()
        assert status == 200, body
        assert body.get("connected") is True, body
    finally:
        launcher.close()

    info, answer = plaintext_session(tls_nats.port)
    assert info["tls_required"] is True
    assert b"PONG" not in answer
    assert b"TLS Required" in answer or answer == b""

    # TLS with the CA but without a client certificate: the server verifies clients
    with pytest.raises(REFUSED):
        await nats.connect(
            tls_nats.url,
            tls=client_tls(ca.cert),
            max_reconnect_attempts=0,
            connect_timeout=3,
            allow_reconnect=False,
        )
    # and a client that trusts only the public CAs does not trust our server
    with pytest.raises(REFUSED):
        await nats.connect(
            tls_nats.url,
            tls=ssl.create_default_context(),
            max_reconnect_attempts=0,
            connect_timeout=3,
            allow_reconnect=False,
        )


def test_tls_settings_name_what_is_wrong(tmp_path: Path, ca: TestCA) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(TlsError, match=r"nats_tls_ca .*nope\.pem"):
        client_tls(missing)
    with pytest.raises(TlsError, match="go together"):
        client_tls(ca.cert, cert=ca.cert)
    settings = ServiceSettings(nats_tls_ca=ca.cert)
    assert settings.nats_tls_ca == ca.cert
    assert client_tls(None) is None


def hms_ops(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hms_ops", *args],
        env={"HMS_STATE_DIR": str(state), "PATH": "/usr/bin:/bin", "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "nats.example.gov"])
def test_up_refuses_to_expose_nats_without_tls(tmp_path: Path, host: str) -> None:
    state = tmp_path / "state"
    out = hms_ops(state, "up", "--nats-host", host, "--nats-port", str(free_port()))
    assert out.returncode == 2, out.stdout + out.stderr
    text = " ".join((out.stdout + out.stderr).split())
    assert f"refusing to bind NATS to {host}" in text
    assert not (state / "nats").exists()  # nothing started, nothing written


def test_up_wants_every_tls_file(tmp_path: Path, ca: TestCA) -> None:
    out = hms_ops(tmp_path / "s", "up", "--nats-host", "0.0.0.0", "--nats-tls-ca", str(ca.cert))
    assert out.returncode == 2
    assert "go together" in out.stdout + out.stderr


@pytest.mark.slow
def test_up_serves_nats_beyond_loopback_over_tls(
    tmp_path: Path, ca: TestCA, server_cert: Issued
) -> None:
    stack = start_stack(
        tmp_path,
        "--nats-host",
        "0.0.0.0",
        "--nats-tls-cert",
        str(server_cert.cert),
        "--nats-tls-key",
        str(server_cert.key),
        "--nats-tls-ca",
        str(ca.cert),
    )
    try:
        assert "hms-ops is up" in stack.log()
        port = int(stack.info["nats_url"].rsplit(":", 1)[1])
        info, answer = plaintext_session(port)
        assert info["tls_required"] is True
        assert b"PONG" not in answer
        config = json.loads((stack.state_dir / "nats" / "nats-server.conf").read_text())
        assert config["host"] == "0.0.0.0"
        assert config["http"].startswith("127.0.0.1:")  # monitoring stays on loopback
        assert config["authorization"]["users"]
    finally:
        stop_stack(stack)
