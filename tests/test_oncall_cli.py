"""``hms-ops oncall show NS --from --to``: the schedule applied to the registry, read back as its
final shifts, overrides in place and shown as their own entries."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hms_ops.state import StatePaths
from hms_testing.stacks import hms_ops_in, provisioned_state

SCHEDULE = """\
kind: oncall_schedule
namespace: usds_unemployment
name: primary
timezone: America/Toronto
rotations:
  - name: daily
    type: daily
    start: "2026-03-01T09:00"
    participants: [ana@agency.gov, bo@agency.gov]
overrides:
  - user: cy@agency.gov
    start: "2026-03-08T12:00:00Z"
    end: "2026-03-08T14:00:00Z"
    reason: ana at the dentist
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StatePaths]:
    with provisioned_state(Path(tmp_path_factory.mktemp("oncall")) / "state") as paths:
        folder = tmp_path_factory.mktemp("files")
        (folder / "primary.yaml").write_text(SCHEDULE)
        done = hms_ops_in(paths, "apply", "-f", str(folder / "primary.yaml"))
        assert done.returncode == 0, done.stderr
        yield paths


def test_oncall_show_prints_the_final_schedule_across_the_clock_change(stack: StatePaths) -> None:
    done = hms_ops_in(
        stack, "oncall", "show", "usds_unemployment",
        "--from", "2026-03-07T14:00Z", "--to", "2026-03-09T13:00Z", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [entry] = json.loads(done.stdout)
    assert entry["schedule"] == "primary"
    assert entry["timezone"] == "America/Toronto"
    assert [(s["start"], s["end"], s["user"], s["source"]) for s in entry["shifts"]] == [
        ("2026-03-07T14:00:00Z", "2026-03-08T12:00:00Z", "ana@agency.gov", "rotation"),
        ("2026-03-08T12:00:00Z", "2026-03-08T14:00:00Z", "cy@agency.gov", "override"),
        # 09:00 in Toronto is 13:00 UTC once the clocks went forward on the 8th
        ("2026-03-08T14:00:00Z", "2026-03-09T13:00:00Z", "bo@agency.gov", "rotation"),
    ]
    text = hms_ops_in(
        stack, "oncall", "show", "usds_unemployment", "--from", "2026-03-08", "--to", "2026-03-09"
    )
    assert text.returncode == 0, text.stderr
    assert "2026-03-08 08:00 EDT -> 2026-03-08 10:00 EDT  cy@agency.gov  [override]" in text.stdout


def test_oncall_show_names_what_is_wrong(stack: StatePaths) -> None:
    missing = hms_ops_in(stack, "oncall", "show", "other_ns")
    assert missing.returncode == 1
    assert "no on-call schedule in namespace 'other_ns'" in missing.stderr
    bad = hms_ops_in(stack, "oncall", "show", "usds_unemployment", "--from", "yesterday")
    assert bad.returncode == 2
    assert "--from" in bad.stderr
    assert "ISO 8601" in bad.stderr
    backwards = hms_ops_in(
        stack, "oncall", "show", "usds_unemployment", "--from", "2026-03-09", "--to", "2026-03-08"
    )
    assert backwards.returncode == 2
    assert "must be after" in backwards.stderr
