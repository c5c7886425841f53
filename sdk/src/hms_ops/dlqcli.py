"""``hms-ops dlq list|show|replay``: the dead-letter stream, read and replayed by a person.

Every message no consumer could accept is in the ``DLQ`` stream on ``dlq.<its subject>``, its
body as it was and its headers saying why (``Hms-Dlq-Reason``), from where and after how many
deliveries (see ``hms_kit.deadletter``). ``replay`` puts a dead letter back on its subject (with
the dedupe id ``replay:<dlq sequence>``, so replaying twice in a row is one replay), removes it
from the stream, and records who did it in the namespace's hash-chained audit log
(``ops.audit.<ns>.recorded``, appended with compare-and-set on the chain's last record).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from hms_contracts import specs, subjects
from nats.aio.client import Client
from nats.js.api import RawStreamMsg
from nats.js.errors import APIError, NotFoundError
from rich.console import Console

from .applycli import StateDir
from .buscli import actor, audit, namespace_of, on_bus
from .errors import HmsOpsError
from .state import StatePaths

T = TypeVar("T")
TIMEOUT_S = 30.0
err = Console(stderr=True)

REASON, SUBJECT = "Hms-Dlq-Reason", "Hms-Dlq-Subject"
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
Seq = Annotated[int, typer.Argument(help="The dead letter's sequence in the DLQ stream.", min=1)]


class DeadLetterError(HmsOpsError):
    """A dead letter cannot be shown or replayed as asked."""


def _time(at: object) -> str | None:
    if isinstance(at, datetime):
        return at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return None if at is None else str(at)


def letter(msg: RawStreamMsg, *, body: bool = False) -> dict[str, Any]:
    """A dead letter as a row: sequence, time, where it came from, why, and (``body``) what."""
    headers = dict(msg.headers or {})
    row: dict[str, Any] = {
        "seq": msg.seq,
        "time": _time(msg.time),
        "subject": headers.get(SUBJECT, (msg.subject or "").removeprefix("dlq.")),
        "reason": headers.get(REASON, ""),
        "stream": headers.get("Hms-Dlq-Stream"),
        "consumer": headers.get("Hms-Dlq-Consumer"),
        "deliveries": headers.get("Hms-Dlq-Deliveries"),
    }
    if body:
        data = (msg.data or b"").decode("utf-8", errors="replace")
        try:
            row["body"] = json.loads(data)
        except json.JSONDecodeError:
            row["body"] = data
    return row


async def dead_letters(nc: Client, subject: str, limit: int) -> list[dict[str, Any]]:
    """The last ``limit`` dead letters whose original subject matches ``subject``."""
    js = nc.jetstream()
    try:
        info = await js.stream_info(specs.DLQ.name)
    except NotFoundError:
        return []
    rows: list[dict[str, Any]] = []
    seq = info.state.first_seq
    pattern = subjects.dlq(subject)
    while seq <= info.state.last_seq:
        try:
            msg = await js.get_msg(specs.DLQ.name, seq, subject=pattern, next=True)
        except NotFoundError:
            break
        rows.append(letter(msg))
        seq = (msg.seq or seq) + 1
    return rows[-limit:]


async def one(nc: Client, seq: int) -> RawStreamMsg:
    try:
        return await nc.jetstream().get_msg(specs.DLQ.name, seq)
    except (NotFoundError, APIError):
        raise DeadLetterError(f"no dead letter with sequence {seq} in stream DLQ") from None


async def replay(nc: Client, seq: int, who: str) -> dict[str, Any]:
    """Put dead letter ``seq`` back on its subject, remove it, audit it; the row replayed."""
    msg = await one(nc, seq)
    row = letter(msg)
    js = nc.jetstream()
    target = row["subject"]
    if not target or target.startswith(subjects.DLQ_PREFIX + "."):
        raise DeadLetterError(f"dead letter {seq} names no subject to replay to")
    ack = await js.publish(target, msg.data or b"", headers={"Nats-Msg-Id": f"replay:{seq}"})
    await js.delete_msg(specs.DLQ.name, seq)
    record = await audit(
        nc,
        namespace_of(target),
        who,
        "dlq.replay",
        target,
        {"dlq_seq": str(seq), "reason": row["reason"][:500], "stream_seq": str(ack.seq)},
    )
    return {**row, "replayed_to": target, "stream_seq": ack.seq, "audit": record.event_id}


def register(app: typer.Typer, state_paths: Callable[[Path | None], StatePaths]) -> None:
    """Add the ``dlq`` command group to ``app``."""
    dlq = typer.Typer(help="Dead letters: list, show, replay (audited).")
    app.add_typer(dlq, name="dlq")

    @dlq.command("list")
    def list_(
        subject: Annotated[
            str, typer.Option("--subject", help="Original subjects to list (a NATS pattern).")
        ] = ">",
        limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 100,
        as_json: Json = False,
        state_dir: StateDir = None,
    ) -> None:
        """The latest dead letters: sequence, time, original subject, reason."""
        rows = on_bus(state_paths(state_dir), lambda nc: dead_letters(nc, subject, limit))
        if as_json:
            print(json.dumps(rows, indent=2))
            return
        for r in rows:
            print(f"{r['seq']}  {r['time']}  {r['subject']}  {r['reason']}")

    @dlq.command("show")
    def show(seq: Seq, as_json: Json = False, state_dir: StateDir = None) -> None:
        """One dead letter with its headers and body."""

        async def read(nc: Client) -> dict[str, Any]:
            return letter(await one(nc, seq), body=True)

        row = on_bus(state_paths(state_dir), read)
        if as_json:
            print(json.dumps(row, indent=2))
            return
        for key, value in row.items():
            if key != "body":
                print(f"{key}: {value}")
        print(
            json.dumps(row["body"], indent=2) if not isinstance(row["body"], str) else row["body"]
        )

    @dlq.command("replay")
    def replay_(
        seqs: Annotated[list[int], typer.Argument(help="Sequences of the dead letters.", min=1)],
        as_json: Json = False,
        state_dir: StateDir = None,
    ) -> None:
        """Put dead letters back on their subjects; each replay is audited with who did it."""
        who = actor()

        async def go(nc: Client) -> list[dict[str, Any]]:
            return [await replay(nc, seq, who) for seq in seqs]

        rows = on_bus(state_paths(state_dir), go)
        if as_json:
            print(json.dumps(rows, indent=2))
            return
        for r in rows:
            print(f"{r['seq']} replayed to {r['replayed_to']} by {who}")
