"""The errors the CLI turns into one line and an exit code.

Anything the user can fix by changing a flag or a file is a :class:`UsageError` (exit 2);
anything that went wrong while running is a :class:`SweepsError` (exit 1). Tracebacks are shown
only with ``--debug``. A message quotes a user's value through :func:`excerpt` only.
"""

from __future__ import annotations

import reprlib


class SweepsError(Exception):
    """A runtime failure; the CLI prints the message and exits 1."""

    exit_code = 1


class UsageError(SweepsError):
    """Bad input (a flag, a file, a config value); the CLI prints the message and exits 2."""

    exit_code = 2


class TooManyFailures(SweepsError):
    """A sweep stopped because its failure rate passed ``search.max_failure_rate``."""


class RangeTestFailed(SweepsError):
    """The training code raised, or called ``sys.exit``, during the LR range test."""


class FusedBatchFailed(SweepsError):
    """The training code of a fused batch raised: every trial of the batch failed with it.

    A single trial's exception fails that trial and the sweep goes on; a fused batch's stops
    the sweep, since the same stacked code would raise again in the next batch.
    """

    def __init__(self, numbers: list[int], error: BaseException) -> None:
        self.reason = f"{type(error).__name__}: {error}"
        span = f"{numbers[0]}" if len(numbers) == 1 else f"{numbers[0]}-{numbers[-1]}"
        super().__init__(
            f"fused batch of trials {span} failed in the training code: {self.reason} "
            "(its trials are FAIL; --debug shows the traceback)"
        )


#: The most characters of a user's value an error message quotes.
EXCERPT_CHARS = 60
#: The most characters of one error line (a backstop for messages built from user code's).
LINE_CHARS = 2000
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 2, EXCERPT_CHARS, EXCERPT_CHARS
_REPR.maxdict = _REPR.maxlist = _REPR.maxtuple = _REPR.maxset = 4


def excerpt(value: object, limit: int = EXCERPT_CHARS) -> str:
    """``repr(value)`` cut to about ``limit`` characters, built without rendering all of it.

    An error quotes the value it refuses; a 5,000-character name or a YAML alias bomb (a value
    of billions of nested items) must not be echoed whole, nor even rendered in full.

    Example:
        >>> excerpt("a" * 5000)
        "'aaaaaaaaaaaaaaaaaaaaaaaaaaa...aaaaaaaaaaaaaaaaaaaaaaaaaaaa' (5000 characters)"
        >>> excerpt([[1, 2, 3, 4, 5]] * 3)
        '[[1, 2, 3, 4, ...], [1, 2, 3, 4, ...], [1, 2, 3, 4, ...]]'
    """
    text = _REPR.repr(value)
    if len(text) > limit + 10:
        text = text[: limit - 3] + "..."
    if isinstance(value, str) and len(value) > limit:
        text += f" ({len(value)} characters)"
    return text


def one_line(message: str, limit: int = LINE_CHARS) -> str:
    """``message`` on one line of at most ``limit`` characters (what the CLI prints)."""
    flat = " ".join(message.split("\n")).strip()
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
