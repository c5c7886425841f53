"""Playbook steps: built-in actions, or a command run as an argv list (never through a shell).

A step is written as a string, as in ``Playbook.steps([...])`` and in YAML files:
``"kubectl rollout undo deploy/benefits-api"`` (a command) or
``"notify oncall 'Rollback complete'"`` (a built-in verb). :func:`parse_step` splits it with
``shlex`` and types it; a mapping with ``action:`` is accepted as well.
"""

from __future__ import annotations

import shlex
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from hms_contracts.fields import Text, Token


class _Step(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RunStep(_Step):
    """Run a command: ``argv[0]`` is the program, the rest its arguments; no shell."""

    action: Literal["run"] = "run"
    argv: tuple[Annotated[str, Field(min_length=1, max_length=4096)], ...] = Field(
        min_length=1, max_length=256, description="Program and arguments, e.g. [kubectl, ...]"
    )
    timeout_s: float = Field(
        default=30.0, gt=0, le=86400, description="SIGTERM then SIGKILL to its process group after"
    )
    idempotent: bool = Field(
        default=False,
        description="Safe to run again after a crash cut it short (else: needs_attention)",
    )
    secret_env: dict[Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]{0,63}$")], Token] = Field(
        default_factory=dict,
        description="Environment variables set to secrets, by secret name (masked everywhere)",
    )


class NotifyStep(_Step):
    """Send a message to a person or rota (by the escalation policy's channels)."""

    action: Literal["notify"] = "notify"
    target: Token = Field(description="Who: an on-call rota or a person, e.g. oncall")
    message: Text = Field(description="What to tell them")


class TicketStep(_Step):
    """File a human-in-the-loop ticket."""

    action: Literal["ticket"] = "ticket"
    summary: Text = Field(description="One line for the ticket")


class ScaleStep(_Step):
    """Set a worker pool's size."""

    action: Literal["scale"] = "scale"
    pool: Token = Field(description="Worker pool, e.g. ssa_re_score")
    replicas: int = Field(ge=0, le=10_000, description="Workers it should run")


class PauseQueueStep(_Step):
    """Stop handing out work from a queue (running items finish)."""

    action: Literal["pause_queue"] = "pause_queue"
    queue: Token = Field(description="Work queue to pause")


class ResumeQueueStep(_Step):
    """Hand out work from a paused queue again."""

    action: Literal["resume_queue"] = "resume_queue"
    queue: Token = Field(description="Work queue to resume")


class ApproveStep(_Step):
    """Wait for a person to approve before the next step (human in the loop); the step fails
    when nobody approves within ``timeout_s``."""

    action: Literal["approval"] = "approval"
    prompt: Text = Field(default="Approve the next step?", description="What is being approved")
    timeout_s: float = Field(default=3600.0, gt=0, le=7 * 86400, description="Fails after this")


class WebhookStep(_Step):
    """POST the incident (JSON) to a URL; a 2xx answer succeeds."""

    action: Literal["webhook"] = "webhook"
    url: str = Field(pattern=r"^https?://[^\s]+$", max_length=2048, description="http(s) URL")
    secret_headers: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{1,64}$")], Token] = Field(
        default_factory=dict, description="Headers set to secrets, by secret name (masked)"
    )
    timeout_s: float = Field(default=30.0, gt=0, le=600, description="Gives up after this")
    idempotent: bool = Field(default=False, description="Safe to send again after a crash")


class PythonStep(_Step):
    """Call a registered ``module:function`` (the engine's allow-list) in a child process,
    given the playbook's parameters; killed after ``timeout_s``."""

    action: Literal["python"] = "python"
    function: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$",
        max_length=256,
        description="module:function, registered with the incident engine",
    )
    timeout_s: float = Field(default=30.0, gt=0, le=3600, description="Killed after this")
    idempotent: bool = Field(default=False, description="Safe to call again after a crash")


Step = Annotated[
    RunStep
    | NotifyStep
    | TicketStep
    | ScaleStep
    | PauseQueueStep
    | ResumeQueueStep
    | ApproveStep
    | WebhookStep
    | PythonStep,
    Field(discriminator="action"),
]
"""One playbook step, told apart by ``action``."""

_STEP: TypeAdapter[Step] = TypeAdapter(Step)

_USAGE = {
    "notify": "notify <target> <message>",
    "ticket": "ticket <summary>",
    "scale": "scale <pool> <replicas>",
    "pause_queue": "pause_queue <queue>",
    "resume_queue": "resume_queue <queue>",
    "approve": "approve [<prompt>]",
    "approval": "approval [<prompt>]",
    "webhook": "webhook <url>",
    "python": "python <module:function>",
}


def _fields(verb: str, args: list[str]) -> dict[str, Any]:
    if verb == "notify" and len(args) >= 2:
        return {"target": args[0], "message": " ".join(args[1:])}
    if verb == "ticket" and args:
        return {"summary": " ".join(args)}
    if verb == "scale" and len(args) == 2:
        if not args[1].isdigit():
            raise ValueError(f"replicas {args[1]!r} must be a whole number")
        return {"pool": args[0], "replicas": int(args[1])}
    if verb in ("pause_queue", "resume_queue") and len(args) == 1:
        return {"queue": args[0]}
    if verb in ("approve", "approval"):
        return {"prompt": " ".join(args)} if args else {}
    if verb == "webhook" and len(args) == 1:
        return {"url": args[0]}
    if verb == "python" and len(args) == 1:
        return {"function": args[0]}
    raise ValueError(f"expected {_USAGE[verb]!r}")


def parse_step(text: str) -> Step:
    """Type a step written as a string: a built-in verb, or else a command's argv."""
    try:
        words = shlex.split(text)
    except ValueError as exc:  # an unclosed quote
        raise ValueError(f"step {text!r}: {exc}") from None
    if not words:
        raise ValueError("a step cannot be empty")
    verb, args = words[0], words[1:]
    if verb in _USAGE:
        try:
            action = "approval" if verb == "approve" else verb
            return _STEP.validate_python({"action": action, **_fields(verb, args)})
        except ValueError as exc:
            raise ValueError(f"step {text!r}: {exc}") from None
    return RunStep(argv=tuple(words))


def coerce_step(value: object) -> object:
    """A string step parsed; anything else left for the discriminated union to validate."""
    return parse_step(value) if isinstance(value, str) else value
