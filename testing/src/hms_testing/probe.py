"""A test-only service for the service's fault tests: ``python -m hms_testing.probe``.

It runs as ``worker-pool`` (a topology name, so the service accepts it) and consumes ``JOB_RUNS``
with a :class:`~hms_kit.BatchConsumer`: each message must be a :class:`ProbeItem`; each batch
is written to a real SQLite file (``<STATE_DIR>/probe.sqlite3``) in one transaction, with a
UNIQUE ``event_id``, committed before the service acks. Its durable (:data:`PROBE_RUNS`) has a short
``ack_wait`` so that a killed probe's in-flight messages come back within seconds.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import aiosqlite
from hms_contracts import specs, subjects
from hms_contracts.base import Event
from hms_kit.consumer import BatchConsumer, Delivery
from hms_kit.provision import ensure_stream
from hms_kit.service import Service, run_service
from hms_kit.settings import ServiceSettings, settings_config
from nats.js import JetStreamContext
from pydantic import Field

from hms_testing.processes import ServiceLauncher, ServiceProcess

SERVICE = "worker-pool"
QUEUE = "probe_q"
PROBE_RUNS = specs.ConsumerSpec(
    stream=specs.JOB_RUNS.name,
    durable="kit_probe",
    filter_subjects=(subjects.JOB_RUN.wildcard(),),
    ack_wait_s=1.0,
    max_deliver=5,
    backoff_s=(1.0, 2.0),
    max_ack_pending=1000,
    description="The service probe's work items (short ack_wait: fault tests redeliver quickly)",
)


class ProbeItem(Event):
    """One work item for the probe."""

    item: int = Field(description="A number; the probe stores the event id, nothing else")

    def subject(self) -> str:
        return subjects.JOB_RUN.subject(self.namespace, QUEUE)


class ProbeSettings(ServiceSettings):
    """The probe reads the worker pool's environment."""

    model_config = settings_config(SERVICE)


def database_path(state_dir: Path) -> Path:
    return state_dir / "probe.sqlite3"


class ProbeStore:
    """The probe's projection: which event ids took effect, each exactly once."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    @classmethod
    async def open(cls, path: Path) -> ProbeStore:
        db = await aiosqlite.connect(path)
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("CREATE TABLE IF NOT EXISTS done (event_id TEXT PRIMARY KEY, item INT)")
        await db.commit()
        return cls(db)

    async def record(self, batch: Sequence[Delivery[ProbeItem]]) -> None:
        """One transaction per batch, committed before the service acks it."""
        await self.db.executemany(
            "INSERT OR IGNORE INTO done (event_id, item) VALUES (?, ?)",
            [(d.event.event_id, d.event.item) for d in batch],
        )
        await self.db.commit()

    async def close(self) -> None:
        await self.db.close()


def read_done(path: Path) -> list[str]:
    """Every event id the probe committed (a test's view of the SQLite file)."""
    if not path.exists():
        return []
    db = sqlite3.connect(path)
    try:
        return [row[0] for row in db.execute("SELECT event_id FROM done")]
    finally:
        db.close()


async def consume(service: Service) -> None:
    store = await ProbeStore.open(database_path(service.settings.state_dir))

    async def handle(batch: Sequence[Delivery[ProbeItem]]) -> None:
        await store.record(batch)

    try:
        await BatchConsumer.for_service(service, PROBE_RUNS, ProbeItem, handle).run()
    finally:
        await store.close()


def create_service(settings: ServiceSettings | None = None) -> Service:
    # a work-queue stream allows one consumer per subject: the probe's replaces worker_pool
    return Service(
        SERVICE,
        settings or ProbeSettings(),
        version="probe",
        loops=(consume,),
        consumers=(PROBE_RUNS,),
    )


async def start_probe(start_service: ServiceLauncher, js: JetStreamContext) -> ServiceProcess:
    """The probe as a subprocess, once the work queue it pulls from exists (the scheduler
    owns that stream; ``hms-ops up`` provisions it before any service starts)."""
    await ensure_stream(js, specs.JOB_RUNS)
    return await start_service("hms_testing.probe", service=SERVICE)


if __name__ == "__main__":
    run_service(create_service)
