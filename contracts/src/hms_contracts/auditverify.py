"""Verify an exported audit chain alone, with the Python standard library only.

An auditor runs ``python -m hms_contracts.auditverify audit-export.jsonl`` (or copies this file
and runs ``python auditverify.py audit-export.jsonl``): each line of the export is one record as
published on ``ops.audit.<ns>.recorded``; the records of each namespace form a chain. The
check recomputes every record's SHA-256 over its canonical JSON (every field but ``event_id``
and ``hash``, keys sorted, no spaces, UTF-8) and checks that it links to the previous record's
hash (64 zeros before the first) with consecutive sequence numbers. Exit status 0 when every
chain holds; otherwise 1, naming the first broken record.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable, Mapping
from typing import Any

GENESIS_HASH = "0" * 64


def record_hash(record: Mapping[str, Any]) -> str:
    """SHA-256 hex of a record's canonical JSON (every field but event_id and hash)."""
    body = {k: v for k, v in record.items() if k not in ("event_id", "hash")}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def verify_chain(records: Iterable[Mapping[str, Any]]) -> tuple[int, str | None]:
    """Check records in order (one or more namespaces, each in sequence order): the number
    checked, and a description of the first broken record (None when every chain holds)."""
    last: dict[str, tuple[int, str]] = {}
    count = 0
    for record in records:
        count += 1
        ns = str(record.get("namespace"))
        seq = record.get("sequence")
        where = f"namespace {ns} record {seq}"
        want_seq, want_prev = last.get(ns, (0, GENESIS_HASH))
        if seq != want_seq + 1:
            return count, f"{where}: expected sequence {want_seq + 1} (a record is missing)"
        if record.get("prev_hash") != want_prev:
            return count, f"{where}: prev_hash does not match record {want_seq}'s hash"
        if record.get("hash") != record_hash(record):
            return count, f"{where}: hash does not match its content (the record was altered)"
        last[ns] = (int(seq), str(record["hash"]))
    return count, None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m hms_contracts.auditverify EXPORT.jsonl", file=sys.stderr)
        return 2
    with open(args[0], encoding="utf-8") as f:
        records = (json.loads(line) for line in f if line.strip())
        count, broken = verify_chain(records)
    if broken is not None:
        print(f"BROKEN: {broken}")
        return 1
    print(f"OK: {count} records, every chain holds")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
