"""The worker-pool's decisions as pure functions, without I/O: what a run's task is, the
environment its command sees, and how a failed attempt ends: retried after a delay, or given up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hms_contracts.specs import ConsumerSpec
from pydantic import JsonValue

SERVICE = "worker-pool"

#: the only variables a command inherits from the worker's own environment
INHERITED_ENV = ("PATH", "LANG")
#: when the worker's environment has no PATH
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


class TaskError(ValueError):
    """A run's task cannot be run as given (no task, or a malformed field)."""


@dataclass(frozen=True, slots=True)
class Task:
    """What one run executes, read from ``RunScheduled.task`` (``Job.task()``)."""

    command: tuple[str, ...] | None = None
    python: str | None = None
    image: str | None = None
    timeout_s: float | None = None
    retries: int = 0
    backoff_s: tuple[float, ...] = ()
    max_deliver: int | None = None


def _number(task: Mapping[str, JsonValue], key: str) -> float | None:
    value = task.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise TaskError(f"task field {key!r} must be a non-negative number, not {value!r}")
    return float(value)


def parse_task(task: Mapping[str, JsonValue]) -> Task:
    """The :class:`Task` in a run's ``task`` parameters; TaskError names the field at fault."""
    command = task.get("command")
    if command is not None and (
        not isinstance(command, list)
        or not command
        or not all(isinstance(arg, str) and arg for arg in command)
    ):
        raise TaskError(f"task field 'command' must be a non-empty argv list, not {command!r}")
    python, image = task.get("python"), task.get("image")
    for key, value in (("python", python), ("image", image)):
        if value is not None and not isinstance(value, str):
            raise TaskError(f"task field {key!r} must be a string, not {value!r}")
    given = [k for k, v in (("command", command), ("python", python), ("image", image)) if v]
    if len(given) != 1:
        raise TaskError(
            "a task needs exactly one of command, python or image "
            f"(found: {', '.join(given) or 'none'})"
        )
    backoff = task.get("backoff_s") or []
    if not isinstance(backoff, list):
        raise TaskError(f"task field 'backoff_s' must be a list of seconds, not {backoff!r}")
    retries = _number(task, "retries") or 0
    max_deliver = _number(task, "max_deliver")
    return Task(
        command=tuple(str(arg) for arg in command) if isinstance(command, list) else None,
        python=python if isinstance(python, str) else None,
        image=image if isinstance(image, str) else None,
        timeout_s=_number(task, "timeout_s"),
        retries=int(retries),
        backoff_s=tuple(_number({"backoff_s": step}, "backoff_s") or 0.0 for step in backoff),
        max_deliver=None if max_deliver is None else int(max_deliver),
    )


def minimal_env(
    parent: Mapping[str, str], *, home: str, run_id: str, job_id: str, namespace: str
) -> dict[str, str]:
    """The whole environment of a run's command: PATH and LANG from the worker, HOME its
    scratch directory, and the run's identity; nothing else of the worker's (its secrets)."""
    env = {key: parent[key] for key in INHERITED_ENV if key in parent}
    env.setdefault("PATH", DEFAULT_PATH)
    env.update(HOME=home, HMS_RUN_ID=run_id, HMS_JOB_ID=job_id, HMS_NAMESPACE=namespace)
    return env


@dataclass(frozen=True, slots=True)
class FailureFate:
    """How a failed attempt ends: another attempt after ``delay_s``, or given up."""

    will_retry: bool
    delay_s: float | None = None


def failure_fate(task: Task, attempt: int, consumer: ConsumerSpec) -> FailureFate:
    """Retry while the job has retries left and the consumer will deliver again; the delay is
    the job's backoff step for this retry (the last repeats), else the consumer's."""
    limits = [consumer.max_deliver, task.retries + 1]
    if task.max_deliver is not None:
        limits.append(task.max_deliver)
    if attempt >= min(limits):
        return FailureFate(will_retry=False)
    return FailureFate(
        will_retry=True, delay_s=backoff_step(task.backoff_s or consumer.backoff_s, attempt)
    )


def backoff_step(steps: Sequence[float], attempt: int) -> float:
    """The delay after failed attempt number ``attempt`` (1-based); the last step repeats."""
    if not steps:
        return 1.0
    return steps[min(max(attempt, 1), len(steps)) - 1]


def cap_output(data: bytes, limit: int) -> tuple[str, bool]:
    """At most ``limit`` bytes of ``data`` as text, and whether it was cut."""
    cut = len(data) > limit
    return data[:limit].decode("utf-8", errors="replace"), cut
