"""What the package's commands print: log lines above progress bars, loaders sized to the machine.

Authors
 * ssast-sb contributors
"""

import contextlib
import logging
import os
import sys

from speechbrain.utils.logger import TqdmCompatibleStreamHandler

logger = logging.getLogger(__name__)

#: Loader sizes already reported by this process (each is said once).
_REPORTED_WORKERS = set()


def log_to_console(level=logging.INFO):
    """Shows log records on standard error above any progress bar, for a command without a log.

    The recipes log through SpeechBrain's configuration, whose console handler
    writes through ``tqdm.write`` so that a line never lands inside a bar; the
    package's other commands (``embed``, ``verify``, ``export``...) get the same
    handler here. Nothing changes when logging is already configured.

    Arguments
    ---------
    level : int
        The lowest level shown.

    Example
    -------
    >>> root = logging.getLogger()
    >>> saved = root.handlers[:]
    >>> root.handlers.clear()
    >>> log_to_console()
    >>> type(root.handlers[0]).__name__
    'TqdmCompatibleStreamHandler'
    >>> root.handlers[:] = saved
    """
    root = logging.getLogger()
    if root.handlers:
        return
    handler = TqdmCompatibleStreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s - %(message)s"))
    handler.setLevel(level)
    root.addHandler(handler)
    root.setLevel(min(root.level or level, level))


def available_cpus():
    """The CPU cores this process may run on (its affinity where the system tells it).

    Example
    -------
    >>> available_cpus() >= 1
    True
    """
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def workers_for_this_machine(loader_options, cpus=None):
    """Loader options whose ``num_workers`` is at most the CPU cores here, said once if lowered.

    The YAMLs' loader sizes (4 or 8 worker processes) are those of GPU machines;
    on a laptop or a small cloud machine more workers than cores only compete
    with the training process.

    Arguments
    ---------
    loader_options : dict
        ``DataLoader`` keyword arguments.
    cpus : int, optional
        The cores here (default :func:`available_cpus`).

    Returns
    -------
    dict
        The same options, or a copy with fewer workers.

    Example
    -------
    >>> workers_for_this_machine({"batch_size": 8, "num_workers": 8}, cpus=2)
    {'batch_size': 8, 'num_workers': 2}
    >>> workers_for_this_machine({"num_workers": 2}, cpus=16)
    {'num_workers': 2}
    """
    cpus = available_cpus() if cpus is None else cpus
    requested = loader_options.get("num_workers") or 0
    if requested <= cpus:
        return loader_options
    if (requested, cpus) not in _REPORTED_WORKERS:
        _REPORTED_WORKERS.add((requested, cpus))
        logger.info(
            "num_workers %d is more loader processes than the %d CPU cores here: using %d "
            "(--num_workers sets another)",
            requested,
            cpus,
            cpus,
        )
    return {**loader_options, "num_workers": cpus}


@contextlib.contextmanager
def quiet_loggers(*names, level=logging.WARNING):
    """Within the block, the named loggers show only ``level`` and above.

    For steps whose INFO lines describe an internal detail (a temporary
    manifest) rather than the user's data; warnings still show.

    Arguments
    ---------
    *names : str
        Logger names.
    level : int
        The lowest level shown within the block.

    Example
    -------
    >>> with quiet_loggers("ssast_sb.data.generic"):
    ...     logging.getLogger("ssast_sb.data.generic").isEnabledFor(logging.INFO)
    False
    """
    loggers = [logging.getLogger(name) for name in names]
    saved = [each.level for each in loggers]
    for each in loggers:
        each.setLevel(level)
    try:
        yield
    finally:
        for each, old in zip(loggers, saved):
            each.setLevel(old)
