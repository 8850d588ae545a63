"""Errors of the reference data system; all are mistakes in what was given (not retriable)."""

from __future__ import annotations

__all__ = ["DeliveryError", "HeaderError", "RefDataError", "ReferenceFileError", "UnknownContextError"]


class RefDataError(ValueError):
    """Base class: the message says what is wrong and with which file or keyword."""


class DeliveryError(RefDataError):
    """A delivery was refused; nothing was stored or recorded."""


class UnknownContextError(RefDataError):
    """A context name that does not exist (or is not a context name)."""


class HeaderError(RefDataError):
    """An exposure header lacks what selection needs (INSTRUME, DATE-OBS)."""


class ReferenceFileError(RefDataError):
    """A chosen reference file that cannot be used: unreadable, without the data of its
    type, or fitting neither the science window nor the full frame."""
