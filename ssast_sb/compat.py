"""What the oldest supported torch (2.1, ``constraints-lowest.txt``) lacks, in one place.

Each function uses the newer API when torch has it and says what it does otherwise.

Authors
 * ssast-sb contributors
"""

import inspect

import torch


def load_dump(path):
    """Loads a reference dump of the original code on the CPU, tensors only.

    The dumps record ``torch.__version__`` (a ``TorchVersion``, a ``str``
    subclass) in their metadata, which ``weights_only`` loading accepts once
    allow-listed (``torch.serialization.safe_globals``, torch 2.5). Torch 2.4 has
    ``add_safe_globals``; older torch cannot allow-list it, so the dump, a local
    file of the reference data, is loaded without ``weights_only``.

    Arguments
    ---------
    path : str or pathlib.Path

    Returns
    -------
    dict
    """
    allowed = [torch.torch_version.TorchVersion]
    serialization = torch.serialization
    if hasattr(serialization, "safe_globals"):
        with serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    if hasattr(serialization, "add_safe_globals"):
        serialization.add_safe_globals(allowed)
        return torch.load(path, map_location="cpu", weights_only=True)
    return torch.load(path, map_location="cpu", weights_only=False)


def cuda_has_native_bf16(device=None):
    """Whether the CUDA device computes bf16 natively (not emulated).

    ``torch.cuda.is_bf16_supported(including_emulation=False)`` says so from torch
    2.5; before, ``is_bf16_supported()`` already ignored emulation.
    """
    check = torch.cuda.is_bf16_supported
    if "including_emulation" in inspect.signature(check).parameters:
        return check(including_emulation=False)
    return check()


def onnx_export_options():
    """``torch.onnx.export`` keyword arguments that select the tracing exporter.

    From torch 2.5 the exporter has a ``dynamo`` switch (the tracing one is
    ``dynamo=False``); older torch has only the tracing exporter.

    Example
    -------
    >>> onnx_export_options() in ({"dynamo": False}, {})
    True
    """
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        return {"dynamo": False}
    return {}
