"""What an export reads: any SSAST model, with its frontend settings and labels.

:func:`load_export_source` accepts what ``python -m ssast_sb.embed --model`` does
(a released ``SSAST-*.pth``, a pretraining run's output, a SpeechBrain
``CKPT+*`` folder, an inference folder written by fine-tuning) and returns an
:class:`ExportSource`: the torch model to export and everything a deployed copy
needs to reproduce its features (input length, fbank statistics) and its
outputs (labels, pooling, multi-label).

Authors
 * ssast-sb contributors
"""

import tempfile
from dataclasses import dataclass, field
from typing import Optional

import torch

from ssast_sb.encoder import SSASTEncoder
from ssast_sb.features import SSASTEncoderInterface
from ssast_sb.lobes import describe_head


@dataclass
class ExportSource:
    """A loaded SSAST model and what its deployed copy must know.

    Arguments
    ---------
    source : str
        What was loaded (for messages and model cards).
    encoder : SSASTEncoder
        The encoder at its export grid.
    classifier : torch.nn.Module or None
        The fine-tuned classifier (``SSASTClassifier`` or
        ``LayerWeightedClassifier``) holding ``encoder``; None for a
        self-supervised checkpoint.
    mean, std : float
        Fbank statistics: features are ``(fbank - mean) / (2 * std)``.
    labels : list of str
        Class names in output order (empty without a classifier).
    multi_label : bool
        Independent classes (sigmoid) instead of exclusive ones (softmax).
    pool_real_audio : bool
        Mean pooling over the patches of real audio only.
    """

    source: str
    encoder: SSASTEncoder
    classifier: Optional[torch.nn.Module] = None
    mean: float = 0.0
    std: float = 0.5
    labels: list = field(default_factory=list)
    multi_label: bool = False
    pool_real_audio: bool = False

    @property
    def config(self):
        """The encoder's :class:`~ssast_sb.encoder.EncoderConfig`."""
        return self.encoder.config

    @property
    def input_frames(self):
        """Frames of the model's input (the longest input of a variable-length model)."""
        return self.config.input_tdim

    @property
    def head(self):
        """The classifier's ``head`` description (see :func:`ssast_sb.lobes.describe_head`)."""
        return describe_head(self.classifier) if self.classifier is not None else None

    @property
    def pooling(self):
        """How the model pools its tokens: ``mean``, ``cls`` or ``layer_weighted``."""
        head = self.head
        if head is None:
            return "mean"
        return head.get("pooling", "layer_weighted")


def load_export_source(
    model, fstride=None, tstride=None, input_tdim=None, mean=None, std=None, norm_preset=None
):
    """Loads any SSAST model for export (see the module).

    A pretraining checkpoint is exported at its pretraining grid, or at the grid
    that ``fstride``, ``tstride`` and ``input_tdim`` choose, reached by the
    original position-embedding adaptation (as fine-tuning does); it accepts
    inputs shorter than ``input_tdim`` (``variable_length``), as
    :class:`~ssast_sb.features.SSASTEncoderInterface` does. An inference folder
    keeps the grid, statistics and input handling it was fine-tuned with.

    Arguments
    ---------
    model : str or pathlib.Path
        The model (see :func:`ssast_sb.features.model_path`).
    fstride, tstride, input_tdim : int, optional
        The grid of a pretraining checkpoint's export.
    mean, std : float, optional
        Fbank statistics of a pretraining checkpoint's export (both or neither).
    norm_preset : str, optional
        A preset of :data:`ssast_sb.frontend.PRESETS` for them (default: AudioSet's).

    Returns
    -------
    ExportSource

    Example
    -------
    >>> from ssast_sb.checkpoints import export_original
    >>> from ssast_sb.encoder import EncoderConfig
    >>> path = tempfile.mkdtemp() + "/ssast.pth"
    >>> encoder = SSASTEncoder(EncoderConfig(embed_dim=64, depth=1, num_heads=1, input_tdim=64))
    >>> torch.save(export_original(encoder), path)
    >>> source = load_export_source(path, fstride=10, tstride=10, input_tdim=48)
    >>> source.config.grid, source.classifier is None, source.pooling, round(source.std, 2)
    ((12, 4), True, 'mean', 4.57)
    """
    with tempfile.TemporaryDirectory() as savedir:
        interface = SSASTEncoderInterface.from_checkpoint(
            model,
            fstride=fstride,
            tstride=tstride,
            input_tdim=input_tdim,
            mean=mean,
            std=std,
            norm_preset=norm_preset,
            savedir=savedir,
        )
    frontend = interface.mods.compute_features
    exported = ExportSource(
        source=str(model),
        encoder=interface.encoder.eval(),
        mean=float(frontend.mean),
        std=float(frontend.std),
    )
    if "embedding_model" in interface.mods:
        encoder = interface.hparams.label_encoder
        exported.classifier = interface.mods.embedding_model.model.eval()
        exported.labels = [str(encoder.ind2lab[index]) for index in range(len(encoder))]
        exported.multi_label = bool(interface.mods.classifier.multi_label)
        exported.pool_real_audio = bool(interface.mods.embedding_model.pool_real_audio)
    return exported
