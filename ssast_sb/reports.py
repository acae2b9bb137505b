"""Reports and figures of a run: train logs, curves, per-class report, confusion matrix, folds.

One matplotlib policy for every figure: a ``Figure`` drawn on the Agg canvas
(no display needed, and the process-wide backend is left alone), saved through
:func:`ssast_sb.fileio.atomic_open`.

Authors
 * ssast-sb contributors
"""

import re
from pathlib import Path

import numpy as np
import torch

from ssast_sb.fileio import atomic_open
from ssast_sb.metrics import confusion_matrix


def _figure(size):
    """A matplotlib ``Figure`` on its own Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size)
    FigureCanvasAgg(figure)
    return figure


def _save_png(figure, path):
    """Writes ``figure`` as a PNG at ``path``, atomically; returns the path."""
    path = Path(path)
    with atomic_open(path, "wb") as stream:
        figure.savefig(stream, format="png", dpi=100)
    return path


def write_class_report(scores, targets, label_encoder, folder):
    """Per-class precision/recall table and confusion-matrix PNG of an evaluation.

    Arguments
    ---------
    scores : array-like
        ``(N, C)`` class scores.
    targets : array-like
        ``(N,)`` class indices or ``(N, C)`` (soft) one-hot targets.
    label_encoder : CategoricalEncoder
        Names of the classes, in index order.
    folder : str or pathlib.Path
        Where ``per_class_report.txt`` and ``confusion_matrix.png`` are written.
    """
    folder = Path(folder)
    names = [label_encoder.ind2lab[i] for i in range(len(label_encoder.ind2lab))]
    scores, targets = torch.as_tensor(scores), torch.as_tensor(targets)
    labels = targets.argmax(-1) if targets.dim() == 2 else targets.long()
    predictions = scores.argmax(-1)
    _, table = per_class_report(predictions, labels, names)
    with atomic_open(folder / "per_class_report.txt") as stream:
        stream.write(table + "\n")
    matrix = confusion_matrix(predictions, labels, len(names))
    save_confusion_matrix_png(matrix, names, folder / "confusion_matrix.png")


def summarize_folds(results, metric):
    """Mean and per-fold values of a test metric, as a printable table.

    Arguments
    ---------
    results : dict
        Per fold, its results (``test``, else ``valid``, holding ``metric``).
    metric : str
        ``acc`` or ``mAP``.

    Returns
    -------
    str

    Example
    -------
    >>> print(summarize_folds({"fold1": {"test": {"acc": 0.5}}, "fold2": {"test": {"acc": 0.7}}},
    ...                       "acc"))
    | fold | test acc (valid when there is no test set) |
    |---|---|
    | fold1 | 0.500 |
    | fold2 | 0.700 |
    | mean | 0.600 |
    """
    lines = [f"| fold | test {metric} (valid when there is no test set) |", "|---|---|"]
    values = []
    for name, result in results.items():
        value = (result["test"] if "test" in result else result["valid"])[metric]
        values.append(value)
        lines.append(f"| {name} | {value:.3f} |")
    lines.append(f"| mean | {sum(values) / len(values):.3f} |")
    return "\n".join(lines)


def per_class_report(pred, labels, class_names):
    """Precision, recall, F1 and support per class, as rows and as a text table.

    A ratio with a zero denominator is reported as 0.

    Arguments
    ---------
    pred : array-like
        ``(N,)`` predicted class indices.
    labels : array-like
        ``(N,)`` true class indices.
    class_names : sequence of str
        Name of each class, by index.

    Returns
    -------
    rows : list of dict
        One dict per class with ``class``, ``precision``, ``recall``, ``f1``
        and ``support`` (number of true samples).
    table : str
        The rows as an aligned table followed by the macro average and accuracy.

    Example
    -------
    >>> rows, table = per_class_report([0, 1, 1], [0, 0, 1], ["cat", "dog"])
    >>> rows[0]
    {'class': 'cat', 'precision': 1.0, 'recall': 0.5, 'f1': 0.6666666666666666, 'support': 2}
    >>> print(table.splitlines()[0])
    class     precision  recall      f1  support
    """
    class_names = list(class_names)
    matrix = confusion_matrix(pred, labels, len(class_names))
    correct = np.diag(matrix)
    support, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
    rows = []
    for index, name in enumerate(class_names):
        precision = correct[index] / predicted[index] if predicted[index] else 0.0
        recall = correct[index] / support[index] if support[index] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append(
            {
                "class": name,
                "precision": float(precision),
                "recall": float(recall),
                "f1": float(f1),
                "support": int(support[index]),
            }
        )

    width = max([len("macro avg"), *(len(name) for name in class_names)])
    lines = [f"{'class':<{width}} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>8}"]
    for row in rows:
        lines.append(
            f"{row['class']:<{width}} {row['precision']:>9.4f} {row['recall']:>7.4f} "
            f"{row['f1']:>7.4f} {row['support']:>8d}"
        )
    total = int(support.sum())
    macro = {key: np.mean([row[key] for row in rows]) for key in ("precision", "recall", "f1")}
    lines.append(
        f"{'macro avg':<{width}} {macro['precision']:>9.4f} {macro['recall']:>7.4f} "
        f"{macro['f1']:>7.4f} {total:>8d}"
    )
    acc = correct.sum() / total if total else 0.0
    lines.append(f"{'accuracy':<{width}} {'':>9} {'':>7} {acc:>7.4f} {total:>8d}")
    return rows, "\n".join(lines)


def save_confusion_matrix_png(matrix, class_names, path):
    """Draw a confusion matrix as a PNG image, written atomically.

    The image goes to a temporary file in the destination folder that replaces
    ``path`` only once complete.

    Arguments
    ---------
    matrix : array-like
        ``(C, C)`` counts, row = true class, column = predicted class.
    class_names : sequence of str
        C class names.
    path : str or pathlib.Path
        Destination ``.png`` file; its folder is created if needed.

    Returns
    -------
    pathlib.Path
        The written file.

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "cm.png")
    >>> save_confusion_matrix_png([[3, 1], [0, 4]], ["cat", "dog"], path).suffix
    '.png'
    """
    matrix = np.asarray(matrix)
    class_names = list(class_names)
    num_classes = len(class_names)
    if matrix.shape != (num_classes, num_classes):
        raise ValueError(f"matrix {matrix.shape} does not match {num_classes} class names")
    size = min(4 + 0.35 * num_classes, 40)
    figure = _figure((size, size))
    axes = figure.add_subplot()
    image = axes.imshow(matrix, cmap="Blues", interpolation="nearest")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    ticks = np.arange(num_classes)
    axes.set_xticks(ticks, labels=class_names, rotation=90)
    axes.set_yticks(ticks, labels=class_names)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    if num_classes <= 30:  # numbers stay legible
        threshold = matrix.max() / 2 if matrix.size else 0
        for (row, col), count in np.ndenumerate(matrix):
            color = "white" if count > threshold else "black"
            axes.text(col, row, f"{count:g}", ha="center", va="center", color=color, fontsize=8)
    figure.tight_layout()

    return _save_png(figure, path)


_PAIR = re.compile(r"([A-Za-z_ ]+?):\s*([-+0-9.eE]+|nan|inf)(?=,|\s-\s|$)")


def read_train_log(path):
    """Parses a ``FileTrainLogger`` log into one dict per line.

    Arguments
    ---------
    path : str
        ``train_log.txt``.

    Returns
    -------
    list of dict
        Keys as written (``epoch``, ``train loss``, ``valid acc``...), float values.

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "log.txt")
    >>> _ = open(path, "w").write(
    ...     "epoch: 1, lr: 1.00e-04 - train loss: 8.22, train acc: 1.9e-02 - valid acc: 0.5\\n")
    >>> read_train_log(path)[0]["valid acc"]
    0.5
    """
    rows = []
    with open(path, encoding="utf-8") as stream:
        for line in stream:
            pairs = {key.strip(): float(value) for key, value in _PAIR.findall(line.strip())}
            if pairs:
                rows.append(pairs)
    return rows


def plot_curves(rows, keys, path, x_key="optimizer_step", title=None):
    """Plots log quantities against ``x_key`` into a PNG (written atomically).

    Arguments
    ---------
    rows : list of dict
        From :func:`read_train_log`.
    keys : list
        Quantities to plot, one panel each (e.g. ``["train loss", "valid acc"]``); a
        tuple of names shares one panel, with a legend (e.g. ``("valid acc", "valid chance")``).
    path : str
        Output PNG.
    x_key : str
        Horizontal axis.
    title : str, optional
        Figure title.

    Example
    -------
    >>> import os, tempfile
    >>> rows = [{"optimizer_step": 1, "valid acc": 0.2, "valid chance": 0.1},
    ...         {"optimizer_step": 2, "valid acc": 0.4, "valid chance": 0.1}]
    >>> path = os.path.join(tempfile.mkdtemp(), "curves.png")
    >>> plot_curves(rows, [("valid acc", "valid chance")], path)
    >>> open(path, "rb").read(4)
    b'\\x89PNG'
    """
    figure = _figure((4 * len(keys), 3.2))
    axes = figure.subplots(1, len(keys), squeeze=False)
    for axis, panel in zip(axes[0], keys):
        names = (panel,) if isinstance(panel, str) else tuple(panel)
        for name in names:
            points = [(row[x_key], row[name]) for row in rows if x_key in row and name in row]
            if points:
                xs, ys = zip(*points)
                axis.plot(xs, ys, marker="o", markersize=3, label=name)
        if len(names) > 1:
            axis.legend(fontsize="small")
        axis.set_xlabel(x_key.replace("_", " "))
        axis.set_title(" / ".join(names))
        axis.grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    _save_png(figure, path)
