"""hms-ops metrics-collector: Scrapes Prometheus /metrics endpoints and takes samples pushed by the
SDK.
"""

from importlib.metadata import version

__version__ = version("hms-metrics-collector")

__all__ = ["__version__"]
