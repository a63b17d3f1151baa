"""The exceptions the package raises (the native module raises these classes)."""

from __future__ import annotations

__all__ = ["RecurrentError", "InvalidArgumentError"]


class RecurrentError(RuntimeError):
    """Something failed in recurrent: a file or checkpoint could not be read or
    written, training stopped with an error, ... The message is the library's."""


class InvalidArgumentError(RecurrentError, ValueError):
    """An argument, or the text given, is not acceptable: a value out of its
    range, characters outside a character model's vocabulary, ..."""
