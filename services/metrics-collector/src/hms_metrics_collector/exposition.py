"""Reading the Prometheus text exposition into samples (pure: no I/O), with the parser of
``prometheus_client``; and the targets the registry declares."""

from __future__ import annotations

import functools
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from hms_contracts.config import ConfigObject, Metric, ScrapeTarget, parse_duration
from hms_contracts.config.scrape import DEFAULT_TIMEOUT_S
from prometheus_client.parser import text_string_to_metric_families

from .core import sample_problem


@dataclass(frozen=True, slots=True)
class Target:
    """One endpoint to scrape, from a ``scrape_target`` or a ``metric`` with a URL source."""

    key: str
    namespace: str
    job: str
    url: str
    interval_s: float
    timeout_s: float
    labels: Mapping[str, str] = field(default_factory=dict)
    sample_limit: int = 50_000
    body_limit: int = 10 * 1024 * 1024
    #: a registered metric: the exposition family of this name is also stored under the
    #: metric's dotted name (``api_latency_p99`` -> ``api.latency_p99``)
    rename: tuple[str, str] | None = None

    @property
    def instance(self) -> str:
        return _instance(self.url)

    @property
    def source(self) -> str:
        """The batch's source token (no dots)."""
        return self.job.replace(".", "_")[:64]

    def shard(self, count: int) -> int:
        return zlib.crc32(self.key.encode()) % count

    def target_labels(self) -> dict[str, str]:
        return {**self.labels, "job": self.job, "instance": self.instance}


@functools.lru_cache(maxsize=8192)
def _instance(url: str) -> str:
    """``host:port`` of a URL, as Prometheus' ``instance`` label."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname}:{port}"


def targets_from(objects: Iterable[ConfigObject]) -> list[Target]:
    """Every scrape target the registry declares: ``scrape_target`` objects and ``metric``
    objects whose source is a URL."""
    out: list[Target] = []
    for obj in objects:
        if isinstance(obj, ScrapeTarget):
            out.append(
                Target(
                    key=obj.key(),
                    namespace=obj.namespace,
                    job=obj.name,
                    url=obj.url,
                    interval_s=parse_duration(obj.interval).total_seconds(),
                    timeout_s=obj.timeout_s(),
                    labels=dict(obj.labels),
                    sample_limit=obj.sample_limit,
                    body_limit=obj.body_limit_bytes,
                )
            )
        elif isinstance(obj, Metric) and obj.source != "push":
            interval = parse_duration(obj.scrape_interval).total_seconds()
            out.append(
                Target(
                    key=obj.key(),
                    namespace=obj.namespace,
                    job=obj.name,
                    url=obj.source,
                    interval_s=interval,
                    timeout_s=min(interval, DEFAULT_TIMEOUT_S),
                    labels=dict(obj.labels),
                    rename=(obj.name.replace(".", "_"), obj.name),
                )
            )
    return out


class ExpositionError(ValueError):
    """The body is not the Prometheus text format, or breaks a target's limit."""


@dataclass(slots=True)
class Parsed:
    """What one scrape gave: samples (name, labels, value, ms or None) and refusals by reason."""

    samples: list[tuple[str, dict[str, str], float, int | None]] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)
    scraped: int = 0


def metric_name(prometheus_name: str) -> str:
    """A Prometheus name as a metric name (':' of recording rules is not a subject token)."""
    return prometheus_name.replace(":", "_")


def parse(text: str, target: Target, *, max_labels: int = 32) -> Parsed:
    """The samples of an exposition, with the target's labels (a clashing exposed label is
    kept as ``exported_<name>``, as Prometheus does). Non-finite values (NaN of an empty
    summary, +Inf) are refused per sample; malformed text or too many samples fail the whole
    scrape with ExpositionError."""
    out = Parsed()
    extra = target.target_labels()
    rename = target.rename
    try:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out.scraped += 1
                if out.scraped > target.sample_limit:
                    raise ExpositionError(
                        f"more than {target.sample_limit} samples (the target's sample_limit)"
                    )
                labels = dict(s.labels)
                for k, v in extra.items():
                    if k in labels:
                        labels[f"exported_{k}"] = labels[k]
                    labels[k] = v
                name = metric_name(s.name)
                problem = sample_problem(name, float(s.value), labels, max_labels)
                if problem:
                    out.refused[problem] += 1
                    continue
                at = None if s.timestamp is None else round(float(s.timestamp) * 1000)
                value = float(s.value)
                out.samples.append((name, labels, value, at))
                if rename is not None and s.name == rename[0]:
                    out.samples.append((rename[1], labels, value, at))
    except ExpositionError:
        raise
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise ExpositionError(f"not the Prometheus text format: {exc}") from None
    return out
