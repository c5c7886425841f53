"""The SDK's public surface is deliberate: the client, its declarations and its errors."""

from __future__ import annotations

import hms_ops
from hms_ops import errors


def test_sdk_exports_exactly_its_public_names() -> None:
    assert hms_ops.__all__ == [
        "NOC",
        "Alert",
        "AsyncNOC",
        "ConflictError",
        "ConnectError",
        "HmsOpsError",
        "InvalidObject",
        "Metric",
        "PermissionDenied",
        "Playbook",
        "StackError",
        "__version__",
    ]


def test_sdk_errors_form_one_hierarchy_with_one_line_docstrings() -> None:
    for cls in (
        errors.StackError,
        errors.StackNotAnswering,
        errors.ConnectError,
        errors.PermissionDenied,
        errors.InvalidObject,
        errors.ConflictError,
    ):
        assert issubclass(cls, errors.HmsOpsError)
        assert cls.__doc__
        assert "\n" not in cls.__doc__.strip()
