"""hms-ops scheduler: Schedules cron jobs declared in YAML and tracks every expected run."""

from importlib.metadata import version

__version__ = version("hms-scheduler")

__all__ = ["__version__"]
