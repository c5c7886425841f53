"""Incidents: what a batch of signals changes, and what people do to an incident (acknowledge,
resolve, approve). Every change is one transaction with its timeline entries, audit records
and outgoing events; the events are published from the outbox once committed."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from hms_contracts import (
    IncidentClosed,
    IncidentEscalated,
    IncidentOpened,
    IncidentStatus,
    IncidentUpdated,
    TicketFiled,
)
from hms_contracts.config import ConfigObject, Playbook, Silence
from hms_contracts.config.incidents import ParamError, mask, resolve_params
from hms_kit import Clock
from nats.js import JetStreamContext

from .core import (
    CLOSED,
    SERVICE,
    Signal,
    TransitionError,
    check_transition,
    group_key,
    incident_id_for,
    playbook_for,
    silenced_by,
)
from .metrics import EngineMetrics
from .settings import IncidentEngineSettings
from .store import Store, Tx, ts

log = logging.getLogger(__name__)


class IncidentNotFound(LookupError):
    """No incident with that id in that namespace."""


class ConfigSource(Protocol):
    """The config objects the engine follows (the kit's ConfigWatcher, or a fixed set)."""

    def objects(self, kind: str, namespace: str | None = None) -> list[ConfigObject]: ...


class StaticConfig:
    """A fixed, replaceable set of config objects (tests, and an engine given them in code)."""

    def __init__(self, objects: Sequence[ConfigObject] = ()) -> None:
        self.current = list(objects)

    def objects(self, kind: str, namespace: str | None = None) -> list[ConfigObject]:
        return [
            o
            for o in self.current
            if o.kind == kind and (namespace is None or o.namespace == namespace)
        ]


@dataclass(frozen=True)
class Start:
    """A run to start: planned in the transaction that opened its incident."""

    namespace: str
    incident_id: str
    playbook: Playbook
    values: dict[str, str]


class Engine:
    """The incident engine's state changes, on one store."""

    def __init__(
        self,
        store: Store,
        settings: IncidentEngineSettings,
        clock: Clock,
        config: ConfigSource,
        js: Callable[[], JetStreamContext],
        metrics: EngineMetrics | None = None,
    ) -> None:
        self.metrics = metrics or EngineMetrics()
        self.store = store
        self.settings = settings
        self.clock = clock
        self.config = config
        self._js = js
        self._flush_lock = asyncio.Lock()
        #: incidents whose playbook run should start (the runner takes them)
        self.started_runs: asyncio.Queue[Start] = asyncio.Queue()
        self.approved = asyncio.Event()

    def js(self) -> JetStreamContext:
        """The service's JetStream context (for steps that act on the bus's state)."""
        return self._js()

    @property
    def secrets(self) -> dict[str, str]:
        return {k: v.get_secret_value() for k, v in self.settings.secrets.items()}

    def masked(self, text: str) -> str:
        return mask(text, list(self.secrets.values()))

    # --- publishing -------------------------------------------------------------------------

    async def flush(self) -> int:
        """Publish the outbox in order, pipelined; returns how many were stored."""
        async with self._flush_lock:
            sent = 0
            while rows := await self.store.outbox(1000):
                js = self._js()
                futures = [
                    await js.publish_async(
                        r["subject"],
                        r["body"].encode(),
                        headers={"Nats-Msg-Id": r["event_id"], "Content-Type": "application/json"},
                    )
                    for r in rows
                ]
                await asyncio.wait_for(asyncio.gather(*futures), 10.0)
                self.store.published(rows[-1]["seq"])
                sent += len(rows)
            return sent

    async def flush_forever(self, every_s: float = 1.0) -> None:
        """Retry the outbox while the bus was away."""
        while True:
            try:
                await self.flush()
            except Exception as exc:
                log.warning("publishing the outbox failed (%s); retrying", exc)
            await asyncio.sleep(every_s)

    # --- signals ----------------------------------------------------------------------------

    async def take(self, signals: Sequence[Signal]) -> list[Start]:
        """Apply a batch of signals in one transaction; returns the runs to start."""
        now = self.clock.now()
        silences = [s for s in self.config.objects("silence") if isinstance(s, Silence)]
        alerts = self.config.objects("alert")
        playbooks = self.config.objects("playbook")

        outcomes: Counter[str] = Counter()

        def one(tx: Tx, sig: Signal) -> tuple[str, Start | None]:
            if not tx.first_time(sig.event_id):
                return "duplicate", None
            if sig.kind == "resolved":
                self._resolved(tx, sig, now)
                return "resolved", None
            silence = silenced_by(sig, silences, now)
            if silence is not None:
                detail = {"rule": sig.rule_id, "silence": silence.name, "event_id": sig.event_id}
                tx.audit(sig.namespace, now, SERVICE, "alert.silenced", sig.fingerprint, detail)
                return "silenced", None
            key = group_key(sig, self.settings.group_by)
            row = self._open_in_group(tx, sig.namespace, key)
            if row is not None:
                return ("joined" if self._joined(tx, row, sig, now) else "refired"), None
            iid = self._open(tx, sig, key, now)
            pb = playbook_for(sig, alerts, playbooks)
            values = None if pb is None else self._plan_run(tx, sig, iid, pb, now)
            if pb is None or values is None:
                return "opened", None
            return "opened", Start(sig.namespace, iid, pb, values)

        def change(tx: Tx) -> list[Start]:
            starts: list[Start] = []
            for sig in signals:
                # one signal that cannot be taken (an invalid label from a webhook) is
                # rolled back alone: the batch goes on, and it is logged and counted
                tx.execute("SAVEPOINT signal")
                tails = dict(tx.tails)
                try:
                    outcome, start = one(tx, sig)
                except Exception:
                    tx.tails = tails  # its audit records are gone with it
                    tx.execute("ROLLBACK TO signal")
                    tx.execute("RELEASE signal")
                    log.exception("signal %s in %s not taken", sig.event_id, sig.namespace)
                    outcomes["rejected"] += 1
                    continue
                tx.execute("RELEASE signal")
                outcomes[outcome] += 1
                if start is not None:
                    starts.append(start)
            return starts

        starts = await self.store.tx(change)
        for outcome, count in outcomes.items():
            self.metrics.signals.labels(outcome).inc(count)
        for start in starts:
            self.started_runs.put_nowait(start)
        await self.try_flush()
        return starts

    async def try_flush(self) -> None:
        """Publish now if the bus is there; the outbox keeps what it could not send."""
        try:
            await self.flush()
        except Exception as exc:
            log.warning("publishing the outbox failed (%s); it will be retried", exc)

    def _open_in_group(self, tx: Tx, namespace: str, key: str) -> dict[str, Any] | None:
        row = tx.db.execute(
            "SELECT * FROM incidents WHERE namespace = ? AND group_key = ? AND closed_at IS NULL",
            (namespace, key),
        ).fetchone()
        return None if row is None else dict(row)

    def _joined(self, tx: Tx, row: dict[str, Any], sig: Signal, now: datetime) -> bool:
        """Add the signal's alert to an open incident: True when it is new to it."""
        ns, iid = row["namespace"], row["incident_id"]
        added = tx.execute(
            "INSERT OR IGNORE INTO members VALUES (?, ?, ?, 1)", (ns, iid, sig.fingerprint)
        )
        if added:
            tx.note(ns, iid, now, "alert", sig.source, f"{sig.rule_id} joined: {sig.title}")
            tx.audit(ns, now, SERVICE, "incident.alert_joined", iid, {"rule": sig.rule_id})
            return True
        tx.execute(
            "UPDATE members SET firing = 1 WHERE namespace = ? AND incident_id = ? "
            "AND fingerprint = ?",
            (ns, iid, sig.fingerprint),
        )
        return False

    def _open(self, tx: Tx, sig: Signal, key: str, now: datetime) -> str:
        ns = sig.namespace
        iid = incident_id_for(ns, key, sig.event_id)
        cause = "sla_breach" if sig.kind == "breach" else "alert"
        tx.execute(
            "INSERT INTO incidents (namespace, incident_id, group_key, status, severity, title, "
            "cause, labels, playbook, revision, opened_at, updated_at) "
            "VALUES (?, ?, ?, 'open', ?, ?, ?, ?, NULL, 1, ?, ?)",
            (
                ns,
                iid,
                key,
                sig.severity,
                sig.title,
                cause,
                json.dumps(dict(sig.labels)),
                ts(now),
                ts(now),
            ),
        )
        tx.execute("INSERT INTO members VALUES (?, ?, ?, 1)", (ns, iid, sig.fingerprint))
        tx.emit(
            IncidentOpened.create(
                namespace=ns,
                occurred_at=now,
                incident_id=iid,
                title=sig.title,
                severity=sig.severity,
                cause=cause,
                cause_event_id=sig.event_id,
                fingerprint=sig.fingerprint if cause == "alert" else None,
                labels=dict(sig.labels),
            )
        )
        tx.note(ns, iid, now, "opened", sig.source, sig.title)
        tx.audit(ns, now, SERVICE, "incident.opened", iid, {"cause": cause, "rule": sig.rule_id})
        if sig.kind == "breach":
            # the documents: a breach files a human-in-the-loop ticket
            self._ticket(tx, ns, iid, now, "sla_breach", sig.title, sig.severity, sig.detail)
        return iid

    def _ticket(
        self,
        tx: Tx,
        ns: str,
        iid: str,
        now: datetime,
        source: str,
        summary: str,
        severity: str,
        detail: str = "",
        labels: Mapping[str, str] | None = None,
    ) -> TicketFiled:
        ticket = TicketFiled.create(
            namespace=ns,
            occurred_at=now,
            incident_id=iid,
            ticket_id=f"{iid}.{source}",
            summary=self.masked(summary)[:1024],
            detail=self.masked(detail)[:65536],
            severity=severity,
            source=source,
            labels=dict(labels or {}),
        )
        tx.emit(ticket)
        tx.emit(
            IncidentEscalated.create(
                namespace=ns,
                occurred_at=now,
                incident_id=iid,
                level=1,
                channel="ticket",
                target=source,
                reference=ticket.ticket_id,
            )
        )
        tx.note(ns, iid, now, "ticket", SERVICE, f"ticket {ticket.ticket_id} filed")
        tx.audit(ns, now, SERVICE, "ticket.filed", iid, {"ticket": ticket.ticket_id})
        return ticket

    def _plan_run(
        self, tx: Tx, sig: Signal, iid: str, pb: Playbook, now: datetime
    ) -> dict[str, str] | None:
        """Record the playbook run of a new incident, unless its parameters do not validate
        or its target ran too often in the last hour; its parameters, or None when it will
        not run."""
        ns = sig.namespace
        tx.execute(
            "UPDATE incidents SET playbook = ? WHERE namespace = ? AND incident_id = ?",
            (pb.name, ns, iid),
        )
        try:
            values = resolve_params(pb.params, sig.labels)
        except ParamError as exc:
            self._refuse(tx, ns, iid, now, pb.name, f"parameters refused: {exc}")
            return None
        target = pb.target(values)
        row = tx.db.execute(
            "SELECT COUNT(*) FROM runs WHERE namespace = ? AND target = ? AND started_at > ?",
            (ns, target, ts(now - timedelta(hours=1))),
        ).fetchone()
        recent = int(row[0]) if row is not None else 0
        if recent >= pb.max_runs_per_hour:
            most = pb.max_runs_per_hour
            why = f"rate limit: {recent} runs of {target} in the last hour (max {most})"
            self._refuse(tx, ns, iid, now, pb.name, why)
            return None
        tx.execute(
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, 'running', ?, NULL)",
            (ns, iid, pb.name, pb.model_dump_json(), json.dumps(values), target, ts(now)),
        )
        tx.audit(ns, now, SERVICE, "playbook.planned", iid, {"playbook": pb.name, **values})
        return values

    def _refuse(self, tx: Tx, ns: str, iid: str, now: datetime, playbook: str, why: str) -> None:
        why = self.masked(why)
        tx.note(ns, iid, now, "playbook", SERVICE, f"playbook {playbook} not run: {why}")
        tx.audit(ns, now, SERVICE, "playbook.refused", iid, {"playbook": playbook, "why": why})
        row = self._row(tx, ns, iid)
        self.set_status(tx, row, "needs_attention", SERVICE, why, now)
        self._ticket(tx, ns, iid, now, "needs_attention", f"{row['title']}: {why}", row["severity"])

    def _resolved(self, tx: Tx, sig: Signal, now: datetime) -> None:
        found = tx.db.execute(
            "SELECT m.incident_id FROM members m JOIN incidents i USING (namespace, incident_id) "
            "WHERE m.namespace = ? AND m.fingerprint = ? AND i.closed_at IS NULL",
            (sig.namespace, sig.fingerprint),
        ).fetchone()
        if found is None:
            return
        iid = found[0]
        tx.execute(
            "UPDATE members SET firing = 0 WHERE namespace = ? AND incident_id = ? "
            "AND fingerprint = ?",
            (sig.namespace, iid, sig.fingerprint),
        )
        tx.note(sig.namespace, iid, now, "alert", sig.source, f"{sig.rule_id} resolved")
        if not self.settings.close_on_resolve:
            return
        still = tx.db.execute(
            "SELECT COUNT(*) FROM members WHERE namespace = ? AND incident_id = ? AND firing = 1",
            (sig.namespace, iid),
        ).fetchone()
        if still is not None and still[0] == 0:
            row = self._row(tx, sig.namespace, iid)
            self.set_status(
                tx, row, "resolved", SERVICE, "every alert resolved", now, "auto_resolved"
            )

    # --- status -----------------------------------------------------------------------------

    def _row(self, tx: Tx, ns: str, iid: str) -> dict[str, Any]:
        row = tx.db.execute(
            "SELECT * FROM incidents WHERE namespace = ? AND incident_id = ?", (ns, iid)
        ).fetchone()
        if row is None:
            raise IncidentNotFound(f"no incident {iid!r} in namespace {ns!r}")
        return dict(row)

    def set_status(
        self,
        tx: Tx,
        row: dict[str, Any],
        status: IncidentStatus,
        actor: str,
        note: str,
        now: datetime,
        resolution: str = "resolved",
        detail: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Move an incident to ``status`` (TransitionError if the lifecycle forbids it)."""
        check_transition(row["status"], status)
        ns, iid = row["namespace"], row["incident_id"]
        revision = row["revision"] + 1
        closed = status in CLOSED
        tx.execute(
            "UPDATE incidents SET status = ?, revision = ?, updated_at = ?, "
            "closed_at = CASE WHEN ? THEN ? ELSE closed_at END, "
            "resolution = CASE WHEN ? THEN ? ELSE resolution END "
            "WHERE namespace = ? AND incident_id = ?",
            (status, revision, ts(now), closed, ts(now), closed, resolution, ns, iid),
        )
        note = self.masked(note)[:1024] or status
        tx.emit(
            IncidentUpdated.create(
                namespace=ns,
                occurred_at=now,
                incident_id=iid,
                revision=revision,
                status=status,
                severity=row["severity"],
                actor=actor,
                note=note,
            )
        )
        tx.note(ns, iid, now, status, actor, note)
        tx.audit(ns, now, actor, f"incident.{status}", iid, {"note": note, **(detail or {})})
        if closed:
            tx.emit(
                IncidentClosed.create(
                    namespace=ns,
                    occurred_at=now,
                    incident_id=iid,
                    resolution=resolution,
                    summary=note,
                    closed_by=actor,
                    opened_at=datetime.fromisoformat(row["opened_at"]),
                )
            )
            tx.audit(ns, now, actor, "incident.closed", iid, {"resolution": resolution})
        return {**row, "status": status, "revision": revision}

    # --- what people do ---------------------------------------------------------------------

    async def acknowledge(self, namespace: str, incident_id: str, actor: str, via: str) -> None:
        """Acknowledge an open incident (again: nothing happens), on the timeline and in the
        audit log, and publish the update. IncidentNotFound when there is no such incident."""
        now = self.clock.now()

        def change(tx: Tx) -> None:
            row = self._row(tx, namespace, incident_id)
            if row["acknowledged_by"] is not None or row["closed_at"] is not None:
                return
            tx.execute(
                "UPDATE incidents SET acknowledged_by = ? WHERE namespace = ? AND incident_id = ?",
                (actor, namespace, incident_id),
            )
            note = f"acknowledged by {actor} via {via}"
            if row["status"] == "open":
                self.set_status(tx, row, "acknowledged", actor, note, now, detail={"via": via})
            else:
                tx.audit(namespace, now, actor, "incident.acknowledged", incident_id, {"via": via})
                revision = row["revision"] + 1
                tx.execute(
                    "UPDATE incidents SET revision = ?, updated_at = ? "
                    "WHERE namespace = ? AND incident_id = ?",
                    (revision, ts(now), namespace, incident_id),
                )
                tx.emit(
                    IncidentUpdated.create(
                        namespace=namespace,
                        occurred_at=now,
                        incident_id=incident_id,
                        revision=revision,
                        status=row["status"],
                        severity=row["severity"],
                        actor=actor,
                        note=note,
                    )
                )
                tx.note(namespace, incident_id, now, "acknowledged", actor, note)

        await self.store.tx(change)
        await self.flush()

    async def resolve(
        self, namespace: str, incident_id: str, actor: str, note: str | None = None
    ) -> str:
        """A person resolves an incident; returns its status after (resolving twice is no
        change)."""
        now = self.clock.now()

        def change(tx: Tx) -> str:
            row = self._row(tx, namespace, incident_id)
            if row["closed_at"] is not None:
                return str(row["status"])
            self.set_status(tx, row, "resolved", actor, note or f"resolved by {actor}", now)
            return "resolved"

        status = await self.store.tx(change)
        await self.flush()
        return status

    async def approve(self, namespace: str, incident_id: str, actor: str) -> int:
        """Approve the approval step the incident's playbook waits on; its index."""
        now = self.clock.now()

        def change(tx: Tx) -> int:
            self._row(tx, namespace, incident_id)
            found = tx.db.execute(
                "SELECT step_index FROM steps WHERE namespace = ? AND incident_id = ? "
                "AND status = 'waiting' ORDER BY step_index DESC LIMIT 1",
                (namespace, incident_id),
            ).fetchone()
            if found is None:
                raise TransitionError(f"incident {incident_id} waits for no approval")
            index = int(found[0])
            tx.execute(
                "INSERT OR IGNORE INTO approvals VALUES (?, ?, ?, ?, ?)",
                (namespace, incident_id, index, actor, ts(now)),
            )
            tx.note(namespace, incident_id, now, "approval", actor, f"step {index} approved")
            tx.audit(namespace, now, actor, "playbook.approved", incident_id, {"step": str(index)})
            return index

        index = await self.store.tx(change)
        await self.flush()
        self.approved.set()
        return index

    async def audit_config(self, kind: str) -> None:
        """Audit each new version of a followed config object of ``kind``."""
        now = self.clock.now()
        objects = self.config.objects(kind)
        if not objects:
            return

        def change(tx: Tx) -> None:
            tx.execute(
                "CREATE TABLE IF NOT EXISTS config_seen (key TEXT PRIMARY KEY, body TEXT NOT NULL)"
            )
            for obj in objects:
                body = json.dumps(obj.document(), sort_keys=True, default=str)
                seen = tx.db.execute(
                    "SELECT body FROM config_seen WHERE key = ?", (obj.key(),)
                ).fetchone()
                if seen is not None and seen[0] == body:
                    continue
                tx.execute("INSERT OR REPLACE INTO config_seen VALUES (?, ?)", (obj.key(), body))
                detail = {k: self.masked(str(v)) for k, v in obj.document().items() if k != "kind"}
                author = str(getattr(obj, "author", "registry"))
                tx.audit(obj.namespace, now, author, f"{kind}.applied", obj.name, detail)

        await self.store.tx(change)
        await self.flush()
