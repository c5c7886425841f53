"""The SDK's public surface is deliberate (the client API arrives with its own issue)."""

from __future__ import annotations

import hms_ops


def test_sdk_exports_its_version() -> None:
    assert hms_ops.__all__ == ["__version__"]
    assert hms_ops.__version__ == "0.1.0"
