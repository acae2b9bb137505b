"""Frozen SSAST features: clip or frame embeddings of any block, from any SSAST model.

:class:`SSASTEncoderInterface` loads a self-supervised pretraining checkpoint (a
released ``SSAST-*.pth``, a pretraining run's ``pretrained/`` folder or its
``.pth``/``.ckpt``, a SpeechBrain ``CKPT+*`` folder) with no fine-tuning, or an
inference folder, and gives clip embeddings ``(B, D)`` or time-ordered frame
embeddings ``(B, T', D)`` of any block, for clips of any length
(``python -m ssast_sb.embed`` and ``python -m ssast_sb.verify`` use it).

Authors
 * ssast-sb contributors
"""

import logging
from pathlib import Path

import torch
from speechbrain.inference.interfaces import Pretrained

from ssast_sb.checkpoints import (
    EXPECTED_PRETRAINING,
    PRETRAINED_FILE,
    CheckpointError,
    describe_config,
    encoder_from_original,
    warn_unseen_frames,
)
from ssast_sb.data.audio import load_audio
from ssast_sb.encoder import pool_tokens
from ssast_sb.frontend import FRAME_SHIFT, SAMPLE_RATE, SSASTFbank
from ssast_sb.models import adapt_encoder
from ssast_sb.padding import valid_patches
from ssast_sb.released import resolve_checkpoint
from ssast_sb.windows import OnceWarnings, relative_lengths, row_samples, window_bounds

logger = logging.getLogger(__name__)


#: What ``--level`` and ``level`` accept.
LEVELS = ("clip", "frame")
#: What ``--pooling`` and ``pooling`` accept.
POOLINGS = ("mean", "cls")
#: A SpeechBrain checkpoint folder's model file (``CKPT+*/model.ckpt``).
CKPT_MODEL_FILE = "model.ckpt"


def is_inference_folder(path):
    """Whether ``path`` is an inference folder: a folder holding ``hyperparams.yaml``.

    Example
    -------
    >>> import tempfile
    >>> is_inference_folder(tempfile.mkdtemp())
    False
    """
    return Path(path).is_dir() and (Path(path) / "hyperparams.yaml").is_file()


def model_path(path):
    """What to load for a model ``path``: an inference folder, or a pretraining checkpoint.

    A SpeechBrain checkpoint folder (``CKPT+*``) gives its ``model.ckpt``; an
    inference folder (holding ``hyperparams.yaml``), a pretraining export folder
    (holding ``ssast_pretrained.pth``) and a file are returned as they are.

    Arguments
    ---------
    path : str or pathlib.Path
        What ``--model`` names; a released model's name (``SSAST-Base-Frame-400``)
        stands for its cached download (:mod:`ssast_sb.released`).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist, or is a folder holding no model; the message
        names it and what is accepted.

    Example
    -------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "model.ckpt").write_bytes(b"")
    >>> model_path(folder).name
    'model.ckpt'
    """
    path = Path(resolve_checkpoint(path))
    accepted = (
        "expected an inference folder (hyperparams.yaml, written by fine-tuning), a SpeechBrain "
        f"CKPT+* folder holding {CKPT_MODEL_FILE}, or {EXPECTED_PRETRAINING}"
    )
    if not path.exists():
        raise FileNotFoundError(f"Model not found: {path} does not exist; {accepted}")
    if not path.is_dir() or is_inference_folder(path) or (path / PRETRAINED_FILE).is_file():
        return path
    if (path / CKPT_MODEL_FILE).is_file():
        return path / CKPT_MODEL_FILE
    raise FileNotFoundError(
        f"{path} is a folder without hyperparams.yaml, {PRETRAINED_FILE} or {CKPT_MODEL_FILE}; "
        f"{accepted}"
    )


