"""The replica count is a setting: specs take it, provisioning passes it through, and a stream
or bucket that exists with another count is reported, never changed silently."""

from __future__ import annotations

import pytest
from hms_contracts import specs
from hms_kit import ServiceSettings, provision
from hms_kit.errors import DriftError
from nats.js import JetStreamContext
from pydantic import ValidationError


def test_specs_take_a_replica_count_from_settings() -> None:
    assert specs.with_replicas(specs.JOB_RUNS, 3).replicas == 3
    assert specs.with_replicas(specs.LEASES, 3).replicas == 3
    assert specs.JOB_RUNS.replicas == 1  # the catalogue itself is one server's
    with pytest.raises(ValueError, match="between 1 and 5"):
        specs.with_replicas(specs.JOB_RUNS, 0)
    assert ServiceSettings(stream_replicas=3).stream_replicas == 3
    with pytest.raises(ValidationError):
        ServiceSettings(stream_replicas=7)


async def test_an_existing_stream_or_bucket_with_another_count_is_drift(
    js: JetStreamContext,
) -> None:
    await provision(js, streams=[specs.ALERTS], buckets=[specs.LEASES])
    with pytest.raises(DriftError, match="num_replicas is 1 on the server, the spec says 3"):
        await provision(js, streams=[specs.ALERTS], replicas=3)
    with pytest.raises(DriftError, match="replicas is 1 on the server, the spec says 3"):
        await provision(js, buckets=[specs.LEASES], replicas=3)
    outcomes = await provision(js, streams=[specs.ALERTS], buckets=[specs.LEASES], replicas=1)
    assert set(outcomes.values()) == {"unchanged"}
