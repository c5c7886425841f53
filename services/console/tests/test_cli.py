"""``hms-ops tokens``, ``events tail`` and ``open`` as a user runs them: real ``python -m
hms_ops`` processes finding a stack's NATS through its state folder."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import nats
import pytest
from hms_console.tokens import KvTokens, open_bucket
from hms_ops.state import ADMIN_USER, StatePaths, read_credentials, read_stack_file
from hms_testing.samples import alert_firing
from hms_testing.stacks import hms_ops_in, provisioned_state

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StatePaths]:
    with provisioned_state(Path(tmp_path_factory.mktemp("console-cli")) / "state") as paths:
        yield paths


async def _authenticate(paths: StatePaths, token: str) -> object:
    stack = read_stack_file(paths)
    assert stack is not None
    nc = await nats.connect(
        stack["nats_url"], user=ADMIN_USER, password=read_credentials(paths)[ADMIN_USER]
    )
    try:
        return await KvTokens(await open_bucket(nc.jetstream())).authenticate(token)
    finally:
        await nc.close()


async def _audit_actions(paths: StatePaths, namespace: str) -> list[tuple[str, str]]:
    from hms_console.streams import browse
    from hms_contracts import AuditRecorded

    stack = read_stack_file(paths)
    assert stack is not None
    nc = await nats.connect(
        stack["nats_url"], user=ADMIN_USER, password=read_credentials(paths)[ADMIN_USER]
    )
    try:
        found = await browse(nc.jetstream(), "AUDIT", [f"ops.audit.{namespace}.recorded"], 100)
    finally:
        await nc.close()
    records = [AuditRecorded.model_validate_json(data) for _, _, data, _ in found]
    return [(r.action, r.target) for r in records]


def test_a_token_is_printed_once_listed_without_its_secret_and_revoked(
    stack: StatePaths,
) -> None:
    made = hms_ops_in(
        stack, "tokens", "create", "--role", "viewer", "--namespace", "usds_unemployment",
        "--name", "senator", "--expires", "30d",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("hms_")
    assert "shown once" in made.stderr
    principal = asyncio.run(_authenticate(stack, token))
    assert principal is not None
    listed = hms_ops_in(stack, "tokens", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    [row] = [r for r in rows if r["name"] == "senator"]
    assert row["role"] == "viewer"
    assert row["state"] == "live"
    assert token.split("_")[2] not in listed.stdout
    revoked = hms_ops_in(stack, "tokens", "revoke", row["id"])
    assert revoked.returncode == 0, revoked.stderr
    assert asyncio.run(_authenticate(stack, token)) is None
    assert hms_ops_in(stack, "tokens", "revoke", "0000000000000000").returncode == 1
    audited = asyncio.run(_audit_actions(stack, "usds_unemployment"))
    assert audited[-2:] == [("token.created", row["id"]), ("token.revoked", row["id"])]


def test_bad_token_options_are_refused_naming_the_option() -> None:
    from hms_console.cli import parse_expiry
    from hms_console.tokens import check_scope

    with pytest.raises(ValueError, match="--role"):
        check_scope("god", "x")
    with pytest.raises(ValueError, match="admins only"):
        check_scope("viewer", "*")
    with pytest.raises(ValueError, match="namespace"):
        check_scope("viewer", "Not A Namespace")
    with pytest.raises(ValueError, match="in the past"):
        parse_expiry("2001-01-01", datetime.now(UTC))
    assert parse_expiry("30d", datetime(2026, 1, 1, tzinfo=UTC)) == datetime(
        2026, 1, 31, tzinfo=UTC
    )


def test_events_tail_prints_live_events_as_json(stack: StatePaths) -> None:
    import os

    proc = subprocess.Popen(
        [sys.executable, "-m", "hms_ops", "events", "tail", "ops.alert.*.>", "--json",
         "--count", "1"],
        env={**os.environ, "HMS_STATE_DIR": str(stack.root)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip

    async def publish_until_done() -> None:
        info = read_stack_file(stack)
        assert info is not None
        nc = await nats.connect(
            info["nats_url"], user=ADMIN_USER, password=read_credentials(stack)[ADMIN_USER]
        )
        try:
            event = alert_firing("usds_unemployment")
            deadline = time.monotonic() + 30
            while proc.poll() is None and time.monotonic() < deadline:
                await nc.publish(event.subject(), event.model_dump_json().encode())
                await asyncio.sleep(0.2)
        finally:
            await nc.close()

    asyncio.run(publish_until_done())
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    line = json.loads(out.splitlines()[0])
    assert line["subject"] == "ops.alert.usds_unemployment.firing"
    assert line["type"] == "AlertFiring"
    assert line["event"]["summary"] == "p99 latency above 1000 ms for 5m"


def test_open_prints_the_dashboard_url(stack: StatePaths) -> None:
    found = hms_ops_in(stack, "open", "usds_unemployment", "--print")
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "http://127.0.0.1:8700/dashboard/usds_unemployment"
