"""Errors of the SDK and its commands. Each says what went wrong and what to do."""


class HmsOpsError(Exception):
    """Base of every error the SDK and the ``hms-ops`` commands raise."""


class StackError(HmsOpsError):
    """A local stack is missing, unreachable or could not start."""
