"""Answering metric queries: a MetricQuery sent as a request on ``ops.query.metrics.<ns>`` gets
a MetricQueryResult (the namespace is the subject's: a namespace's client asks about its own
metrics only). A bad query, or a store that fails, gets a result with the error: the asker is
never left to time out."""

from __future__ import annotations

import logging
from datetime import datetime

from hms_contracts.metrics import MetricQuery, MetricQueryResult
from hms_kit import describe_error
from pydantic import ValidationError

from .core import QueryError
from .ports import SampleStore

log = logging.getLogger(__name__)

#: the largest query body read
MAX_QUERY_BYTES = 64 * 1024
#: the largest answer sent (nats-server's default max_payload)
MAX_ANSWER_BYTES = 1024 * 1024


async def result(
    store: SampleStore, namespace: str, data: bytes, now: datetime
) -> MetricQueryResult:
    """The answer to one query body."""
    if len(data) > MAX_QUERY_BYTES:
        return MetricQueryResult(error=f"query of {len(data)} bytes; at most {MAX_QUERY_BYTES}")
    try:
        query = MetricQuery.model_validate_json(data)
        series = await store.query(namespace, query, now)
    except ValidationError as exc:
        return MetricQueryResult(error=describe_error(exc))
    except QueryError as exc:
        return MetricQueryResult(error=str(exc))
    except Exception as exc:  # the store or its backend failed: say so
        log.exception("query in %s failed", namespace)
        return MetricQueryResult(error=f"the store could not answer: {exc}")
    return MetricQueryResult(series=tuple(series))


def encode(answer: MetricQueryResult, limit: int = MAX_ANSWER_BYTES) -> bytes:
    """The answer's body, or an error saying it is too large to send."""
    body = answer.model_dump_json().encode()
    if len(body) <= limit:
        return body
    return (
        MetricQueryResult(
            error=f"the answer has {len(body)} bytes, over {limit}; narrow the series or use a "
            "larger step"
        )
        .model_dump_json()
        .encode()
    )
