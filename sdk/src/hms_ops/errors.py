"""Errors of the hms-ops command line; each message says what went wrong and what to do."""

from __future__ import annotations


class StackError(Exception):
    """The embedded stack could not start or be reached; the message says why and what to do."""
