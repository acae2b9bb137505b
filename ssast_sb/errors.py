"""Errors that the user's data or options cause, and how the command lines show them.

An error class that mixes in :class:`UserError` says what to change in its
message (the file, the option and a value that works), so the recipes and the
command-line tools print that message alone, without a traceback
(:func:`report_user_errors`); the traceback still goes to the log at DEBUG level.
Any other exception is a bug and keeps its traceback.

Authors
 * ssast-sb contributors
"""

import functools
import logging
import sys

logger = logging.getLogger(__name__)


class UserError:
    """Mixin of the errors caused by the user's input or options (not an exception by itself)."""


class OptionError(UserError, ValueError):
    """An option whose value cannot work: the message names it (``--name``) and what would."""


def user_error_message(error):
    """How a user error is shown: its type and message.

    Example
    -------
    >>> user_error_message(OptionError("--num_masked 400 is more than the 64 patches"))
    'OptionError: --num_masked 400 is more than the 64 patches'
    """
    return f"{type(error).__name__}: {error}"


def report_user_errors(main):
    """Decorator of a command's entry point: a :class:`UserError` exits with its message only.

    The process exits with status 1 and the message on standard error; the
    traceback is logged at DEBUG level (SpeechBrain's ``log.txt`` keeps it).

    Example
    -------
    >>> @report_user_errors
    ... def main():
    ...     raise OptionError("--lr must be positive")
    >>> try:
    ...     main()
    ... except SystemExit as stop:
    ...     print(stop.code)
    OptionError: --lr must be positive
    """

    @functools.wraps(main)
    def checked(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - only user errors are caught, others re-raised
            if not isinstance(error, UserError):
                raise
            logger.debug("Stopped by a user error", exc_info=True)
            sys.stderr.flush()
            raise SystemExit(user_error_message(error)) from None

    return checked
