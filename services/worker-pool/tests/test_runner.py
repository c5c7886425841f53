"""Running a run's task: exit codes, a timeout that stops the whole process group, capped
output, an environment with nothing of the worker's secrets, Python functions, no images yet."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
from hms_worker_pool.core import Task
from hms_worker_pool.runner import RunContext, run_command, run_task

PY = sys.executable


def context(tmp_path: Path, attempt: int = 1) -> RunContext:
    return RunContext(
        run_id="nightly@2026-01-01T00:00:00Z",
        job_id="nightly",
        namespace="ssa",
        attempt=attempt,
        scratch_dir=tmp_path,
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_command_that_exits_zero_succeeds_with_its_output(tmp_path: Path) -> None:
    task = Task(command=(PY, "-c", "print('hello')"))
    result = await run_task(task, context(tmp_path))
    assert result.ok
    assert result.exit_code == 0
    assert result.output.strip() == "hello"


async def test_a_command_that_exits_non_zero_fails_and_says_with_which_code(
    tmp_path: Path,
) -> None:
    result = await run_task(Task(command=(PY, "-c", "raise SystemExit(3)")), context(tmp_path))
    assert not result.ok
    assert result.exit_code == 3
    assert "exited with 3" in result.error


async def test_a_missing_program_fails_with_its_name(tmp_path: Path) -> None:
    result = await run_task(Task(command=("/no/such/program",)), context(tmp_path))
    assert not result.ok
    assert "'/no/such/program' could not start" in result.error


async def test_a_timeout_kills_the_whole_process_group_grandchildren_too(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    script = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(60)\n"
    )
    started = time.monotonic()
    result = await run_command(
        (PY, "-c", script),
        env={"PATH": os.environ["PATH"]},
        cwd=tmp_path,
        timeout_s=1.0,
        grace_s=1.0,
    )
    assert time.monotonic() - started < 10
    assert result.timed_out
    assert not result.ok
    assert "timed out after 1 s" in result.error
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(grandchild), "the grandchild outlived its run"


async def test_a_command_that_ignores_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    script = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    started = time.monotonic()
    result = await run_command((PY, "-c", script), env={}, cwd=tmp_path, timeout_s=0.5, grace_s=0.5)
    assert result.timed_out
    assert time.monotonic() - started < 5


async def test_output_beyond_the_cap_is_dropped_and_marked_truncated(tmp_path: Path) -> None:
    script = "import sys; sys.stdout.write('x' * 200000)"
    result = await run_command((PY, "-c", script), env={}, cwd=tmp_path, output_cap=1000)
    assert result.ok
    assert result.truncated
    assert result.output == "x" * 1000


async def test_output_within_the_cap_is_not_marked_truncated(tmp_path: Path) -> None:
    result = await run_command((PY, "-c", "print('x' * 10)"), env={}, cwd=tmp_path)
    assert not result.truncated


async def test_the_command_sees_a_minimal_environment_and_no_secret_of_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HMS_WORKER_POOL_NATS_PASSWORD", "s3cret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cret")
    script = "import json, os; print(json.dumps(dict(os.environ)))"
    result = await run_task(Task(command=(PY, "-c", script)), context(tmp_path))
    env = __import__("json").loads(result.output)
    assert "s3cret" not in result.output
    assert set(env) <= {"PATH", "LANG", "HOME", "HMS_RUN_ID", "HMS_JOB_ID", "HMS_NAMESPACE",
                        "HMS_ITEMS_FILE", "LC_CTYPE"}  # fmt: skip
    assert env["HOME"] == str(tmp_path)
    assert env["HMS_RUN_ID"] == "nightly@2026-01-01T00:00:00Z"
    assert env["HMS_JOB_ID"] == "nightly"
    assert env["HMS_NAMESPACE"] == "ssa"


async def test_a_command_runs_in_its_scratch_directory_and_never_through_a_shell(
    tmp_path: Path,
) -> None:
    result = await run_task(Task(command=("echo", "$HOME", ";", "id")), context(tmp_path))
    assert result.output.strip() == "$HOME ; id"


async def test_an_image_task_fails_for_want_of_a_container_engine(tmp_path: Path) -> None:
    result = await run_task(Task(image="usgov/ssa-worker:v1"), context(tmp_path))
    assert not result.ok
    assert "no container engine configured" in result.error


async def seen(ctx: RunContext) -> None:
    (ctx.scratch_dir / "seen").write_text(f"{ctx.run_id} {ctx.attempt}")


def fails(ctx: RunContext) -> None:
    raise RuntimeError(f"attempt {ctx.attempt} broke")


async def test_a_python_task_is_called_with_its_run_context(tmp_path: Path) -> None:
    target = f"{__name__}:seen"
    result = await run_task(Task(python=target), context(tmp_path, attempt=2))
    assert result.ok, result.error
    assert (tmp_path / "seen").read_text() == "nightly@2026-01-01T00:00:00Z 2"


async def test_a_python_task_that_raises_fails_with_the_error(tmp_path: Path) -> None:
    result = await run_task(Task(python=f"{__name__}:fails"), context(tmp_path))
    assert not result.ok
    assert "RuntimeError: attempt 1 broke" in result.error


async def test_a_python_task_that_cannot_be_imported_fails_with_its_name(tmp_path: Path) -> None:
    result = await run_task(Task(python="no_such_module:run"), context(tmp_path))
    assert not result.ok
    assert "'no_such_module:run' cannot be imported" in result.error
