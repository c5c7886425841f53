"""Generated documents: AsyncAPI, per-event JSON Schemas, NATS permissions, staleness check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hms_contracts import CATALOGUE, subjects, topology
from hms_devtools import docs

REPO_ROOT = Path(__file__).resolve().parents[2]


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for item in node for r in _refs(item)]
    return []


def _resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def test_committed_docs_are_current() -> None:
    problems = docs.stale(REPO_ROOT)
    assert problems == [], "stale generated files; run `uv run python -m hms_devtools.docs`"


def test_asyncapi_has_a_channel_per_family_and_a_message_per_event() -> None:
    document = docs.asyncapi()
    assert document["asyncapi"] == "3.0.0"
    addresses = {c["address"].split(".{")[0] for c in document["channels"].values()}
    assert addresses == {f.prefix for f in subjects.FAMILIES}
    assert set(document["components"]["messages"]) == {m.__name__ for m in CATALOGUE}
    in_channels = [m for c in document["channels"].values() for m in c["messages"]]
    assert sorted(in_channels) == sorted(m.__name__ for m in CATALOGUE)


def test_asyncapi_references_all_resolve() -> None:
    document = docs.asyncapi()
    refs = _refs(document)
    assert refs
    for ref in refs:
        assert _resolve(document, ref) is not None, ref


def test_asyncapi_operations_follow_the_topology() -> None:
    operations = docs.asyncapi()["operations"]
    assert operations["scheduler_send_job_run"]["action"] == "send"
    assert operations["worker_pool_receive_job_run"]["action"] == "receive"
    assert operations["incident_engine_receive_sla_breach"]["action"] == "receive"
    assert "worker_pool_send_ops_alert" not in operations
    for svc in topology.SERVICES:
        assert f"{svc.name.replace('-', '_')}_send_ops_heartbeat" in operations


def test_asyncapi_carries_the_jetstream_specs() -> None:
    jetstream = docs.asyncapi()["x-hms-jetstream"]
    assert [s["name"] for s in jetstream["streams"]][:2] == ["JOB_RUNS", "JOB_EVENTS"]
    assert {c["durable"] for c in jetstream["consumers"]} >= {"worker_pool"}
    assert {b["bucket"] for b in jetstream["kv_buckets"]} == {
        "hms_leases",
        "hms_services",
        "hms_config",
        "hms_console_tokens",
        "hms_job_control",
    }


def test_asyncapi_yaml_reads_back_as_the_same_data() -> None:
    assert yaml.safe_load(docs.dump_yaml(docs.asyncapi())) == docs.asyncapi()


def test_check_names_each_stale_file_and_write_fixes_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert docs.main(["--check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "docs/asyncapi.yaml: missing" in err
    assert "infra/nats/permissions.json: missing" in err
    assert "docs/schemas/RunScheduled.json: missing" in err

    assert docs.main(["--root", str(tmp_path)]) == 0
    assert docs.main(["--check", "--root", str(tmp_path)]) == 0

    (tmp_path / "docs/schemas/RunScheduled.json").write_text("{}\n")
    (tmp_path / "docs/schemas/RunPostponed.json").write_text("{}\n")
    assert docs.main(["--check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "docs/schemas/RunScheduled.json: out of date" in err
    assert "docs/schemas/RunPostponed.json: no such event any more" in err

    docs.main(["--root", str(tmp_path)])
    assert not (tmp_path / "docs/schemas/RunPostponed.json").exists()
    assert docs.stale(tmp_path) == []


def test_permissions_cover_every_service() -> None:
    assert list(docs.permissions()) == list(topology.SERVICE_NAMES)


def test_event_schemas_are_standalone() -> None:
    for model in CATALOGUE:
        schema = docs.event_schema(model)
        assert schema["title"] == model.__name__
        assert all(ref.startswith("#/$defs/") for ref in _refs(schema))
