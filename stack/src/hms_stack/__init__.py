"""hms-ops embedded stack: ``hms-ops up`` runs nats-server and every service, supervised."""

from .errors import NatsServerError, StackError
from .stack import Stack, UpOptions, run_up

__all__ = ["NatsServerError", "Stack", "StackError", "UpOptions", "run_up"]
