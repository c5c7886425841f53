"""hms-ops autoscaler: Adds and removes workers by queue depth through a backend (local processes,
containers, Kubernetes).
"""

from importlib.metadata import version

__version__ = version("hms-autoscaler")

__all__ = ["__version__"]
