"""``hms-ops jobs ...``: the job-shaped shortcuts onto the config registry and the work queue.

``jobs apply`` is ``apply`` for files of jobs; ``pause``/``resume`` re-apply a job with ``paused``
changed (so the change is versioned and audited like any other); ``next`` reads the schedule
with the scheduler's own rules; ``run-now`` enqueues a run for the current minute, whose id
(``<job>@<minute>``) makes asking twice harmless.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from hms_contracts import specs, subjects
from hms_contracts.config import Job
from hms_contracts.config.schedule import next_fires, slots_after, zone_of
from hms_contracts.fields import split_run_id
from hms_contracts.runs import run_key
from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.errors import KeyWrongLastSequenceError

from .applycli import Namespace, StateDir, apply_files, on_registry
from .buscli import actor, audit, on_bus
from .configstore import ConfigStore
from .errors import InvalidObject
from .state import ADMIN_USER, StatePaths

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

        now = datetime.now(UTC)

        async def read(store: ConfigStore) -> list[dict[str, Any]]:
            found = await store.objects(namespace or "*", "job")
            jobs = [s.object for s in found if isinstance(s.object, Job)]
            js = store.kv._js
            history = {ns: await namespace_runs(js, ns) for ns in {j.namespace for j in jobs}}
            rows = []
            for job in jobs:
                runs = history[job.namespace].get(job.name, [])
                last = runs[-1] if runs else None
                rows.append(
                    {
                        **_row(job, now),
                        "last_run": None if last is None else last["run_id"],
                        "last_outcome": None if last is None else last["state"],
                        "sla_state": sla_state(job, last, now),
                    }
                )
            return rows

        rows = on_registry(state_paths(state_dir), read)
        if as_json:
            print(json.dumps(rows, indent=2))
            return
        for r in rows:
            when = "paused" if r["paused"] else f"next {r['next_local']} ({r['next_utc']})"
            last = f"  last {r['last_run']} {r['last_outcome']}" if r["last_run"] else ""
            sla = f"  SLA {r['sla_state']}" if r["sla_state"] else ""
            print(f"{r['namespace']}.{r['id']}  {r['schedule']} {r['timezone']}  {when}{last}{sla}")

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

    register_runs(app, state_paths)


# --- runs: history, backfill, approval --------------------------------------------------------

#: most slots one backfill enqueues
BACKFILL_LIMIT = 1000
_STATES = ("awaiting_approval", "started", "progressed", "failed", "completed", "dead_lettered")


async def namespace_runs(js: JetStreamContext, namespace: str) -> dict[str, list[dict[str, Any]]]:
    """Every run of the namespace's jobs, by job id, oldest first, each with its last state,
    from the run events."""
    sub = await js.pull_subscribe(
        subjects.JOB_EVENT.wildcard(namespace), stream=specs.JOB_EVENTS.name
    )
    runs: dict[str, dict[str, Any]] = {}
    try:
        while True:
            try:
                msgs = await sub.fetch(500, timeout=0.5)
            except (TimeoutError, NatsTimeoutError):
                break
            for msg in msgs:
                _fold(runs, msg.subject.rsplit(".", 1)[-1], json.loads(msg.data))
    finally:
        await sub.unsubscribe()
    by_job: dict[str, list[dict[str, Any]]] = {}
    for row in sorted(runs.values(), key=lambda r: str(r["run_id"])):
        by_job.setdefault(str(row["job_id"]), []).append(row)
    return by_job


def _fold(runs: dict[str, dict[str, Any]], kind: str, event: dict[str, Any]) -> None:
    row = runs.setdefault(
        event["run_id"],
        {
            "run_id": event["run_id"],
            "job_id": event.get("job_id"),
            "state": kind,
            "attempts": 0,
            "first": event["occurred_at"],
        },
    )
    row["last"] = event["occurred_at"]
    if kind in _STATES and _STATES.index(kind) >= _STATES.index(row["state"]):
        row["state"] = kind
    if kind == "started":
        row["attempts"] = max(row["attempts"], int(event.get("attempt", 1)))
        row["worker"] = event.get("worker_id")
    if kind == "progressed":
        row["done"], row["total"] = event["done"], event["total"]
    if kind in ("failed", "dead_lettered"):
        row["error"] = event.get("error") or event.get("reason")
    if kind == "completed":
        row["items"] = event.get("items")


async def run_history(nc: Client, namespace: str, job_id: str) -> list[dict[str, Any]]:
    """The job's runs, oldest first, each with its last state, from the run events."""
    return (await namespace_runs(nc.jetstream(), namespace)).get(job_id, [])


def sla_state(job: Job, run: dict[str, Any] | None, now: datetime) -> str | None:
    """met, missed, breached (not complete past its deadline), running (within it), or None
    (no SLA, no run)."""
    if job.sla is None or run is None:
        return None
    deadline = datetime.fromisoformat(split_run_id(run["run_id"])[1].replace("Z", "+00:00"))
    deadline += job.sla
    if run["state"] == "completed":
        done = datetime.fromisoformat(str(run["last"]).replace("Z", "+00:00"))
        return "met" if done <= deadline else "missed"
    return "breached" if now > deadline else "running"


def _instant(text: str, option: str) -> datetime:
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidObject(f"{option} {text!r} is not an ISO 8601 time") from None
    return at if at.utcoffset() is not None else at.replace(tzinfo=UTC)


