"""Config objects: the documents' forms parse into typed, validated objects; anything else is
rejected with a message naming the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hms_contracts.config import (
    KINDS,
    Alert,
    ApproveStep,
    Condition,
    ConfigEntry,
    Job,
    Metric,
    NotifyStep,
    Playbook,
    RunStep,
    ScalePolicy,
    ScaleStep,
    ScrapeTarget,
    Silence,
    Slo,
    config_key,
    parse_duration,
    parse_object,
    parse_step,
    split_key,
)
from hms_contracts.errors import ContractError
from pydantic import ValidationError

NS = "usds_unemployment"
DOCUMENT_STEPS = ["kubectl rollout undo deploy/benefits-api", "notify oncall 'Rollback complete'"]


def test_the_documents_steps_become_a_command_and_a_notification() -> None:
    play = Playbook(namespace=NS, name="rollback", steps=DOCUMENT_STEPS)  # type: ignore[arg-type]
    assert play.steps == (
        RunStep(argv=("kubectl", "rollout", "undo", "deploy/benefits-api")),
        NotifyStep(target="oncall", message="Rollback complete"),
    )


def test_a_command_is_an_argv_list_and_shell_syntax_is_only_text() -> None:
    step = parse_step("sh -c 'echo hi' ; rm -rf / | cat $(id)")
    assert isinstance(step, RunStep)
    assert step.argv == ("sh", "-c", "echo hi", ";", "rm", "-rf", "/", "|", "cat", "$(id)")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("scale ssa_re_score 12", ScaleStep(pool="ssa_re_score", replicas=12)),
        ("approve", ApproveStep()),
        ("approve 'roll back prod?'", ApproveStep(prompt="roll back prod?")),
    ],
)
def test_built_in_verbs_become_typed_steps(text: str, expected: object) -> None:
    assert parse_step(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "cannot be empty"),
        ("notify oncall", "notify <target> <message>"),
        ("scale pool many", "replicas 'many' must be a whole number"),
        ("pause_queue", "pause_queue <queue>"),
        ("notify 'on call' hello", "target"),
        ("echo 'unclosed", "No closing quotation"),
    ],
)
def test_a_bad_step_is_rejected_with_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_step(text)


@pytest.mark.parametrize(
    ("text", "operator", "threshold"),
    [("> 1000", ">", 1000.0), (">=0.99", ">=", 0.99), ("  !=  -3e2 ", "!=", -300.0)],
)
def test_a_condition_is_an_allowed_operator_and_a_finite_threshold(
    text: str, operator: str, threshold: float
) -> None:
    condition = Condition.parse(text)
    assert (condition.operator, condition.threshold) == (operator, threshold)


@pytest.mark.parametrize(
    "text", ["=> 5", "> inf", "> nan", "> abc", "1000", "> 1000 or 1==1", "__import__('os')"]
)
def test_anything_else_is_not_a_condition(text: str) -> None:
    with pytest.raises(ValueError, match="condition"):
        Condition.parse(text)


def test_a_condition_decides_on_a_value() -> None:
    assert Condition.parse("> 1000").holds(1000.5)
    assert not Condition.parse("> 1000").holds(1000)
    assert Condition.parse("<= 2").holds(2)


@pytest.mark.parametrize(
    ("text", "seconds"), [("5m", 300), ("90s", 90), ("1h30m", 5400), ("2d", 172800), ("0.5s", 0.5)]
)
def test_durations_read_as_people_write_them(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "0s", "5 minutes", "5M", "-5m", "400d"])
def test_a_bad_duration_says_what_a_good_one_looks_like(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_the_documents_alert_with_its_inline_playbook() -> None:
    alert = Alert(
        namespace=NS,
        name="sla_latency_breach",
        metric="api.latency_p99",
        condition="> 1000",  # type: ignore[arg-type]
        window="5m",
        playbook=DOCUMENT_STEPS,  # type: ignore[arg-type]
    )
    assert alert.condition == Condition(operator=">", threshold=1000.0)
    assert alert.window_td == timedelta(minutes=5)
    assert isinstance(alert.playbook, tuple)
    assert alert.key() == "usds_unemployment.alert.sla_latency_breach"


ONCALL_SCHEDULE = {
    "kind": "oncall_schedule",
    "namespace": NS,
    "name": "primary",
    "timezone": "America/New_York",
    "rotations": [
        {"name": "weekly", "start": "2026-01-05T09:00", "participants": ["a@agency.gov"]}
    ],
    "overrides": [
        {"user": "b@agency.gov", "start": "2026-02-01T00:00Z", "end": "2026-02-02T00:00Z"}
    ],
}
ESCALATION_POLICY = {
    "kind": "escalation_policy",
    "namespace": NS,
    "name": "default",
    "levels": [
        {"targets": ["schedule:primary"], "delay": "10m"},
        {"targets": ["lead@agency.gov", {"email": "director@agency.gov"}]},
    ],
    "repeat": 1,
}


def test_every_kind_reads_back_its_own_document() -> None:
    objects = [
        Metric(namespace=NS, name="api.latency_p99", unit="ms", source="https://benefits.gov/api"),
        Alert(namespace=NS, name="a", metric="m.x", condition="< 5", playbook="rollback"),  # type: ignore[arg-type]
        Playbook(namespace=NS, name="rollback", steps=DOCUMENT_STEPS),  # type: ignore[arg-type]
        Job(namespace=NS, name="nightly", schedule="0 0 * * *", queue="q", command=("true",)),
        ScrapeTarget(namespace=NS, name="portal", url="http://127.0.0.1:9100/metrics"),
        Slo(namespace=NS, name="filings", objective=0.99, metric="filings.seconds", threshold=2),
        ScalePolicy(namespace=NS, name="pool", max=5, scale_down={"stabilization": "30s"}),  # type: ignore[arg-type]
        # escalation: an on-call schedule and a policy paging it
        parse_object(ONCALL_SCHEDULE),
        parse_object(ESCALATION_POLICY),
        Silence.model_validate(
            {"namespace": NS, "name": "m", "matchers": ['service="api"'], "author": "a"}
            | {"reason": "maintenance", "ends_at": "2030-01-01T00:00:00Z"}
        ),
    ]
    assert {type(o).kind for o in objects} == set(KINDS)
    for obj in objects:
        assert parse_object(obj.document()) == obj


def test_a_document_is_validated_with_each_bad_field_named() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_object(
            {"kind": "alert", "namespace": NS, "name": "x", "metric": "m", "condition": "~ 3"}
        )
    assert caught.value.errors()[0]["loc"] == ("condition",)
    with pytest.raises(ValidationError) as caught:
        parse_object({"kind": "metric", "namespace": NS, "name": "m", "source": "ftp://x"})
    assert caught.value.errors()[0]["loc"] == ("source",)


def test_a_document_of_another_namespace_or_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ContractError, match="namespace"):
        parse_object({"kind": "metric", "namespace": "ssa", "name": "m"}, namespace=NS)
    with pytest.raises(ContractError, match="kind 'cronjob'"):
        parse_object({"kind": "cronjob", "name": "m"}, namespace=NS)
    assert parse_object({"kind": "metric", "name": "m"}, namespace=NS).namespace == NS


def test_keys_are_namespace_kind_name_and_split_back() -> None:
    key = config_key(NS, "metric", "api.latency_p99")
    assert key == "usds_unemployment.metric.api.latency_p99"
    assert split_key(key) == (NS, "metric", "api.latency_p99")
    with pytest.raises(ContractError):
        split_key("usds_unemployment.secret.x")
    with pytest.raises(ValueError, match="namespace"):
        config_key("USDS Unemployment", "metric", "x")


def test_a_stored_entry_decodes_to_its_object() -> None:
    play = Playbook(namespace=NS, name="rollback", steps=DOCUMENT_STEPS)  # type: ignore[arg-type]
    entry = ConfigEntry(
        kind="playbook",
        object=play.document(),
        generation=1,
        author="ns-usds_unemployment",
        written_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert ConfigEntry.model_validate_json(entry.model_dump_json()).decode() == play
