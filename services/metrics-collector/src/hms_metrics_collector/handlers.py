"""Subscribers of the metrics-collector: thin ``on_<event>`` functions that call ``core``."""

from __future__ import annotations

from faststream.nats import NatsRouter

router = NatsRouter()
