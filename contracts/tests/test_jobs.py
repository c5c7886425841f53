"""The ``job`` kind: the design document's file validates as it is; every bad field is rejected
with a message that names it and says why."""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Any

import pytest
from hms_contracts.config import KINDS, Job, parse_object
from hms_contracts.config.jobs import check_schedule
from pydantic import ValidationError

NS = "ssa"
DOCUMENT = {
    "id": "ssa_re_score",
    "schedule": "0 0 * * *",
    "queue": "ssa_re_score_q",
    "sla_minutes": 300,
    "image": "usgov/ssa-worker:v1",
}


def job(**fields: Any) -> Job:
    return Job.model_validate({"namespace": NS, **DOCUMENT, **fields})


def rejected(message: str, **fields: Any) -> None:
    with pytest.raises(ValidationError, match=message):
        job(**fields)


def test_the_design_documents_job_file_validates_as_it_is() -> None:
    parsed = parse_object({"kind": "job", **DOCUMENT}, namespace=NS)
    assert isinstance(parsed, Job)
    assert (parsed.name, parsed.schedule, parsed.queue) == (
        "ssa_re_score",
        "0 0 * * *",
        "ssa_re_score_q",
    )
    assert parsed.sla == timedelta(hours=5)
    assert parsed.image == "usgov/ssa-worker:v1"
    assert parsed.key() == "ssa.job.ssa_re_score"
    assert KINDS["job"] is Job


def test_the_defaults_are_utc_forbid_no_jitter_no_retries_and_one_period_of_catch_up() -> None:
    j = job()
    assert (j.timezone, j.overlap, j.jitter_td, j.retries, j.paused, j.approval) == (
        "UTC",
        "forbid",
        timedelta(0),
        0,
        False,
        False,
    )
    assert j.catchup_td is None, "None stands for one period of the schedule"


def test_id_is_read_as_the_name_and_the_document_is_written_back_with_name() -> None:
    j = job()
    doc = j.document()
    assert doc["name"] == "ssa_re_score"
    assert "id" not in doc
    assert parse_object(doc) == j


def test_id_and_a_different_name_together_are_rejected() -> None:
    rejected("id 'ssa_re_score' and name 'other' differ", name="other")


def test_every_option_is_read_and_the_task_carries_what_workers_need() -> None:
    j = job(
        image=None,
        command="python -m ssa.rescore --all 'two words'",
        timezone="America/New_York",
        overlap="replace",
        catchup_window="6h",
        jitter="30s",
        timeout="4h",
        retries=2,
        backoff=["1m", "5m"],
        max_deliver=3,
        approval=True,
    )
    assert j.command == ("python", "-m", "ssa.rescore", "--all", "two words")
    assert j.tz.key == "America/New_York"
    assert (j.catchup_td, j.jitter_td, j.timeout_td) == (
        timedelta(hours=6),
        timedelta(seconds=30),
        timedelta(hours=4),
    )
    assert j.task() == {
        "command": ["python", "-m", "ssa.rescore", "--all", "two words"],
        "timeout_s": 14400.0,
        "retries": 2,
        "backoff_s": [60.0, 300.0],
        "max_deliver": 3,
        "approval": True,
    }


def test_a_command_string_is_split_into_argv_and_shell_syntax_stays_text() -> None:
    j = job(image=None, command="sh -c 'rm -rf /' ; echo $(id)")
    assert j.command == ("sh", "-c", "rm -rf /", ";", "echo", "$(id)")


def test_a_python_task_names_a_module_and_a_function() -> None:
    assert job(image=None, python="ssa.jobs.rescore:main").python == "ssa.jobs.rescore:main"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"schedule": "0 0 * *"}, r"schedule '0 0 \* \*' must have 5 fields .* not 4"),
        ({"schedule": "0 0 0 * * *"}, "must have 5 fields"),
        (
            {"schedule": "61 * * * *"},
            r"schedule '61 \* \* \* \*' is not a valid cron expression: Bad minute",
        ),
        ({"schedule": "0 25 * * *"}, "is not a valid cron expression: Bad hour"),
        ({"schedule": "0 0 30 2 *"}, "is not a valid cron expression: Bad day-of-month"),
        ({"schedule": "0 0 * * MOON"}, "Bad day-of-week"),
        ({"schedule": "0 0 * * $(id)"}, r"the day-of-week field '\$\(id\)' is not cron syntax"),
        (
            {"timezone": "Mars/Olympus_Mons"},
            "timezone 'Mars/Olympus_Mons' is not an IANA time zone",
        ),
        ({"timezone": "../../etc/passwd"}, "is not an IANA time zone"),
        ({"overlap": "queue"}, "overlap"),
        ({"catchup_window": "soon"}, "duration 'soon' must look like"),
        ({"jitter": "0s"}, "must be more than 0"),
        ({"timeout": "6h"}, r"timeout 6h is longer than the SLA \(sla_minutes: 300\)"),
        ({"retries": -1}, "retries"),
        ({"retries": 1, "backoff": ["1m", "2m"]}, "backoff has 2 steps but retries is 1"),
        ({"retries": 3, "max_deliver": 2}, "max_deliver 2 leaves no room for 3 retries"),
        (
            {"command": ["run"]},
            r"exactly one task: command, python or image \(found: command, image\)",
        ),
        ({"image": None}, r"exactly one task.*\(found: none\)"),
        ({"image": "Not An Image!"}, "image 'Not An Image!' must be a container image reference"),
        ({"image": None, "python": "os.system('id')"}, "must be 'package.module:function'"),
        ({"image": None, "command": "echo 'unclosed"}, 'command "echo \'unclosed": No closing'),
        ({"image": None, "command": []}, "command"),
        ({"queue": "two words"}, "queue"),
        ({"sla_minutes": 0}, "sla_minutes"),
        ({"shell": "bash"}, "(?s)shell.*Extra inputs are not permitted"),
    ],
)
def test_a_bad_field_is_rejected_with_what_is_wrong(fields: dict[str, Any], message: str) -> None:
    rejected(message, **fields)


def test_a_job_without_a_queue_is_rejected_naming_the_queue() -> None:
    doc = {k: v for k, v in DOCUMENT.items() if k != "queue"}
    with pytest.raises(ValidationError) as caught:
        Job.model_validate({"namespace": NS, **doc})
    assert [e["loc"] for e in caught.value.errors()] == [("queue",)]


def test_without_the_cron_library_the_structure_of_a_schedule_is_still_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "cronsim", None)  # as if hms-contracts had no cron extra
    with pytest.raises(ValueError, match="must have 5 fields"):
        check_schedule("0 0 * *")
    with pytest.raises(ValueError, match="not cron syntax"):
        check_schedule("0 0 * * ;reboot")
    assert check_schedule("61 * * * *") == "61 * * * *", "values are the scheduler's to check"
