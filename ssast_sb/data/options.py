"""What the data preparations say about the recipe options that point them at the data.

A dataset folder or file that a recipe option names (``--data_folder``,
``--librispeech_folder``, ``--extra_sources``...) and that is not there is a
:class:`MissingDataError`: its message names the option and what to pass
instead. It is a ``FileNotFoundError`` as the errors it replaces were, and an
:class:`ssast_sb.errors.OptionError`, so that the recipes print it without a
traceback.

Authors
 * ssast-sb contributors
"""

import os

from ssast_sb.errors import OptionError


class MissingDataError(OptionError, FileNotFoundError):
    """A dataset folder or file that an option points at is missing; the message names it."""


def cli_list(values):
    """A list as one command-line value of a recipe (quoted, in YAML flow style).

    Arguments
    ---------
    values : iterable
        The items.

    Returns
    -------
    str

    Example
    -------
    >>> print(cli_list(["train-clean-100", "dev-clean"]))
    "[train-clean-100, dev-clean]"
    >>> print(cli_list([]))
    "[]"
    """
    return '"[' + ", ".join(str(value) for value in values) + ']"'


def as_list(value):
    """A list option's value as a list: one string given alone is a list of one.

    ``--extra_sources /data/clips`` gives the string ``/data/clips``, which
    would otherwise be read character by character.

    Arguments
    ---------
    value : str, os.PathLike, sequence or None
        The option's value.

    Returns
    -------
    list

    Example
    -------
    >>> as_list("train-clean-100"), as_list(("eval",)), as_list(None)
    (['train-clean-100'], ['eval'], [])
    """
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [value]
    return list(value)


def check_folds(folds, count, dataset, option="--folds"):
    """The test folds a recipe asks for, each one of ``1..count``; anything else names ``option``.

    Arguments
    ---------
    folds : sequence of int
        The folds asked for.
    count : int
        How many folds the dataset has.
    dataset : str
        Its name, for the message.
    option : str
        The recipe option.

    Returns
    -------
    list of int

    Raises
    ------
    ssast_sb.errors.OptionError
        Naming ``option`` and a value that works.

    Example
    -------
    >>> check_folds([1, 3], 5, "ESC-50")
    [1, 3]
    >>> try:
    ...     check_folds([0, 6], 5, "ESC-50")
    ... except OptionError as error:
    ...     print(error)
    --folds [0, 6]: ESC-50 has the folds 1..5. Pass e.g. --folds "[1, 2, 3, 4, 5]" (or "[1]").
    """
    every = list(range(1, count + 1))
    fix = f'Pass e.g. {option} {cli_list(every)} (or "{cli_list(every[:1])[1:-1]}")'
    if isinstance(folds, (str, bytes)) or not hasattr(folds, "__iter__"):
        raise OptionError(f"{option} {folds}: a list of folds is needed. {fix}.")
    folds = list(folds)
    bad = [fold for fold in folds if isinstance(fold, bool) or fold not in every]
    if bad:
        raise OptionError(f"{option} {folds}: {dataset} has the folds 1..{count}. {fix}.")
    return folds
