"""The console's errors: each becomes one HTTP status with a message that says what and where."""

from __future__ import annotations


class ConsoleError(Exception):
    """Something the console could not do."""

    status = 500


class NobodyAnswers(ConsoleError):
    """No service listens for this command yet."""

    status = 503


class AnswerTimedOut(ConsoleError):
    """The service that owns the command did not answer in time."""

    status = 504


class BadAnswer(ConsoleError):
    """The answer to a command was not a CommandReplied."""

    status = 502
