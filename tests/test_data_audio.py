"""Tests for ssast_sb.data.audio: loading real clips and refusing broken ones."""

import csv
import logging
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from ssast_sb.data.audio import (
    AudioDecodeError,
    AudioError,
    AudioFileMissingError,
    AudioInfo,
    EmptyAudioError,
    NonFiniteAudioError,
    TruncatedAudioError,
    audio_info,
    load_audio,
    riff_declared_frames,
)


def _first_clips(folder, count):
    with open(folder / "manifest.csv", newline="") as csv_file:
        rows = list(csv.DictReader(csv_file))[:count]
    return [folder / row["path"] for row in rows]


@pytest.fixture(scope="module")
def fsdd_clip(shared_dir):
    return _first_clips(shared_dir / "data" / "kws_sid_fsdd", 1)[0]


@pytest.fixture(scope="module")
def klettres_clip(shared_dir):
    return _first_clips(shared_dir / "data" / "pretrain_klettres", 1)[0]


@pytest.fixture
def speech(fsdd_clip):
    """Real 16 kHz mono speech as a float32 numpy array."""
    samples, sample_rate = sf.read(fsdd_clip, dtype="float32")
    assert sample_rate == 16000
    return samples


def test_audio_errors_are_value_errors():
    for error in (
        AudioFileMissingError,
        AudioDecodeError,
        TruncatedAudioError,
        EmptyAudioError,
        NonFiniteAudioError,
    ):
        assert issubclass(error, AudioError)
        assert issubclass(error, ValueError)
    assert issubclass(TruncatedAudioError, AudioDecodeError)


@pytest.mark.parametrize("which", ["fsdd_clip", "klettres_clip"])
def test_load_real_clip_matches_soundfile(which, request):
    path = request.getfixturevalue(which)
    expected, sample_rate = sf.read(path, dtype="float32")
    wav = load_audio(path)
    assert wav.dtype == torch.float32 and wav.ndim == 1
    assert sample_rate == 16000
    np.testing.assert_array_equal(wav.numpy(), expected)


def test_audio_info_real_clip(fsdd_clip):
    info = audio_info(fsdd_clip)
    header = sf.info(fsdd_clip)
    assert isinstance(info, AudioInfo)
    assert (info.num_frames, info.sample_rate, info.channels) == (header.frames, 16000, 1)
    assert info.duration_s == pytest.approx(header.frames / 16000)


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere.wav"
    for read in (load_audio, audio_info):
        with pytest.raises(AudioFileMissingError, match="not found.*nowhere.wav"):
            read(path)


def test_directory_is_not_audio(tmp_path):
    with pytest.raises(AudioFileMissingError, match="not a regular file"):
        load_audio(tmp_path)


def test_zero_byte_file(tmp_path):
    path = tmp_path / "zero.wav"
    path.touch()
    for read in (load_audio, audio_info):
        with pytest.raises(EmptyAudioError, match=r"0 bytes.*zero.wav"):
            read(path)


def test_zero_frames(tmp_path):
    path = tmp_path / "no_frames.wav"
    sf.write(path, np.zeros((0, 1), dtype="float32"), 16000)
    for read in (load_audio, audio_info):
        with pytest.raises(EmptyAudioError, match="no samples.*no_frames.wav"):
            read(path)


def test_truncated_header_is_unreadable(tmp_path, speech):
    full = tmp_path / "full.wav"
    sf.write(full, speech, 16000)
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(full.read_bytes()[:30])
    for read in (load_audio, audio_info):
        with pytest.raises(AudioDecodeError, match="truncated.wav") as caught:
            read(truncated)
        assert isinstance(caught.value.__cause__, sf.SoundFileError)


def test_truncated_flac_data_fails_on_load(tmp_path, fsdd_clip):
    truncated = tmp_path / "half.flac"
    data = fsdd_clip.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioDecodeError, match="half.flac"):
        load_audio(truncated)


def test_garbage_bytes(tmp_path):
    path = tmp_path / "noise.ogg"
    path.write_bytes(b"this is not audio at all" * 20)
    with pytest.raises(AudioDecodeError, match="noise.ogg"):
        audio_info(path)


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_non_finite_samples(tmp_path, speech, bad_value):
    path = tmp_path / "bad.wav"
    samples = speech.copy()
    samples[10:13] = bad_value
    sf.write(path, samples, 16000, subtype="FLOAT")
    with pytest.raises(NonFiniteAudioError, match=r"bad.wav contains 3 NaN or infinite"):
        load_audio(path)
    # The header alone is fine: only decoding sees the values.
    assert audio_info(path).num_frames == len(speech)


