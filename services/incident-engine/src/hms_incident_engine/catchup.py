"""Before leading, take from the bus the audit records this instance's SQLite lacks (another
instance led before it, or its file is new), so each namespace's chain goes on from its true
last record instead of starting again at 1 (which the stream would hold twice)."""

from __future__ import annotations

import logging
from functools import partial

from hms_contracts import AuditRecorded, specs, subjects
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError
from pydantic import ValidationError

from .store import Store, Tx

log = logging.getLogger(__name__)


async def catch_up_audit(js: JetStreamContext, store: Store) -> dict[str, int]:
    """Import every namespace's records past the local tail, checking each link; the number
    imported by namespace. A record that does not link (the local chain differs from the bus)
    stops that namespace's import with an error logged."""
    stream = specs.AUDIT.name
    pattern = AuditRecorded.subject_pattern()
    try:
        info = await js.stream_info(stream, subjects_filter=pattern)
    except NotFoundError:
        return {}
    imported: dict[str, int] = {}
    for subject in sorted(info.state.subjects or {}):
        ns = subjects.AUDIT.namespace_of(subject)
        tail = await store.tail_of(ns)
        have = 0 if tail is None else tail.sequence
        try:
            records = await _past(js, stream, subject, have, info.state.first_seq)
        except ValidationError as exc:
            # an altered record on the bus: never build on it; `audit verify` shows it
            log.error("audit %s: a record on the bus does not validate: %s", ns, exc)
            continue
        if not records:
            continue
        imported[ns] = await store.tx(partial(_import, ns, records))
        if imported[ns]:
            log.info("audit %s: took %d record(s) from the bus", ns, imported[ns])
    return imported


def _record(msg: RawStreamMsg) -> AuditRecorded:
    return AuditRecorded.model_validate_json(msg.data or b"")


async def _past(
    js: JetStreamContext, stream: str, subject: str, have: int, first_seq: int
) -> list[AuditRecorded]:
    """The records of ``subject`` after sequence ``have`` of the chain, in order."""
    last = _record(await js.get_msg(stream, subject=subject))
    if last.sequence <= have:
        return []
    records: list[AuditRecorded] = []
    seq = first_seq
    while True:
        try:
            msg = await js.get_msg(stream, seq, subject=subject, next=True)
        except NotFoundError:
            break
        record = _record(msg)
        if record.sequence > have:
            records.append(record)
        seq = (msg.seq or seq) + 1
        if record.sequence >= last.sequence:
            break
    return records


def _import(ns: str, records: list[AuditRecorded], tx: Tx) -> int:
    previous = tx.store.tail(ns)
    count = 0
    for record in records:
        want_seq = 1 if previous is None else previous.sequence + 1
        want_prev = "0" * 64 if previous is None else previous.hash
        if record.sequence != want_seq or record.prev_hash != want_prev:
            log.error(
                "audit %s: record %d on the bus does not follow the local chain (at %d); "
                "not imported",
                ns,
                record.sequence,
                want_seq - 1,
            )
            break
        tx.execute(
            "INSERT INTO audit VALUES (?, ?, ?, ?)",
            (ns, record.sequence, record.hash, record.model_dump_json()),
        )
        tx.tails[ns] = record
        previous = record
        count += 1
    return count
