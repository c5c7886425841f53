"""``hms-ops metrics push | query`` against a stack's NATS with authorization and the collector
running as its own least-privilege user: a pushed sample comes back from a query, a series
with a TTL expires, and a missing collector or a bad query says so in one line."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hms_kit import env_prefix
from hms_ops.state import StatePaths, read_credentials, read_stack_file
from hms_testing import ServiceLauncher, wait_until
from hms_testing.stacks import hms_ops_in, provisioned_state

NS = "usds_unemployment"
PREFIX = env_prefix("metrics-collector")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[StatePaths]:
    with provisioned_state(tmp_path / "state") as paths:
        yield paths


async def cli(paths: StatePaths, *args: str) -> tuple[int, str, str]:
    done = await asyncio.to_thread(hms_ops_in, paths, "metrics", *args)
    return done.returncode, done.stdout, done.stderr


@pytest.mark.slow
async def test_a_pushed_sample_is_queried_back_through_the_collector(
    stack: StatePaths, tmp_path: Path
) -> None:
    code, _, err = await cli(stack, "query", "api.latency_ms", "-n", NS)
    assert code == 1
    assert "no metrics-collector answered" in err
    stack_info = read_stack_file(stack)
    assert stack_info is not None
    launcher = ServiceLauncher(tmp_path / "services", stack_info["nats_url"])
    try:
        await launcher(
            "hms_metrics_collector",
            env={
                PREFIX + "NATS_USER": "hms-metrics-collector",
                PREFIX + "NATS_PASSWORD": read_credentials(stack)["metrics-collector"],
                PREFIX + "SCRAPE": "false",
            },
            timeout=30,
        )
        code, out, err = await cli(
            stack,
            "push",
            "api.latency_ms",
            "183",
            "-l",
            "route=/claims",
            "--unit",
            "ms",
            "-n",
            NS,
        )
        assert code == 0, err
        assert out.strip() == f"pushed api.latency_ms=183 to ops.metric.{NS}.cli"
        await cli(stack, "push", "deploy.version", "142", "--ttl", "2s", "-n", NS)

        async def answered() -> dict[str, Any] | None:
            code, out, _ = await cli(
                stack,
                "query",
                'api.latency_ms{route="/claims"}',
                "--range",
                "5m",
                "--step",
                "1m",
                "--fn",
                "max",
                "-n",
                NS,
                "--json",
            )
            return json.loads(out) if code == 0 and json.loads(out)["series"] else None

        result = await wait_until(answered, timeout=30, message="the pushed sample queried")
        [series] = result["series"]
        assert series["labels"] == {"route": "/claims"}
        assert [p["value"] for p in series["points"]] == [183.0]
        code, text, _ = await cli(stack, "query", "api.latency_ms", "-n", NS, "--range", "5m")
        assert code == 0
        assert text.splitlines()[0] == 'api.latency_ms{route="/claims"}'
        assert text.splitlines()[1].endswith("  183")

        async def expired() -> bool:
            code, text, _ = await cli(stack, "query", "deploy.version", "-n", NS)
            return code == 0 and text.strip() == "no samples"

        await wait_until(expired, timeout=30, message="the pushed series expired")
        code, _, err = await cli(stack, "query", "api.latency_ms{x=~'a'}", "-n", NS)
        assert code == 1
        assert "label matchers" in err
        code, _, err = await cli(stack, "query", "api.latency_ms", "--fn", "eval", "-n", NS)
        assert code == 2
        assert "--fn" in err
    finally:
        launcher.close()
