"""Downloads that appear only complete, resume when the server allows, and show their progress.

Used for the dataset archives (:mod:`ssast_sb.data.esc50`, Speech Commands) and
the released checkpoints (:mod:`ssast_sb.released`). Written here because
SpeechBrain's ``download_file`` writes into the destination as it goes and
cannot resume: an interrupted download of a 360 MB checkpoint would leave a file
that looks complete, and would start again from zero.

Authors
 * ssast-sb contributors
"""

import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from ssast_sb.errors import UserError

logger = logging.getLogger(__name__)

#: Failures of the network side of a download (not of the local disk).
NETWORK_ERRORS = (
    urllib.error.URLError,
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
)
#: Suffix of a download in progress, kept after an interruption so a rerun can resume it.
PARTIAL_SUFFIX = ".partial"


class DownloadError(UserError, OSError):
    """A file could not be downloaded (no network, wrong address, ...)."""


def format_size(num_bytes):
    """A byte count in decimal units, e.g. ``"2.3 GB"``.

    Arguments
    ---------
    num_bytes : int or None

    Returns
    -------
    str
        ``"unknown size"`` when ``num_bytes`` is None.

    Example
    -------
    >>> format_size(2_300_000_000), format_size(512), format_size(None)
    ('2.3 GB', '512 B', 'unknown size')
    """
    if num_bytes is None:
        return "unknown size"
    units = ("B", "kB", "MB", "GB", "TB")
    size, unit = float(num_bytes), 0
    while size >= 1000 and unit < len(units) - 1:
        size, unit = size / 1000, unit + 1
    return f"{int(size)} B" if unit == 0 else f"{size:.1f} {units[unit]}"


def sha256_of(path, chunk_bytes=1 << 20):
    """The SHA-256 of a file, as hex.

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "a")
    >>> _ = open(path, "wb").write(b"abc")
    >>> sha256_of(path)[:16]
    'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(chunk_bytes), b""):
            digest.update(chunk)
    return digest.hexdigest()


def partial_path(destination):
    """Where the download of ``destination`` is written until it is complete.

    Example
    -------
    >>> partial_path("cache/SSAST-Tiny-Patch-400.pth").name
    'SSAST-Tiny-Patch-400.pth.partial'
    """
    destination = Path(destination)
    return destination.with_name(destination.name + PARTIAL_SUFFIX)


def _open(url, offset, timeout):
    request = urllib.request.Request(url)
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    return urllib.request.urlopen(request, timeout=timeout)


def fetch_url(url, destination, size_hint=None, resume=False, timeout=60, chunk_bytes=1 << 20):
    """Streams ``url`` into ``destination``, which appears (atomically) only once complete.

    The bytes go to ``<destination>.partial`` under a progress bar with the size.
    With ``resume``, an interrupted download keeps that file and the next call
    asks the server for the rest (an HTTP Range request); a server that ignores
    the range sends the whole file, which restarts it. Without ``resume`` an
    interrupted download leaves nothing behind.

    Arguments
    ---------
    url : str
        The address.
    destination : str or pathlib.Path
        The file to write (its folder is created).
    size_hint : int, optional
        The expected size, shown when the server sends none.
    resume : bool
        Keep and continue partial downloads.
    timeout : float
        Seconds without data before the connection counts as lost.
    chunk_bytes : int
        Read size.

    Returns
    -------
    dict
        ``bytes`` and ``sha256`` of the file, and ``resumed_from`` (bytes already
        on disk when this call started).

    Raises
    ------
    One of :data:`NETWORK_ERRORS`
        The network failed; callers turn it into a message that says what to do.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(destination)
    offset = partial.stat().st_size if resume and partial.is_file() else 0
    response = _open(url, offset, timeout)
    if offset and response.status != 206:  # the server sent everything: start again
        offset = 0
    length = response.headers.get("Content-Length")
    remaining = int(length) if length and length.isdigit() else None
    total = offset + remaining if remaining is not None else size_hint
    action = f"Resuming at {format_size(offset)}" if offset else "Downloading"
    logger.info("%s %s (%s) to %s", action, url, format_size(total), destination)
    try:
        with open(partial, "ab" if offset else "wb") as out, response:
            with tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                desc=f"Downloading {destination.name}",
            ) as progress:
                for chunk in iter(lambda: response.read(chunk_bytes), b""):
                    out.write(chunk)
                    progress.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        received = partial.stat().st_size
        if total is not None and received < total:
            raise http.client.IncompleteRead(b"", total - received)
    except BaseException:
        if not resume and partial.exists():
            partial.unlink()
        raise
    os.replace(partial, destination)
    return {"bytes": received, "sha256": sha256_of(destination), "resumed_from": offset}
