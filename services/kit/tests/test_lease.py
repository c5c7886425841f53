"""The lease: one holder, compare-and-swap renewal, failover when it lapses or is released."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from hms_contracts.specs import KVSpec
from hms_kit import Lease, ensure_bucket
from hms_testing import wait_until
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

TEST_LEASES = KVSpec(bucket="test_leases", ttl_s=1.0)


async def lease_bucket(js: JetStreamContext) -> KeyValue:
    await ensure_bucket(js, TEST_LEASES)
    return await js.key_value(TEST_LEASES.bucket)


async def test_lease_allows_one_holder_and_fails_over_when_it_lapses(
    js: JetStreamContext,
) -> None:
    kv = await lease_bucket(js)
    old, standby = Lease(kv, "evaluator", "old"), Lease(kv, "evaluator", "standby")
    assert await old.try_acquire()
    assert not await standby.try_acquire()
    assert await old.try_acquire(), "the holder renews by compare-and-swap"
    assert await standby.holder_now() == "old"

    renewed_at = time.monotonic()  # from here on the old holder is silent
    await wait_until(
        standby.try_acquire, timeout=TEST_LEASES.ttl_s + 2, interval=0.05, message="failover"
    )
    assert time.monotonic() - renewed_at >= TEST_LEASES.ttl_s * 0.8, "taken before it lapsed"
    assert await old.holder_now() == "standby"

    assert not await old.try_acquire(), "a stale renewal must not win over the successor"
    assert not old.held
    assert await standby.try_acquire()
    assert await standby.holder_now() == "standby"


async def test_released_lease_is_taken_over_at_once(js: JetStreamContext) -> None:
    kv = await lease_bucket(js)
    leader, standby = Lease(kv, "scheduler", "leader"), Lease(kv, "scheduler", "standby")
    assert await leader.try_acquire()
    assert not await standby.try_acquire()

    await leader.release()

    assert not leader.held
    assert await standby.try_acquire()
    assert await leader.holder_now() == "standby"
    assert not await leader.try_acquire()


async def test_release_after_the_lease_moved_on_leaves_the_successor_holding_it(
    js: JetStreamContext,
) -> None:
    kv = await lease_bucket(js)
    stalled, successor = Lease(kv, "evaluator", "stalled"), Lease(kv, "evaluator", "successor")
    third = Lease(kv, "evaluator", "third")
    assert await stalled.try_acquire()
    # the holder stalls past the TTL; the successor takes the lapsed lease
    await wait_until(
        successor.try_acquire, timeout=TEST_LEASES.ttl_s + 2, interval=0.05, message="failover"
    )

    await stalled.release()  # shutting down, it still believes it holds the lease

    assert not stalled.held
    assert await successor.holder_now() == "successor"
    assert not await third.try_acquire(), "a third instance must not lead alongside"
    assert await successor.try_acquire(), "the successor renews as before"


class StallingLease(Lease):
    """A lease whose renewals hang once ``stall`` is set, as a frozen or partitioned holder's do."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stall = asyncio.Event()

    async def try_acquire(self) -> bool:
        if self.stall.is_set():
            await asyncio.Event().wait()  # the renewal never comes back
        return await super().try_acquire()


async def test_a_leader_whose_renewals_stall_stands_down_before_a_successor_can_take_over(
    js: JetStreamContext,
) -> None:
    kv = await lease_bucket(js)
    leader = StallingLease(kv, "evaluator", "leader", ttl_s=TEST_LEASES.ttl_s)
    standby = Lease(kv, "evaluator", "standby", ttl_s=TEST_LEASES.ttl_s)
    changes: list[tuple[bool, float]] = []

    async def on_change(leading: bool) -> None:
        changes.append((leading, time.monotonic()))

    keeper = asyncio.create_task(leader.keep(TEST_LEASES.ttl_s / 5, on_change))
    try:
        await wait_until(lambda: changes, timeout=5, message="the leader leads")
        assert await leader.confirm()
        token = leader.fencing_token
        assert token is not None

        leader.stall.set()  # from here on its renewals hang
        await wait_until(
            standby.try_acquire, timeout=TEST_LEASES.ttl_s + 2, interval=0.02, message="failover"
        )
        taken_over_at = time.monotonic()

        assert [leading for leading, _ in changes] == [True, False], "it stood down"
        assert changes[-1][1] <= taken_over_at, "before the successor could take over"
        assert not leader.held
        assert leader.fencing_token is None
        assert not await leader.confirm()
        assert standby.fencing_token is not None
        assert standby.fencing_token > token
        assert await standby.confirm()
    finally:
        keeper.cancel()


async def test_confirm_says_not_held_once_the_lease_moved_on_without_our_knowing(
    js: JetStreamContext,
) -> None:
    kv = await lease_bucket(js)
    frozen = Lease(kv, "scheduler", "frozen", ttl_s=60.0)  # believes in a long lease
    assert await frozen.try_acquire()
    await kv.delete("scheduler")  # an operator removes it; someone else takes it
    assert await Lease(kv, "scheduler", "other").try_acquire()

    assert frozen.held, "locally it still looks held"
    assert not await frozen.confirm(), "the bucket says otherwise"
    assert not frozen.held
