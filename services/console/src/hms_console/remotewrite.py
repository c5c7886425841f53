"""Prometheus remote-write 1.0: a snappy-compressed protobuf ``WriteRequest``, decoded into the
contracts' metric samples.

The message types are declared here from the protocol's field numbers (prometheus/prompb
``remote.proto`` and ``types.proto``) with the maintained protobuf runtime; no generated code.
Fields the console does not use (metadata, exemplars, native histograms) are skipped by the
parser as unknown fields.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import cramjam
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

CONTENT_TYPE = "application/x-protobuf"

_F = descriptor_pb2.FieldDescriptorProto


def _file() -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto(name="hms_prompb.proto", package="hms_prompb")
    proto.syntax = "proto3"

    def message(name: str, fields: list[tuple[str, int, int, int, str | None]]) -> None:
        msg = proto.message_type.add(name=name)
        for field_name, number, kind, label, type_name in fields:
            f = msg.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                f.type_name = type_name

    opt, rep = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
    message(
        "Label", [("name", 1, _F.TYPE_STRING, opt, None), ("value", 2, _F.TYPE_STRING, opt, None)]
    )
    message(
        "Sample",
        [("value", 1, _F.TYPE_DOUBLE, opt, None), ("timestamp", 2, _F.TYPE_INT64, opt, None)],
    )
    message(
        "TimeSeries",
        [
            ("labels", 1, _F.TYPE_MESSAGE, rep, ".hms_prompb.Label"),
            ("samples", 2, _F.TYPE_MESSAGE, rep, ".hms_prompb.Sample"),
        ],
    )
    message("WriteRequest", [("timeseries", 1, _F.TYPE_MESSAGE, rep, ".hms_prompb.TimeSeries")])
    return proto


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_file())
WriteRequest: Any = message_factory.GetMessageClass(
    _POOL.FindMessageTypeByName("hms_prompb.WriteRequest")
)


class RemoteWriteError(ValueError):
    """A remote-write body that is not snappy-compressed protobuf."""


def decode(body: bytes) -> list[dict[str, Any]]:
    """The samples of a remote-write body, as MetricSample fields (``__name__`` is the name,
    the other labels stay labels; times from milliseconds)."""
    try:
        raw = bytes(cramjam.snappy.decompress_raw(body))
    except Exception as exc:
        raise RemoteWriteError(f"body: not snappy block-compressed ({exc})") from None
    request = WriteRequest()
    try:
        request.ParseFromString(raw)
    except Exception as exc:
        raise RemoteWriteError(f"body: not a remote-write WriteRequest ({exc})") from None
    samples: list[dict[str, Any]] = []
    for index, series in enumerate(request.timeseries):
        labels = {label.name: label.value for label in series.labels}
        name = labels.pop("__name__", None)
        if not name:
            raise RemoteWriteError(f"timeseries.{index}.labels: no __name__ label")
        for sample in series.samples:
            samples.append(
                {
                    "name": name,
                    "value": sample.value,
                    "labels": labels,
                    "observed_at": datetime.fromtimestamp(sample.timestamp / 1000, UTC),
                }
            )
    return samples


def encode(series: list[tuple[dict[str, str], list[tuple[float, int]]]]) -> bytes:
    """A remote-write body: (labels with ``__name__``, [(value, unix ms)]) per series."""
    request = WriteRequest()
    for labels, points in series:
        ts = request.timeseries.add()
        for name, text in sorted(labels.items()):
            ts.labels.add(name=name, value=text)
        for value, at in points:
            ts.samples.add(value=value, timestamp=at)
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))
