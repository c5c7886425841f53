"""The evaluator's decisions as pure functions and in-memory structures, without I/O: whether
promises hold.

- :mod:`.windows`: streaming windows per series and their aggregations;
- :mod:`.states`: the alert state machine (inactive, pending, firing, resolved);
- :mod:`.rules`: alert rules bound to the series they watch;
- :mod:`.slo`: SLO budgets, burn rates and the compliance badge;
- :mod:`.deadlines`: expected job runs and the breaches of their deadlines.
"""

from __future__ import annotations

SERVICE = "evaluator"
