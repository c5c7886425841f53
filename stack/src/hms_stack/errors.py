"""Errors of the embedded stack. Each says what went wrong and what to do."""

from hms_ops.errors import StackError


class NatsServerError(StackError):
    """nats-server could not start, or what answers is not the server we expect."""


__all__ = ["NatsServerError", "StackError"]
