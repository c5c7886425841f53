"""hms-ops incident-engine: Opens incidents, runs playbooks, escalates, keeps the tamper-evident
audit log.
"""

from importlib.metadata import version

__version__ = version("hms-incident-engine")

__all__ = ["__version__"]
