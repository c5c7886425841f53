"""Errors of the SDK and its commands. Each says what went wrong and what to do."""


class HmsOpsError(Exception):
    """Base of every error the SDK and the ``hms-ops`` commands raise."""


class StackError(HmsOpsError):
    """A local stack is missing, unreachable or could not start."""


class ConnectError(HmsOpsError):
    """No connection to the bus: nothing listening, bad credentials, or an unknown namespace."""


class PermissionDenied(HmsOpsError):
    """The bus refused an operation outside what this client may do."""


class InvalidObject(HmsOpsError):
    """A config object or document is invalid; the message names the file, line and field."""


class ConflictError(HmsOpsError):
    """An object changed while it was being written; read it again and retry."""


class StackNotAnswering(StackError):
    """The stack's NATS accepted the connection but did not answer in time (hung)."""
