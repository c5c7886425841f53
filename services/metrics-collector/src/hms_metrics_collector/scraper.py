"""Scraping: one task per target, each on its own slots (a fixed offset within the interval
from a hash of the target, as Prometheus spreads its scrapes), each scrape bounded by the
target's timeout, so a slow or dead target never delays another. Every scrape publishes its
samples, ``up``, ``scrape_duration_seconds`` and ``scrape_samples_scraped`` as
MetricSampleBatch messages (origin ``scrape``): the store and the evaluator read them from the
bus like pushed ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

import aiohttp
from hms_kit import Clock
from hms_ops.errors import InvalidObject
from hms_ops.samples import Encoder, Pending, micros
from nats.js import JetStreamContext

from .exposition import ExpositionError, Parsed, Target, parse
from .metrics import CollectorMetrics

log = logging.getLogger(__name__)

ACCEPT = "text/plain;version=0.0.4;q=1,*/*;q=0.1"
#: samples per published batch
BATCH_SAMPLES = 1000
#: how long the publisher waits for JetStream's acks of one group before sending it again
ACK_TIMEOUT_S = 30.0
#: bodies above this are parsed in a thread, so the event loop keeps serving the others
THREAD_PARSE_BYTES = 64 * 1024

OnScrape = Callable[["ScrapeReport"], None]


class ScrapeError(Exception):
    """A scrape failed: the target did not answer well in time."""


@dataclass(frozen=True, slots=True)
class ScrapeReport:
    """How one scrape went (for the bench and tests)."""

    target: Target
    delay_s: float
    duration_s: float
    up: bool
    samples: int
    error: str = ""


async def fetch(session: aiohttp.ClientSession, target: Target) -> str:
    """The target's body as text; ScrapeError or TimeoutError when it cannot be had."""
    timeout = aiohttp.ClientTimeout(total=target.timeout_s)
    async with session.get(target.url, timeout=timeout, headers={"Accept": ACCEPT}) as resp:
        if resp.status != 200:
            raise ScrapeError(f"HTTP {resp.status}")
        if resp.content_length is not None and resp.content_length > target.body_limit:
            raise ScrapeError(f"body of {resp.content_length} bytes over {target.body_limit}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > target.body_limit:
                raise ScrapeError(f"body over {target.body_limit} bytes")
            chunks.append(chunk)
    try:
        return b"".join(chunks).decode()
    except UnicodeDecodeError as exc:
        raise ScrapeError(f"body is not UTF-8: {exc}") from None


#: one message: (subject, event id, body)
Message = tuple[str, str, bytes]


def encode(
    encoder: Encoder, parsed: Parsed, at_us: int, labels: dict[str, str], report: dict[str, float]
) -> list[Message]:
    """The scrape's samples, and its report series, as MetricSampleBatch messages of at most
    BATCH_SAMPLES samples (the SDK's encoder: each series validated once, then cached)."""
    pending: list[Pending] = []
    for name, lb, value, ts in parsed.samples:
        try:
            prefix, middle = encoder.series(name, "1", lb)
        except InvalidObject:
            parsed.refused["bad_labels"] += 1
            continue
        pending.append((prefix, middle, value, at_us if ts is None else ts * 1000))
    for name, value in report.items():
        prefix, middle = encoder.series(name, "1", labels)
        pending.append((prefix, middle, value, at_us))
    out: list[Message] = []
    for i in range(0, len(pending), BATCH_SAMPLES):
        event_id, body = encoder.encode(pending[i : i + BATCH_SAMPLES])
        out.append((encoder.subject, event_id, body))
    return out


class Publisher:
    """Publishes scraped batches from one task, pipelined, so that a scrape never waits for
    JetStream's acks (an fsync each): the scrape loop hands its batches over and goes on. When
    JetStream falls behind by ``max_pending`` batches, new ones are dropped and counted (a
    scrape is a sample of a moment; the next one comes); a refused publish is retried."""

    def __init__(
        self, js: JetStreamContext, metrics: CollectorMetrics, max_pending: int = 20_000
    ) -> None:
        self.js = js
        self.metrics = metrics
        self.queue: asyncio.Queue[Message] = asyncio.Queue(max_pending)
        self.dropped = 0

    def submit(self, batches: Iterable[Message]) -> None:
        for batch in batches:
            try:
                self.queue.put_nowait(batch)
            except asyncio.QueueFull:
                self.dropped += 1
                self.metrics.scrape_dropped.inc()

    async def run(self) -> None:
        while True:
            group = [await self.queue.get()]
            while not self.queue.empty() and len(group) < 1000:
                group.append(self.queue.get_nowait())
            while True:
                try:
                    await self._publish(group)
                    break
                except Exception as exc:  # NATS away or JetStream refusing: same ids, again
                    log.warning("%d scraped batches not published yet: %s", len(group), exc)
                    await asyncio.sleep(1.0)

    async def _publish(self, group: list[Message]) -> None:
        futures = [
            await self.js.publish_async(subject, body, headers={"Nats-Msg-Id": event_id})
            for subject, event_id, body in group
        ]
        async with asyncio.timeout(ACK_TIMEOUT_S):  # acks that never come: publish again
            await asyncio.gather(*futures)


class Scraper:
    """Keeps one task per target of this shard running, in step with the registry."""

    def __init__(
        self,
        js: JetStreamContext,
        clock: Clock,
        metrics: CollectorMetrics,
        *,
        shard_index: int = 0,
        shard_count: int = 1,
        max_labels: int = 32,
        on_scrape: OnScrape | None = None,
    ) -> None:
        self.js = js
        self.clock = clock
        self.metrics = metrics
        self.shard_index = shard_index
        self.shard_count = shard_count
        self.max_labels = max_labels
        self.on_scrape = on_scrape
        self.tasks: dict[str, tuple[Target, asyncio.Task[None]]] = {}
        self.encoders: dict[str, Encoder] = {}
        self._up: dict[str, bool] = {}
        self.publisher = Publisher(js, metrics)
        self._publishing: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
                auto_decompress=True,
            )
        return self._session

    def sync(self, targets: Iterable[Target]) -> None:
        """Start the targets that are new or changed, stop those that went."""
        if self._publishing is None:
            self._publishing = asyncio.ensure_future(self.publisher.run())
        wanted = {t.key: t for t in targets if t.shard(self.shard_count) == self.shard_index}
        for key, (target, task) in list(self.tasks.items()):
            if wanted.get(key) != target:
                task.cancel()
                del self.tasks[key]
                self.encoders.pop(key, None)
                self._up.pop(key, None)
        for key, target in wanted.items():
            if key not in self.tasks:
                task = asyncio.ensure_future(self._run_target(target))
                self.tasks[key] = (target, task)
        self.metrics.targets.set(len(self.tasks))

    async def run(
        self, targets: Callable[[], Sequence[Target]], changed: Callable[[], Awaitable[None]]
    ) -> None:
        """Follow the targets until cancelled (``changed`` returns when they may have)."""
        try:
            while True:
                self.sync(targets())
                with contextlib.suppress(TimeoutError):
                    await changed()
        finally:
            await self.stop()

    async def stop(self) -> None:
        tasks = [task for _, task in self.tasks.values()]
        if self._publishing is not None:
            tasks.append(self._publishing)
            self._publishing = None
        self.tasks.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def first_slot(self, target: Target, now: float) -> float:
        """The first slot at or after ``now``: slots sit at a fixed offset within the interval,
        taken from a hash of the target, so the targets' scrapes are spread over it."""
        interval = target.interval_s
        offset = (target.shard(1_000_003) / 1_000_003) * interval
        return math.ceil((now - offset) / interval) * interval + offset

    async def _run_target(self, target: Target) -> None:
        clock = self.clock
        slot = self.first_slot(target, clock.monotonic())
        while True:
            wait = slot - clock.monotonic()
            if wait > 0:
                await clock.sleep(wait)
            try:
                await self.scrape(target, slot)
            except asyncio.CancelledError:
                raise
            except Exception:  # never let one target's surprise end its task
                log.exception("scrape of %s failed unexpectedly", target.key)
            slot += target.interval_s
            now = clock.monotonic()
            if slot < now:  # missed slots are skipped, not bunched up
                slot = self.first_slot(target, now)

    async def scrape(self, target: Target, slot: float) -> ScrapeReport:
        """Scrape once, publish what it gave, and say how it went."""
        started = self.clock.monotonic()
        at = self.clock.now()
        delay = max(0.0, started - slot)
        self.metrics.scrape_delay.observe(delay)
        error = ""
        try:
            body = await fetch(self.session(), target)
            if len(body) > THREAD_PARSE_BYTES:
                parsed = await asyncio.to_thread(parse, body, target, max_labels=self.max_labels)
            else:
                parsed = parse(body, target, max_labels=self.max_labels)
        except (ScrapeError, ExpositionError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = str(exc) or type(exc).__name__
            parsed = Parsed()
            if isinstance(exc, ExpositionError):
                self.metrics.rejected_batches.labels(reason="malformed").inc()
        duration = self.clock.monotonic() - started
        up = not error
        self.metrics.scrapes.labels(outcome="ok" if up else "failed").inc()
        for reason, n in parsed.refused.items():
            self.metrics.rejected_samples.labels(reason=reason).inc(n)
        if self._up.get(target.key) != up:  # say so when a target goes down or comes back
            if error:
                log.warning("scrape of %s (%s) failed: %s", target.key, target.url, error)
            elif target.key in self._up:
                log.info("scrape of %s (%s) works again", target.key, target.url)
            self._up[target.key] = up
        report = {
            "up": 1.0 if up else 0.0,
            "scrape_duration_seconds": duration,
            "scrape_samples_scraped": float(parsed.scraped),
        }
        encoder = self.encoders.get(target.key)
        if encoder is None:
            encoder = self.encoders[target.key] = Encoder(
                target.namespace, target.source, origin="scrape"
            )
        labels = target.target_labels()
        self.publisher.submit(encode(encoder, parsed, micros(at), labels, report))
        result = ScrapeReport(target, delay, duration, up, len(parsed.samples), error)
        if self.on_scrape is not None:
            self.on_scrape(result)
        return result
