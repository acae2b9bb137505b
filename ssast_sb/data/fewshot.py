"""Manifests of a few-shot experiment from one split manifest: pool, k-shot sets, valid, test.

The quickstart (and anyone who wants to measure what pretraining buys on
their own labeled audio) needs, from one list of clips with a ``split``
column: the unlabeled pretraining pool (the ``train`` split, labels dropped),
a held-out set for the pretraining curve, ``k`` labeled training clips per
class drawn once per seed, and the validation and test sets. The source is a
CSV with ``path,label,duration,split`` (the layout of ``data/kws_sid_fsdd``);
paths are relative to it. The output manifests have the columns
``ID,duration,wav`` (and ``label``). A preparation stamp records the options,
so a rerun with the same ones writes nothing and a changed one rewrites all.

Example
-------
>>> import tempfile, os, csv
>>> import numpy as np, soundfile as sf
>>> from ssast_sb.data.manifest import read_manifest
>>> root = tempfile.mkdtemp()
>>> rows = []
>>> for split, count in (("train", 4), ("valid", 2), ("test", 2)):
...     for label in ("a", "b"):
...         for i in range(count):
...             name = f"{split}_{label}_{i}.wav"
...             sf.write(os.path.join(root, name), np.zeros(1600), 16000)
...             rows.append({"path": name, "label": label, "duration": 0.1, "split": split})
>>> with open(os.path.join(root, "manifest.csv"), "w", newline="") as stream:
...     writer = csv.DictWriter(stream, ["path", "label", "duration", "split"])
...     _ = writer.writeheader()
...     _ = writer.writerows(rows)
>>> out = prepare_fewshot(os.path.join(root, "manifest.csv"), os.path.join(root, "out"),
...                       shots=2, seeds=[0, 1])
>>> sorted(out["train"]), [len(read_manifest(out[s])) for s in ("pool", "valid", "test")]
([0, 1], [8, 4, 4])
>>> len(read_manifest(out["train"][1]))
4

Authors
 * ssast-sb contributors
"""

import csv
import logging
import random
from collections import defaultdict
from pathlib import Path

from ssast_sb.errors import OptionError

from .manifest import (
    ManifestError,
    PreparationStamp,
    unique_ids,
    write_manifest_atomic,
)

logger = logging.getLogger(__name__)

REQUIRED = ("path", "duration", "split")


def read_split_manifest(path, label_column="label"):
    """The rows of a split manifest, paths made absolute and checked.

    Arguments
    ---------
    path : str or pathlib.Path
        CSV with ``path``, ``duration``, ``split`` and the label column.
    label_column : str
        The column holding the class.

    Returns
    -------
    list of dict
        ``wav`` (absolute path), ``duration`` (float), ``split`` and ``label``.

    Raises
    ------
    ManifestError
        A column is absent, a duration is not a number or an audio file is missing;
        the message names the file (and the row).
    """
    path = Path(path)
    with open(path, newline="", encoding="utf-8-sig") as stream:
        reader = csv.DictReader(stream)
        found = reader.fieldnames or []
        missing = [c for c in (*REQUIRED, label_column) if c not in found]
        if missing:
            fix = "give it these columns, or pass another --source_manifest"
            if missing == [label_column]:
                others = [c for c in found if c not in REQUIRED]
                fix = (
                    f"pass as --label_column the column of its class labels (one of {others})"
                    if others
                    else fix
                )
            raise ManifestError(f"{path}: no column(s) {missing} (columns found: {found}); {fix}")
        rows = []
        for line, row in enumerate(reader, start=2):
            wav = Path(row["path"])
            wav = wav if wav.is_absolute() else path.parent / wav
            if not wav.is_file():
                raise ManifestError(f"{path}, line {line}: audio file {wav} not found")
            try:
                duration = float(row["duration"])
            except ValueError:
                raise ManifestError(
                    f"{path}, line {line}: duration {row['duration']!r} is not a number"
                ) from None
            rows.append(
                {
                    "wav": str(wav),
                    "duration": duration,
                    "split": row["split"],
                    "label": row[label_column],
                }
            )
    return rows


def draw_shots(rows, shots, seed):
    """``shots`` rows of every class, drawn with ``seed`` (in the rows' order).

    Arguments
    ---------
    rows : list of dict
        Rows with a ``label``.
    shots : int
        Clips per class.
    seed : int
        Which clips.

    Returns
    -------
    list of dict

    Raises
    ------
    ssast_sb.errors.OptionError
        A class has fewer than ``shots`` clips, or ``shots`` is below 1: the
        message names ``--shots`` and the most that every class has.

    Example
    -------
    >>> rows = [{"label": c, "n": i} for c in "ab" for i in range(3)]
    >>> [(row["label"], row["n"]) for row in draw_shots(rows, 2, seed=0)]
    [('a', 1), ('a', 2), ('b', 0), ('b', 1)]
    """
    by_class = defaultdict(list)
    for index, row in enumerate(rows):
        by_class[row["label"]].append(index)
    short = {label: len(members) for label, members in by_class.items() if len(members) < shots}
    most = min((len(members) for members in by_class.values()), default=0)
    if short or shots < 1:
        fewer = f"; these classes have fewer: {short}" if short else ""
        raise OptionError(
            f"--shots {shots}: {shots} training clips per class asked{fewer}. Pass --shots "
            f"{most} or fewer (every class has {most}), at least 1."
        )
    generator = random.Random(seed)
    chosen = sorted(i for members in by_class.values() for i in generator.sample(members, shots))
    return [rows[i] for i in chosen]


