"""The kit's public surface is deliberate: everything exported is listed, and nothing else."""

from __future__ import annotations

import hms_kit


def test_kit_exports_exactly_its_public_names() -> None:
    assert sorted(hms_kit.__all__) == [
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
    aliases = {"Loop", "Resources"}  # type aliases of callables, defined in the kit
    for name in set(hms_kit.__all__) - aliases:
        assert getattr(hms_kit, name).__module__.startswith("hms_kit"), name


def test_kit_errors_form_one_hierarchy_with_one_line_docstrings() -> None:
    for cls in (
        hms_kit.DriftError,
        hms_kit.ProvisioningError,
        hms_kit.SubscriberError,
    ):
        assert issubclass(cls, hms_kit.KitError)
        assert cls.__doc__
        assert "\n" not in cls.__doc__.strip()
    assert issubclass(hms_kit.DriftError, hms_kit.ProvisioningError)
