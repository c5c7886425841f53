"""hms-ops evaluator: Evaluates alert rules, SLOs and job deadlines; emits alerts and sla.breach."""

from importlib.metadata import version

__version__ = version("hms-evaluator")

__all__ = ["__version__"]
