"""Files that appear only once complete: write to a temporary file, then rename.

Manifests, label maps, checkpoints, embeddings and figures all go through
:func:`atomic_open`, so an interrupted run never leaves a half-written file that
a rerun would trust.

Authors
 * ssast-sb contributors
"""

import contextlib
import os
import tempfile
from pathlib import Path

import torch


def _current_umask():
    """The process's umask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path, mode="w", newline=None):
    """Opens a file for writing that appears at ``path`` only once complete.

    Writes go to a temporary file in the destination folder, which is flushed,
    fsync'ed and renamed over ``path`` with ``os.replace`` when the ``with`` block
    ends normally. If the block raises (or is interrupted), the temporary file is
    removed and an existing ``path`` is left untouched.

    Arguments
    ---------
    path : str or pathlib.Path
        Destination file; its folder is created if needed.
    mode : str
        ``"w"`` (text, UTF-8) or ``"wb"`` (binary).
    newline : str or None
        Passed to ``open`` in text mode; use ``""`` for the ``csv`` module.

    Yields
    ------
    file object
        The temporary file.

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "notes.txt")
    >>> with atomic_open(path) as out:
    ...     _ = out.write("done")
    >>> open(path).read(), os.listdir(os.path.dirname(path))
    ('done', ['notes.txt'])
    >>> oct(os.stat(path).st_mode & 0o777) == oct(0o666 & ~_current_umask())
    True
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes text ('w') or bytes ('wb'), not {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    text = {"newline": newline, "encoding": "utf-8"} if mode == "w" else {}
    try:
        with os.fdopen(handle, mode, **text) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        # mkstemp makes the file private (0600); give it the usual permissions (umask).
        os.chmod(tmp_name, 0o666 & ~_current_umask())
        os.replace(tmp_name, path)
    except BaseException:
        # BaseException so that Ctrl-C also cleans up the temporary file.
        if os.path.exists(tmp_name):
            os.remove(tmp_name)
        raise


def save_atomic(obj, path):
    """``torch.save`` through :func:`atomic_open`: never a half-written file.

    Arguments
    ---------
    obj : object
        What to save.
    path : str
        Destination.

    Example
    -------
    >>> import tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> save_atomic({"a": torch.ones(1)}, os.path.join(folder, "x.ckpt"))
    >>> os.listdir(folder)
    ['x.ckpt']
    """
    with atomic_open(path, "wb") as stream:
        torch.save(obj, stream)
