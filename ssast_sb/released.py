"""The released SSAST checkpoints by name: one registry, a cache, and downloads you can trust.

Wherever a checkpoint path is accepted (``--pretrained_path`` of the recipes,
``--model`` of ``embed``, ``verify`` and ``export``,
``SSASTEncoderInterface.from_checkpoint``, ``task_encoder``), the name of a
model the original repository released (``SSAST-Base-Patch-400``, ...; with or
without ``.pth``, in any case) stands for its file in the cache, downloaded on
first use from the link the original repository publishes:

* the cache folder is ``$SSAST_SB_CACHE``, else ``$XDG_CACHE_HOME/ssast_sb``,
  else ``~/.cache/ssast_sb`` (its ``checkpoints/`` sub-folder);
* a download shows its progress and size, is written to ``<name>.pth.partial``
  and renamed only once complete and checked, and an interrupted one resumes
  where it stopped on the next call;
* a downloaded (or hand-placed) file is loaded with strict key accounting and
  must hold the size and patch shape the registry says; its size and SHA-256
  are logged and kept beside it (``<name>.pth.json``), so a cached file is
  used without any request;
* offline, the error names the link, the file name and the folder to put a
  copy downloaded by hand in, which is then used.

A path that exists is used as it is. ``$SSAST_SB_RELEASE_URL`` replaces the
original repository's links with ``<that address>/<name>.pth`` (a mirror, or the
tests' local server).

    python -m ssast_sb.released            # the names, paper figures, cached or not
    python -m ssast_sb.released --fetch SSAST-Tiny-Patch-400

Authors
 * ssast-sb contributors
"""

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from speechbrain.utils.distributed import ddp_barrier, if_main_process

from ssast_sb.download import NETWORK_ERRORS, fetch_url, format_size, partial_path, sha256_of
from ssast_sb.errors import UserError
from ssast_sb.fileio import atomic_open

logger = logging.getLogger(__name__)

CACHE_ENV = "SSAST_SB_CACHE"
URL_ENV = "SSAST_SB_RELEASE_URL"
#: The original repository's other mirrors, for a download by hand.
MIRRORS = "the OneDrive and Weiyun links of the original repository's pretrained_model/README.md"


class ReleaseError(UserError, OSError):
    """A released checkpoint could not be fetched or is not what its name says."""


@dataclass(frozen=True)
class Release:
    """One released model: where it is, what it holds, what the paper reports.

    Arguments
    ---------
    name : str
        The original's name.
    url : str
        The original repository's download link.
    model_size : str
        ``tiny``, ``small`` or ``base``.
    patch_shape : str
        ``patch`` (16x16) or ``frame`` (128x2).
    num_masked : int
        Masked patches in pretraining.
    params : str
        Model size as the original states it.
    audio, speech : float or None
        The original's average audio and speech task figures (None: untested).
    """

    name: str
    url: str
    model_size: str
    patch_shape: str
    num_masked: int
    params: str
    audio: Optional[float]
    speech: Optional[float]

    @property
    def filename(self):
        """The file name in the cache."""
        return f"{self.name}.pth"


