"""Doctests of the modules of the ``export`` extra skip where the extra is not installed.

CI's second environment (the oldest stack, ``constraints-lowest.txt``) installs the core
package only; everywhere else the extra is installed and these doctests run.
"""

import importlib.util

import pytest

#: Modules whose examples need the export extra (onnx, onnxruntime, transformers).
EXPORT_MODULES = ("ssast_sb/onnx_inference.py", "ssast_sb/export/")
EXPORT_PACKAGES = ("onnx", "onnxruntime", "transformers")


def pytest_collection_modifyitems(config, items):
    """Marks the export modules' doctests as skipped when a package of the extra is missing."""
    missing = [name for name in EXPORT_PACKAGES if importlib.util.find_spec(name) is None]
    if not missing:
        return
    skip = pytest.mark.skip(reason=f"the export extra is not installed ({', '.join(missing)})")
    for item in items:
        path = str(item.path).replace("\\", "/")
        if type(item).__name__ == "DoctestItem" and any(m in path for m in EXPORT_MODULES):
            item.add_marker(skip)
