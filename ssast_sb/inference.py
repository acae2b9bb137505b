"""Inference with trained SSAST models through SpeechBrain's ``Pretrained`` interfaces.

Every fine-tuning recipe writes an *inference folder* (``hyperparams.yaml``,
``model.ckpt``, ``label_encoder.ckpt``) that loads in two ways:

* ``SSASTAudioClassifier.from_hparams(source=folder)``: ``classify_file``,
  ``classify_batch``, ``encode_batch`` (utterance embeddings ``(B, 1, D)``) and
  ``extract_features`` (patch/frame tokens and every layer's output);
* ``speechbrain.inference.EncoderClassifier.from_hparams(source=folder)``: the
  folder provides SpeechBrain's ``compute_features``, ``mean_var_norm``,
  ``embedding_model(feats, lens) -> (B, 1, D)`` and ``classifier`` modules.
  SpeechBrain calls ``compute_features(wavs)`` without the relative lengths, so
  for batches of clips of different lengths the padding enters the features;
  ``SSASTAudioClassifier`` passes the lengths.

Authors
 * ssast-sb contributors
"""

import dataclasses
from pathlib import Path

import torch
from speechbrain.inference.interfaces import Pretrained

from ssast_sb.fileio import atomic_open, save_atomic
from ssast_sb.lobes import describe_head


class SSASTAudioClassifier(Pretrained):
    """Loads an inference folder and classifies or embeds audio.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain.dataio.encoder import CategoricalEncoder
    >>> from ssast_sb.encoder import EncoderConfig, SSASTEncoder
    >>> from ssast_sb.frontend import SSASTFbank
    >>> from ssast_sb.models import SSASTClassifier
    >>> config = EncoderConfig(embed_dim=16, depth=1, num_heads=2, input_tdim=32)
    >>> labels = CategoricalEncoder()
    >>> labels.update_from_iterable(["dog", "rain"])
    >>> folder = export_inference_folder(SSASTClassifier(SSASTEncoder(config), 2), labels,
    ...                                  SSASTFbank(target_frames=32), tempfile.mkdtemp())
    >>> classifier = SSASTAudioClassifier.from_hparams(source=str(folder),
    ...                                                savedir=tempfile.mkdtemp())
    >>> out_prob, score, index, text_lab = classifier.classify_batch(torch.randn(3, 8000))
    >>> out_prob.shape, bool(torch.allclose(out_prob.exp().sum(-1), torch.ones(3)))
    (torch.Size([3, 2]), True)
    >>> text_lab[0] in ("dog", "rain")
    True
    """

    HPARAMS_NEEDED = ["label_encoder", "multi_label"]
    MODULES_NEEDED = ["compute_features", "embedding_model", "classifier"]

    def encode_batch(self, wavs, wav_lens=None):
        """Utterance embeddings ``(B, 1, D)`` of waveforms ``(B, N)`` at 16 kHz."""
        wavs = wavs.to(self.device).float()
        wav_lens = torch.ones(wavs.shape[0]) if wav_lens is None else wav_lens
        features = self.mods.compute_features(wavs, wav_lens).to(self.device)
        samples = (wav_lens.float().cpu() * wavs.shape[1]).round().long()
        num_frames = self.mods.compute_features.real_frames(samples).to(self.device)
        return self.mods.embedding_model(features, wav_lens, num_frames=num_frames)

    def classify_batch(self, wavs, wav_lens=None):
        """Classifies a batch as SpeechBrain's ``EncoderClassifier.classify_batch`` does.

        Arguments
        ---------
        wavs : torch.Tensor
            ``(B, N)`` waveforms at 16 kHz.
        wav_lens : torch.Tensor, optional
            ``(B,)`` relative lengths.

        Returns
        -------
        out_prob : torch.Tensor
            ``(B, C)`` log-probabilities: log-softmax, or per-class log-sigmoid for
            multi-label models (``.exp()`` gives probabilities).
        score : torch.Tensor
            ``(B,)`` best log-probability.
        index : torch.Tensor
            ``(B,)`` its class index.
        text_lab : list of str
            Best label per clip.
        """
        out_prob = self.mods.classifier(self.encode_batch(wavs, wav_lens)).squeeze(1)
        score, index = out_prob.max(dim=-1)
        return out_prob, score, index, self.hparams.label_encoder.decode_torch(index)

    def classify_file(self, path, **kwargs):
        """Classifies one audio file (any sample rate; resampled to 16 kHz).

        Arguments
        ---------
        path : str
            The file.
        **kwargs
            Passed to ``Pretrained.load_audio``.

        Returns
        -------
        tuple
            As :meth:`classify_batch`, for a batch of one.
        """
        waveform = self.load_audio(path, **kwargs)
        return self.classify_batch(waveform.unsqueeze(0), torch.tensor([1.0]))

    def extract_features(self, wavs, wav_lens=None, return_layers=False):
        """Patch/frame-level tokens of the encoder (class tokens first).

        Returns
        -------
        tokens : torch.Tensor
            ``(B, 2 + N, D)`` after the final LayerNorm.
        layers : list of torch.Tensor
            With ``return_layers``: every block's output.
        """
        wavs = wavs.to(self.device).float()
        wav_lens = torch.ones(wavs.shape[0]) if wav_lens is None else wav_lens
        features = self.mods.compute_features(wavs, wav_lens).to(self.device)
        return self.mods.embedding_model.tokens(features, return_layers=return_layers)


