"""Error classes that say whether retrying may help; tasks map them to retries in one place.

Domain code raises what went wrong in its own terms: bad input is a ``ValueError``
(:class:`InputError`, or a module's own subclass such as a malformed product, an unusable
association or reference file), never a transport error. :func:`is_retriable` is the one
place that decides: transient faults are retried, everything else is dead-lettered with
its message as the reason; :func:`is_unavailable` singles out the retriable faults that
are an outage of a service (the object store down), which a task waits out however long
it lasts instead of spending its retries on it.
"""

from __future__ import annotations

__all__ = ["ConfigurationError", "InputError", "NonRetriableError", "RetriableError", "is_retriable", "is_unavailable"]


class ConfigurationError(ValueError):
    """Settings that cannot work (e.g. a worker without a broker); the message says which."""


class InputError(ValueError):
    """Input that cannot be processed as given (inconsistent arrays, a member that is not
    archived, ...); the message names the input and says what is wrong with it."""


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


def is_unavailable(exc: BaseException) -> bool:
    """True for an outage rather than a fault of the task: the object store could not be
    reached or answered that it is unavailable (a MinIO restart). Retrying is the only
    thing to do, for as long as it lasts; it says nothing about the task."""
    from shared.storage import StorageError

    return isinstance(exc, StorageError) and exc.retriable and exc.unavailable
