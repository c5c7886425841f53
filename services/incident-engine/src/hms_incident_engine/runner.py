"""Playbook runs: steps in order, stop at the first failure, each step recorded (start, end,
exit code, capped and masked output) against its incident; after a crash, completed steps are
not repeated, and an interrupted step runs again only if it is idempotent."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
from hms_contracts import IncidentStepRan, QueueControlRequested, ScaleRequested, TicketFiled
from hms_contracts.config import (
    ApproveStep,
    NotifyStep,
    PauseQueueStep,
    Playbook,
    PythonStep,
    ResumeQueueStep,
    RunStep,
    ScaleStep,
    Step,
    TicketStep,
    WebhookStep,
)
from hms_contracts.config.incidents import ParamError, render, render_step
from hms_contracts.incidents import NotifyRequested, StepAction
from hms_kit.jobcontrol import set_queue_paused

from .core import SERVICE
from .engine import Engine, Start
from .procs import MARKER_ENV, kill_orphans, run_argv
from .store import Tx, ts

log = logging.getLogger(__name__)

EVENT_OUTPUT_CAP = 65536


@dataclass(frozen=True)
class Result:
    status: str  # succeeded, failed, timed_out, dry_run
    exit_code: int | None = None
    output: str = ""
    truncated: bool = False
    duration_s: float = 0.0


def idempotent(step: Step) -> bool:
    """Whether a step cut short by a crash may simply run again: requests on the bus dedupe
    by id and an approval waits again; commands, webhooks and functions say so themselves."""
    if isinstance(step, RunStep | WebhookStep | PythonStep):
        return step.idempotent
    return True


class _OutputStream:
    """A running step's output on the incident's timeline as it comes (masked), at most one
    entry a second."""

    EVERY_S = 1.0

    def __init__(self, runner: Runner, ns: str, iid: str, index: int) -> None:
        self.runner = runner
        self.ns, self.iid, self.index = ns, iid, index
        self.pending = bytearray()
        self.last = time.monotonic() - self.EVERY_S  # the first piece goes at once
        self.written = 0

    async def add(self, chunk: bytes) -> None:
        self.pending += chunk
        if time.monotonic() - self.last >= self.EVERY_S:
            await self.write()

    async def close(self) -> None:
        if self.written and self.pending:
            await self.write()

    async def write(self) -> None:
        text = self.runner.engine.masked(self.pending.decode("utf-8", errors="replace"))
        self.pending.clear()
        self.last = time.monotonic()
        self.written += 1
        now = self.runner.engine.clock.now()
        what = f"step {self.index} output"
        await self.runner.store.tx(
            lambda tx: tx.note(self.ns, self.iid, now, "step_output", SERVICE, f"{what}:\n{text}")
        )


class Runner:
    """Runs the playbooks of one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.settings = engine.settings
        self.store = engine.store
        self.tasks: set[asyncio.Task[None]] = set()
        self._workdir: Path | None = None

    @property
    def workdir(self) -> Path:
        """Where steps run (and their HOME): a private folder, made on first use."""
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="hms-steps-"))
        return self._workdir

    def start(self, namespace: str, incident_id: str, plan: Start | None = None) -> None:
        """Run (or resume) an incident's playbook; ``plan``: a fresh run, just planned."""
        task = asyncio.create_task(self.run(namespace, incident_id, plan))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def forever(self) -> None:
        """Start each planned run; on the way out, cancel (and kill) the running ones."""
        try:
            while True:
                plan = await self.engine.started_runs.get()
                self.start(plan.namespace, plan.incident_id, plan)
        finally:
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)

    # --- crash recovery ---------------------------------------------------------------------

    async def recover(self) -> int:
        """Resume every run found mid-way: kill what its interrupted step left running; re-run
        that step if idempotent, else hand the incident to people (needs_attention)."""
        resumed = 0
        for run in await self.store.rows("SELECT * FROM runs WHERE status = 'running'"):
            resumed += await self._recover(run)
        return resumed

    async def _recover(self, run: dict[str, Any]) -> int:
        ns, iid = run["namespace"], run["incident_id"]
        playbook = Playbook.model_validate_json(run["definition"])
        inflight = await self.store.rows(
            "SELECT * FROM steps WHERE namespace = ? AND incident_id = ? "
            "AND status IN ('started', 'waiting')",
            (ns, iid),
        )
        stop = None
        for step_row in inflight:
            if step_row["pgid"] is not None:
                kill_orphans(int(step_row["pgid"]), step_row["marker"])
            index = int(step_row["step_index"])
            if not idempotent(playbook.steps[index]):
                stop = index
        now = self.engine.clock.now()

        def change(tx: Tx) -> None:
            for step_row in inflight:
                tx.execute(
                    "UPDATE steps SET status = 'interrupted', ended_at = ? WHERE namespace = ? "
                    "AND incident_id = ? AND step_index = ? AND attempt = ?",
                    (ts(now), ns, iid, step_row["step_index"], step_row["attempt"]),
                )
                text = f"step {step_row['step_index']} interrupted by a restart"
                tx.note(ns, iid, now, "step", SERVICE, text)
            if stop is not None:
                why = (
                    f"step {stop} was interrupted by a restart and is not idempotent: not run again"
                )
                self._end_run(tx, ns, iid, "needs_attention", now)
                self.engine._refuse(tx, ns, iid, now, playbook.name, why)

        await self.store.tx(change)
        await self.engine.flush()
        if stop is not None:
            return 0
        self.start(ns, iid)
        return 1

    # --- one run ----------------------------------------------------------------------------

    async def run(self, namespace: str, incident_id: str, plan: Start | None = None) -> None:
        try:
            await self._run(namespace, incident_id, plan)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("playbook run of %s/%s failed", namespace, incident_id)

    async def _run(self, ns: str, iid: str, plan: Start | None) -> None:
        if plan is not None:  # just planned: nothing of it ran yet
            playbook, values = plan.playbook, plan.values
        else:
            run = await self.store.one(
                "SELECT * FROM runs WHERE namespace = ? AND incident_id = ?", (ns, iid)
            )
            if run is None or run["status"] != "running":
                return
            playbook = Playbook.model_validate_json(run["definition"])
            values = json.loads(run["params"])
        for index, step in enumerate(playbook.steps):
            incident = await self.store.incident(ns, iid)
            if incident is None or incident["closed_at"] is not None:
                why = f"playbook stopped before step {index}: the incident is closed"
                await self.store.tx(partial(self._stop, ns, iid, "stopped", why))
                await self.engine.flush()
                return
            last = None
            if plan is None:
                last = await self.store.one(
                    "SELECT status, attempt FROM steps WHERE namespace = ? AND incident_id = ? "
                    "AND step_index = ? ORDER BY attempt DESC LIMIT 1",
                    (ns, iid, index),
                )
            if last is not None and last["status"] in ("succeeded", "dry_run"):
                continue  # done before a restart: never again
            attempt = 1 if last is None else int(last["attempt"]) + 1
            result = await self._step(ns, iid, playbook, index, step, attempt, values)
            if result.status not in ("succeeded", "dry_run"):
                why = f"playbook {playbook.name} stopped: step {index} {result.status}"
                await self.store.tx(partial(self._stop, ns, iid, "failed", why))
                await self.engine.flush()
                return

        def change(tx: Tx) -> Any:
            now = self.engine.clock.now()
            self._end_run(tx, ns, iid, "succeeded", now)
            row = self.engine._row(tx, ns, iid)
            if self.settings.resolve_on_playbook_success and row["closed_at"] is None:
                why = f"playbook {playbook.name}: every step succeeded"
                self.engine.set_status(tx, row, "resolved", "playbook", why, now)

        await self.store.tx(change)
        await self.engine.flush()

    def _stop(self, ns: str, iid: str, status: str, why: str, tx: Tx) -> None:
        """End a run early: the incident closed (stopped), or a step failed (failed)."""
        now = self.engine.clock.now()
        self._end_run(tx, ns, iid, status, now)
        if status == "stopped":
            tx.note(ns, iid, now, "playbook", SERVICE, why)
            return
        row = self.engine._row(tx, ns, iid)
        if row["closed_at"] is None and row["status"] != "failed":
            self.engine.set_status(tx, row, "failed", SERVICE, why, now)

    def _end_run(self, tx: Tx, ns: str, iid: str, status: str, now: datetime) -> None:
        self.engine.metrics.runs.labels(status).inc()
        tx.execute(
            "UPDATE runs SET status = ?, ended_at = ? WHERE namespace = ? AND incident_id = ?",
            (status, ts(now), ns, iid),
        )
        tx.audit(ns, now, SERVICE, f"playbook.{status}", iid)

    def _event(
        self,
        ns: str,
        iid: str,
        playbook: str,
        index: int,
        attempt: int,
        step: Step,
        argv: tuple[str, ...],
        result: Result | None,
    ) -> IncidentStepRan:
        action: StepAction = step.action
        if result is None:
            fields: dict[str, Any] = {"status": "started", "duration_s": 0.0}
        else:
            fields = {
                "status": result.status,
                "exit_code": result.exit_code,
                "output": result.output[:EVENT_OUTPUT_CAP],
                "output_truncated": result.truncated or len(result.output) > EVENT_OUTPUT_CAP,
                "duration_s": round(result.duration_s, 6),
            }
        return IncidentStepRan.create(
            namespace=ns,
            occurred_at=self.engine.clock.now(),
            incident_id=iid,
            playbook=playbook,
            step_index=index,
            attempt=attempt,
            action=action,
            argv=argv,
            **fields,
        )

    async def _step(
        self,
        ns: str,
        iid: str,
        playbook: Playbook,
        index: int,
        step: Step,
        attempt: int,
        values: dict[str, str],
    ) -> Result:
        secrets = self.engine.secrets
        marker = f"{iid}.{index}.{attempt}"
        failure: str | None = None
        try:
            argv = render_step(step, values, secrets)
        except ParamError as exc:
            argv, failure = (step.action,), self.engine.masked(str(exc))
        now = self.engine.clock.now()

        def start(tx: Tx) -> Any:
            tx.execute(
                "INSERT INTO steps VALUES (?, ?, ?, ?, 'started', ?, NULL, NULL, NULL, ?)",
                (ns, iid, index, attempt, ts(now), marker),
            )
            row = self.engine._row(tx, ns, iid)
            if row["status"] in ("open", "acknowledged"):
                self.engine.set_status(
                    tx, row, "mitigating", SERVICE, f"playbook {playbook.name} running", now
                )
            tx.emit(self._event(ns, iid, playbook.name, index, attempt, step, argv, None))
            tx.note(ns, iid, now, "step_started", SERVICE, f"step {index}: {' '.join(argv)}")
            tx.audit(
                ns,
                now,
                SERVICE,
                "playbook.step_started",
                iid,
                {"step": str(index), "attempt": str(attempt), "argv": json.dumps(argv)},
            )

        await self.store.tx(start)
        await self.engine.flush()
        if failure is not None:
            result = Result("failed", output=failure)
        elif self.settings.dry_run:
            result = Result("dry_run", output="dry run: rendered, not run")
        else:
            result = await self._execute(ns, iid, playbook, index, step, attempt, values, marker)
        self.engine.metrics.steps.labels(step.action, result.status).inc()
        result = Result(
            result.status,
            result.exit_code,
            self.engine.masked(result.output),
            result.truncated,
            result.duration_s,
        )
        now = self.engine.clock.now()

        def end(tx: Tx) -> Any:
            tx.execute(
                "UPDATE steps SET status = ?, ended_at = ?, exit_code = ? WHERE namespace = ? "
                "AND incident_id = ? AND step_index = ? AND attempt = ?",
                (result.status, ts(now), result.exit_code, ns, iid, index, attempt),
            )
            tx.emit(self._event(ns, iid, playbook.name, index, attempt, step, argv, result))
            text = f"step {index} {result.status}"
            if result.exit_code is not None:
                text += f" (exit {result.exit_code})"
            if result.output:
                text += ":\n" + result.output + ("\n[output truncated]" if result.truncated else "")
            tx.note(ns, iid, now, "step_ended", SERVICE, text)
            tx.audit(
                ns,
                now,
                SERVICE,
                "playbook.step_ended",
                iid,
                {
                    "step": str(index),
                    "attempt": str(attempt),
                    "status": result.status,
                    "exit_code": str(result.exit_code),
                },
            )

        await self.store.tx(end)
        await self.engine.flush()
        return result

    # --- the step kinds ---------------------------------------------------------------------

    async def _execute(
        self,
        ns: str,
        iid: str,
        playbook: Playbook,
        index: int,
        step: Step,
        attempt: int,
        values: dict[str, str],
        marker: str,
    ) -> Result:
        secrets = self.engine.secrets
        now = self.engine.clock.now()
        if isinstance(step, RunStep | PythonStep):
            env = {
                "PATH": self.settings.step_path,
                "LANG": "C.UTF-8",
                "HOME": str(self.workdir),
                MARKER_ENV: marker,
                "HMS_NAMESPACE": ns,
                "HMS_INCIDENT_ID": iid,
            }
            if isinstance(step, RunStep):
                argv = [render(a, values, secrets)[0] for a in step.argv]
                for var, name in step.secret_env.items():
                    if name not in secrets:
                        return Result("failed", output=f"secret {name!r} is not configured")
                    env[var] = secrets[name]
            else:
                if step.function not in self.settings.python_steps:
                    return Result(
                        "failed", output=f"{step.function} is not a registered python step"
                    )
                argv = [sys.executable, "-m", "hms_incident_engine.pystep", step.function]
                env["HMS_STEP_PARAMS"] = json.dumps(values)

            async def spawned(pgid: int) -> None:
                await self.store.write(
                    "UPDATE steps SET pgid = ? WHERE namespace = ? AND incident_id = ? "
                    "AND step_index = ? AND attempt = ?",
                    (pgid, ns, iid, index, attempt),
                )

            stream = _OutputStream(self, ns, iid, index)
            out = await run_argv(
                argv,
                env=env,
                timeout_s=step.timeout_s,
                cap=self.settings.output_cap_bytes,
                grace_s=self.settings.kill_grace_s,
                cwd=self.workdir,
                on_spawn=spawned,
                on_output=stream.add,
            )
            await stream.close()
            if out.error is not None:
                return Result("failed", output=out.error, duration_s=out.duration_s)
            if out.timed_out:
                note = f"\n[killed after its timeout of {step.timeout_s:g} s]"
                return Result("timed_out", None, out.output + note, out.truncated, out.duration_s)
            status = "succeeded" if out.exit_code == 0 else "failed"
            return Result(status, out.exit_code, out.output, out.truncated, out.duration_s)
        if isinstance(step, NotifyStep):
            incident = await self.store.incident(ns, iid)
            if incident is None:
                return Result("failed", output=f"incident {iid} is gone")
            title, severity = incident["title"], incident["severity"]

            def change(tx: Tx) -> Any:
                tx.emit(
                    NotifyRequested.create(
                        namespace=ns,
                        occurred_at=now,
                        incident_id=iid,
                        playbook=playbook.name,
                        step_index=index,
                        target=step.target,
                        message=render(step.message, values, secrets)[1],
                        title=title,
                        severity=severity,
                    )
                )
                tx.audit(ns, now, SERVICE, "notify.requested", iid, {"target": step.target})

            await self.store.tx(change)
            await self.engine.flush()
            return Result("succeeded", 0, f"notification to {step.target} requested")
        if isinstance(step, TicketStep):
            incident = await self.store.incident(ns, iid)
            if incident is None:
                return Result("failed", output=f"incident {iid} is gone")
            severity, labels = incident["severity"], json.loads(incident["labels"])
            summary = render(step.summary, values, secrets)[1]

            def file(tx: Tx) -> TicketFiled:
                return self.engine._ticket(
                    tx, ns, iid, now, f"step-{index}", summary, severity, labels=labels
                )

            ticket = await self.store.tx(file)
            await self.engine.flush()
            await self.post_ticket(ticket.model_dump(mode="json"))
            return Result("succeeded", 0, f"ticket {ticket.ticket_id} filed")
        if isinstance(step, ScaleStep | PauseQueueStep | ResumeQueueStep):

            def request(tx: Tx) -> Any:
                if isinstance(step, ScaleStep):
                    tx.emit(
                        ScaleRequested.create(
                            namespace=ns,
                            occurred_at=now,
                            incident_id=iid,
                            playbook=playbook.name,
                            step_index=index,
                            pool=step.pool,
                            replicas=step.replicas,
                        )
                    )
                else:
                    control = "pause" if isinstance(step, PauseQueueStep) else "resume"
                    tx.emit(
                        QueueControlRequested.create(
                            namespace=ns,
                            occurred_at=now,
                            incident_id=iid,
                            playbook=playbook.name,
                            step_index=index,
                            queue=step.queue,
                            control=control,
                        )
                    )
                tx.audit(ns, now, SERVICE, f"playbook.{step.action}_requested", iid)

            await self.store.tx(request)
            await self.engine.flush()
            if isinstance(step, ScaleStep):
                return Result("succeeded", 0, f"{step.action} requested")
            # a queue's pause is a key every worker reads: set it now, so the step's success
            # means the queue hands out nothing more (the request on the bus is its record)
            paused = isinstance(step, PauseQueueStep)
            who = f"playbook {playbook.name} step {index} of incident {iid}"
            changed = await set_queue_paused(self.engine.js(), ns, step.queue, paused, who, now)
            state = "paused" if paused else "resumed"
            return Result(
                "succeeded", 0, f"queue {step.queue} {state}" + ("" if changed else " (already)")
            )
        if isinstance(step, ApproveStep):
            return await self._approval(ns, iid, index, attempt, step)
        assert isinstance(step, WebhookStep)
        return await self._webhook(ns, iid, playbook, step, values)

    async def _approval(
        self, ns: str, iid: str, index: int, attempt: int, step: ApproveStep
    ) -> Result:
        await self.store.write(
            "UPDATE steps SET status = 'waiting' WHERE namespace = ? AND incident_id = ? "
            "AND step_index = ? AND attempt = ?",
            (ns, iid, index, attempt),
        )
        clock = self.engine.clock
        started = clock.now()
        while True:
            found = await self.store.one(
                "SELECT actor FROM approvals WHERE namespace = ? AND incident_id = ? "
                "AND step_index = ?",
                (ns, iid, index),
            )
            if found is not None:
                return Result("succeeded", 0, f"approved by {found['actor']}")
            waited = (clock.now() - started).total_seconds()
            if waited >= step.timeout_s:
                return Result("timed_out", None, f"not approved within {step.timeout_s:g} s")
            self.engine.approved.clear()
            try:
                await asyncio.wait_for(self.engine.approved.wait(), 0.2)
            except TimeoutError:
                await clock.sleep(0)

    async def _webhook(
        self, ns: str, iid: str, playbook: Playbook, step: WebhookStep, values: dict[str, str]
    ) -> Result:
        secrets = self.engine.secrets
        headers = {}
        for header, name in step.secret_headers.items():
            if name not in secrets:
                return Result("failed", output=f"secret {name!r} is not configured")
            headers[header] = secrets[name]
        incident = await self.store.incident(ns, iid)
        body = {
            "namespace": ns,
            "incident_id": iid,
            "playbook": playbook.name,
            "params": values,
            "title": None if incident is None else incident["title"],
            "severity": None if incident is None else incident["severity"],
        }
        timeout = aiohttp.ClientTimeout(total=step.timeout_s)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(step.url, json=body, headers=headers) as resp,
            ):
                text = (await resp.text())[: self.settings.output_cap_bytes]
                status = "succeeded" if 200 <= resp.status < 300 else "failed"
                return Result(status, 0 if status == "succeeded" else resp.status, text)
        except TimeoutError:
            return Result("timed_out", output=f"no answer within {step.timeout_s:g} s")
        except aiohttp.ClientError as exc:
            return Result("failed", output=f"POST {step.url}: {exc}")

    async def post_ticket(self, ticket: dict[str, Any]) -> None:
        """POST a ticket to the ticket webhook, when one is set (the bus has it anyway)."""
        url = self.settings.ticket_webhook_url
        if url is None:
            return
        for attempt in range(3):
            try:
                async with (
                    aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
                    session.post(url, json=ticket) as resp,
                ):
                    if resp.status < 300:
                        return
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("ticket webhook %s: %s", url, exc)
            await asyncio.sleep(0.5 * 2**attempt)
        log.error("ticket %s not delivered to %s (it is on the bus)", ticket.get("ticket_id"), url)
