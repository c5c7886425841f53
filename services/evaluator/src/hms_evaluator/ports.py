"""The evaluator's I/O, behind small protocols: where its config comes from and the ledger."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from hms_contracts.config import Alert, Job, Slo


class ConfigSource(Protocol):
    """The rules, SLOs and jobs to follow now (the config registry's kinds)."""

    def alerts(self) -> Sequence[Alert]: ...

    def slos(self) -> Sequence[Slo]: ...

    def jobs(self) -> Sequence[Job]: ...
