"""Commands people give through the console, sent as NATS requests carrying who asked.

A command is not an event: it asks the service that owns the decision (the incident engine
for an incident) to act, and that service replies with :class:`CommandReplied`. The service
records what it did as its own events; the console does no other service's work. Subjects are
``ops.request.<namespace>.<command>``; :data:`COMMANDS` lists the commands and who answers.

The other overrides have a protocol of their own, which the console uses as the CLI does:
silences are ``silence`` config objects (written to the registry, the person as author); a
queue is paused by its key in the ``hms_job_control`` bucket; a dead letter is replayed from
the ``DLQ`` stream; a metric range is a MetricQuery on ``ops.query.metrics.<namespace>``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue

from . import subjects
from .fields import Slug, Text
from .tokens import check_namespace

Command = Literal[
    "incident_ack",
    "incident_resolve",
    "incident_approve",
    "playbook_run",
]

#: each command and the service expected to answer it
COMMANDS: dict[str, str] = {
    "incident_ack": "incident-engine",
    "incident_resolve": "incident-engine",
    "incident_approve": "incident-engine",
    "playbook_run": "incident-engine",
}


class CommandRequested(BaseModel):
    """A request from a person, through the console: what to do, to what, and who asked."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = Field(default=1, description="Version of this request's shape")
    request_id: Slug = Field(description="Id of the request, for the audit log and retries")
    namespace: str = Field(description="Namespace the command acts in")
    command: Command = Field(description="What to do, e.g. incident_ack")
    target: Text = Field(description="What to do it to: an incident id, a queue, a metric ...")
    actor: Text = Field(description="Who asked: the token's name as the console authenticated it")
    role: Literal["viewer", "responder", "author", "admin"] = Field(
        description="The role the actor holds in the namespace"
    )
    requested_at: AwareDatetime = Field(description="When the console sent it")
    args: dict[str, JsonValue] = Field(
        default_factory=dict, description="The command's particulars, e.g. a note or a step"
    )

    def subject(self) -> str:
        """``ops.request.<namespace>.<command>``."""
        return subjects.REQUEST.subject(check_namespace(self.namespace), self.command)


class CommandReplied(BaseModel):
    """The owning service's answer to a :class:`CommandRequested`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = Field(default=1, description="Version of this reply's shape")
    request_id: Slug = Field(description="Id of the request this answers")
    ok: bool = Field(description="Whether the command was done (or was already done)")
    status: int = Field(
        default=200, ge=200, le=599, description="HTTP-like outcome: 200, 404, 409, 422 ..."
    )
    detail: Text = Field(description="What happened, for the person who asked")
    result: dict[str, JsonValue] = Field(
        default_factory=dict, description="Data the command returns (a metric query's points)"
    )
    replied_at: datetime | None = Field(default=None, description="When the service answered")
