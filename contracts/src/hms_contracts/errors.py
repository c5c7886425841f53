"""Errors of the contracts. Each says what is wrong and where."""


class ContractError(ValueError):
    """Base of every contracts error (a ValueError, so pydantic reports it as a field error)."""


class SubjectError(ContractError):
    """A subject part is not a valid NATS subject token, or no event lives on a subject."""
