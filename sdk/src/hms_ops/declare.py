"""What an agency system declares: ``Metric``, ``Alert``, ``Playbook``, as the documents write them.

These are thin declarations: the namespace comes from the connection, so the contracts' config
objects (frozen, namespaced) are built at ``noc.register`` time. Each declaration is validated
at once by building that object with a stand-in namespace: one validation path, the contracts'
models, and an :class:`~hms_ops.errors.InvalidObject` naming the field where you wrote it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hms_contracts import config
from pydantic import ValidationError

from .errors import InvalidObject

_CHECK_NAMESPACE = "declared"  # stand-in until register() knows the connection's namespace


def build(kind: str, fields: Mapping[str, Any], namespace: str) -> config.ConfigObject:
    """The contracts' config object; InvalidObject naming the kind, the object and the field."""
    body = {k: v for k, v in fields.items() if v is not None}
    try:
        return config.parse_object({"kind": kind, **body}, namespace=namespace)
    except ValidationError as exc:
        name = body.get("name", "?")
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or kind}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidObject(f"{kind} {name!r}: {problems}") from None
    except ValueError as exc:
        raise InvalidObject(f"{kind} {body.get('name', '?')!r}: {exc}") from None


class Declaration:
    """A config object without its namespace yet."""

    kind: str

    def __init__(self, **fields: Any) -> None:
        self._fields = fields
        build(self.kind, fields, _CHECK_NAMESPACE)

    @property
    def name(self) -> str:
        return str(self._fields["name"])

    def objects(self, namespace: str) -> list[config.ConfigObject]:
        """The config objects that registering this declaration writes."""
        return [build(self.kind, self._fields, namespace)]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._fields.items() if v is not None)
        return f"{type(self).__name__}({args})"


class Metric(Declaration):
    """A metric: pushed with ``noc.observe`` (source ``push``) or scraped from a URL."""

    kind = "metric"

    def __init__(
        self,
        name: str,
        unit: str = "1",
        source: str = "push",
        *,
        scrape_interval: str | None = None,
        labels: Mapping[str, str] | None = None,
        description: str | None = None,
    ) -> None:
        super().__init__(
            name=name,
            unit=unit,
            source=source,
            scrape_interval=scrape_interval,
            labels=dict(labels) if labels else None,
            description=description,
        )


class Playbook(Declaration):
    """Ordered steps (``"kubectl rollout undo deploy/x"``, ``"notify oncall 'done'"``)."""

    kind = "playbook"

    def __init__(
        self, name: str | None = None, steps: Sequence[str] = (), *, description: str | None = None
    ) -> None:
        # an unnamed playbook takes the name of the alert it is attached to
        super().__init__(name=name or "unnamed", steps=list(steps), description=description)
        self._named = name is not None

    @classmethod
    def steps(cls, steps: Sequence[str], *, name: str | None = None) -> Playbook:
        """A playbook from its steps, as the documents write it: ``Playbook.steps([...])``."""
        return cls(name=name, steps=steps)

    def named(self, name: str) -> Playbook:
        """This playbook under ``name`` (an unnamed one keeps its steps)."""
        return Playbook(
            name=name, steps=self._fields["steps"], description=self._fields.get("description")
        )

    @property
    def is_named(self) -> bool:
        return self._named


class Alert(Declaration):
    """An alert rule: ``metric`` meets ``condition`` (``"> 1000"``) for ``window`` (``"5m"``).

    The keywords are the rule's other fields (``for_`` is the rule's ``for``): an
    ``aggregation`` over the window (``"p99"``, ``"avg"``, ``"rate"``, ...), ``keep_firing_for``,
    label ``matchers`` (``['route=~"/claims/.*"']``), ``labels``, ``no_data`` (``"ok"``,
    ``"alert"``, ``"keep_state"``), ``histogram``.
    """

    kind = "alert"

    def __init__(
        self,
        name: str,
        metric: str,
        condition: str,
        window: str = "1m",
        *,
        severity: str | None = None,
        description: str | None = None,
        aggregation: str | None = None,
        for_: str | None = None,
        keep_firing_for: str | None = None,
        matchers: Sequence[str] | Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        no_data: str | None = None,
        histogram: bool | None = None,
    ) -> None:
        super().__init__(
            name=name,
            metric=metric,
            condition=condition,
            window=window,
            severity=severity,
            description=description,
            aggregation=aggregation,
            keep_firing_for=keep_firing_for,
            matchers=(dict(matchers) if isinstance(matchers, Mapping) else list(matchers))
            if matchers
            else None,
            labels=dict(labels) if labels else None,
            no_data=no_data,
            histogram=histogram,
            **{"for": for_},
        )
        self.playbook: Playbook | None = None

    def set_playbook(self, playbook: Playbook) -> None:
        """Run ``playbook`` when the alert fires; registering the alert registers it too (an
        unnamed playbook is named after the alert)."""
        if not isinstance(playbook, Playbook):
            raise InvalidObject(
                f"alert {self.name!r}: set_playbook takes a Playbook, not {type(playbook).__name__}"
            )
        self.playbook = playbook if playbook.is_named else playbook.named(self.name)
        self._fields["playbook"] = self.playbook.name
        build(self.kind, self._fields, _CHECK_NAMESPACE)

    def objects(self, namespace: str) -> list[config.ConfigObject]:
        """The playbook first (the alert names it), then the alert."""
        pre = self.playbook.objects(namespace) if self.playbook else []
        return [*pre, *super().objects(namespace)]
