"""Property-based checks: any audio gives valid features and encodings, or a documented error."""

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssast_sb.data.audio import AudioError, EmptyAudioError, NonFiniteAudioError, load_audio
from ssast_sb.encoder import EncoderConfig, SSASTEncoder
from ssast_sb.frontend import SSASTFbank

FRONTEND = SSASTFbank(target_frames=48)
ENCODER = SSASTEncoder(EncoderConfig(embed_dim=16, depth=1, num_heads=2, input_tdim=48)).eval()
SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(
    num_samples=st.integers(0, 24000),
    sample_rate=st.sampled_from([8000, 11025, 16000, 22050, 44100, 48000]),
    channels=st.integers(1, 3),
    amplitude=st.sampled_from([0.0, 1e-6, 0.01, 0.5, 1.0, 1e3]),
    special=st.sampled_from([None, "nan", "inf"]),
)
def test_any_file_gives_features_or_a_documented_error(
    tmp_path_factory, num_samples, sample_rate, channels, amplitude, special
):
    rng = np.random.default_rng(num_samples)
    data = (rng.standard_normal((num_samples, channels)) * amplitude).astype("float32")
    if special and num_samples:
        data[num_samples // 2, 0] = np.nan if special == "nan" else np.inf
    path = tmp_path_factory.mktemp("fuzz") / "clip.wav"
    sf.write(path, data, sample_rate, subtype="FLOAT")
    try:
        waveform = load_audio(path)
    except EmptyAudioError as error:
        assert num_samples == 0 and str(path) in str(error)
        return
    except NonFiniteAudioError as error:
        assert special is not None and str(path) in str(error)
        return
    assert num_samples > 0 and special is None
    assert waveform.dim() == 1 and torch.isfinite(waveform).all()
    assert abs(waveform.numel() - round(num_samples * 16000 / sample_rate)) <= 1
    features = FRONTEND(waveform.unsqueeze(0))
    assert features.shape == (1, 48, 128) and torch.isfinite(features).all()
    with torch.no_grad():
        tokens = ENCODER(features)
    assert tokens.shape == (1, 2 + 8 * 3, 16) and torch.isfinite(tokens).all()


@SETTINGS
@given(
    batch=st.integers(1, 3),
    num_samples=st.integers(1, 20000),
    relative=st.lists(st.floats(0.01, 1.0), min_size=3, max_size=3),
)
def test_batches_with_relative_lengths(batch, num_samples, relative):
    wavs = torch.randn(batch, num_samples)
    features = FRONTEND(wavs, torch.tensor(relative[:batch]))
    assert features.shape == (batch, 48, 128) and torch.isfinite(features).all()


@SETTINGS
@given(frames=st.integers(1, 200), bins=st.sampled_from([64, 128, 129]))
def test_encoder_input_shape_is_checked(frames, bins):
    spectrogram = torch.randn(1, frames, bins)
    if (frames, bins) == (48, 128):
        assert ENCODER(spectrogram).shape[1] == 2 + 24
    else:
        with pytest.raises(ValueError, match="built for 48 frames x 128 mel bins"):
            ENCODER(spectrogram)


def test_corrupt_bytes_name_the_file(tmp_path):
    path = tmp_path / "broken.flac"
    path.write_bytes(b"fLaC" + bytes(range(200)))
    with pytest.raises(AudioError, match="broken.flac"):
        load_audio(path)
