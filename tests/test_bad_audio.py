"""Bad audio at load time: clear errors naming the file, or skipped and counted."""

import logging

import numpy as np
import pytest
import soundfile as sf
import torch
from speechbrain.dataio.dataloader import make_dataloader

from ssast_sb.data.audio import AudioError
from ssast_sb.data.manifest import write_manifest_atomic
from ssast_sb.dataio import SkippingPaddedBatch, fbank_pipeline, manifest_dataset
from ssast_sb.frontend import SSASTFbank


@pytest.fixture
def corpus(shared_dir, tmp_path):
    """Real FSDD clips plus corrupted copies made here."""
    source = sorted((shared_dir / "data" / "kws_sid_fsdd" / "audio").glob("*.flac"))[:3]
    audio, rate = sf.read(source[0], dtype="float32")
    files = {"good_0": source[1], "good_1": source[2]}
    files["truncated"] = tmp_path / "truncated.flac"
    files["truncated"].write_bytes(source[0].read_bytes()[:100])
    # A WAV copy cut to 306 samples: its header still declares the whole clip.
    files["cut"] = tmp_path / "cut.wav"
    sf.write(files["cut"], audio, rate, subtype="PCM_16")
    files["cut"].write_bytes(files["cut"].read_bytes()[: 44 + 2 * 306])
    files["zero_bytes"] = tmp_path / "zero_bytes.wav"
    files["zero_bytes"].write_bytes(b"")
    files["nan"] = tmp_path / "nan.wav"
    sf.write(files["nan"], np.full(8000, np.nan, dtype="float32"), rate, subtype="FLOAT")
    files["stereo"] = tmp_path / "stereo.wav"
    sf.write(files["stereo"], np.stack([audio, -audio], axis=1), rate)
    files["rate_8k"] = tmp_path / "rate_8k.wav"
    sf.write(files["rate_8k"], audio[::2], 8000)
    files["rate_44k"] = tmp_path / "rate_44k.wav"
    sf.write(files["rate_44k"], np.repeat(audio, 3)[: int(len(audio) * 44100 / 16000)], 44100)
    rows = [{"ID": name, "duration": 1.0, "wav": str(path)} for name, path in files.items()]
    manifest = tmp_path / "manifest.csv"
    write_manifest_atomic(rows, manifest, ["ID", "duration", "wav"])
    return manifest


def _batches(manifest, on_bad_audio):
    pipeline = fbank_pipeline(SSASTFbank(target_frames=64), on_bad_audio)
    dataset = manifest_dataset(manifest, [pipeline], ["id", "fbank"])
    loader = make_dataloader(dataset, batch_size=16, collate_fn=SkippingPaddedBatch)
    return list(loader)


def test_skip_drops_unusable_clips_and_keeps_the_rest(corpus, caplog):
    with caplog.at_level(logging.INFO):
        (batch,) = _batches(corpus, "skip")
    assert sorted(batch.id) == ["good_0", "good_1", "rate_44k", "rate_8k", "stereo"]
    assert batch.fbank.data.shape == (5, 64, 128) and torch.isfinite(batch.fbank.data).all()
    text = caplog.text
    for name in ("truncated.flac", "cut.wav", "zero_bytes.wav", "nan.wav"):
        assert name in text  # each skipped file is named
    assert "cut.wav is truncated: its header declares" in text and "holds only 306" in text
    assert "Dropped 4 unusable clip(s)" in text
    assert "8000" in text and "44100" in text  # resampling is logged
    assert "stereo.wav" in text  # mixing down is logged


@pytest.mark.parametrize("bad", ["truncated.flac", "cut.wav", "zero_bytes.wav", "nan.wav"])
def test_error_policy_names_the_file(corpus, tmp_path, bad):
    rows = [{"ID": "bad", "duration": 1.0, "wav": str(tmp_path / bad)}]
    manifest = tmp_path / "only_bad.csv"
    write_manifest_atomic(rows, manifest, ["ID", "duration", "wav"])
    with pytest.raises(AudioError, match=bad):
        _batches(manifest, "error")


def test_label_missing_from_the_encoder_is_named():
    from speechbrain.dataio.encoder import CategoricalEncoder

    from ssast_sb.dataio import label_pipeline

    encoder = CategoricalEncoder()
    encoder.update_from_iterable(["dog", "rain"])
    with pytest.raises(KeyError, match="'cat' is not in the label encoder"):
        label_pipeline(encoder)("cat")


def test_each_skipped_file_is_named_once_not_every_epoch(corpus, caplog):
    with caplog.at_level(logging.WARNING, logger="ssast_sb.dataio"):
        for _ in range(3):  # three epochs
            _batches(corpus, "skip")
    skipped = [
        r.getMessage() for r in caplog.records if "Skipping unusable audio" in r.getMessage()
    ]
    assert len(skipped) == 4  # truncated.flac, cut.wav, zero_bytes.wav, nan.wav: once each
    assert sum("Dropped 4 unusable clip(s)" in r.getMessage() for r in caplog.records) == 3
