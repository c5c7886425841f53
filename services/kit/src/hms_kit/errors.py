"""Errors of the service kit. Each says what went wrong and where."""


class KitError(Exception):
    """Base of every service-kit error."""


class ProvisioningError(KitError):
    """A stream, consumer or bucket could not be provisioned."""


class DriftError(ProvisioningError):
    """An existing stream, consumer or bucket differs from its contract spec."""


class SubscriberError(KitError):
    """A durable subscriber's handlers do not match the event types its consumer carries."""


class TlsError(KitError):
    """A TLS setting names a file that is missing or not a usable certificate or key."""
