"""Errors instead of tracebacks: each names the file or the setting and says what to do."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from hms_contracts import AlertFiring, specs
from hms_contracts.base import SYSTEM_NAMESPACE
from hms_stack.natsserver import free_port
from hms_testing import wait_for
from hms_testing.stacks import start_stack, stop_stack, tmpfs


def hms_ops(state: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    out = subprocess.run(
        [sys.executable, "-m", "hms_ops", *args],
        env={**os.environ, "HMS_STATE_DIR": str(state), "COLUMNS": "200", **(env or {})},
        capture_output=True,
        timeout=60,
        check=False,
    )
    stderr = out.stderr.decode()
    assert "Traceback" not in stderr, stderr
    return out.returncode, stderr


def up(state: Path) -> tuple[int, str]:
    return hms_ops(state, "up", "--nats-port", str(free_port()), "--console-port", str(free_port()))


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """A state folder as a stack leaves it: a stack file and credentials."""
    root = tmp_path / "state"
    root.mkdir(mode=0o700)
    (root / "stack.json").write_text(json.dumps({"pid": 1, "nats_url": "nats://127.0.0.1:1"}))
    (root / "credentials.json").write_text(json.dumps({"hms-admin": "secret"}))
    return root


def test_status_names_a_corrupt_credentials_file(state: Path) -> None:
    (state / "credentials.json").write_text("{not json")
    code, err = hms_ops(state, "status")
    assert code == 2
    assert f"{state / 'credentials.json'} is not valid JSON" in err
    assert "hms-ops up" in err, "says what to do"


def test_up_names_a_corrupt_credentials_file(state: Path) -> None:
    (state / "credentials.json").write_text('["a list"]')
    (state / "stack.json").unlink()
    code, err = up(state)
    assert code == 2
    assert f"{state / 'credentials.json'} is not a map of user names to passwords" in err


def test_a_corrupt_stack_file_is_reported_as_such_not_as_no_stack(state: Path) -> None:
    (state / "stack.json").write_text('{"pid": 12')
    code, err = hms_ops(state, "status")
    assert code == 2
    assert f"{state / 'stack.json'} is not valid JSON" in err
    assert "no stack is running" not in err


def test_up_refuses_a_shared_state_folder_and_leaves_its_mode_alone(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    code, err = up(shared)
    assert code == 2
    assert f"the state folder {shared} may be written by others (mode 1777)" in err
    assert (shared.stat().st_mode & 0o7777) == 0o1777, "never chmod'ed"
    assert list(shared.iterdir()) == [], "nothing written there"


def test_up_refuses_a_state_folder_another_user_owns(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("giving a folder to another user needs root")
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 65534, 65534)
    code, err = up(theirs)
    assert code == 2
    assert f"the state folder {theirs} is owned by another user (uid 65534)" in err


def test_up_names_the_file_it_cannot_write_on_a_read_only_disk(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "size=1m,mode=0700,ro") as disk:
        code, err = up(disk)
    assert code == 2
    assert f"cannot write {disk}" in err
    assert "Read-only file system" in err
    assert "--state-dir" in err


def test_up_names_the_file_it_cannot_write_on_a_full_disk(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "full", "size=256k,mode=0700") as disk:
        with open(disk / "filler", "wb", buffering=0) as out:
            try:
                while True:
                    out.write(b"\0" * 4096)
            except OSError:
                pass
        code, err = up(disk)
    assert code == 2
    assert f"cannot write {disk}" in err
    assert "No space left on device" in err


@pytest.fixture
def hung_nats() -> Iterator[int]:
    """Something that accepts connections on a port and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def test_status_gives_up_on_a_hung_nats_within_three_seconds(state: Path, hung_nats: int) -> None:
    (state / "stack.json").write_text(
        json.dumps({"pid": 1, "nats_url": f"nats://127.0.0.1:{hung_nats}"})
    )
    t0 = time.monotonic()
    code, err = hms_ops(state, "status")
    took = time.monotonic() - t0
    assert code == 2
    assert f"nats://127.0.0.1:{hung_nats} did not answer within 2s" in err
    assert took < 4.5, f"took {took:.1f}s (interpreter start included)"


