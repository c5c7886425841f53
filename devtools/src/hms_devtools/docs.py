"""Generated documents: the AsyncAPI description, one JSON Schema per event, NATS permissions.

Run ``python -m hms_devtools.docs [--check] [--root DIR]`` from the repository root. The
output is deterministic (stable key order, no timestamps), so ``--check`` can fail CI when
a model changed and the committed documents did not.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from hms_contracts import CATALOGUE, specs, subjects, topology
from hms_contracts.base import SYSTEM_NAMESPACE
from hms_contracts.bus import BusEvent
from hms_contracts.subjects import Family

from . import natsconf

ASYNCAPI_PATH = "docs/asyncapi.yaml"
SCHEMAS_DIR = "docs/schemas"
PERMISSIONS_PATH = "infra/nats/permissions.json"
NAMESPACE_PERMISSIONS_PATH = "infra/nats/namespace-permissions.example.json"
EXAMPLE_NAMESPACE = "usds_unemployment"

_REF = "#/components/schemas/{model}"
_PARAM_DOCS = {
    "source": "Scrape target or pushing client the batch came from",
    "event": "Event type token",
    "queue": "Work queue of the run",
    "pool": "Worker pool being scaled",
    "service": "Service name with '-' replaced by '_'",
    "kind": "Config kind of the object, e.g. alert",
    "name": "Event name chosen by the agency system",
    "run_key": "Digest of the run's namespace and id (hms_contracts.run_key)",
    "command": "Command asked of its owning service (request/reply), e.g. incident_ack",
}


def _channel_id(family: Family) -> str:
    return family.prefix.replace(".", "_")


def _models(family: Family) -> list[type[BusEvent]]:
    return [m for m in CATALOGUE if m.family is family]


def _probe(family: Family) -> str:
    """A concrete subject inside the family, to test patterns against."""
    return family.wildcard().replace("*", "probe").replace(">", "probe")


def _channel(family: Family) -> dict[str, Any]:
    models = _models(family)
    params: dict[str, Any] = {
        "namespace": {"description": "Namespace (agency system and environment)"}
    }
    if family is subjects.HEARTBEAT:
        params["namespace"] = {"enum": [SYSTEM_NAMESPACE], "description": "Always system"}
    address = f"{family.prefix}.{{namespace}}"
    event_types = [m.event_type for m in models if m.event_type is not None]
    if event_types:
        address += ".{event}"
        params["event"] = {"enum": event_types, "description": _PARAM_DOCS["event"]}
    elif family is subjects.JOB_ITEM:
        address += ".{queue}.{run_key}"
        params["queue"] = {"description": _PARAM_DOCS["queue"]}
        params["run_key"] = {"description": _PARAM_DOCS["run_key"]}
    elif family.rest_tokens != 0:
        # The routing token is named after the payload field it comes from.
        name = {
            subjects.METRIC: "source",
            subjects.JOB_RUN: "queue",
            subjects.SCALE: "pool",
            subjects.HEARTBEAT: "service",
            subjects.CONFIG: "kind",
            subjects.EVENT: "name",
            subjects.REQUEST: "command",
        }[family]
        address += f".{{{name}}}"
        params[name] = {"description": _PARAM_DOCS[name]}
    stream = next((s.name for s in specs.STREAMS if family.wildcard() in s.subjects), None)
    return {
        "address": address,
        "title": family.prefix,
        "description": f"Subjects {family.wildcard()}"
        + (f", captured by stream {stream}" if stream else " (core NATS, no stream)"),
        "parameters": params,
        "messages": {m.__name__: {"$ref": f"#/components/messages/{m.__name__}"} for m in models},
    }


def _operations() -> dict[str, Any]:
    ops: dict[str, Any] = {}
    for svc in topology.SERVICES:
        received = [
            *svc.subscribes,
            *(f for c in svc.owned_consumers() for f in c.filter_subjects),
        ]
        for family in subjects.FAMILIES:
            probe = _probe(family)
            sends = family is subjects.HEARTBEAT or any(
                subjects.matches(p, probe) for p in svc.publishes
            )
            receives = any(subjects.matches(p, probe) for p in received)
            for action, applies in (("send", sends), ("receive", receives)):
                if not applies:
                    continue
                channel = _channel_id(family)
                ops[f"{svc.name.replace('-', '_')}_{action}_{channel}"] = {
                    "action": action,
                    "channel": {"$ref": f"#/channels/{channel}"},
                    "summary": f"{svc.name} {action}s {family.prefix} events",
                    "tags": [{"name": svc.name}],
                    "messages": [
                        {"$ref": f"#/channels/{channel}/messages/{m.__name__}"}
                        for m in _models(family)
                    ],
                }
    return ops


def _components() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for model in CATALOGUE:
        schema = model.model_json_schema(ref_template=_REF)
        for name, sub in schema.pop("$defs", {}).items():
            if schemas.setdefault(name, sub) != sub:
                raise ValueError(f"two different schemas are both called {name}")
        schemas[model.__name__] = schema
        doc = (model.__doc__ or model.__name__).strip()
        messages[model.__name__] = {
            "name": model.__name__,
            "title": model.__name__,
            "summary": doc.splitlines()[0],
            "contentType": "application/json",
            "headers": {
                "type": "object",
                "properties": {
                    "Nats-Msg-Id": {"type": "string", "description": "Equal to event_id"}
                },
            },
            "payload": {"$ref": _REF.format(model=model.__name__)},
            "x-hms-subject": model.subject_pattern(),
        }
    return {"schemas": schemas, "messages": messages}


def asyncapi() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the bus, as plain data."""
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "hms-ops event bus",
            "version": "1.0.0",
            "description": "Every event on the hms-ops NATS JetStream bus. Subjects are "
            "<family>.<namespace>.<rest>; each message carries its event_id as Nats-Msg-Id.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "embedded": {
                "host": "127.0.0.1:4222",
                "protocol": "nats",
                "description": "nats-server started by hms-ops up",
            }
        },
        "channels": {_channel_id(f): _channel(f) for f in subjects.FAMILIES},
        "operations": _operations(),
        "components": _components(),
        "x-hms-jetstream": {
            "streams": [s.model_dump(mode="json") for s in specs.STREAMS],
            "consumers": [c.model_dump(mode="json") for c in specs.CONSUMERS],
            "kv_buckets": [b.model_dump(mode="json") for b in specs.KV_BUCKETS],
        },
    }


