"""Metric samples as the hot path reads them: ``MetricSampleBatch`` documents decoded by
``msgspec`` into plain structs, typed (a value must be a number, a time a string) and with each
sample's labels left as raw JSON: the evaluator looks a series up by those bytes and decodes
them only the first time it meets the series.

Fields the contract may gain (the collector's) are ignored; a document that breaks these types
is refused whole, as the collector's validation would.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime

import msgspec

NO_LABELS = msgspec.Raw(b"{}")


class Sample(msgspec.Struct):
    """One sample: metric name, value, observation time (ISO 8601) and raw labels."""

    name: str
    value: float
    observed_at: str
    labels: msgspec.Raw = NO_LABELS


class SampleBatch(msgspec.Struct):
    """The parts of a ``MetricSampleBatch`` the evaluator reads."""

    namespace: str
    samples: list[Sample]
    schema_version: int = 1


BATCH = msgspec.json.Decoder(SampleBatch)
LABELS = msgspec.json.Decoder(dict[str, str])


def sample(
    name: str, value: float, observed_at: datetime | str, labels: Mapping[str, str] | None = None
) -> Sample:
    """A sample built in code (tests, benchmarks), as if decoded from a batch."""
    at = observed_at if isinstance(observed_at, str) else observed_at.isoformat()
    raw = msgspec.Raw(json.dumps(dict(labels or {})).encode()) if labels else NO_LABELS
    return Sample(name, float(value), at, raw)
