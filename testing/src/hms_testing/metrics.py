"""Reading a service's Prometheus exposition in tests."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def metric_value(text: str, sample: str) -> float:
    """Sum of every sample named ``sample`` (all label sets) in Prometheus text; 0 if absent."""
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == sample
    )
