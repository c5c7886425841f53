"""The store for a deployment that outgrows SQLite: every write also goes to a
Prometheus-compatible backend by remote write (protobuf + snappy, ``/api/v1/write``), and
queries go through its HTTP API (``/api/v1/query_range``).

The local SQLite store stays in front: it dedupes redelivered batches, holds the series limits
and the pushed series' TTLs. A batch is remote-written *before* it is committed locally, so a
failed remote write is retried with the messages (a repeat after a local failure sends
identical samples, which Prometheus ignores). Series carry the namespace as the label
``hms_namespace``; names are selected with ``{__name__="..."}``, so dotted names work.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import aiohttp
import cramjam
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from hms_contracts.metrics import MetricPoint, MetricQuery, MetricSeries

from .core import QUANTILES, QueryError, labels_key, parse_selector, step_ends
from .ports import StoredBatch
from .store import SqliteStore, ms

log = logging.getLogger(__name__)

NAMESPACE_LABEL = "hms_namespace"


def _remote_write_messages() -> tuple[type[Any], type[Any], type[Any], type[Any]]:
    """Prometheus' remote-write v1 messages (prompb/types.proto, remote.proto), declared here:
    WriteRequest { repeated TimeSeries timeseries = 1 }, TimeSeries { repeated Label labels = 1;
    repeated Sample samples = 2 }, Label { string name = 1; string value = 2 },
    Sample { double value = 1; int64 timestamp = 2 } (milliseconds)."""
    f = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="hms_prompb.proto", package="hms_prompb")

    def message(name: str, *fields: tuple[str, int, int, str | None]) -> None:
        # every message-typed field here is repeated, every scalar one singular
        m = proto.message_type.add(name=name)
        for field_name, number, kind, type_name in fields:
            m.field.add(
                name=field_name,
                number=number,
                type=kind,
                label=f.LABEL_REPEATED if type_name else f.LABEL_OPTIONAL,
                **({"type_name": f".hms_prompb.{type_name}"} if type_name else {}),
            )

    message("Label", ("name", 1, f.TYPE_STRING, None), ("value", 2, f.TYPE_STRING, None))
    message("Sample", ("value", 1, f.TYPE_DOUBLE, None), ("timestamp", 2, f.TYPE_INT64, None))
    message(
        "TimeSeries",
        ("labels", 1, f.TYPE_MESSAGE, "Label"),
        ("samples", 2, f.TYPE_MESSAGE, "Sample"),
    )
    message("WriteRequest", ("timeseries", 1, f.TYPE_MESSAGE, "TimeSeries"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    get = message_factory.GetMessageClass
    write, series, label, sample = (
        get(pool.FindMessageTypeByName(f"hms_prompb.{n}"))
        for n in ("WriteRequest", "TimeSeries", "Label", "Sample")
    )
    return write, series, label, sample


WriteRequest, TimeSeries, Label, Sample = _remote_write_messages()


def write_request(batches: Sequence[StoredBatch]) -> bytes:
    """The batches as one snappy-compressed WriteRequest (samples of a series in time order)."""
    series: dict[tuple[str, str, str], list[tuple[int, float]]] = {}
    for batch in batches:
        for name, labels, ts, value in batch.rows:
            series.setdefault((batch.namespace, name, labels), []).append((ts, value))
    request = WriteRequest()
    for (namespace, name, labels), points in series.items():
        ts_msg = request.timeseries.add()
        pairs = {**json.loads(labels), "__name__": name, NAMESPACE_LABEL: namespace}
        for k in sorted(pairs):  # Prometheus wants labels sorted by name
            ts_msg.labels.add(name=k, value=pairs[k])
        for ts, value in sorted(points):
            ts_msg.samples.add(value=value, timestamp=ts)
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


def _string(value: str) -> str:
    """A PromQL string literal (Go escapes; JSON's are a subset)."""
    return json.dumps(value, ensure_ascii=False)


def promql(namespace: str, query: MetricQuery) -> str:
    """The PromQL that computes ``fn`` over each step: ``<fn>_over_time(sel[step])``."""
    selector = parse_selector(query.series)
    matchers = [f"__name__={_string(selector.name)}", f"{NAMESPACE_LABEL}={_string(namespace)}"]
    matchers += [f"{k}={_string(v)}" for k, v in selector.matchers]
    sel = "{" + ",".join(matchers) + "}" + f"[{round(query.step_s * 1000)}ms]"
    if query.fn == "rate":
        return f"rate({sel})"
    if query.fn in QUANTILES:
        return f"quantile_over_time({QUANTILES[query.fn]}, {sel})"
    return f"{query.fn}_over_time({sel})"


class RemoteWriteError(Exception):
    """The backend refused or failed a remote write."""


class PrometheusStore:
    """A :class:`~hms_metrics_collector.ports.SampleStore`: the local SQLite store, plus a
    Prometheus-compatible backend at ``url`` written to and queried."""

    def __init__(self, local: SqliteStore, url: str, *, timeout_s: float = 10.0) -> None:
        self.local = local
        self.url = url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self.refused = 0

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def start(self) -> None:
        await self.local.start()

    def knows(self, namespace: str, name: str, labels: str) -> bool:
        return self.local.knows(namespace, name, labels)

    def series_count(self, namespace: str) -> int:
        return self.local.series_count(namespace)

    async def write(self, batches: Sequence[StoredBatch]) -> int:
        if any(b.rows for b in batches):
            await self.remote_write(batches)
        return await self.local.write(batches)

    async def remote_write(self, batches: Sequence[StoredBatch]) -> None:
        body = write_request(batches)
        headers = {
            "Content-Encoding": "snappy",
            "Content-Type": "application/x-protobuf",
            "X-Prometheus-Remote-Write-Version": "0.1.0",
            "User-Agent": "hms-metrics-collector",
        }
        async with self.session().post(
            f"{self.url}/api/v1/write", data=body, headers=headers
        ) as resp:
            if resp.status < 300:
                return
            text = (await resp.text())[:500]
        if resp.status >= 500 or resp.status == 429:
            raise RemoteWriteError(f"remote write: HTTP {resp.status}: {text}")
        # 4xx: the backend refuses these samples (too old, out of order); retrying cannot help
        self.refused += 1
        log.warning("remote write refused (HTTP %s): %s", resp.status, text)

    async def query(self, namespace: str, query: MetricQuery, now: datetime) -> list[MetricSeries]:
        selector = parse_selector(query.series)
        end_ms = ms(query.end) if query.end is not None else ms(now)
        step_ms = max(1, round(query.step_s * 1000))
        ends = step_ends(end_ms, round(query.range_s * 1000), step_ms, 11_000)
        params = {
            "query": promql(namespace, query),
            "start": f"{ends[0] / 1000:.3f}",
            "end": f"{ends[-1] / 1000:.3f}",
            "step": f"{step_ms / 1000:.3f}",
        }
        async with self.session().get(f"{self.url}/api/v1/query_range", params=params) as resp:
            data = await resp.json(content_type=None)
        if data.get("status") != "success":
            raise QueryError(f"the metrics backend refused the query: {data.get('error')}")
        now_ms = ms(now)
        out: list[MetricSeries] = []
        for result in data["data"]["result"]:
            labels = {
                k: v for k, v in result["metric"].items() if k not in ("__name__", NAMESPACE_LABEL)
            }
            if self.local.expired(namespace, selector.name, labels_key(labels), now_ms):
                continue
            points = tuple(
                MetricPoint(at=datetime.fromtimestamp(float(t), tz=now.tzinfo), value=float(v))
                for t, v in result["values"]
                if v not in ("NaN", "+Inf", "-Inf")
            )
            if points:
                out.append(MetricSeries(name=selector.name, labels=labels, points=points))
        return out

    async def prune(self, now: datetime) -> int:
        return await self.local.prune(now)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self.local.close()
