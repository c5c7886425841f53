"""Builds the metrics-collector service: its settings, resources and loops, and nothing else."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from hms_contracts import SYSTEM_NAMESPACE, specs
from hms_kit import BatchConsumer, Clock, Loop, Resources, Service, SystemClock

from . import __version__
from .core import SERVICE
from .exposition import Target, targets_from
from .handlers import router
from .ingest import IncomingBatch, Ingest, Limits
from .metrics import CollectorMetrics
from .ports import SampleStore
from .remote import PrometheusStore
from .scraper import OnScrape, Scraper
from .settings import MetricsCollectorSettings
from .store import STORE_FILE, Retention, SqliteStore

log = logging.getLogger(__name__)

#: how often the scrape loop re-reads its targets without being told of a change
RESYNC_S = 30.0


def _settings(service: Service) -> MetricsCollectorSettings:
    if not isinstance(service.settings, MetricsCollectorSettings):
        raise TypeError(f"the metrics-collector needs its settings, not {service.settings!r}")
    return service.settings


def resources_with(clock: Clock | None = None, store: SampleStore | None = None) -> Resources:
    """The collector's resources, with the clock or the store replaced (tests)."""

    @asynccontextmanager
    async def opened(service: Service) -> AsyncIterator[Mapping[str, object]]:
        settings = _settings(service)
        retention = Retention(raw_s=settings.raw_retention_s, rollup_s=settings.retention_s)
        # opened on first use, so that building the service touches no file
        local = SqliteStore(settings.state_dir / STORE_FILE, retention)
        own: SampleStore = store or (
            local
            if settings.prometheus_url is None
            else PrometheusStore(local, settings.prometheus_url)
        )
        try:
            yield {
                "clock": clock or SystemClock(),
                "store": own,
                "metrics": CollectorMetrics(service.metrics.registry),
            }
        finally:
            await own.close()

    return opened


resources = resources_with()
"""What the handlers and loops use, opened once per process and closed after them: the clock,
the sample store (SQLite in the state directory) and the collector's metrics."""


def known_namespaces(service: Service) -> frozenset[str] | None:
    """The namespaces whose samples are taken, or None for every one."""
    accepted = _settings(service).accepted_namespaces()
    if not accepted:
        return None
    registered = {o.namespace for o in service.config.current.values()}
    return accepted | registered | {SYSTEM_NAMESPACE}


async def store_samples(service: Service) -> None:
    """Consume the ``metrics_collector`` durable into the store, acking after each commit."""
    settings, context = _settings(service), service.broker.context

    cached: tuple[float, frozenset[str] | None] = (-1.0, None)

    def known(namespace: str) -> bool:
        nonlocal cached
        # the registry's namespaces, re-read at most once a second (this is the hot path)
        if time.monotonic() - cached[0] > 1.0:
            cached = (time.monotonic(), known_namespaces(service))
        names = cached[1]
        return names is None or namespace in names

    ingest = Ingest(
        service.nc,
        context.get("store"),
        Limits(
            max_batch_samples=settings.max_batch_samples,
            max_series_per_namespace=settings.max_series_per_namespace,
            max_labels=settings.max_labels,
        ),
        known,
        context.get("metrics"),
        service.metrics,
    )
    consumer = BatchConsumer.for_service(
        service, specs.METRICS_STORE, IncomingBatch, ingest.handle, batch=settings.fetch_batch
    )
    await consumer.run()


async def prune(service: Service) -> None:
    """Drop what retention and TTLs say is gone, every ``prune_every_s``."""
    settings, context = _settings(service), service.broker.context
    store: SampleStore = context.get("store")
    clock: Clock = context.get("clock")
    while True:
        try:
            gone = await store.prune(clock.now())
            if gone:
                log.info("pruned %d series (expired or past retention)", gone)
        except Exception:  # the next round tries again; storing goes on meanwhile
            log.exception("pruning the sample store failed")
        await clock.sleep(settings.prune_every_s)


def scrape_with(on_scrape: OnScrape | None = None) -> Loop:
    async def scrape(service: Service) -> None:
        """Scrape this shard's targets, following the registry."""
        settings, context = _settings(service), service.broker.context
        scraper = Scraper(
            service.js,
            context.get("clock"),
            context.get("metrics"),
            shard_index=settings.shard_index,
            shard_count=settings.shard_count,
            max_labels=settings.max_labels,
            on_scrape=on_scrape,
        )

        def targets() -> list[Target]:
            return targets_from(service.config.current.values())

        async def changed() -> None:
            await service.config.changed(timeout=RESYNC_S)

        await scraper.run(targets, changed)

    return scrape


def create_service(
    settings: MetricsCollectorSettings | None = None,
    *,
    clock: Clock | None = None,
    store: SampleStore | None = None,
    on_scrape: OnScrape | None = None,
) -> Service:
    """The metrics-collector process: broker, app (its handler answers queries), resources,
    health, heartbeat; its loops store samples, prune, and scrape (unless turned off)."""
    settings = settings or MetricsCollectorSettings()
    loops: list[Loop] = [store_samples, prune]
    if settings.scrape:
        loops.append(scrape_with(on_scrape))
    return Service(
        SERVICE,
        settings,
        version=__version__,
        routers=(router,),
        resources=resources_with(clock, store),
        loops=loops,
    )