def test_status_says_when_the_stack_s_nats_is_unreachable(state: Path) -> None:
    code, err = hms_ops(state, "status")
    assert code == 2
    assert "cannot reach the stack's NATS at nats://127.0.0.1:1" in err


@pytest.mark.parametrize(
    ("setting", "value", "says"),
    [
        ("LOG_LEVEL", "LOUD", "must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("INSTANCE_ID", "a b.c", "should match pattern"),
    ],
)
def test_a_service_names_a_bad_setting_in_one_line(
    tmp_path: Path, setting: str, value: str, says: str
) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "hms_evaluator"],
        env={
            **os.environ,
            f"HMS_EVALUATOR_{setting}": value,
            "HMS_EVALUATOR_NATS_URL": "nats://127.0.0.1:1",
            "HMS_EVALUATOR_STATE_DIR": str(tmp_path),
        },
        capture_output=True,
        timeout=30,
        check=False,
    )
    err = out.stderr.decode()
    assert out.returncode == 1
    assert "Traceback" not in err
    assert f"HMS_EVALUATOR_{setting}: " in err
    assert says in err
    assert repr(value) in err


@pytest.mark.slow
def test_up_shows_why_a_service_did_not_start(tmp_path: Path) -> None:
    code, err = hms_ops(
        tmp_path / "state",
        "up",
        "--nats-port",
        str(free_port()),
        "--console-port",
        str(free_port()),
        "--ready-timeout",
        "2",
        env={"HMS_EVALUATOR_LOG_LEVEL": "LOUD"},
    )
    assert code == 1
    assert "evaluator (" in err
    assert "HMS_EVALUATOR_LOG_LEVEL: Value error, must be one of" in err


async def publish(url: str, password: str, count: int) -> None:
    nc = await nats.connect(url, user="hms-admin", password=password)
    js = nc.jetstream()
    await js.add_stream(name="LOSS_TEST", subjects=["losstest.>"])
    for _ in range(count):
        await js.publish("losstest.x", b"x" * 100)
    await nc.close()


async def last_alert(url: str, password: str) -> AlertFiring:
    nc = await nats.connect(url, user="hms-admin", password=password)
    try:
        msg = await nc.jetstream().get_last_msg(
            specs.ALERTS.name, AlertFiring.subject_pattern(SYSTEM_NAMESPACE)
        )
        return AlertFiring.model_validate_json(msg.data or b"")
    finally:
        await nc.close()


@pytest.mark.slow
def test_messages_lost_on_recovery_are_reported_loudly(tmp_path: Path) -> None:
    first = start_stack(tmp_path, name="first")
    try:
        creds = json.loads((first.state_dir / "credentials.json").read_text())
        asyncio.run(publish(first.info["nats_url"], creds["hms-admin"], 20))
        wait_for(
            lambda: "LOSS_TEST" in (first.state_dir / "nats" / "stream-sequences.json").read_text(),
            10,
            "up to note how far the stream got",
        )
    finally:
        stop_stack(first)
    # damage the stream's message block as a bad disk would; recovery truncates it silently
    streams = first.state_dir / "nats" / "jetstream"
    block = next(p for p in streams.rglob("1.blk") if "LOSS_TEST" in str(p))
    data = bytearray(block.read_bytes())
    data[1000:1400] = b"\xff" * 400
    block.write_bytes(bytes(data))
    for index in streams.rglob("index.db"):
        index.unlink()
    second = start_stack(tmp_path, state=first.state_dir, name="second")
    try:
        text = second.log()
        assert "ERROR JetStream lost data on recovery: stream LOSS_TEST is back at sequence" in text
        assert "message(s) lost" in text
        assert any("LOSS_TEST" in line for line in second.info["data_loss"])
        second.status()  # every status call says so
        alert = asyncio.run(last_alert(second.info["nats_url"], creds["hms-admin"]))
        assert alert.rule_id == "jetstream_data_lost"
        assert alert.labels == {"stream": "LOSS_TEST"}
        assert alert.value == 13
        assert "JetStream lost data on recovery: stream LOSS_TEST" in second.last_status_stderr
    finally:
        stop_stack(second)
