"""Error classes that say whether retrying may help; tasks map them to retries in one place."""

from __future__ import annotations

__all__ = ["ConfigurationError", "NonRetriableError", "RetriableError", "is_retriable"]


class ConfigurationError(ValueError):
    """Settings that cannot work (e.g. a worker without a broker); the message says which."""


class RetriableError(RuntimeError):
    """A transient fault (service unreachable, timeout): the task is retried with backoff."""


class NonRetriableError(RuntimeError):
    """Bad input or a bug: retrying gives the same result, so the task is dead-lettered."""


def is_retriable(exc: BaseException) -> bool:
    """True for faults worth retrying: RetriableError, storage errors marked retriable,
    database connection errors, and OS-level connection problems."""
    from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

    from shared.storage import StorageError

    if isinstance(exc, RetriableError):
        return True
    if isinstance(exc, StorageError):
        return exc.retriable
    if isinstance(exc, OperationalError | IntegrityError):
        # IntegrityError here is a lost race on a unique key (two deliveries of one
        # message); the retry re-reads the catalog and finds the winner's row.
        return True
    if isinstance(exc, DBAPIError):
        return bool(exc.connection_invalidated)
    return isinstance(exc, ConnectionError | TimeoutError)