_DROPBOX = "https://www.dropbox.com/s/{}/{}.pth?dl=1"
#: The released models (the original repository's pretrained_model/README.md).
RELEASES = {
    release.name: release
    for release in (
        Release("SSAST-Base-Patch-400", _DROPBOX.format("ewrzpco95n9jdz6", "SSAST-Base-Patch-400"),
                "base", "patch", 400, "89M", 59.9, 79.5),
        Release("SSAST-Base-Frame-400", _DROPBOX.format("nx6nl4d4bl71sm8", "SSAST-Base-Frame-400"),
                "base", "frame", 400, "89M", 57.6, 84.0),
        Release("SSAST-Base-Patch-250", _DROPBOX.format("mxrm9qog6aj8hif", "SSAST-Base-Patch-250"),
                "base", "patch", 250, "89M", 58.6, 79.5),
        Release("SSAST-Base-Frame-250", _DROPBOX.format("4e6l7ulhwrfoana", "SSAST-Base-Frame-250"),
                "base", "frame", 250, "89M", 55.6, 81.6),
        Release("SSAST-Small-Patch-400",
                _DROPBOX.format("i24w446rl9pkf05", "SSAST-Small-Patch-400"),
                "small", "patch", 400, "23M", 58.1, 78.2),
        Release("SSAST-Tiny-Patch-400", _DROPBOX.format("fkbtf78y94113wz", "SSAST-Tiny-Patch-400"),
                "tiny", "patch", 400, "6M", 53.3, 75.7),
        Release("SSAST-Tiny-Frame-400", _DROPBOX.format("rx7g60ruzawffzv", "SSAST-Tiny-Frame-400"),
                "tiny", "frame", 400, "6M", 47.8, None),
    )
}  # fmt: skip


def cache_folder():
    """Where released checkpoints are kept (see the module docstring).

    Example
    -------
    >>> os.environ[CACHE_ENV] = "/tmp/ssast_cache"
    >>> str(cache_folder())
    '/tmp/ssast_cache/checkpoints'
    >>> del os.environ[CACHE_ENV]
    """
    root = os.environ.get(CACHE_ENV)
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        root = Path(base) / "ssast_sb"
    return Path(root).expanduser() / "checkpoints"


def find_release(name):
    """The release a bare name stands for (``.pth`` optional, any case), or None.

    Example
    -------
    >>> find_release("ssast-base-patch-400.pth").name
    'SSAST-Base-Patch-400'
    >>> find_release("runs/pt/ssast_pretrained.pth") is None
    True
    """
    if name is None:
        return None
    text = str(name)
    if "/" in text or os.sep in text:
        return None
    stem = text[:-4] if text.lower().endswith(".pth") else text
    by_lower = {key.lower(): release for key, release in RELEASES.items()}
    return by_lower.get(stem.lower())


def release_url(release):
    """The download address: the original's link, or ``$SSAST_SB_RELEASE_URL/<name>.pth``."""
    base = os.environ.get(URL_ENV)
    return f"{base.rstrip('/')}/{release.filename}" if base else release.url


def cached_path(release):
    """The cached file of ``release``, or None when it is not (completely) there."""
    path = cache_folder() / release.filename
    return path if path.is_file() else None


def resolve_checkpoint(source):
    """What to load for a checkpoint option: a released model's cached file, or ``source``.

    An existing path, None and anything that is not a released name are returned
    unchanged (loading them reports its own errors).

    Arguments
    ---------
    source : str or pathlib.Path or None

    Returns
    -------
    str or pathlib.Path or None

    Example
    -------
    >>> resolve_checkpoint(None) is None, resolve_checkpoint("runs/pt/pretrained")
    (True, 'runs/pt/pretrained')
    """
    if source is None or Path(source).expanduser().exists():
        return source
    release = find_release(source)
    if release is None:
        return source
    return fetch_release(release)


def _manual_copy_hint(release, folder):
    return (
        f"Download {release.url} by hand (or from {MIRRORS}) and save it as "
        f"{folder / release.filename}; it is then used (the folder is set by ${CACHE_ENV})."
    )


def _record_path(path):
    return path.with_name(path.name + ".json")


def _verified(path, release, sha256=None):
    """The record of a checked ``path`` (kept beside it); a file without one is checked first."""
    record_path = _record_path(path)
    if record_path.is_file():
        record = json.loads(record_path.read_text(encoding="utf-8"))
        if record.get("bytes") == path.stat().st_size:
            return record
    check_release_file(path, release)
    record = {
        "name": release.name,
        "bytes": path.stat().st_size,
        "sha256": sha256 or sha256_of(path),
    }
    with atomic_open(record_path) as stream:
        json.dump(record, stream, indent=1)
    logger.info("%s: %s, SHA-256 %s, checked", path, format_size(record["bytes"]), record["sha256"])
    return record