def register_runs(app: typer.Typer, state_paths: Callable[[Path | None], StatePaths]) -> None:
    """Add ``jobs history``, ``jobs backfill`` and ``jobs approve`` to the ``jobs`` group."""
    jobs = next(g.typer_instance for g in app.registered_groups if g.name == "jobs")
    if jobs is None:
        raise RuntimeError("register the jobs group first")

    @jobs.command("history")
    def history(
        job_id: JobId,
        namespace: NamespaceOpt,
        limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 50,
        as_json: Json = False,
        state_dir: StateDir = None,
    ) -> None:
        """The job's latest runs with their state (awaiting_approval, started, completed...)."""
        rows = on_bus(state_paths(state_dir), lambda nc: run_history(nc, namespace, job_id))[
            -limit:
        ]
        if as_json:
            print(json.dumps(rows, indent=2))
            return
        for r in rows:
            extra = f"  {r['error']}" if r.get("error") else ""
            print(f"{r['run_id']}  {r['state']}  attempts {r['attempts']}  {r['last']}{extra}")

    @jobs.command("backfill")
    def backfill(
        job_id: JobId,
        namespace: NamespaceOpt,
        from_: Annotated[str, typer.Option("--from", help="First slot time, ISO 8601 (UTC).")],
        to: Annotated[str, typer.Option("--to", help="Last slot time, inclusive.")],
        as_json: Json = False,
        state_dir: StateDir = None,
    ) -> None:
        """Enqueue a run for each of the job's slots from --from to --to (a slot whose run
        completed is skipped; each run id is its slot's, so asking twice enqueues once)."""
        start, end = _instant(from_, "--from"), _instant(to, "--to")
        if end < start:
            raise typer.BadParameter(f"--to {to} is before --from {from_}")
        who = actor()

        async def go(nc: Client) -> dict[str, Any]:
            js = nc.jetstream()
            kv = await js.key_value(specs.CONFIG.bucket)
            job = await _job(ConfigStore(kv, author=ADMIN_USER), namespace, job_id)
            slots = [at for at in slots_between(job, start, end)]
            if len(slots) > BACKFILL_LIMIT:
                raise InvalidObject(
                    f"{len(slots)} slots from {from_} to {to}; at most {BACKFILL_LIMIT} at once"
                )
            done = {
                r["run_id"]
                for r in await run_history(nc, namespace, job_id)
                if r["state"] == "completed"
            }
            now = datetime.now(UTC)
            runs = [job.run_at(at, now) for at in slots]
            todo = [r for r in runs if r.run_id not in done]
            pending = [
                await js.publish_async(
                    r.subject(), r.model_dump_json().encode(), headers={"Nats-Msg-Id": r.event_id}
                )
                for r in todo
            ]
            acks = await asyncio.gather(*pending)
            enqueued = [r.run_id for r, a in zip(todo, acks, strict=True) if not a.duplicate]
            await audit(
                nc,
                namespace,
                who,
                "job.backfill",
                f"{namespace}.job.{job_id}",
                {"from": start.isoformat(), "to": end.isoformat(), "enqueued": str(len(enqueued))},
            )
            return {
                "job": job_id,
                "slots": len(slots),
                "enqueued": enqueued,
                "skipped_completed": sorted(done & {r.run_id for r in runs}),
            }

        row = on_bus(state_paths(state_dir), go)
        if as_json:
            print(json.dumps(row, indent=2))
            return
        for run_id in row["enqueued"]:
            print(f"{run_id} enqueued")
        for run_id in row["skipped_completed"]:
            print(f"{run_id} skipped (completed)")

    @jobs.command("approve")
    def approve(
        run_id: Annotated[str, typer.Argument(help="The run, <job_id>@<scheduled_at UTC>.")],
        namespace: NamespaceOpt,
        as_json: Json = False,
        state_dir: StateDir = None,
    ) -> None:
        """Let a run that awaits approval start (its deadline stays as scheduled)."""
        try:
            split_run_id(run_id)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        who = actor()

        async def go(nc: Client) -> dict[str, Any]:
            kv = await nc.jetstream().key_value(specs.JOB_CONTROL.bucket)
            key = specs.approval_key(namespace, run_key(namespace, run_id))
            try:
                await kv.create(
                    key,
                    json.dumps(
                        {"run_id": run_id, "approved_by": who, "at": datetime.now(UTC).isoformat()}
                    ).encode(),
                )
            except KeyWrongLastSequenceError:
                return {"run_id": run_id, "approved": True, "changed": False}
            await audit(nc, namespace, who, "run.approve", run_id, {})
            return {"run_id": run_id, "approved": True, "changed": True, "by": who}

        row = on_bus(state_paths(state_dir), go)
        if as_json:
            print(json.dumps(row, indent=2))
            return
        print(f"{run_id} approved" + ("" if row["changed"] else " (already)"))


def slots_between(job: Job, start: datetime, end: datetime) -> list[datetime]:
    """The job's slots from ``start`` to ``end``, both included."""
    out: list[datetime] = []
    for at in slots_after(job, start - timedelta(microseconds=1)):
        if at > end:
            break
        out.append(at)
        if len(out) > BACKFILL_LIMIT:
            break
    return out
