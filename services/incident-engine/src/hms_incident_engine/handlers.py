"""Subscribers of the incident-engine: thin ``on_<event>`` functions that call ``core``."""

from __future__ import annotations

from faststream.nats import NatsRouter

router = NatsRouter()
