"""Tests for ssast_sb.data.iemocap on an IEMOCAP-shaped tree of real emotional speech (EmoDB)."""

import csv
import json
import os
import shutil
from collections import Counter

import pytest
import soundfile as sf

from ssast_sb.data.audio import AudioFileMissingError
from ssast_sb.data.iemocap import prepare_iemocap, read_emo_evaluation, speaker_of
from ssast_sb.data.manifest import ClassLostError, read_manifest

# dialog suffix -> labels of its utterances, in order; speakers alternate F, M, F, ...
DIALOGS = {
    "F_impro01": ["neu", "hap", "exc", "sad", "ang", "fru", "xxx", "sur"],
    "M_script01_1": ["exc", "neu", "fea", "ang"],
}
FOUR_CLASS = {"neu": "neutral", "hap": "happy", "exc": "happy", "sad": "sad", "ang": "angry"}
EVAL_HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"


def _utterances(session):
    """[(dialog, utterance id, label)] of one session."""
    result = []
    for suffix, labels in DIALOGS.items():
        dialog = f"Ses{session:02d}{suffix}"
        for index, label in enumerate(labels):
            gender = "FM"[index % 2]
            result.append((dialog, f"{dialog}_{gender}{index:03d}", label))
    return result


def _eval_block(utt_id, label, start):
    return (
        f"[{start:.4f} - {start + 1.7:.4f}]\t{utt_id}\t{label}\t[2.5000, 3.0000, 2.5000]\n"
        "C-E2:\tNeutral;\t()\nC-E3:\tFrustration;\t()\n"
        "A-E3:\tval 3; act 2; dom  2;\t()\n\n"
    )


@pytest.fixture(scope="module")
def iemocap_template(tmp_path_factory, shared_dir):
    emodb = shared_dir / "data" / "emotion_emodb"
    with open(emodb / "manifest.csv", newline="") as csv_file:
        clips = [emodb / row["path"] for row in csv.DictReader(csv_file)]
    root = tmp_path_factory.mktemp("iemocap_template")
    release = root / "IEMOCAP_full_release"
    clip_iter = iter(clips)
    for session in range(1, 6):
        session_folder = release / f"Session{session}"
        eval_folder = session_folder / "dialog" / "EmoEvaluation"
        (eval_folder / "Categorical").mkdir(parents=True)
        texts = {}
        for dialog, utt_id, label in _utterances(session):
            wav_folder = session_folder / "sentences" / "wav" / dialog
            wav_folder.mkdir(parents=True, exist_ok=True)
            samples, rate = sf.read(next(clip_iter), dtype="float32")
            sf.write(wav_folder / f"{utt_id}.wav", samples, rate, subtype="PCM_16")
            start = 3.0 * len(texts.get(dialog, ""))
            texts[dialog] = texts.get(dialog, EVAL_HEADER) + _eval_block(utt_id, label, start)
        for dialog, text in texts.items():
            (eval_folder / f"{dialog}.txt").write_text(text)
            # macOS resource forks ship with some copies; per-annotator files sit in subfolders.
            (eval_folder / f"._{dialog}.txt").write_bytes(b"\x00\x05\x16\x07 junk [1.0 - 2.0]")
            (eval_folder / "Categorical" / f"{dialog}_e1_cat.txt").write_text(
                f"{dialog}_F000 :Neutral state; ()\n"
            )
    return root


@pytest.fixture
def iemocap_root(tmp_path, iemocap_template):
    root = tmp_path / "corpora"
    shutil.copytree(iemocap_template, root)
    return root


def test_four_class_manifests_per_session(iemocap_root, tmp_path):
    save = tmp_path / "manifests"
    summary = prepare_iemocap(iemocap_root, save)
    assert sorted(os.listdir(save)) == ["iemocap.prepared.json"] + [
        f"iemocap_session{n}.csv" for n in range(1, 6)
    ]
    # No class list: the stamp keeps the counts, in sorted (label encoder) order.
    stamp = json.loads((save / "iemocap.prepared.json").read_text())
    assert list(stamp["counts"]["class_counts"]) == ["angry", "happy", "neutral", "sad"]
    for session in range(1, 6):
        path = save / f"iemocap_session{session}.csv"
        assert path.read_text().splitlines()[0] == "ID,duration,wav,label,emotion,speaker,session"
        rows = {row["ID"]: row for row in read_manifest(path)}
        expected = {utt: label for _, utt, label in _utterances(session) if label in FOUR_CLASS}
        assert sorted(rows) == sorted(expected)
        assert summary[f"session{session}"]["kept"] == len(expected) == 8
        for utt_id, row in rows.items():
            assert row["emotion"] == expected[utt_id]
            assert row["label"] == FOUR_CLASS[expected[utt_id]]
            assert row["session"] == str(session)
            assert row["speaker"] == f"Ses{session:02d}{utt_id.rsplit('_', 1)[1][0]}"
            assert os.path.isabs(row["wav"]) and row["wav"].endswith(
                f"Session{session}/sentences/wav/{utt_id.rsplit('_', 1)[0]}/{utt_id}.wav"
            )
            assert row["duration"] == pytest.approx(2.0, abs=1e-3)  # the EmoDB copies are 2 s

    # hap and exc are merged into "happy"; fru, xxx, sur and fea are dropped and counted.
    assert summary["class_counts"] == {"neutral": 10, "happy": 15, "sad": 5, "angry": 10}
    assert summary["dropped"] == {"fea": 5, "fru": 5, "sur": 5, "xxx": 5}
    all_rows = [row for n in range(1, 6) for row in read_manifest(save / f"iemocap_session{n}.csv")]
    happy = Counter(row["emotion"] for row in all_rows if row["label"] == "happy")
    assert happy == {"hap": 5, "exc": 10}
    # Both genders of a session are separate speakers, whatever the dialog's letter.
    assert {row["speaker"] for row in all_rows if row["session"] == "3"} == {"Ses03F", "Ses03M"}


