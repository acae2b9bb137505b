"""Reading SpeechBrain train logs and plotting training curves.

Authors
 * ssast-sb contributors
"""

import re

from ssast_sb.fileio import atomic_open

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
    keys : list of str
        Quantities to plot, one panel each (e.g. ``["train loss", "valid acc"]``).
    path : str
        Output PNG.
    x_key : str
        Horizontal axis.
    title : str, optional
        Figure title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), squeeze=False)
    for axis, key in zip(axes[0], keys):
        points = [(row[x_key], row[key]) for row in rows if x_key in row and key in row]
        if points:
            xs, ys = zip(*points)
            axis.plot(xs, ys, marker="o", markersize=3)
        axis.set_xlabel(x_key.replace("_", " "))
        axis.set_title(key)
        axis.grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    with atomic_open(path, "wb") as stream:
        figure.savefig(stream, format="png", dpi=100)
    plt.close(figure)