def check_release_file(path, release):
    """Strict key accounting, and the size and patch shape the registry says, or an error.

    Raises
    ------
    ReleaseError
        Naming the file, what is wrong and where it came from.
    """
    from ssast_sb.checkpoints import (  # checkpoints resolves names through this module
        CheckpointError,
        pretrain_model_from_original,
        shape_name,
        size_name,
    )

    try:
        model, _ = pretrain_model_from_original(str(path), model_size=release.model_size)
    except (CheckpointError, RuntimeError, ValueError) as error:
        raise ReleaseError(
            f"{path} is not a complete {release.name} checkpoint ({error}); it is moved aside "
            f"to {path.name}.corrupt. {_manual_copy_hint(release, path.parent)}"
        ) from None
    config = model.encoder.config
    found = (size_name(config), shape_name(config))
    if found != (release.model_size, release.patch_shape):
        raise ReleaseError(
            f"{path} holds a {found[0]} model with {found[1]} patches, but {release.name} is a "
            f"{release.model_size} model with {release.patch_shape} patches. "
            f"{_manual_copy_hint(release, path.parent)}"
        )


def fetch_release(release):
    """The cached, checked file of ``release``, downloaded first when it is not cached.

    Under DDP the main process downloads and the others wait.

    Arguments
    ---------
    release : Release

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ReleaseError
        Offline or blocked (naming the link, the file name and the folder for a
        copy downloaded by hand), or a file that is not the checkpoint.
    """
    folder = cache_folder()
    target = folder / release.filename
    if if_main_process():
        sha256 = None
        if target.is_file():
            logger.info("%s: using the cached %s", release.name, target)
        else:
            sha256 = _download(release, target)
        try:
            _verified(target, release, sha256)
        except ReleaseError:
            target.replace(target.with_name(target.name + ".corrupt"))
            raise
    ddp_barrier()
    return target


def _download(release, target):
    url = release_url(release)
    try:
        fetched = fetch_url(url, target, resume=True)
    except NETWORK_ERRORS as error:
        partial = partial_path(target)
        kept = (
            f" ({format_size(partial.stat().st_size)} kept in {partial}; the next run resumes)"
            if partial.is_file()
            else ""
        )
        reason = getattr(error, "reason", None) or error
        raise ReleaseError(
            f"Could not download {release.name} from {url}: {reason}{kept}. "
            f"{_manual_copy_hint(release, target.parent)}"
        ) from None
    logger.info("Downloaded %s to %s", release.name, target)
    return fetched["sha256"]


def listing():
    """The released names with their settings, the paper's figures and whether each is cached."""
    lines = [
        f"Released SSAST checkpoints (cache: {cache_folder()})",
        "| name | size | patches | masked | avg audio | avg speech | cached |",
        "|---|---|---|---|---|---|---|",
    ]
    for release in RELEASES.values():
        speech = "untested" if release.speech is None else f"{release.speech:.1f}"
        cached = "yes" if cached_path(release) else "no"
        lines.append(
            f"| {release.name} | {release.model_size} ({release.params}) | "
            f"{release.patch_shape} | {release.num_masked} | {release.audio:.1f} | {speech} | "
            f"{cached} |"
        )
    lines.append("Figures: the original's averages over its audio and speech tasks.")
    return "\n".join(lines)


def main(argv=None):
    """Lists the released checkpoints, or fetches one (``--fetch NAME``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="the names (the default)")
    parser.add_argument("--fetch", metavar="NAME", help="download (or check) one into the cache")
    args = parser.parse_args(argv)
    if args.fetch:
        release = find_release(args.fetch)
        if release is None:
            raise SystemExit(f"{args.fetch} is not a released name: {', '.join(RELEASES)}")
        print(fetch_release(release))
        return 0
    print(listing())
    return 0


if __name__ == "__main__":
    from ssast_sb.console import log_to_console
    from ssast_sb.errors import report_user_errors

    log_to_console()

    sys.exit(report_user_errors(main)())