def test_all_nan_wav(tmp_path):
    path = tmp_path / "nan.wav"
    sf.write(path, np.full(1600, np.nan, dtype="float32"), 16000, subtype="FLOAT")
    with pytest.raises(NonFiniteAudioError, match="1600"):
        load_audio(path)


def test_stereo_is_mixed_down(tmp_path, speech, caplog):
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([speech, 0.5 * speech], axis=1), 16000, subtype="FLOAT")
    assert audio_info(path).channels == 2
    with caplog.at_level(logging.INFO, logger="ssast_sb.data.audio"):
        wav = load_audio(path)
    np.testing.assert_allclose(wav.numpy(), 0.75 * speech, atol=1e-6)
    mono_lines = [r.getMessage() for r in caplog.records if "mono" in r.getMessage()]
    assert len(mono_lines) == 1 and "stereo.wav" in mono_lines[0]


def test_mono_file_logs_nothing(fsdd_clip, caplog):
    with caplog.at_level(logging.INFO, logger="ssast_sb.data.audio"):
        load_audio(fsdd_clip)
    assert not caplog.records


@pytest.mark.parametrize("file_rate", [8000, 44100])
def test_other_rates_are_resampled(tmp_path, speech, file_rate, caplog):
    path = tmp_path / f"speech_{file_rate}.wav"
    resampled = torchaudio.functional.resample(torch.from_numpy(speech), 16000, file_rate).numpy()
    sf.write(path, resampled, file_rate, subtype="FLOAT")
    with caplog.at_level(logging.INFO, logger="ssast_sb.data.audio"):
        wav = load_audio(path, target_sample_rate=16000)
    assert abs(len(wav) - len(resampled) * 16000 / file_rate) <= 1
    lines = [r.getMessage() for r in caplog.records if "Resampling" in r.getMessage()]
    assert len(lines) == 1
    assert path.name in lines[0] and str(file_rate) in lines[0] and "16000" in lines[0]
    if file_rate == 44100:
        # Up and down again through 44.1 kHz keeps the speech.
        n = min(len(wav), len(speech))
        corr = np.corrcoef(wav.numpy()[:n], speech[:n])[0, 1]
        assert corr > 0.99


def test_resampling_keeps_pitch(tmp_path):
    """A 440 Hz tone at 44.1 kHz is still a 440 Hz tone after resampling to 16 kHz."""
    rate = 44100
    t = np.arange(rate) / rate
    path = tmp_path / "tone.wav"
    sf.write(path, 0.5 * np.sin(2 * np.pi * 440 * t).astype("float32"), rate)
    wav = load_audio(path, target_sample_rate=16000).numpy()
    assert len(wav) == 16000
    peak_hz = np.argmax(np.abs(np.fft.rfft(wav))) * 16000 / len(wav)
    assert peak_hz == pytest.approx(440, abs=2)


def test_target_rate_none_keeps_file_rate(tmp_path, speech):
    path = tmp_path / "8k.flac"
    sf.write(path, speech, 8000)
    assert len(load_audio(path, target_sample_rate=None)) == len(speech)


def test_ogg_and_mp3_copies_load(tmp_path, klettres_clip, speech):
    ogg = tmp_path / "copy.ogg"
    shutil.copy(klettres_clip, ogg)
    assert load_audio(ogg).ndim == 1
    mp3 = tmp_path / "speech.mp3"
    sf.write(mp3, speech, 16000)
    wav = load_audio(mp3)
    assert wav.dtype == torch.float32 and len(wav) > 0


def _cut_copy(source, path, keep_bytes, **write_options):
    """A copy of the real clip ``source`` written at ``path``, then cut to ``keep_bytes``."""
    samples, rate = sf.read(source, dtype="float32")
    sf.write(path, samples, rate, **write_options)
    path.write_bytes(path.read_bytes()[:keep_bytes])
    return len(samples)


def test_truncated_wav_is_refused_with_both_lengths(tmp_path, fsdd_clip):
    """libsndfile reports a cut WAV as a short clip; its data chunk still says how long it was."""
    path = tmp_path / "cut.wav"
    frames = _cut_copy(fsdd_clip, path, 44 + 2 * 306, subtype="PCM_16")
    assert sf.info(path).frames == 306 and len(sf.read(path)[0]) == 306  # what libsndfile says
    assert riff_declared_frames(path) == frames
    for read in (audio_info, load_audio):
        with pytest.raises(TruncatedAudioError) as caught:
            read(path)
        message = str(caught.value)
        assert str(path) in message
        assert f"declares {frames} frames" in message and "holds only 306 " in message
        assert "on_bad_audio: skip" in message