#: The template of an inference folder's ``hyperparams.yaml``, shipped with the package.
TEMPLATE = Path(__file__).with_name("inference.yaml")


def _flow(value):
    """A value as one line of YAML (flow style for mappings)."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {_flow(item)}" for key, item in value.items()) + "}"
    if value is None:
        return "null"
    return str(value)


def fill_template(template, values):
    """The template's text with each ``key: !PLACEHOLDER`` line given its value.

    Arguments
    ---------
    template : str
        YAML text with placeholder lines.
    values : dict
        A value for every placeholder.

    Returns
    -------
    str

    Example
    -------
    >>> fill_template("a: !PLACEHOLDER  # note", {"a": {"x": 1, "y": True}})
    'a: {x: 1, y: True}  # note'
    """
    lines, missing = [], set(values)
    for line in template.splitlines(keepends=True):
        key, sep, rest = line.partition(": !PLACEHOLDER")
        if sep:
            if key not in values:
                raise KeyError(f"No value for the template's placeholder {key!r}")
            missing.discard(key)
            line = f"{key}: {_flow(values[key])}{rest}"
        lines.append(line)
    if missing:
        raise KeyError(f"The template has no placeholder for {sorted(missing)}")
    return "".join(lines)


def export_inference_folder(
    model, label_encoder, frontend, folder, multi_label=False, pool_real_audio=False
):
    """Writes ``hyperparams.yaml``, ``model.ckpt`` and ``label_encoder.ckpt`` for inference.

    ``hyperparams.yaml`` is the package's template (:data:`TEMPLATE`) with the
    model's values filled in.

    Arguments
    ---------
    model : SSASTClassifier or LayerWeightedClassifier
        The trained model.
    label_encoder : CategoricalEncoder
        Its labels.
    frontend : SSASTFbank
        The features it was trained on.
    folder : str
        Output folder (created).
    multi_label : bool
        Whether the classes are independent (sigmoid) or exclusive (softmax).
    pool_real_audio : bool
        Whether the model was fine-tuned pooling the patches of real audio only.

    Returns
    -------
    pathlib.Path
        The folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    values = {
        "multi_label": multi_label,
        "target_frames": frontend.target_frames,
        "mean": frontend.mean,
        "std": frontend.std,
        "variable_length": frontend.variable_length,
        "encoder_config": dataclasses.asdict(model.encoder.config),
        "num_classes": len(label_encoder.lab2ind),
        "head": describe_head(model),
        "pool_real_audio": pool_real_audio,
    }
    text = fill_template(TEMPLATE.read_text(encoding="utf-8"), values)
    save_atomic(model.state_dict(), folder / "model.ckpt")
    label_encoder.save(folder / "label_encoder.ckpt")
    with atomic_open(folder / "hyperparams.yaml") as stream:
        stream.write(text)
    return folder
