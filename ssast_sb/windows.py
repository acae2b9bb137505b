"""Clips, rows and windows of a model's input: the pieces every SSAST interface shares.

A model sees ``target_frames`` frames (10 ms each) of its frontend at a time. A clip
longer than that is cut into windows whose fbank frames are exactly the clip's own
(:func:`window_bounds`), and the windows' scores are combined (:func:`combine_windows`);
:class:`OnceWarnings` gives the interfaces their once-per-instance warnings.

Authors
 * ssast-sb contributors
"""

import logging

import torch

from ssast_sb.frontend import FRAME_LENGTH, FRAME_SHIFT, SAMPLE_RATE


def clip_frames(num_samples):
    """Frames of a 16 kHz clip in Kaldi framing: 25 ms windows every 10 ms.

    A clip shorter than one window gives one frame (the frontend pads it).

    Arguments
    ---------
    num_samples : int
        Length of the clip in samples.

    Returns
    -------
    int

    Example
    -------
    >>> clip_frames(16000), clip_frames(100)
    (98, 1)
    """
    return max(1, 1 + (num_samples - FRAME_LENGTH) // FRAME_SHIFT)


def window_bounds(num_samples, window_frames):
    """Sample ranges of the windows of ``window_frames`` frames that cover a clip.

    Windows start every ``window_frames * 10 ms``, so that their fbank frames are
    exactly the clip's frames, without overlap or gap; the last one is shorter
    (the frontend pads its features).

    Arguments
    ---------
    num_samples : int
        Length of the clip at 16 kHz.
    window_frames : int
        Frames per window (at most the model's ``target_frames``).

    Returns
    -------
    list of tuple
        ``(start, end)`` sample indices; one window when the clip fits.

    Example
    -------
    >>> window_bounds(16000, 64)  # 98 frames -> 64 + 34
    [(0, 10480), (10240, 16000)]
    >>> window_bounds(8000, 64)
    [(0, 8000)]
    """
    count = -(-clip_frames(num_samples) // window_frames)
    span = FRAME_LENGTH + (window_frames - 1) * FRAME_SHIFT
    hop = window_frames * FRAME_SHIFT
    return [(i * hop, min(i * hop + span, num_samples)) for i in range(count)]


def combine_windows(log_probs, weights):
    """Log of the weighted mean of the probabilities of a clip's windows.

    Arguments
    ---------
    log_probs : torch.Tensor
        ``(W, C)`` log-probabilities of the ``W`` windows (log-softmax, or
        per-class log-sigmoid).
    weights : torch.Tensor
        ``(W,)`` non-negative weights, not all zero (frames of audio per window).

    Returns
    -------
    torch.Tensor
        ``(C,)`` log-probabilities.

    Example
    -------
    >>> log_probs = torch.tensor([[0.9, 0.1], [0.5, 0.5]]).log()
    >>> combine_windows(log_probs, torch.tensor([3.0, 1.0])).exp()
    tensor([0.8000, 0.2000])
    """
    log_weights = (weights / weights.sum()).log().to(log_probs)
    return torch.logsumexp(log_probs + log_weights.unsqueeze(1), dim=0)


def relative_lengths(wavs, wav_lens):
    """``wav_lens``, or ones (every row complete) when None."""
    return torch.ones(wavs.shape[0]) if wav_lens is None else wav_lens


def row_samples(wavs, wav_lens):
    """``(B,)`` samples of real audio per row, on the CPU."""
    return (wav_lens.float().cpu() * wavs.shape[1]).round().long()


class OnceWarnings:
    """Once-per-instance warnings of the interfaces, and the one about rows cut to the input."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        #: Keys of the warnings already given (each is given once per interface).
        self.said = set()

    def _say_once(self, key, message, *args):
        """Logs a warning the first time ``key`` comes up for this interface."""
        if key not in self.said:
            self.said.add(key)
            # Under the interface's own module (ssast_sb.inference, ssast_sb.features).
            logging.getLogger(type(self).__module__).warning(message, *args)

    def _warn_if_cut(self, wavs, wav_lens, caller):
        """Warns (once) when a row has more frames than the model's input: the frontend cuts it."""
        samples = row_samples(wavs, wav_lens).tolist()
        long_rows = [
            row for row, count in enumerate(samples) if clip_frames(count) > self.input_frames
        ]
        if long_rows:
            input_s = self.input_frames * FRAME_SHIFT / SAMPLE_RATE
            self._say_once(
                "cut",
                "%s: row %d is %.2f s, the model's input is %.2f s: only its first %.2f s "
                "are used (%s; said once per %s)",
                caller,
                long_rows[0],
                samples[long_rows[0]] / SAMPLE_RATE,
                input_s,
                input_s,
                self.WINDOWS_HINT,
                self.ONCE_PER,
            )