def test_truncated_flac_is_caught_from_its_header(tmp_path, fsdd_clip):
    path = tmp_path / "cut.flac"
    data = fsdd_clip.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    frames = sf.info(fsdd_clip).frames
    assert sf.info(path).frames == frames  # STREAMINFO still promises every frame
    for read in (audio_info, load_audio):
        with pytest.raises(TruncatedAudioError, match=rf"cut.flac is truncated.*{frames} frames"):
            read(path)


def test_complete_files_and_small_differences_are_accepted(tmp_path, fsdd_clip):
    wav = tmp_path / "whole.wav"
    frames = _cut_copy(fsdd_clip, wav, 10**9, subtype="PCM_16")
    assert audio_info(wav).num_frames == frames and len(load_audio(wav)) == frames
    # Two frames short of the header: within the tolerance, a clip 2 frames shorter.
    short = tmp_path / "short.wav"
    _cut_copy(fsdd_clip, short, 44 + 2 * (frames - 2), subtype="PCM_16")
    assert audio_info(short).num_frames == frames - 2
    streamed = tmp_path / "streamed.wav"  # size left open (0xFFFFFFFF), as streaming writers do
    _cut_copy(fsdd_clip, streamed, 10**9, subtype="PCM_16")
    data = bytearray(streamed.read_bytes())
    data[40:44] = (0xFFFFFFFF).to_bytes(4, "little")
    streamed.write_bytes(bytes(data))
    assert riff_declared_frames(streamed) is None and len(load_audio(streamed)) == frames


def test_resampling_and_mixdown_are_announced_once_per_file(tmp_path, speech, caplog):
    paths = [tmp_path / f"stereo_8k_{index}.wav" for index in range(2)]
    for path in paths:
        sf.write(path, np.stack([speech, speech], axis=1)[::2], 8000)
    with caplog.at_level(logging.INFO, logger="ssast_sb.data.audio"):
        for _ in range(3):  # three epochs
            for path in paths:
                load_audio(path)
    lines = [record.getMessage() for record in caplog.records]
    for path in paths:
        assert sum("Resampling" in line and str(path) in line for line in lines) == 1
        assert sum("mono" in line and str(path) in line for line in lines) == 1
    assert len(lines) == 4


LOADER_EPOCHS = """
import logging, sys
import torch
from ssast_sb.dataio import fbank_pipeline, manifest_dataset
from ssast_sb.frontend import SSASTFbank

logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
dataset = manifest_dataset(sys.argv[1], [fbank_pipeline(SSASTFbank(64))], ["id", "fbank"])
for epoch in range(3):  # new worker processes every epoch, as SpeechBrain's loaders
    loader = torch.utils.data.DataLoader(dataset, batch_size=1, num_workers=2)
    assert len(list(loader)) == 4
"""


def test_loader_workers_announce_a_file_once_per_run_not_per_epoch(tmp_path, speech):
    rows = ["ID,duration,wav"]
    for index in range(4):
        path = tmp_path / f"clip_8k_{index}.wav"
        sf.write(path, speech[::2], 8000)
        rows.append(f"c{index},1.0,{path}")
    (tmp_path / "clips.csv").write_text("\n".join(rows) + "\n")
    script = tmp_path / "epochs.py"
    script.write_text(LOADER_EPOCHS)
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "clips.csv")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("Resampling")]
    assert len(lines) == 4, result.stdout  # 12 reads by 6 worker processes, 4 files
    assert sorted(set(lines)) == sorted(lines)


def test_clip_shorter_than_a_window_is_warned_about_with_its_name(tmp_path, speech, caplog):
    path = tmp_path / "blip.wav"
    sf.write(path, speech[:300], 16000)
    with caplog.at_level(logging.DEBUG):
        load_audio(path)
        load_audio(path)
        from ssast_sb.frontend import SSASTFbank

        SSASTFbank(target_frames=16)(load_audio(path).unsqueeze(0))
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1  # once per file, and the frontend does not repeat it
    assert str(path) in warnings[0].getMessage()
    assert "300 samples" in warnings[0].getMessage()
    assert "25 ms" in warnings[0].getMessage()
