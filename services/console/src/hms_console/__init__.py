"""hms-ops console: HTTP API and compliance dashboard, with roles and namespaces."""

from importlib.metadata import version

__version__ = version("hms-console")

__all__ = ["__version__"]
