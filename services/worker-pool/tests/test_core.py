"""The worker-pool's decisions: a run's task read from the job spec, the environment its
command sees, and when a failed attempt is retried and after how long."""

from __future__ import annotations

import pytest
from hms_contracts import specs
from hms_contracts.config import Job
from hms_worker_pool.core import (
    Task,
    TaskError,
    cap_output,
    failure_fate,
    minimal_env,
    parse_task,
)


def job_task(**fields: object) -> Task:
    doc = {"namespace": "ssa", "name": "nightly", "schedule": "0 0 * * *", "queue": "q"}
    return parse_task(Job.model_validate({**doc, **fields}).task())


def test_a_jobs_command_timeout_retries_and_backoff_reach_the_task() -> None:
    task = job_task(command="run --all", timeout="30s", retries=2, backoff=["1s", "5s"])
    assert task.command == ("run", "--all")
    assert task.timeout_s == 30.0
    assert task.retries == 2
    assert task.backoff_s == (1.0, 5.0)


def test_a_task_without_any_of_command_python_or_image_is_refused() -> None:
    with pytest.raises(TaskError, match="exactly one of command, python or image"):
        parse_task({"retries": 0})


def test_a_command_that_is_not_an_argv_list_is_refused_naming_the_field() -> None:
    with pytest.raises(TaskError, match="'command' must be a non-empty argv list"):
        parse_task({"command": "rm -rf /"})


def test_the_environment_keeps_path_and_lang_and_drops_everything_else() -> None:
    parent = {"PATH": "/bin", "LANG": "C.UTF-8", "NATS_PASSWORD": "x", "HOME": "/root"}
    env = minimal_env(parent, home="/scratch", run_id="j@t", job_id="j", namespace="ns")
    assert env == {
        "PATH": "/bin",
        "LANG": "C.UTF-8",
        "HOME": "/scratch",
        "HMS_RUN_ID": "j@t",
        "HMS_JOB_ID": "j",
        "HMS_NAMESPACE": "ns",
    }


def test_a_failed_attempt_is_retried_after_the_jobs_backoff_while_retries_remain() -> None:
    task = Task(command=("x",), retries=3, backoff_s=(1.0, 4.0))
    assert failure_fate(task, 1, specs.WORKER_RUNS).delay_s == 1.0
    assert failure_fate(task, 2, specs.WORKER_RUNS).delay_s == 4.0
    assert failure_fate(task, 3, specs.WORKER_RUNS).delay_s == 4.0
    assert not failure_fate(task, 4, specs.WORKER_RUNS).will_retry


def test_without_a_backoff_of_its_own_a_retry_waits_the_consumers() -> None:
    fate = failure_fate(Task(command=("x",), retries=1), 1, specs.WORKER_RUNS)
    assert fate.will_retry
    assert fate.delay_s == specs.WORKER_RUNS.backoff_s[0]


def test_a_job_without_retries_gives_up_after_its_first_attempt() -> None:
    assert not failure_fate(Task(command=("x",)), 1, specs.WORKER_RUNS).will_retry


def test_the_consumers_max_deliver_bounds_the_retries() -> None:
    task = Task(command=("x",), retries=50)
    assert not failure_fate(task, specs.WORKER_RUNS.max_deliver, specs.WORKER_RUNS).will_retry


def test_output_is_cut_at_the_cap_and_says_so() -> None:
    assert cap_output(b"abcdef", 3) == ("abc", True)
    assert cap_output(b"abc", 3) == ("abc", False)
