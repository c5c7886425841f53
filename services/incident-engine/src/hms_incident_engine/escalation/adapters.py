"""Where escalation finds policies and schedules: the config registry, or a fixed list."""

from __future__ import annotations

from collections.abc import Iterable

from hms_contracts.config import ConfigObject, EscalationPolicy, OncallSchedule
from hms_kit import Service


class WatchedDirectory:
    """The policies and schedules the service's config watcher holds (kinds
    ``escalation_policy`` and ``oncall_schedule``), current on every look-up."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def policy(self, namespace: str, name: str) -> EscalationPolicy | None:
        found = self.service.config.get("escalation_policy", namespace, name)
        return found if isinstance(found, EscalationPolicy) else None

    def schedule(self, namespace: str, name: str) -> OncallSchedule | None:
        found = self.service.config.get("oncall_schedule", namespace, name)
        return found if isinstance(found, OncallSchedule) else None


class StaticDirectory:
    """A fixed, replaceable set of objects (tests, benchmarks)."""

    def __init__(self, objects: Iterable[ConfigObject] = ()) -> None:
        self.objects = {o.key(): o for o in objects}

    def put(self, obj: ConfigObject) -> None:
        self.objects[obj.key()] = obj

    def policy(self, namespace: str, name: str) -> EscalationPolicy | None:
        found = self.objects.get(f"{namespace}.escalation_policy.{name}")
        return found if isinstance(found, EscalationPolicy) else None

    def schedule(self, namespace: str, name: str) -> OncallSchedule | None:
        found = self.objects.get(f"{namespace}.oncall_schedule.{name}")
        return found if isinstance(found, OncallSchedule) else None