def event_schema(model: type[BusEvent]) -> dict[str, Any]:
    """A standalone JSON Schema (draft 2020-12) for one event."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **model.model_json_schema(),
    }


def permissions() -> dict[str, Any]:
    """Least-privilege NATS permissions for every service, by service name."""
    return {svc.name: topology.nats_permissions(svc) for svc in topology.SERVICES}


def namespace_permissions() -> dict[str, Any]:
    """What ``hms-ops namespaces create`` gives a namespace's client, for one example namespace
    (its user is ``ns-<namespace>``; a durable feed named ``my-app`` shows what a durable adds)."""
    return {
        topology.namespace_user(EXAMPLE_NAMESPACE): topology.namespace_permissions(
            EXAMPLE_NAMESPACE, ("my-app",)
        )
    }


def dump_yaml(data: Any) -> str:
    """Block-style YAML with keys in insertion order, stable across runs."""
    text: str = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    return text


def _json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def render() -> dict[str, str]:
    """Every generated file, relative path to exact content."""
    files = {
        ASYNCAPI_PATH: dump_yaml(asyncapi()),
        PERMISSIONS_PATH: _json(permissions()),
        NAMESPACE_PERMISSIONS_PATH: _json(namespace_permissions()),
    }
    for model in CATALOGUE:
        files[f"{SCHEMAS_DIR}/{model.__name__}.json"] = _json(event_schema(model))
    files.update(natsconf.render())  # nats-server configs for containers and the cluster
    return files


def stale(root: Path) -> list[str]:
    """Messages naming each generated file under ``root`` that is missing, outdated or extra."""
    return _problems(root, render())


def _problems(root: Path, expected: dict[str, str]) -> list[str]:
    problems = []
    for rel, content in expected.items():
        path = root / rel
        if not path.exists():
            problems.append(f"{rel}: missing")
        elif path.read_text(encoding="utf-8") != content:
            problems.append(f"{rel}: out of date")
    schema_dir = root / SCHEMAS_DIR
    if schema_dir.is_dir():
        for path in sorted(schema_dir.glob("*.json")):
            if path.relative_to(root).as_posix() not in expected:
                problems.append(f"{path.relative_to(root).as_posix()}: no such event any more")
    return problems


def write(root: Path) -> list[str]:
    """Write every generated file under ``root``; returns the paths that changed."""
    expected = render()
    changed = [problem.split(":")[0] for problem in _problems(root, expected)]
    for rel in changed:
        path = root / rel
        if rel in expected:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(expected[rel], encoding="utf-8")
        else:
            # The schema of a removed event would otherwise linger and mislead readers.
            path.unlink()
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: write the documents, or with --check report stale ones and exit 1."""
    parser = argparse.ArgumentParser(prog="python -m hms_devtools.docs", description=__doc__)
    parser.add_argument("--check", action="store_true", help="report stale files, write none")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="repository root")
    args = parser.parse_args(argv)
    if args.check:
        problems = stale(args.root)
        for problem in problems:
            print(f"stale: {problem}", file=sys.stderr)
        if problems:
            print("run: uv run python -m hms_devtools.docs", file=sys.stderr)
        return 1 if problems else 0
    for rel in write(args.root):
        print(f"wrote {rel}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
