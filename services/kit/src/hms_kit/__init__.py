"""hms-ops service kit: what every service process needs, in one place."""

from .clock import Clock, FakeClock, SystemClock
from .configwatch import ConfigWatcher
from .consumer import BatchConsumer, Delivery
from .deadletter import dead_letter, describe_error
from .errors import DriftError, KitError, ProvisioningError, SubscriberError
from .fate import Deferred, Reject, Retry
from .leadership import Loop
from .lease import Lease
from .metrics import KitMetrics
from .provision import ensure_bucket, ensure_consumer, ensure_stream, provision, provision_shared
from .publish import publish, publish_many
from .service import Resources, Service, run_service
from .settings import ServiceSettings, env_prefix, settings_config
from .subscribe import durable_subscriber

__all__ = [
    "BatchConsumer",
    "Clock",
    "ConfigWatcher",
    "Deferred",
    "Delivery",
    "DriftError",
    "FakeClock",
    "KitError",
    "KitMetrics",
    "Lease",
    "Loop",
    "ProvisioningError",
    "Reject",
    "Resources",
    "Retry",
    "Service",
    "ServiceSettings",
    "SubscriberError",
    "SystemClock",
    "dead_letter",
    "describe_error",
    "durable_subscriber",
    "ensure_bucket",
    "ensure_consumer",
    "ensure_stream",
    "env_prefix",
    "provision",
    "provision_shared",
    "publish",
    "publish_many",
    "run_service",
    "settings_config",
]
