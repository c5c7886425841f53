"""hms-ops SDK and CLI."""

from importlib.metadata import version

__version__ = version("hms-ops")

__all__ = ["__version__"]
