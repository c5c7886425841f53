"""Fixtures of the collector's tests: a collector running in the test's loop, and queries over
the bus as the CLI and the console send them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from hms_contracts import subjects
from hms_contracts.metrics import MetricQuery, MetricQueryResult
from hms_kit import Clock, Service
from hms_metrics_collector.app import create_service
from hms_metrics_collector.ports import SampleStore
from hms_metrics_collector.scraper import OnScrape
from hms_metrics_collector.settings import MetricsCollectorSettings
from hms_testing import NatsHandle, running
from nats.aio.client import Client

NS = "usds_unemployment"


Collector = Callable[..., AbstractAsyncContextManager[Service]]
Ask = Callable[..., Awaitable[MetricQueryResult]]


@pytest.fixture
def collector(nats_server: NatsHandle, tmp_path: Path) -> Collector:
    """``async with collector(**settings) as service``: the collector, in this test's loop
    (``clock=``, ``on_scrape=`` and ``store=`` are passed to ``create_service``)."""

    @asynccontextmanager
    async def start(
        *,
        clock: Clock | None = None,
        on_scrape: OnScrape | None = None,
        store: SampleStore | None = None,
        **settings: Any,
    ) -> AsyncIterator[Service]:
        config = MetricsCollectorSettings(
            nats_url=nats_server.url,
            state_dir=tmp_path / "collector",
            heartbeat_interval_s=60,
            **settings,
        )
        service = create_service(config, clock=clock, on_scrape=on_scrape, store=store)
        async with running(service):
            yield service

    return start


@pytest.fixture
def ask(nc: Client) -> Ask:
    """``await ask(namespace, series=..., fn=...)``: a query over the bus."""

    async def send(namespace: str = NS, **query: Any) -> MetricQueryResult:
        body = MetricQuery.model_validate(query).model_dump_json().encode()
        reply = await nc.request(subjects.QUERY_METRICS.subject(namespace), body, timeout=10)
        return MetricQueryResult.model_validate_json(reply.data)

    return send
