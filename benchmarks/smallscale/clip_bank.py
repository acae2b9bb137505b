"""A small corpus held in memory as unnormalised fbank features.

Small-scale experiments (``benchmarks/ssl_gain.py``) visit a few thousand
short clips many times; computing each clip's fbank once and cropping it per
step keeps the CPU on the model instead of on the frontend.

Authors
 * ssast-sb contributors
"""

import torch
from tqdm import tqdm

from ssast_sb.data.audio import load_audio
from ssast_sb.frontend import SAMPLE_RATE, SSASTFbank, pad_or_cut
from ssast_sb.padding import random_crop


class ClipBank:
    """Raw fbank of every clip, with fixed-length batches on demand.

    Arguments
    ---------
    features : list of torch.Tensor
        ``(T_i, F)`` unnormalised fbank per clip.
    frontend : SSASTFbank
        Normalisation statistics (its ``target_frames`` is not used).

    Example
    -------
    >>> bank = ClipBank([torch.zeros(5, 128), torch.zeros(30, 128)], SSASTFbank())
    >>> x, frames = bank.batch([0, 1], 16, torch.Generator().manual_seed(0))
    >>> x.shape, frames.tolist()
    (torch.Size([2, 16, 128]), [5, 16])
    """

    def __init__(self, features, frontend):
        if not features:
            raise ValueError("A ClipBank needs at least one clip")
        self.features = features
        self.frontend = frontend

    @classmethod
    def from_files(cls, paths, frontend=None, progress=True):
        """Reads and featurises audio files (any rate: resampled to 16 kHz).

        Arguments
        ---------
        paths : list of str
            Audio files.
        frontend : SSASTFbank, optional
            Normalisation statistics (AudioSet's by default, as the original).
        progress : bool
            Show a progress bar.

        Returns
        -------
        ClipBank
        """
        frontend = frontend or SSASTFbank()
        features = []
        for path in tqdm(paths, desc="fbank", disable=not progress, leave=False):
            waveform = load_audio(path, SAMPLE_RATE)
            features.append(frontend.raw_features_unpadded(waveform))
        return cls(features, frontend)

    def __len__(self):
        return len(self.features)

    def batch(self, indices, target_frames, generator=None):
        """Normalised clips, randomly cropped (longer) or zero-padded (shorter).

        Arguments
        ---------
        indices : list of int
            Clips to take.
        target_frames : int
            Input length.
        generator : torch.Generator, optional
            Crop positions; the same generator state gives the same batch.

        Returns
        -------
        features : torch.Tensor
            ``(B, target_frames, F)``.
        num_frames : torch.Tensor
            ``(B,)`` real frames of each clip.
        """
        crops = [random_crop(self.features[i], target_frames, generator) for i in indices]
        features = torch.stack([crop for crop, _ in crops])
        return self.frontend.normalize(features), torch.tensor([n for _, n in crops])

    def real_frames(self, indices, target_frames):
        """Real (unpadded) frames of each clip once padded or cut to ``target_frames``.

        Arguments
        ---------
        indices : list of int
            Clips to take.
        target_frames : int
            Input length.

        Returns
        -------
        torch.Tensor
            ``(B,)`` frames, at most ``target_frames``.

        Example
        -------
        >>> bank = ClipBank([torch.zeros(5, 128), torch.zeros(30, 128)], SSASTFbank())
        >>> bank.real_frames([0, 1], 16).tolist()
        [5, 16]
        """
        return torch.tensor([min(self.features[i].shape[0], target_frames) for i in indices])

    def fixed(self, indices, target_frames):
        """Normalised clips padded or cut at the end, as the original loader.

        Arguments
        ---------
        indices : list of int
            Clips to take.
        target_frames : int
            Input length.

        Returns
        -------
        torch.Tensor
            ``(B, target_frames, F)``.
        """
        return self.frontend.normalize(
            torch.stack([pad_or_cut(self.features[i], target_frames) for i in indices])
        )
