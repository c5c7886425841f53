"""One valid instance of every catalogued event, built the way producers do.

The contracts' tests and the kit's per-consumer tests share these, so a new event type is
covered everywhere as soon as it has a sample here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import hms_contracts as ev
import hms_contracts.incidents as inc
from hms_contracts import AlertFiring
from hms_contracts.bus import BusEvent

NS = "usds_unemployment"
T0 = datetime(2025, 1, 1, tzinfo=UTC)
RUN_ID = ev.run_id_for("ssa_re_score", T0)
FINGERPRINT = "0123456789abcdef"


def _run(**extra: object) -> dict[str, object]:
    base = {"namespace": NS, "occurred_at": T0, "job_id": "ssa_re_score", "run_id": RUN_ID}
    return {**base, "queue": "ssa_re_score_q", **extra}


def _alert(**extra: object) -> dict[str, object]:
    return {
        "namespace": NS,
        "occurred_at": T0,
        "rule_id": "api_latency_p99_high",
        "metric": "api.latency_p99",
        "fingerprint": FINGERPRINT,
        "value": 1450.0,
        "operator": ">",
        "threshold": 1000.0,
        "severity": "critical",
        "summary": "p99 latency 1450 ms > 1000 ms",
        "labels": {"service": "benefits_api"},
        "started_at": T0 - timedelta(minutes=5),
        **extra,
    }


def _incident(**extra: object) -> dict[str, object]:
    return {"namespace": NS, "occurred_at": T0, "incident_id": "inc-1", **extra}


def all_events() -> list[BusEvent]:
    """One instance per CATALOGUE model, in catalogue order."""
    sample = ev.MetricSample(name="api.latency_p99", value=1450.0, unit="ms", observed_at=T0)
    first_audit = ev.AuditRecorded.chain(
        None,
        namespace=NS,
        occurred_at=T0,
        actor="incident-engine",
        action="incident.opened",
        target="inc-1",
        detail={"playbook": "rollback"},
    )
    return [
        heartbeat(),
        ev.MetricSampleBatch.create(
            namespace=NS, occurred_at=T0, source="benefits_portal", origin="push", samples=[sample]
        ),
        ev.AlertFiring.create(**_alert(for_s=300.0)),
        ev.AlertResolved.create(**_alert(resolved_at=T0 + timedelta(minutes=9))),
        ev.SlaBreached.create(
            namespace=NS,
            occurred_at=T0 + timedelta(hours=5),
            reason="deadline_missed",
            job_id="ssa_re_score",
            run_id=RUN_ID,
            deadline=T0 + timedelta(hours=5),
            detail="run not complete 300 minutes after midnight",
        ),
        ev.SloStatusReported.create(
            namespace=NS,
            occurred_at=T0,
            slo_id="filings_within_2s",
            objective=0.99,
            window_s=30 * 86400.0,
            good=99_420.0,
            total=100_000.0,
            compliance=0.9942,
            budget_left=0.42,
            status="green",
            summary="99.42 % of filings within 2 s (objective 99 %)",
        ),
        ev.IncidentOpened.create(
            **_incident(
                title="API latency high",
                severity="critical",
                cause="alert",
                fingerprint=FINGERPRINT,
                playbook="rollback",
            )
        ),
        ev.IncidentUpdated.create(
            **_incident(revision=2, status="acknowledged", severity="critical", actor="alice")
        ),
        ev.IncidentStepRan.create(
            **_incident(
                playbook="rollback",
                step_index=0,
                argv=["kubectl", "rollout", "undo", "deploy/benefits-api"],
                status="succeeded",
                exit_code=0,
                output="rolled back",
                duration_s=2.5,
            )
        ),
        ev.IncidentEscalated.create(
            **_incident(level=1, channel="email", target="oncall@example.gov")
        ),
        ev.IncidentClosed.create(
            **_incident(resolution="resolved", closed_by="alice", opened_at=T0)
        ),
        ev.EscalationFailed.create(
            **_incident(
                step="default/0/0/1/oncall@example.gov",
                level=2,
                target="oncall@example.gov",
                reason="SMTP server 127.0.0.1:25: ConnectionRefusedError",
                attempts=3,
                due_at=T0,
                retrying=True,
            )
        ),
        inc.NotifyRequested.create(
            **_incident(
                playbook="rollback",
                step_index=1,
                target="oncall",
                message="Rollback complete",
                title="API latency high",
                severity="critical",
            )
        ),
        inc.TicketFiled.create(
            **_incident(
                ticket_id="inc-1.sla_breach",
                summary="ssa_re_score missed its deadline",
                severity="critical",
                source="sla_breach",
            )
        ),
        inc.ScaleRequested.create(
            **_incident(playbook="rollback", step_index=2, pool="worker_pool", replicas=5)
        ),
        inc.QueueControlRequested.create(
            **_incident(playbook="rollback", step_index=3, queue="ssa_re_score_q", control="pause")
        ),
        ev.RunScheduled.create(
            **_run(
                scheduled_at=T0,
                deadline=T0 + timedelta(minutes=300),
                task={"batch": "nightly", "limit": 1000},
                items=250,
            )
        ),
        ev.RunAwaitingApproval.create(**_run(deadline=T0 + timedelta(minutes=300))),
        ev.RunStarted.create(**_run(worker_id="w-1", attempt=1)),
        ev.RunProgressed.create(**_run(done=100, total=250)),
        ev.RunCompleted.create(**_run(items=250, duration_s=3600.0)),
        ev.RunFailed.create(**_run(error="boom", attempt=1, will_retry=True, retry_in_s=5.0)),
        ev.RunDeadLettered.create(**_run(reason="boom", attempts=5)),
        ev.RunCancelRequested.create(**_run(reason="replaced by a newer run")),
        ev.WorkItemBatch.create(
            **_run(first=100, payloads=[{"shard": 100}, {"shard": 101}], task={"python": "m:f"})
        ),
        ev.ScaleDecided.create(
            namespace=NS,
            occurred_at=T0,
            pool="worker_pool",
            consumer="JOB_RUNS/worker_pool",
            backend="local",
            action="scale_up",
            current=1,
            desired=5,
            recommended=9,
            backlog=4200,
            num_pending=4190,
            num_ack_pending=10,
            reason="backlog 4200 / 500 per worker = 9; max 5",
        ),
        first_audit,
        ev.ConfigChanged.create(
            namespace=NS,
            occurred_at=T0,
            key=f"{NS}.alert.slow",
            kind="alert",
            name="slow",
            action="applied",
            generation=2,
            revision=17,
            author="hms-admin",
        ),
        ev.AgencyEvent.create(
            namespace=NS,
            occurred_at=T0,
            name="deploy_finished",
            key="deploy-42",
            payload={"version": "1.4.2", "canary": True},
        ),
    ]


def heartbeat(
    service: str = "worker-pool",
    *,
    at: datetime = T0,
    interval_s: float = 2.0,
    instance_id: str = "w-1",
) -> ev.ServiceHeartbeat:
    """A healthy instance's heartbeat at ``at``."""
    return ev.ServiceHeartbeat.create(
        namespace="system",
        occurred_at=at,
        service=service,
        version="0.1.0",
        instance_id=instance_id,
        started_at=at,
        health="ok",
        http_url="http://127.0.0.1:8001",
        pid=4242,
        host="node-1",
        interval_s=interval_s,
    )


def alert_firing(namespace: str = NS, value: float = 1250.0) -> AlertFiring:
    """A p99 latency alert firing now (the reference scenario's rule)."""
    return AlertFiring.create(
        occurred_at=datetime.now(UTC),
        namespace=namespace,
        rule_id="latency_p99",
        metric="api.latency_p99",
        fingerprint="a1b2c3d4e5f60718",
        value=value,
        operator=">",
        threshold=1000.0,
        severity="critical",
        summary="p99 latency above 1000 ms for 5m",
        labels={},
        started_at=datetime(2026, 11, 24, 10, 0, tzinfo=UTC),
        for_s=300.0,
    )