def every_nth_per_class(rows, per_class):
    """At most ``per_class`` rows of each class, spread over its rows (no draw).

    Example
    -------
    >>> rows = [{"label": c, "n": i} for c in "ab" for i in range(4)]
    >>> [row["n"] for row in every_nth_per_class(rows, 2)]
    [0, 2, 0, 2]
    """
    if per_class is None:
        return list(rows)
    by_class = defaultdict(list)
    for row in rows:
        by_class[row["label"]].append(row)
    kept = []
    for members in by_class.values():
        step = max(1, len(members) // per_class)
        kept.extend(members[::step][:per_class])
    order = {id(row): i for i, row in enumerate(rows)}
    return sorted(kept, key=lambda row: order[id(row)])


def _manifest_rows(rows, with_label):
    ids = unique_ids([Path(row["wav"]).name for row in rows])
    out = []
    for utt_id, row in zip(ids, rows):
        item = {"ID": utt_id, "duration": row["duration"], "wav": row["wav"]}
        if with_label:
            item["label"] = row["label"]
        out.append(item)
    return out


def prepare_fewshot(
    source,
    output_folder,
    shots,
    seeds,
    label_column="label",
    valid_per_class=None,
    pool_valid_clips=None,
):
    """Writes the pool, held-out, k-shot (one per seed), valid and test manifests.

    Arguments
    ---------
    source : str or pathlib.Path
        Split manifest (``path,duration,split`` and ``label_column``).
    output_folder : str or pathlib.Path
        Where the manifests go.
    shots : int
        Labeled training clips per class.
    seeds : list of int
        One training set per seed.
    label_column : str
        The class column.
    valid_per_class : int, optional
        Keep this many validation clips per class (all when None).
    pool_valid_clips : int, optional
        Held-out clips of the pretraining curve, spread over the valid split (all when None).

    Returns
    -------
    dict
        Paths: ``pool``, ``pool_valid``, ``valid``, ``test`` and ``train`` (seed -> path).
    """
    output_folder = Path(output_folder)
    paths = {
        "pool": output_folder / "pool.csv",
        "pool_valid": output_folder / "pool_valid.csv",
        "valid": output_folder / "valid.csv",
        "test": output_folder / "test.csv",
        "train": {seed: output_folder / f"train_{shots}shot_seed{seed}.csv" for seed in seeds},
    }
    files = [p for key, p in paths.items() if key != "train"] + list(paths["train"].values())
    options = {
        "source": str(Path(source).resolve()),
        "shots": shots,
        "seeds": list(seeds),
        "label_column": label_column,
        "valid_per_class": valid_per_class,
        "pool_valid_clips": pool_valid_clips,
    }
    stamp = PreparationStamp(
        output_folder, "fewshot", prepare_fewshot, options, files, "few-shot manifests"
    )
    if stamp.is_current():
        return paths
    stamp.invalidate()
    rows = read_split_manifest(source, label_column)
    splits = {name: [row for row in rows if row["split"] == name] for name in ("train", "valid")}
    splits["test"] = [row for row in rows if row["split"] == "test"]
    for name, members in splits.items():
        if not members:
            raise ManifestError(f"{source}: no clip in the {name} split")
    held_out = splits["valid"]
    if pool_valid_clips:
        held_out = held_out[:: max(1, len(held_out) // pool_valid_clips)][:pool_valid_clips]
    fields = ["ID", "duration", "wav"]
    write_manifest_atomic(_manifest_rows(splits["train"], False), paths["pool"], fields)
    write_manifest_atomic(_manifest_rows(held_out, False), paths["pool_valid"], fields)
    labeled = [*fields, "label"]
    valid = every_nth_per_class(splits["valid"], valid_per_class)
    write_manifest_atomic(_manifest_rows(valid, True), paths["valid"], labeled)
    write_manifest_atomic(_manifest_rows(splits["test"], True), paths["test"], labeled)
    for seed, path in paths["train"].items():
        drawn = draw_shots(splits["train"], shots, seed)
        write_manifest_atomic(_manifest_rows(drawn, True), path, labeled)
    stamp.write({"pool": len(splits["train"]), "valid": len(valid), "test": len(splits["test"])})
    logger.info(
        "Few-shot manifests in %s: pool %d clips, %d per class x %d seeds, valid %d, test %d",
        output_folder,
        len(splits["train"]),
        shots,
        len(seeds),
        len(valid),
        len(splits["test"]),
    )
    return paths
