"""Every bad file at once: the recipe, ``embed`` and ``verify`` list them all in one message.

Run as a user runs them, on copies of ``../shared/data``: a class folder with a 0-byte
file and a text file named ``.wav`` used to stop on the first, then (once removed) on the
second, each time with a long traceback. Now one message names both, the option that skips
them, and, past the first 20, how many more there are and the file that lists them all.
"""

import os
from pathlib import Path

import torch

from tests.conftest import load_reference, run_python
from tests.test_custom_recipe import digits_as_class_folders

ROOT = Path(__file__).resolve().parents[1]


def _run(*command):
    result = run_python(*command, env=dict(os.environ, OMP_NUM_THREADS="1"))
    output = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in output, output[-3000:]
    return result.stderr


def _spoil(folder, count=2):
    """``count`` bad files among the clips: 0-byte files and text files named ``.wav``."""
    bad = []
    for index in range(count):
        path = folder / ("one" if index % 2 else "two") / f"bad_{index:02d}.wav"
        path.write_text("" if index % 2 else "not audio, a text file\n")
        bad.append(path)
    return bad


def test_the_recipe_lists_every_bad_file_in_one_message(shared_dir, tmp_path):
    data = digits_as_class_folders(shared_dir, tmp_path / "digits", every=12)
    bad = _spoil(data)
    recipe = [ROOT / "recipes" / "custom" / "train.py", ROOT / "hparams" / "custom.yaml"]
    output = tmp_path / "out"
    message = _run(*recipe, "--data", data, "--output_folder", output, "--noprogressbar")
    assert "BadAudioError: 2 of 152 audio files cannot be used:" in message
    assert all(str(path) in message for path in bad)
    assert "is empty (0 bytes)" in message and "Format not recognised" in message
    assert "pass --on_bad_audio skip to leave them out" in message
    assert not (output / "manifests" / "train.csv").exists()

    # Many bad files: the first 20 in the message, the count, and the file listing them all.
    bad += _spoil(data, 30)[2:]
    message = _run(*recipe, "--data", data, "--output_folder", output, "--noprogressbar")
    listing = output / "manifests" / "bad_audio.txt"
    assert "30 of 180 audio files cannot be used:" in message
    assert f"... and 10 more: all 30 are listed in {listing}" in message
    assert sum(line.startswith("  Row ") for line in message.splitlines()) == 20
    listed = listing.read_text().splitlines()
    assert len(listed) == 30 and all(any(str(path) in line for line in listed) for path in bad)


def test_embed_and_verify_list_every_missing_clip(shared_dir, reference_dir, tmp_path):
    model = tmp_path / "SSAST-Tiny-Frame.pth"
    torch.save(load_reference(reference_dir / "tiny_frame_seed0.pt")["pretrain_state_dict"], model)
    data = shared_dir / "data" / "kws_sid_fsdd"
    clips = sorted((data / "audio").glob("*.flac"))[:2]
    listing = tmp_path / "clips.csv"
    names = [clip.name for clip in clips] + ["gone_1.flac", "gone_2.flac"]
    listing.write_text("path\n" + "".join(f"audio/{name}\n" for name in names))
    embed = ["-m", "ssast_sb.embed", "--model", model, "--input", listing, "--data-root", data]
    message = _run(*embed, "--output", tmp_path / "e.pt")
    assert "2 of 4 audio files cannot be used:" in message
    assert "gone_1.flac" in message and "gone_2.flac" in message
    assert "--on_bad_audio skip" in message or "--on-bad-audio skip" in message
    assert not (tmp_path / "e.pt").exists()

    trials = tmp_path / "trials.txt"
    trials.write_text(
        f"1 audio/{clips[0].name} audio/gone_1.flac\n0 audio/{clips[1].name} audio/gone_2.flac\n"
    )
    message = _run("-m", "ssast_sb.verify", "--model", model, "--trials", trials, "--data", data)
    assert "2 of 4 audio files cannot be used:" in message
    assert "gone_1.flac" in message and "gone_2.flac" in message
    assert "--on-bad-audio skip" in message