class SSASTEncoderInterface(OnceWarnings, Pretrained):
    """A frozen SSAST encoder as a feature extractor: clip or frame embeddings of any block.

    :meth:`from_checkpoint` loads any SSAST model: a self-supervised pretraining
    checkpoint (no fine-tuning needed) or an inference folder. Every output
    is computed from the clip's own frames:

    * a pretraining checkpoint is used at its pretraining grid (a released
      model: 16x16 patches at stride 16 or 128x2 frames at stride 2, over 1024
      frames), or at the grid given to :meth:`from_checkpoint` (adapted as the
      original fine-tuning code does, :func:`ssast_sb.models.adapt_encoder`),
      with AudioSet statistics unless others are given;
    * by default (``pad_to_input`` False) the encoder runs with
      ``variable_length``: a clip shorter than the input is not padded to it but
      embedded from its own frames (padded only to whole patch columns), the
      position embedding of the input's first time columns being used, as a
      short clip sat at the start of its padded input in pretraining. This
      follows the original author's advice for short clips (instantiate the
      model at the clip's length rather than pad it, YuanGongND/ast#60); his
      other advice for frozen features, padding to the pretraining input
      (YuanGongND/ast#87), is ``pad_to_input=True``, which also averages the
      padding's tokens in mean pooling as the original does;
    * rows of different lengths never share a forward pass (the encoder has no
      attention mask), so a clip's output does not depend on its batch;
    * ``encode_clips`` and ``encode_file`` embed clips longer than the input by
      windows (:func:`window_bounds`): the clip embedding is the mean of its
      windows', the frame embeddings of the windows are concatenated in time.

    Layers: an int is the output of that block (0-based, negative from the end,
    before the final LayerNorm), ``last`` the encoder output after the final
    LayerNorm, ``all`` every block's output stacked (an extra axis of size
    ``depth`` before the time or feature axis); None is ``last``, or for an
    inference folder at clip level the fine-tuned model's own embedding (what
    its head sees). Clip pooling: ``mean`` over the patch tokens of real audio
    (all tokens for an inference folder fine-tuned without ``pool_real_audio``),
    or ``cls``, the mean of the two class tokens. Frame level: the patch tokens of
    each time column, averaged over the frequency rows of a patch model, one
    every :attr:`frame_hop_s` seconds (``tstride`` x 10 ms).

    Waveforms are 16 kHz mono (:func:`ssast_sb.data.audio.load_audio` resamples files).

    Example
    -------
    >>> import tempfile
    >>> from ssast_sb.checkpoints import export_original
    >>> from ssast_sb.encoder import EncoderConfig, SSASTEncoder
    >>> path = Path(tempfile.mkdtemp()) / "tiny.pth"
    >>> config = EncoderConfig(embed_dim=64, depth=2, num_heads=1, fshape=128, tshape=2,
    ...                        fstride=128, tstride=2, input_tdim=64)
    >>> torch.save(export_original(SSASTEncoder(config)), path)
    >>> embedder = SSASTEncoderInterface.from_checkpoint(path)
    >>> wavs, wav_lens = torch.randn(2, 8000), torch.tensor([1.0, 0.5])
    >>> embedder.encode_batch(wavs, wav_lens, layer="all").shape
    torch.Size([2, 2, 64])
    >>> frames, lengths = embedder.encode_frames(wavs, wav_lens, layer=-1)
    >>> frames.shape, lengths.tolist(), embedder.frame_hop_s
    (torch.Size([2, 24, 64]), [24, 12], 0.02)
    >>> sequences, num_windows = embedder.encode_clips([torch.randn(16000)], level="frame")
    >>> [tuple(sequence.shape) for sequence in sequences], num_windows.tolist()  # 98 frames
    ([(49, 64)], [2])
    """

    MODULES_NEEDED = ["compute_features"]
    HPARAMS_NEEDED = []
    WINDOWS_HINT = "encode_clips and encode_file embed by windows over the whole clip"
    ONCE_PER = "interface"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        hparams = vars(self.hparams)
        #: What the model was loaded from, for the outputs' metadata.
        self.source = hparams.get("source")
        self._set_padding(hparams.get("pad_to_input"))
        #: Mean pooling over the patches of real audio only.
        self.pool_real_audio = bool(hparams.get("pool_real_audio", not self.pad_to_input))

    def _set_padding(self, pad_to_input):
        """Pads every row to the input (True), or not (False); None: as the encoder allows."""
        variable = self.encoder.config.variable_length
        if pad_to_input is None:
            pad_to_input = not variable
        if not pad_to_input and not variable:
            raise ValueError(
                f"{self.source or 'This model'}'s encoder takes inputs of "
                f"{self.input_frames} frames only (variable_length is off), so its inputs "
                "must be padded to it: use pad_to_input=True"
            )
        #: Every row padded to :attr:`input_frames` (the original), or only to whole columns.
        self.pad_to_input = bool(pad_to_input)

    @classmethod
    def from_checkpoint(
        cls,
        source,
        fstride=None,
        tstride=None,
        input_tdim=None,
        mean=None,
        std=None,
        norm_preset=None,
        pad_to_input=None,
        savedir=None,
        run_opts=None,
    ):
        """Loads any SSAST model as a frozen feature extractor, no fine-tuning needed.

        Arguments
        ---------
        source : str or pathlib.Path
            A pretraining checkpoint (a released ``SSAST-*.pth``, a pretraining
            run's ``pretrained/`` folder or its ``ssast_pretrained.pth`` or
            ``.ckpt``, a SpeechBrain ``CKPT+*`` folder of a pretraining run), or an
            inference folder written by fine-tuning (with ``hyperparams.yaml``).
        fstride, tstride, input_tdim : int, optional
            Another grid for a pretraining checkpoint (default: its pretraining
            grid), reached by the original position-embedding adaptation.
        mean, std : float, optional
            Fbank statistics, both or neither (default: those of ``norm_preset``).
        norm_preset : str, optional
            A preset of :data:`ssast_sb.frontend.PRESETS` whose statistics to use
            (default ``pretrain``: AudioSet's, those of the released models).
        pad_to_input : bool, optional
            Pad every input to the model's input as the original does (see the
            class). None: not for a pretraining checkpoint; as the model was
            fine-tuned for an inference folder.
        savedir : str, optional
            Where SpeechBrain links an inference folder's files (None: in place).
        run_opts : dict, optional
            SpeechBrain run options, e.g. ``{"device": "cuda:0"}`` (default: CPU).

        Returns
        -------
        SSASTEncoderInterface

        Raises
        ------
        FileNotFoundError, ssast_sb.checkpoints.CheckpointError, ValueError
            Naming ``source``: missing, unreadable, a fine-tuned classifier's
            file, or grid options given with an inference folder.
        """
        run_opts = {"device": "cpu"} if run_opts is None else run_opts
        path = model_path(source)
        if is_inference_folder(path):
            grid = dict(fstride=fstride, tstride=tstride, input_tdim=input_tdim)
            grid.update(mean=mean, std=std, norm_preset=norm_preset)
            given = sorted(name for name, value in grid.items() if value is not None)
            if given:
                raise ValueError(
                    f"{path} is an inference folder: its grid and statistics are those it was "
                    f"fine-tuned with; {', '.join(given)} apply to pretraining checkpoints only"
                )
            interface = cls.from_hparams(
                source=str(path.absolute()), savedir=savedir, run_opts=run_opts
            )
            interface.source = str(source)
            interface._set_padding(pad_to_input)
            return interface
        try:
            pretrained, _ = encoder_from_original(path)
        except CheckpointError as error:
            raise CheckpointError(f"{error} (or an inference folder, for --model)") from error
        logger.info("Pretraining checkpoint %s: %s", source, describe_config(pretrained.config))
        pad_to_input = bool(pad_to_input)
        encoder = adapt_encoder(
            pretrained, fstride, tstride, input_tdim, variable_length=not pad_to_input
        )
        warn_unseen_frames(encoder.config)
        frontend = _frontend(encoder.config, mean, std, norm_preset, not pad_to_input)
        hparams = {"source": str(source), "pad_to_input": pad_to_input}
        modules = {"compute_features": frontend, "encoder": encoder}
        return cls(modules=modules, hparams=hparams, run_opts=run_opts)

    @classmethod
    def from_classifier(cls, classifier, source=None):
        """The feature extractor of a loaded :class:`SSASTAudioClassifier` (modules shared).

        Arguments
        ---------
        classifier : SSASTAudioClassifier
            A loaded inference folder.
        source : str, optional
            Where it was loaded from, for the metadata.

        Returns
        -------
        SSASTEncoderInterface
        """
        hparams = dict(vars(classifier.hparams), source=source)
        return cls(modules=classifier.mods, hparams=hparams, run_opts={"device": classifier.device})

    @property
    def encoder(self):
        """The :class:`~ssast_sb.encoder.SSASTEncoder` (an inference folder's, inside its model)."""
        if "encoder" in self.mods:
            return self.mods.encoder
        return self.mods.embedding_model.model.encoder

    @property
    def input_frames(self):
        """Frames of the model's input (a window): the encoder's ``input_tdim``."""
        return self.encoder.config.input_tdim

    @property
    def frame_hop_s(self):
        """Seconds between frame embeddings: ``tstride`` frames of 10 ms."""
        return self.encoder.config.tstride * FRAME_SHIFT / SAMPLE_RATE

    def resolve_layer(self, layer=None, level="clip"):
        """The layer an output comes from: ``own``, ``last``, ``all`` or a block index >= 0.

        Arguments
        ---------
        layer : int or str, optional
            See the class; None is the default (``own`` for an inference
            folder's clip embeddings, else ``last``).
        level : str
            ``clip`` or ``frame``.

        Returns
        -------
        int or str
        """
        if level not in LEVELS:
            raise ValueError(f"Unknown level {level!r}; use one of {LEVELS}")
        has_own = level == "clip" and "embedding_model" in self.mods
        if layer is None:
            return "own" if has_own else "last"
        if layer in ("last", "all") or (layer == "own" and has_own):
            return layer
        depth = self.encoder.config.depth
        if isinstance(layer, str) or not -depth <= int(layer) < depth:
            raise ValueError(
                f"Unknown layer {layer!r}: the encoder has {depth} blocks (0 to {depth - 1}, "
                "negative from the end), or use 'last' or 'all'"
                + ("; 'own' (the model's embedding) is a clip embedding" if layer == "own" else "")
            )
        return int(layer) % depth

    def window_frames(self, level="clip", frames=None):
        """Frames per window of a long clip: the model's input, or ``frames`` (at most that).

        At frame level the window is a whole number of patch columns (a multiple
        of ``tstride`` frames, at most ``t_dim x tstride``), so that windows
        concatenated in time keep one hop.

        Arguments
        ---------
        level : str
            ``clip`` or ``frame``.
        frames : int, optional
            Wanted window length.

        Returns
        -------
        int
        """
        config = self.encoder.config
        wanted = self.input_frames if frames is None else int(frames)
        if not 0 < wanted <= self.input_frames:
            raise ValueError(
                f"A window of {frames} frames must be positive and at most the model's input "
                f"({self.input_frames / 100} s = {self.input_frames} frames)"
            )
        if level == "clip":
            return wanted
        columns = min(wanted // config.tstride, self.encoder.grid[1])
        if columns < 1:
            raise ValueError(f"A frame-level window needs at least {config.tstride} frames")
        return columns * config.tstride

    def _row_features(self, wavs, wav_lens):
        """Normalised fbank of each row at its own length ``(T_i, F)``, at most the input."""
        frontend = self.mods.compute_features
        samples = row_samples(wavs, wav_lens).tolist()
        return [
            frontend.normalize(frontend.raw_features_unpadded(wav[:count].float().cpu()))[
                : self.input_frames
            ]
            for wav, count in zip(wavs, samples)
        ]

    def _columns(self, num_frames):
        """Time columns of the patch grid that start inside ``num_frames`` real frames."""
        tstride, t_dim = self.encoder.config.tstride, self.encoder.grid[1]
        return min(t_dim, -(-num_frames // tstride))

    def _input_length(self, num_frames):
        """Frames of the encoder input of a row: the model's input, or its whole columns."""
        if self.pad_to_input:
            return self.input_frames
        config = self.encoder.config
        return (self._columns(num_frames) - 1) * config.tstride + config.tshape

    def _groups(self, rows):
        """``(positions, batch, num_frames)`` of the rows of one input length at a time."""
        pad_value = float(self.mods.compute_features.normalize(torch.zeros(())))
        by_length = {}
        for position, row in enumerate(rows):
            by_length.setdefault(self._input_length(row.shape[0]), []).append(position)
        for length, positions in sorted(by_length.items()):
            batch = torch.stack(
                [
                    torch.nn.functional.pad(
                        rows[i], (0, 0, 0, length - rows[i].shape[0]), value=pad_value
                    )
                    for i in positions
                ]
            )
            num_frames = torch.tensor([rows[i].shape[0] for i in positions])
            yield positions, batch.to(self.device), num_frames.to(self.device)

    def _tokens(self, batch, layer):
        """Tokens ``(B, 2 + N, D)`` of ``last`` or a block, ``(B, L, 2 + N, D)`` of ``all``."""
        if layer == "last":
            return self.encoder(batch)
        _, layers = self.encoder(batch, return_layers=True)
        return torch.stack(layers, dim=1) if layer == "all" else layers[layer]

    def _pool(self, tokens, num_frames, pooling):
        """Clip embeddings ``(B, D)`` or ``(B, L, D)`` of ``tokens`` of one batch."""
        encoder = self.encoder
        f_dim = encoder.grid[0]
        valid = None
        if self.pool_real_audio:
            t_dim = (tokens.shape[-2] - encoder.num_class_tokens) // f_dim
            valid = valid_patches(num_frames, (f_dim, t_dim), encoder.config.tstride)
        if tokens.dim() == 3:
            return pool_tokens(tokens, pooling, encoder.num_class_tokens, valid)
        batch, depth = tokens.shape[:2]
        valid = None if valid is None else valid.repeat_interleave(depth, dim=0)
        pooled = pool_tokens(tokens.flatten(0, 1), pooling, encoder.num_class_tokens, valid)
        return pooled.unflatten(0, (batch, depth))

    def _frames(self, tokens):
        """Frame embeddings ``(..., t_dim, D)``: each column's patches averaged over frequency."""
        f_dim = self.encoder.grid[0]
        patches = tokens[..., self.encoder.num_class_tokens :, :]
        return patches.unflatten(-2, (f_dim, patches.shape[-2] // f_dim)).mean(dim=-3)

    @torch.no_grad()
    def encode_batch(self, wavs, wav_lens=None, layer=None, pooling="mean"):
        """Clip embeddings of 16 kHz waveforms, one model input per row.

        A row longer than the model's input is cut to its first
        :attr:`input_frames` frames (with a warning once per interface); use
        :meth:`encode_clips` or :meth:`encode_file` for longer clips.

        Arguments
        ---------
        wavs : torch.Tensor
            ``(B, N)`` waveforms at 16 kHz, zero-padded.
        wav_lens : torch.Tensor, optional
            ``(B,)`` relative lengths.
        layer : int or str, optional
            See the class.
        pooling : str
            ``mean`` or ``cls`` (not used by an inference folder's own embedding).

        Returns
        -------
        torch.Tensor
            ``(B, D)``, or ``(B, depth, D)`` for ``layer="all"``.
        """
        if pooling not in POOLINGS:
            raise ValueError(f"Unknown pooling {pooling!r}; use one of {POOLINGS}")
        layer = self.resolve_layer(layer, "clip")
        wav_lens = relative_lengths(wavs, wav_lens)
        self._warn_if_cut(wavs, wav_lens, "encode_batch")
        embeddings = [None] * wavs.shape[0]
        for positions, batch, num_frames in self._groups(self._row_features(wavs, wav_lens)):
            if layer == "own":
                pooled = self.mods.embedding_model(batch, None, num_frames=num_frames).squeeze(1)
            else:
                pooled = self._pool(self._tokens(batch, layer), num_frames, pooling)
            for position, embedding in zip(positions, pooled):
                embeddings[position] = embedding
        return torch.stack(embeddings)

    @torch.no_grad()
    def encode_frames(self, wavs, wav_lens=None, layer=None):
        """Time-ordered frame embeddings of 16 kHz waveforms, one model input per row.

        Frame ``j`` of a row covers the patch column that starts at ``j *
        tstride`` frames; a row has one frame per column that starts inside its
        real audio. Rows longer than the input are cut, as by :meth:`encode_batch`.

        Arguments
        ---------
        wavs : torch.Tensor
            ``(B, N)`` waveforms at 16 kHz, zero-padded.
        wav_lens : torch.Tensor, optional
            ``(B,)`` relative lengths.
        layer : int or str, optional
            See the class (None: ``last``).

        Returns
        -------
        frames : torch.Tensor
            ``(B, T', D)``, or ``(B, depth, T', D)`` for ``layer="all"``, zero
            after each row's length.
        lengths : torch.Tensor
            ``(B,)`` int64 frames of each row.
        """
        layer = self.resolve_layer(layer, "frame")
        wav_lens = relative_lengths(wavs, wav_lens)
        self._warn_if_cut(wavs, wav_lens, "encode_frames")
        rows = self._row_features(wavs, wav_lens)
        lengths = torch.tensor([self._columns(row.shape[0]) for row in rows])
        frames = [None] * len(rows)
        for positions, batch, _ in self._groups(rows):
            for position, sequence in zip(positions, self._frames(self._tokens(batch, layer))):
                frames[position] = sequence[..., : lengths[position], :]
        padded = torch.nn.utils.rnn.pad_sequence(
            [sequence.transpose(0, -2) for sequence in frames], batch_first=True
        )
        return padded.transpose(1, -2), lengths

    @torch.no_grad()
    def encode_clips(
        self, wavs, layer=None, level="clip", pooling="mean", window_frames=None, max_windows=None
    ):
        """Embeddings of 16 kHz clips of any length, by windows of the model's input.

        A clip is cut into windows whose frames are its own (:func:`window_bounds`,
        of :meth:`window_frames`); its clip embedding is the mean of its windows'
        embeddings, its frame embeddings those of its windows concatenated in time.

        Arguments
        ---------
        wavs : list of torch.Tensor
            ``(N_i,)`` clips at 16 kHz.
        layer : int or str, optional
            See the class.
        level : str
            ``clip`` or ``frame``.
        pooling : str
            ``mean`` or ``cls`` (clip level).
        window_frames : int, optional
            Window length in frames (default and maximum: the model's input).
        max_windows : int, optional
            Windows per forward pass (default: all at once).

        Returns
        -------
        embeddings : torch.Tensor or list of torch.Tensor
            Clip level: ``(len(wavs), D)`` (``(len(wavs), depth, D)`` for ``all``);
            frame level: one ``(T'_i, D)`` (``(depth, T'_i, D)``) per clip. On the CPU.
        num_windows : torch.Tensor
            ``(len(wavs),)`` windows per clip.
        """
        if level == "frame" and pooling != "mean":
            raise ValueError(f"pooling={pooling!r} applies to clip embeddings, not frames")
        window_frames = self.window_frames(level, window_frames)
        chunks, owners = [], []
        for owner, wav in enumerate(wavs):
            bounds = window_bounds(wav.numel(), window_frames)
            chunks.extend(wav[start:end] for start, end in bounds)
            owners.extend([owner] * len(bounds))
        step = max_windows or len(chunks)
        parts = [
            self._encode_chunks(chunks[i : i + step], layer, level, pooling)
            for i in range(0, len(chunks), step)
        ]
        owners = torch.tensor(owners)
        num_windows = torch.bincount(owners, minlength=len(wavs))
        if level == "frame":
            pieces = [[] for _ in wavs]
            for owner, sequence in zip(owners.tolist(), (s for part in parts for s in part)):
                pieces[owner].append(sequence)
            return [torch.cat(piece, dim=-2) for piece in pieces], num_windows
        windows = torch.cat(parts)
        sums = windows.new_zeros(len(wavs), *windows.shape[1:]).index_add_(0, owners, windows)
        return sums / num_windows.view(-1, *[1] * (windows.dim() - 1)), num_windows

    def _encode_chunks(self, chunks, layer, level, pooling):
        """Clip embeddings ``(W, ...)``, or a list of frame sequences, of windows on the CPU."""
        batch = torch.nn.utils.rnn.pad_sequence(chunks, batch_first=True)
        wav_lens = torch.tensor([chunk.numel() / batch.shape[1] for chunk in chunks])
        if level == "clip":
            return self.encode_batch(batch, wav_lens, layer, pooling).cpu()
        frames, lengths = self.encode_frames(batch, wav_lens, layer)
        return [sequence[..., :length, :] for sequence, length in zip(frames.cpu(), lengths)]

    def encode_file(self, path, layer=None, level="clip", pooling="mean", max_windows=16):
        """Embeddings of one audio file of any length and sample rate (resampled to 16 kHz).

        Arguments
        ---------
        path : str or pathlib.Path
            The file (read by :func:`ssast_sb.data.audio.load_audio`, mixed to mono).
        layer, level, pooling
            See :meth:`encode_clips`.
        max_windows : int
            Windows per forward pass.

        Returns
        -------
        torch.Tensor
            ``(D,)`` (``(depth, D)`` for ``all``) at clip level, ``(T', D)``
            (``(depth, T', D)``) at frame level.

        Raises
        ------
        ssast_sb.data.audio.AudioError
            When the file is missing, empty or cannot be decoded, naming it.
        """
        waveform = load_audio(path, SAMPLE_RATE)
        embeddings, _ = self.encode_clips(
            [waveform], layer, level, pooling, max_windows=max_windows
        )
        return embeddings[0]

    def describe(self, layer=None, level="clip", pooling="mean", window_frames=None):
        """The metadata of an output: model, layer, level, pooling, frame rate, input handling.

        Arguments
        ---------
        layer, level, pooling, window_frames
            As given to :meth:`encode_clips`.

        Returns
        -------
        dict
            ``model``, ``encoder`` (:func:`~ssast_sb.checkpoints.describe_config`),
            ``layer`` (resolved), ``num_blocks``, ``level``, ``pooling`` (clip
            level, else None), ``window_frames``, ``pad_to_input``,
            ``pool_real_audio``, ``mean``, ``std``, ``sample_rate``; at frame
            level also ``hop_s`` and ``frame_rate_hz``.
        """
        frontend = self.mods.compute_features
        layer = self.resolve_layer(layer, level)
        meta = {
            "model": self.source,
            "encoder": describe_config(self.encoder.config),
            "layer": layer,
            "num_blocks": self.encoder.config.depth,
            "level": level,
            "pooling": pooling if level == "clip" and layer != "own" else None,
            "window_frames": self.window_frames(level, window_frames),
            "pad_to_input": self.pad_to_input,
            "pool_real_audio": self.pool_real_audio,
            "mean": float(frontend.mean),
            "std": float(frontend.std),
            "sample_rate": SAMPLE_RATE,
        }
        if level == "frame":
            meta.update(hop_s=self.frame_hop_s, frame_rate_hz=1 / self.frame_hop_s)
        return meta


def _frontend(config, mean, std, norm_preset, variable_length):
    """A pretraining checkpoint's frontend: ``norm_preset``'s statistics, or ``mean``/``std``."""
    if (mean is None) != (std is None):
        raise ValueError(f"Give both mean and std, or neither (got mean={mean}, std={std})")
    stats = {} if mean is None else {"mean": float(mean), "std": float(std)}
    return SSASTFbank.from_preset(
        norm_preset or "pretrain",
        target_frames=config.input_tdim,
        variable_length=variable_length,
        **stats,
    )
