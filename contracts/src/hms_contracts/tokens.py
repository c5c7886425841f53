"""The one rule for subject tokens and namespaces, used by subjects, fields and events.

A namespace is a subject token too (``<family>.<namespace>.<rest>``), with a stricter form so
that it reads well in NATS permissions, KV keys and file names.
"""

from __future__ import annotations

import re

from .errors import SubjectError

NAMESPACE_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
"""Lower-case letters, digits and '_', starting with a letter, at most 63 characters."""

TOKEN_PART = r"[A-Za-z0-9_\-]{1,64}"  # noqa: S105 - a pattern, not a password
"""The regular expression of one token, unanchored, to build longer patterns from."""

TOKEN_PATTERN = f"^{TOKEN_PART}$"
"""One subject token after the namespace: letters, digits, '_' and '-', 1-64 characters."""

_NAMESPACE = re.compile(NAMESPACE_PATTERN)
_TOKEN = re.compile(TOKEN_PATTERN)


def check_namespace(value: str) -> str:
    """``value`` if it is a valid namespace; SubjectError (a ValueError) saying why not."""
    if not _NAMESPACE.fullmatch(value):
        raise SubjectError(
            f"namespace {value!r} must be lower-case letters, digits and '_', "
            "start with a letter and be at most 63 characters (it is a NATS subject token)"
        )
    return value


def check_tokens(rest: str, what: str) -> str:
    """``rest`` if every dot-separated token of it is valid; SubjectError naming ``what``."""
    for token in rest.split("."):
        if not _TOKEN.fullmatch(token):
            raise SubjectError(
                f"{what} {rest!r}: token {token!r} must be 1-64 characters of letters, "
                "digits, '_' or '-' (no spaces, '*' or '>')"
            )
    return rest


def check_token(value: str, what: str = "subject token") -> str:
    """``value`` if it is exactly one valid token (no '.')."""
    if "." in value:
        raise SubjectError(f"{what} {value!r} must be a single subject token (no '.')")
    return check_tokens(value, what)
