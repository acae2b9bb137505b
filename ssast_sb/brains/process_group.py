"""The DDP process group's end: destroyed on the way out, and a finished run's clean exit.

A finished DDP run must exit with status 0 on every rank. Two facts make the
usual ending unreliable with gloo, so the recipes end with
:func:`finish_distributed_run`:

* ``destroy_process_group`` does not stop the group's C++ threads while a
  ``DistributedDataParallel`` wrapper exists: DDP keeps references to the group
  that garbage collection does not release (measured on torch 2.14: the two
  ``pt_gloo_runloop`` threads and ``gloo_tcp_loop`` still run after
  ``destroy_process_group``, ``del`` of the wrapper and ``gc.collect()``).
* The interpreter's teardown then runs beside those threads, and a rank that had
  finished its work aborted there now and then in CI ("terminate called without
  an active exception", SIGABRT), so torchrun reported a failed run.

Authors
 * ssast-sb contributors
"""

import logging
import os
import sys

import torch


def distributed_run():
    """Whether this process is a rank of an initialised process group.

    Returns
    -------
    bool

    Example
    -------
    >>> distributed_run()
    False
    """
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def close_process_group():
    """Destroys the process group, if any (registered at exit by the recipes' argument parsing).

    This is the way out of a run that stopped on an error; a finished run leaves
    through :func:`finish_distributed_run` first.

    Example
    -------
    >>> close_process_group()  # no group: nothing to do
    """
    if distributed_run():
        torch.distributed.destroy_process_group()


def finish_distributed_run():
    """Ends a finished DDP run: every rank waits for the others, then leaves with status 0.

    Without a process group it returns and the process exits as usual. Under DDP
    the ranks meet at a barrier (no rank leaves while another still uses the
    group), the group is destroyed, logging and the standard streams are flushed,
    and the process leaves through ``os._exit(0)``: the interpreter's teardown,
    which can abort beside the group's threads (see the module's docstring), is
    skipped. Call it last, after every file of the run is written and closed.

    Example
    -------
    >>> finish_distributed_run()  # no group: returns
    """
    if not distributed_run():
        return
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
