"""``hms-ops jobs ...``: the job-shaped shortcuts onto the config registry and the work queue.

``jobs apply`` is ``apply`` for files of jobs; ``pause``/``resume`` re-apply a job with ``paused``
changed (so the change is versioned and audited like any other); ``next`` reads the schedule
with the scheduler's own rules; ``run-now`` enqueues a run for the current minute, whose id
(``<job>@<minute>``) makes asking twice harmless.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from hms_contracts.config import Job
from hms_contracts.config.schedule import next_fires, zone_of

from .applycli import Namespace, StateDir, apply_files, on_registry
from .configstore import ConfigStore
from .errors import InvalidObject
from .state import StatePaths

#: the namespace of a job file that names none (and no --namespace or HMS_NAMESPACE)
DEFAULT_NAMESPACE = "default"

Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
JobId = Annotated[str, typer.Argument(help="The job's id (its name).")]
NamespaceOpt = Annotated[str, typer.Option("--namespace", "-n", help="The job's namespace.")]


def _row(job: Job, now: datetime) -> dict[str, Any]:
    upcoming = next_fires(job, now, 1)
    at = upcoming[0] if upcoming and not job.paused else None
    return {
        "namespace": job.namespace,
        "id": job.name,
        "schedule": job.schedule,
        "timezone": job.timezone,
        "queue": job.queue,
        "sla_minutes": job.sla_minutes,
        "paused": job.paused,
        "next_local": None if at is None else at.astimezone(zone_of(job)).isoformat(),
        "next_utc": None if at is None else at.isoformat().replace("+00:00", "Z"),
    }


async def _job(store: ConfigStore, namespace: str, name: str) -> Job:
    found = await store.get(namespace, "job", name)
    obj = None if found is None else found.object
    if not isinstance(obj, Job):
        raise InvalidObject(f"no job {name!r} in namespace {namespace!r}")
    return obj


def register(app: typer.Typer, state_paths: Callable[[Path | None], StatePaths]) -> None:
    """Add the ``jobs`` command group to ``app``."""
    jobs = typer.Typer(help="Scheduled jobs: apply, list, next fires, pause, resume, run now.")
    app.add_typer(jobs, name="jobs")

    @jobs.command("apply")
    def apply_jobs(
        files: Annotated[
            list[Path], typer.Option("--filename", "-f", help="A YAML file or a folder of them.")
        ],
        namespace: Namespace = None,
        check: Annotated[bool, typer.Option("--check", help="Only validate.")] = False,
        state_dir: StateDir = None,
    ) -> None:
        """Create or update jobs from YAML (the documents' job files load as they are)."""
        default = os.environ.get("HMS_NAMESPACE", DEFAULT_NAMESPACE)
        paths = state_paths(state_dir)
        apply_files(paths, files, namespace, check=check, kind="job", default_namespace=default)

    @jobs.command("list")
    def list_jobs(
        namespace: Namespace = None, as_json: Json = False, state_dir: StateDir = None
    ) -> None:
        """Every job with its next fire time in its own zone and in UTC."""

        async def read(store: ConfigStore) -> list[Job]:
            found = await store.objects(namespace or "*", "job")
            return [s.object for s in found if isinstance(s.object, Job)]

        now = datetime.now(UTC)
        rows = [_row(job, now) for job in on_registry(state_paths(state_dir), read)]
        if as_json:
            print(json.dumps(rows, indent=2))
            return
        for r in rows:
            when = "paused" if r["paused"] else f"next {r['next_local']} ({r['next_utc']})"
            print(f"{r['namespace']}.{r['id']}  {r['schedule']} {r['timezone']}  {when}")

    @jobs.command("next")
    def next_(
        job_id: JobId,
        namespace: NamespaceOpt,
        count: Annotated[int, typer.Option("--count", min=1, max=1000)] = 5,
        as_json: Json = False,
        state_dir: StateDir = None,
    ) -> None:
        """The job's next fire times, in its zone and in UTC."""

        async def read(store: ConfigStore) -> Job:
            return await _job(store, namespace, job_id)

        job = on_registry(state_paths(state_dir), read)
        fires = next_fires(job, datetime.now(UTC), count)
        rows = [
            {"local": at.astimezone(zone_of(job)).isoformat(), "utc": at.isoformat()}
            for at in fires
        ]
        if as_json:
            print(json.dumps(rows, indent=2))
            return
        for r in rows:
            print(f"{r['local']}  ({r['utc']})")

    def _set_paused(job_id: str, namespace: str, paused: bool, state_dir: Path | None) -> None:
        async def change(store: ConfigStore) -> str:
            job = await _job(store, namespace, job_id)
            updated = job.model_copy(update={"paused": paused})
            [done] = await store.apply([Job.model_validate(updated.model_dump())])
            return f"{done.key} {'paused' if paused else 'resumed'} ({done.action})"

        print(on_registry(state_paths(state_dir), change))

    @jobs.command("pause")
    def pause(job_id: JobId, namespace: NamespaceOpt, state_dir: StateDir = None) -> None:
        """Stop firing the job (its slots are skipped and reported, not caught up later)."""
        _set_paused(job_id, namespace, True, state_dir)

    @jobs.command("resume")
    def resume(job_id: JobId, namespace: NamespaceOpt, state_dir: StateDir = None) -> None:
        """Fire the job again from now on."""
        _set_paused(job_id, namespace, False, state_dir)

    @jobs.command("run-now")
    def run_now(job_id: JobId, namespace: NamespaceOpt, state_dir: StateDir = None) -> None:
        """Enqueue a run for the current minute (asking twice in a minute enqueues one)."""

        async def enqueue(store: ConfigStore) -> str:
            job = await _job(store, namespace, job_id)
            now = datetime.now(UTC)
            run = job.run_at(now.replace(second=0, microsecond=0), now)
            js = store.kv._js
            ack = await js.publish(
                run.subject(), run.model_dump_json().encode(), headers={"Nats-Msg-Id": run.event_id}
            )
            return f"{run.run_id} {'already enqueued' if ack.duplicate else 'enqueued'}"

        print(on_registry(state_paths(state_dir), enqueue))