def test_speaker_is_taken_from_the_utterance_not_the_dialog():
    assert speaker_of("Ses05M_script01_1b_F012") == "Ses05F"
    assert speaker_of("Ses02F_impro03_M001") == "Ses02M"


def test_read_emo_evaluation_keeps_only_summary_lines(iemocap_root):
    path = (
        iemocap_root
        / "IEMOCAP_full_release"
        / "Session2"
        / "dialog"
        / "EmoEvaluation"
        / "Ses02F_impro01.txt"
    )
    entries = read_emo_evaluation(path)
    assert entries == [
        (utt, label) for dialog, utt, label in _utterances(2) if dialog == "Ses02F_impro01"
    ]


def test_selected_sessions_and_release_folder_itself(iemocap_root, tmp_path):
    release = iemocap_root / "IEMOCAP_full_release"
    for session in (3, 4, 5):
        shutil.rmtree(release / f"Session{session}")
    with pytest.raises(FileNotFoundError, match=r"\[3, 4, 5\]"):
        prepare_iemocap(iemocap_root, tmp_path / "all")
    summary = prepare_iemocap(release, tmp_path / "two", sessions=[2, 1])
    assert sorted(os.listdir(tmp_path / "two")) == [
        "iemocap.prepared.json",
        "iemocap_session1.csv",
        "iemocap_session2.csv",
    ]
    assert summary["class_counts"]["happy"] == 6
    with pytest.raises(ValueError, match="sessions"):
        prepare_iemocap(release, tmp_path / "bad", sessions=[6])


def test_missing_dataset_says_to_request_it(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        prepare_iemocap(tmp_path / "nothing", tmp_path / "out")
    message = str(error.value)
    assert "USC SAIL" in message and "https://sail.usc.edu/iemocap" in message
    assert str(tmp_path / "nothing" / "IEMOCAP_full_release") in message


def test_missing_wav_of_a_kept_utterance(iemocap_root, tmp_path):
    session_folder = iemocap_root / "IEMOCAP_full_release" / "Session1"
    os.remove(session_folder / "sentences" / "wav" / "Ses01F_impro01" / "Ses01F_impro01_F002.wav")
    # A dropped utterance without audio does not matter.
    os.remove(session_folder / "sentences" / "wav" / "Ses01F_impro01" / "Ses01F_impro01_F006.wav")
    with pytest.raises(AudioFileMissingError, match="Ses01F_impro01_F002"):
        prepare_iemocap(iemocap_root, tmp_path / "strict")
    summary = prepare_iemocap(iemocap_root, tmp_path / "lenient", on_bad_audio="skip")
    assert summary["session1"]["missing"] == 1 and summary["session1"]["kept"] == 7
    assert summary["class_counts"]["happy"] == 14
    assert summary["short_classes"] == {"session1": {"happy": [2, 3]}}


def test_class_lost_from_a_session_is_an_error(iemocap_root, tmp_path):
    wav = iemocap_root / "IEMOCAP_full_release" / "Session2" / "sentences" / "wav"
    os.remove(wav / "Ses02F_impro01" / "Ses02F_impro01_M003.wav")  # the only "sad" there
    with pytest.raises(ClassLostError, match=r"IEMOCAP session2: no clip is left .*\(sad 0/1\)"):
        prepare_iemocap(iemocap_root, tmp_path / "m", on_bad_audio="skip")


def test_skip_existing(iemocap_root, tmp_path):
    save = tmp_path / "m"
    assert prepare_iemocap(iemocap_root, save) is not None
    assert prepare_iemocap(iemocap_root, save) is None
    assert prepare_iemocap(iemocap_root, save, skip_prep=True) is None
