"""Errors of escalation. Each says what went wrong and where."""


class EscalationError(Exception):
    """Base of every escalation error."""


class InvalidMessage(EscalationError):
    """A notification cannot be sent as asked (a line break in a header, a bad address)."""


class DeliveryFailed(EscalationError):
    """The SMTP server did not accept a message; ``permanent`` when retrying cannot help."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.permanent = permanent


class LinkRefused(EscalationError):
    """An acknowledge link is forged, expired or already used; ``status`` is the HTTP answer."""

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.status = status
