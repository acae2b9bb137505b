"""Downloads say what and how big before they start, and fail with a way out; no network."""

import csv
import logging
import shutil
import tarfile
import urllib.error
import urllib.request

import pytest

from ssast_sb.data import esc50, speech_commands
from ssast_sb.data.esc50 import DownloadError, download_and_extract, prepare_esc50
from ssast_sb.data.speech_commands import (
    DatasetVersionError,
    download_speech_commands,
    prepare_speech_commands,
)


def _offline(monkeypatch):
    """Every urlopen fails as it does without network; returns the addresses asked for."""
    asked = []

    def refuse(url, *args, **kwargs):
        asked.append(getattr(url, "full_url", url))  # a Request or an address
        raise urllib.error.URLError(OSError(101, "Network is unreachable"))

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return asked


def test_unreachable_archive_is_a_clear_error(tmp_path):
    url = (tmp_path / "nowhere" / "speech_commands_v0.02.tar.gz").as_uri()
    with pytest.raises(DownloadError) as caught:
        download_speech_commands(tmp_path / "data", version=2, url=url)
    message = str(caught.value)
    assert message.startswith(f"Could not download {url} to {tmp_path / 'data'}")
    assert "No such file or directory" in message
    assert f"so that {tmp_path / 'data' / 'speech_commands_v0.02'} exists" in message
    assert "--download False" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == []  # no partial file


def test_offline_prepare_names_the_option_that_avoids_the_download(tmp_path, monkeypatch):
    asked = _offline(monkeypatch)
    with pytest.raises(DownloadError, match=r"Network is unreachable.*--download False"):
        prepare_speech_commands(tmp_path / "data", tmp_path / "out", version=2, download=True)
    assert asked == [speech_commands.DOWNLOAD_URLS[2]]
    with pytest.raises(DownloadError, match="master.zip.*--download False"):
        prepare_esc50(tmp_path / "esc", tmp_path / "out", download=True)


def test_download_logs_address_destination_and_size_first(tmp_path, shared_dir, caplog):
    clip = sorted((shared_dir / "data" / "kws_sid_fsdd" / "audio").glob("*.flac"))[0]
    archive = tmp_path / "release.tar.gz"
    with tarfile.open(archive, "w:gz") as tarred:
        tarred.add(clip, arcname="release/clip.flac")
    with caplog.at_level(logging.INFO, logger="ssast_sb"):
        download_and_extract(archive.as_uri(), tmp_path / "data" / "release")
    size = esc50.format_size(archive.stat().st_size)
    first = caplog.records[0].getMessage()
    assert first == (
        f"Downloading {archive.as_uri()} ({size}) to {tmp_path / 'data' / 'release.tar.gz'}"
    )
    assert (tmp_path / "data" / "release" / "clip.flac").is_file()


def _v1_release(root, shared_dir):
    """A Speech Commands v1 folder (one word, its split lists) from a real clip."""
    release = root / "speech_commands_v0.01"
    folder = shared_dir / "data" / "kws_sid_fsdd"
    with open(folder / "manifest.csv", newline="", encoding="utf-8") as stream:
        row = next(csv.DictReader(stream))
    (release / "yes").mkdir(parents=True)
    shutil.copy(folder / row["path"], release / "yes" / "a_nohash_0.wav")
    (release / "validation_list.txt").write_text("")
    (release / "testing_list.txt").write_text("")
    return release


@pytest.mark.parametrize("point_at", ["parent", "release"])
def test_other_version_is_an_error_not_a_download(tmp_path, shared_dir, monkeypatch, point_at):
    release = _v1_release(tmp_path, shared_dir)
    asked = _offline(monkeypatch)
    data_folder = tmp_path if point_at == "parent" else release
    with pytest.raises(DatasetVersionError) as caught:
        prepare_speech_commands(data_folder, tmp_path / "out", version=2, download=True)
    assert str(caught.value) == (
        "Speech Commands version mismatch: version 2 (speech_commands_v0.02) was asked for, "
        f"but {release} is the version 1 release. Run with --version 1 (task v1_ks12 uses "
        "version 1, v2_35 version 2), or pass as --data_folder a folder that holds "
        "speech_commands_v0.02. Nothing was downloaded."
    )
    assert asked == []
    assert not (tmp_path / "speech_commands_v0.02").exists()


def test_matching_version_is_prepared_without_download(tmp_path, shared_dir, monkeypatch):
    _v1_release(tmp_path, shared_dir)
    asked = _offline(monkeypatch)
    (tmp_path / "speech_commands_v0.01" / "_background_noise_").mkdir()
    noise = tmp_path / "speech_commands_v0.01" / "_background_noise_" / "n.wav"
    shutil.copy(tmp_path / "speech_commands_v0.01" / "yes" / "a_nohash_0.wav", noise)
    summary = prepare_speech_commands(
        tmp_path, tmp_path / "out", version=1, task="v1_ks12", download=True
    )
    assert asked == [] and summary["train"]["kept"] == 1
