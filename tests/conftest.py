"""Shared pytest fixtures."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"
ROOT = Path(__file__).resolve().parents[1]


def run_python(*command, env=None, timeout=600):
    """``python <command>`` from the repository root, as a user runs it; its output captured."""
    return subprocess.run(
        [sys.executable, *[str(item) for item in command]],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def shared_dir():
    """Path of ``../shared`` (real test audio in ``shared/data``).

    Tests that use it are skipped when the folder is absent, except on CI
    (``CI=true``), where a missing folder is a failure.
    """
    data_dir = SHARED_DIR / "data"
    if not data_dir.is_dir():
        message = f"shared test audio not found at {data_dir}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (required when CI=true)")
        pytest.skip(message)
    return SHARED_DIR


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a test module (``pytestmark = pytest.mark.usefixtures(...)``).

    The CI cores are shared: two threads per process stall each other.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def reference_dir(shared_dir):
    """Path of ``../shared/reference`` (tensors dumped from the original SSAST code)."""
    path = shared_dir / "reference"
    if not path.is_dir():
        pytest.fail(f"{path} is missing from the shared folder")
    return path


#: Set by CI's second environment (the oldest stack, constraints-lowest.txt), which installs
#: the core package only: the export extra needs a newer torch (transformers 5 needs 2.6).
CORE_ONLY = os.environ.get("SSAST_SB_CORE_ONLY") == "true"


def export_extra(name):
    """A module of the ``export`` extra: a skip without it, a failure on CI (which installs it).

    In CI's core-only environment (``SSAST_SB_CORE_ONLY=true``) its absence is a skip.
    """
    try:
        return __import__(name)
    except ImportError:
        message = f'{name} is not installed: pip install -e ".[export]"'
        if os.environ.get("CI") == "true" and not CORE_ONLY:
            pytest.fail(f"{message} (CI installs the export extra)", pytrace=False)
        pytest.skip(message, allow_module_level=True)


def load_reference(path):
    """Loads a reference dump (``weights_only`` where torch can, see ``ssast_sb.compat``)."""
    from ssast_sb.compat import load_dump

    return load_dump(path)


@pytest.fixture(scope="session", params=["tiny_patch_seed0.pt", "tiny_frame_seed0.pt"])
def model_dump(request, reference_dir):
    """Each model dump of the original code, loaded once."""
    return load_reference(reference_dir / request.param)


def _drop_unimportable_lazy_modules():
    """Removes SpeechBrain's lazy modules whose optional dependency is missing (e.g. k2).

    Hypothesis reads ``__file__`` of every module in ``sys.modules``; on such a lazy
    module that attribute access tries the import and fails.
    """
    import sys
    import warnings

    import speechbrain  # noqa: F401  (registers the lazy modules)
    from speechbrain.utils.importutils import LazyModule

    for name, module in list(sys.modules.items()):
        if isinstance(module, LazyModule) and module.lazy_module is None:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # deprecated aliases announce themselves
                    module.ensure_module(1)
            except ImportError:
                del sys.modules[name]


# Before collection: Hypothesis scans the loaded modules while collecting @given tests.
_drop_unimportable_lazy_modules()
