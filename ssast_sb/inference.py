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

The model sees ``target_frames`` frames (10 ms each) of its frontend at a time.
``classify_batch``, ``encode_batch`` and ``extract_features`` give one output
per row, computed from the row's first ``target_frames`` frames (the frontend
cuts the rest; a warning says so once per classifier). ``classify_file`` and
``classify_waveform`` classify a clip of any length by windows of the model's
length (:func:`ssast_sb.windows.window_bounds`) and combine the windows' probabilities.

:class:`ssast_sb.features.SSASTEncoderInterface` is the feature extractor of any
SSAST model, fine-tuned or not.

Authors
 * ssast-sb contributors
"""

import dataclasses
import logging
from pathlib import Path

import torch
from speechbrain.inference.interfaces import Pretrained

from ssast_sb.data.audio import load_audio
from ssast_sb.fileio import atomic_open, save_atomic
from ssast_sb.frontend import FRAME_SHIFT, SAMPLE_RATE
from ssast_sb.lobes import describe_head
from ssast_sb.windows import (
    OnceWarnings,
    clip_frames,
    combine_windows,
    relative_lengths,
    row_samples,
    window_bounds,
)

logger = logging.getLogger(__name__)

#: ``classify_file`` warns (once per classifier) about a clip whose padding exceeds
#: this fraction of the model's input.
PADDING_WARNING_FRACTION = 0.5


class SSASTAudioClassifier(OnceWarnings, Pretrained):
    """Loads an inference folder and classifies or embeds audio.

    ``classify_batch``, ``encode_batch`` and ``extract_features`` compute one
    output per row from the row's first ``target_frames`` frames, as SpeechBrain's
    ``EncoderClassifier`` does; a row longer than that is cut by the frontend,
    with a warning once per classifier. ``classify_file`` and
    ``classify_waveform`` classify a clip of any length by windows.

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
    >>> out_prob, _, _, _ = classifier.classify_waveform(torch.randn(16000))  # 98 frames: 4 windows
    >>> out_prob.shape, bool(torch.allclose(out_prob.exp().sum(-1), torch.ones(1)))
    (torch.Size([1, 2]), True)
    """

    HPARAMS_NEEDED = ["label_encoder", "multi_label"]
    MODULES_NEEDED = ["compute_features", "embedding_model", "classifier"]
    #: What the warning about cut rows points to, and whose warnings are given once.
    WINDOWS_HINT = "classify_file and classify_waveform classify by windows over the whole clip"
    ONCE_PER = "classifier"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The loaded encoder holds the model's classes; saying so here spares the first
        # decode SpeechBrain's "expect_len was never called" warning.
        label_encoder = self.hparams.label_encoder
        label_encoder.expect_len(len(label_encoder.lab2ind))

    @property
    def input_frames(self):
        """Frames of the model's input: the frontend's ``target_frames``."""
        return self.mods.compute_features.target_frames

    def _note_clip_length(self, num_samples, num_windows, source):
        """Warns (once each) when a clip is windowed, or padded by more than the stated fraction."""
        seconds, input_s = num_samples / SAMPLE_RATE, self.input_frames * FRAME_SHIFT / SAMPLE_RATE
        if num_windows > 1:
            self._say_once(
                "windows",
                "Clip %s is %.1f s, the model's input is %.2f s: classified as the mean of %d "
                "windows' probabilities, weighted by their frames of audio (said once per "
                "classifier)",
                source,
                seconds,
                input_s,
                num_windows,
            )
        padding = 1 - clip_frames(num_samples) / self.input_frames
        if padding > PADDING_WARNING_FRACTION and not self.mods.compute_features.variable_length:
            self._say_once(
                "padding",
                "Clip %s is %.2f s, the model's input is %.2f s: %.0f%% of the model's input is "
                "padding (said once per classifier, for clips padded by more than %.0f%%)",
                source,
                seconds,
                input_s,
                100 * padding,
                100 * PADDING_WARNING_FRACTION,
            )

    def _embed(self, wavs, wav_lens):
        """``embedding_model`` output ``(B, 1, D)`` of rows that the frontend pads or cuts."""
        wavs = wavs.to(self.device).float()
        features = self.mods.compute_features(wavs, wav_lens).to(self.device)
        num_frames = self.mods.compute_features.real_frames(row_samples(wavs, wav_lens))
        return self.mods.embedding_model(features, wav_lens, num_frames=num_frames.to(self.device))

    def encode_batch(self, wavs, wav_lens=None):
        """Utterance embeddings ``(B, 1, D)`` of waveforms ``(B, N)`` at 16 kHz, one per row.

        Arguments
        ---------
        wavs : torch.Tensor
            ``(B, N)`` waveforms at 16 kHz, zero-padded.
        wav_lens : torch.Tensor, optional
            ``(B,)`` relative lengths.

        Returns
        -------
        torch.Tensor
            Each row's embedding from its first ``target_frames`` frames.
        """
        wav_lens = relative_lengths(wavs, wav_lens)
        self._warn_if_cut(wavs, wav_lens, "encode_batch")
        return self._embed(wavs, wav_lens)

    def classify_batch(self, wavs, wav_lens=None):
        """Classifies a batch as SpeechBrain's ``EncoderClassifier.classify_batch`` does.

        Each row is one model input: the frontend pads it, or cuts it to its first
        ``target_frames`` frames (with a warning once per classifier). Use
        :meth:`classify_waveform` or :meth:`classify_file` for longer clips.

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
        wav_lens = relative_lengths(wavs, wav_lens)
        self._warn_if_cut(wavs, wav_lens, "classify_batch")
        return self._decide(self._log_probs(wavs, wav_lens))

    def _log_probs(self, wavs, wav_lens):
        """``(B, C)`` log-probabilities of rows that the frontend pads or cuts."""
        return self.mods.classifier(self._embed(wavs, wav_lens)).squeeze(1)

    def _decide(self, out_prob):
        """``(out_prob, score, index, text_lab)`` from ``(B, C)`` log-probabilities."""
        score, index = out_prob.max(dim=-1)
        return out_prob, score, index, self.hparams.label_encoder.decode_torch(index)

    def _classify_windows(self, waveform, bounds):
        """``(W, C)`` log-probabilities of the windows ``bounds`` of one clip, as one batch."""
        windows = [waveform[start:end] for start, end in bounds]
        wavs = torch.nn.utils.rnn.pad_sequence(windows, batch_first=True)
        wav_lens = torch.tensor([window.numel() / wavs.shape[1] for window in windows])
        return self._log_probs(wavs, wav_lens)

    def classify_waveform(self, waveform, source="waveform", windows_per_batch=16):
        """Classifies one 16 kHz clip of any length by windows of the model's input.

        The clip is cut into windows of ``target_frames`` frames whose frames are
        the clip's own (:func:`window_bounds`); the frontend pads the last one as it
        pads a short clip. The clip's probabilities are the mean of its windows'
        probabilities (softmax, or per-class sigmoid for a multi-label model), each
        window weighted by its frames of audio, so that a mostly padded last window
        counts little (:func:`combine_windows`); they are returned as
        log-probabilities, as by :meth:`classify_batch`. A clip that fits the
        model's input is one window, classified as :meth:`classify_batch` does. A
        warning, once per classifier, says when a clip is windowed, and when one is
        padded by more than :data:`PADDING_WARNING_FRACTION` of the model's input.

        Arguments
        ---------
        waveform : torch.Tensor
            ``(N,)`` samples at 16 kHz.
        source : str
            What the clip is (a file name), for the warnings.
        windows_per_batch : int
            Windows per forward pass.

        Returns
        -------
        tuple
            As :meth:`classify_batch`, for a batch of one.
        """
        if waveform.dim() != 1:
            raise ValueError(
                f"classify_waveform expects one clip (N,), got shape {tuple(waveform.shape)}"
            )
        bounds = window_bounds(waveform.numel(), self.input_frames)
        self._note_clip_length(waveform.numel(), len(bounds), source)
        log_probs = torch.cat(
            [
                self._classify_windows(waveform, bounds[first : first + windows_per_batch])
                for first in range(0, len(bounds), windows_per_batch)
            ]
        )
        weights = torch.tensor([float(clip_frames(end - start)) for start, end in bounds])
        return self._decide(combine_windows(log_probs, weights).unsqueeze(0))

    def classify_file(self, path, windows_per_batch=16):
        """Classifies one audio file of any length (any sample rate; resampled to 16 kHz).

        The file is read by :func:`ssast_sb.data.audio.load_audio` (mixed to mono)
        and classified by :meth:`classify_waveform`: a clip longer than the model's
        input by the weighted mean of its windows' probabilities.

        Arguments
        ---------
        path : str or pathlib.Path
            The file.
        windows_per_batch : int
            Windows per forward pass.

        Returns
        -------
        tuple
            As :meth:`classify_batch`, for a batch of one.

        Raises
        ------
        ssast_sb.data.audio.AudioError
            When the file is missing, empty or cannot be decoded, naming it.
        """
        waveform = load_audio(path, SAMPLE_RATE)
        return self.classify_waveform(waveform, str(path), windows_per_batch)

    def extract_features(self, wavs, wav_lens=None, return_layers=False):
        """Patch/frame-level tokens of the encoder (class tokens first), one input per row.

        Arguments
        ---------
        wavs : torch.Tensor
            ``(B, N)`` waveforms at 16 kHz; each row's first ``target_frames``
            frames are used.
        wav_lens : torch.Tensor, optional
            ``(B,)`` relative lengths.
        return_layers : bool
            Also return every block's output.

        Returns
        -------
        tokens : torch.Tensor
            ``(B, 2 + N, D)`` after the final LayerNorm.
        layers : list of torch.Tensor
            With ``return_layers``: every block's output.
        """
        wav_lens = relative_lengths(wavs, wav_lens)
        self._warn_if_cut(wavs, wav_lens, "extract_features")
        wavs = wavs.to(self.device).float()
        features = self.mods.compute_features(wavs, wav_lens).to(self.device)
        num_frames = self.mods.compute_features.real_frames(row_samples(wavs, wav_lens))
        return self.mods.embedding_model.tokens(
            features, return_layers=return_layers, num_frames=num_frames.to(self.device)
        )


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
