"""hms-ops worker-pool: Pulls runs from durable JetStream work queues, reports progress, retries,
dead-letters.
"""

from importlib.metadata import version

__version__ = version("hms-worker-pool")

__all__ = ["__version__"]
