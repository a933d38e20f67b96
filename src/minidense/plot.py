"""Figures the chapters draw with one line each, so a figure looks the same everywhere."""

import matplotlib.pyplot as plt

__all__ = ["LivePlot", "feature_reuse_heatmap", "memory_vs_depth", "compare_curves", "compare_scatter"]

_CURVES = (("train_loss", "train loss", "-"), ("train_acc", "train acc", "--"), ("test_acc", "test acc", "-."))


class LivePlot:
    """Training curves in a notebook that redraw in place: one figure, updated, not one per epoch.

    ``add(x, values)`` appends the values present (``train_loss``, ``train_acc``, ``test_acc``)
    at epoch ``x`` (fractions for points inside an epoch) and redraws.
    """

    def __init__(self, num_epochs, title=None):
        from IPython.display import display

        self.num_epochs = num_epochs
        self.title = title
        self.points = {key: ([], []) for key, _, _ in _CURVES}
        self.fig, self.ax = plt.subplots(figsize=(4.5, 3))
        plt.close(self.fig)  # shown through the display handle only, never again at the cell's end
        self._draw()
        self.handle = display(self.fig, display_id=True)

    def add(self, x, values):
        for key in self.points:
            if key in values:
                self.points[key][0].append(x)
                self.points[key][1].append(values[key])
        self._draw()
        self.handle.update(self.fig)

    def _draw(self):
        ax = self.ax
        ax.clear()
        for key, label, style in _CURVES:
            xs, ys = self.points[key]
            if xs:
                ax.plot(xs, ys, style, label=label)
        ax.set_xlim(0, self.num_epochs)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        if self.title:
            ax.set_title(self.title, fontsize=9)
        if any(xs for xs, _ in self.points.values()):
            ax.legend(loc="center right", fontsize=8)
        self.fig.tight_layout()

    def close(self):
        plt.close(self.fig)


def feature_reuse_heatmap(matrices, per_target=False, title=None):
    """The paper's Figure 5: one heatmap per dense block of :func:`minidense.feature_reuse`'s matrices.

    Rows are source layers (0: the block's input), columns target layers; the last column is
    what reads the block's output (a transition, or the classifier after the last block).
    Accepts tensors or nested lists (``None`` for no connection, as stored in JSON). With
    ``per_target`` each column is divided by its largest entry, so every target's sources compare
    on one scale (a 1x1 transition conv has larger weights than a 3x3 conv). Returns the figure.
    """
    import numpy as np

    arrays = [np.array(m.tolist() if hasattr(m, "tolist") else m, dtype=float) for m in matrices]
    if per_target:
        arrays = [a / np.nanmax(a, axis=0, keepdims=True) for a in arrays]
    fig, axes = plt.subplots(1, len(arrays), figsize=(2.6 * len(arrays) + 0.6, 2.8), squeeze=False)
    for b, (ax, matrix) in enumerate(zip(axes[0], arrays), start=1):
        image = ax.imshow(np.ma.masked_invalid(matrix), cmap="viridis", origin="upper")
        size = len(matrix)
        last = "C" if b == len(arrays) else "T"
        ax.set_xticks(range(size), [*map(str, range(1, size)), last], fontsize=7)
        ax.set_yticks(range(size), [str(s) for s in range(size)], fontsize=7)
        ax.set_xlabel("target layer", fontsize=8)
        ax.set_title(f"dense block {b}", fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04).ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("source layer", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    plt.close(fig)
    return fig


def memory_vs_depth(rows, title=None):
    """Saved activation memory (MiB) against depth, naive and memory-efficient, from rows of
    ``{"depth", "memory_efficient", "saved_bytes"}`` (what ``benchmarks/memory.py`` records). Returns the figure."""
    fig, ax = plt.subplots(figsize=(4.5, 3))
    for memory_efficient, label, style in ((False, "naive", "o-"), (True, "memory-efficient", "s--")):
        points = sorted((r["depth"], r["saved_bytes"] / 2**20) for r in rows
                        if r["memory_efficient"] == memory_efficient)
        ax.plot(*zip(*points), style, label=label)
    ax.set_xlabel("depth L")
    ax.set_ylabel("saved activations (MiB)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    plt.close(fig)
    return fig


def compare_curves(table, metric="test_acc", ax=None, title=None):
    """Per-epoch ``metric`` of every variant of a comparison: mean over seeds, band = ± one std.

    ``table`` is what :func:`minidense.experiments.compare` returns (or results.csv read back).
    Returns the matplotlib figure.
    """
    from minidense.experiments import epochs_long

    long = epochs_long(table)
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.5, 3))
    else:
        fig = ax.figure
    for name, group in long.groupby("variant", sort=False):
        stats = group.groupby("epoch")[metric].agg(["mean", "std", "count"])
        std = stats["std"].fillna(0.0)
        line, = ax.plot(stats.index, stats["mean"], marker="o", label=f"{name} ({stats['count'].max()} seeds)")
        ax.fill_between(stats.index, stats["mean"] - std, stats["mean"] + std, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric.replace("_", " "))
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def compare_scatter(table, x="num_params", y="test_acc", label=None, ax=None, logx=False):
    """``y`` against ``x`` for every variant of a comparison: mean over seeds, error bars = ± one std.

    ``label`` names a column whose value annotates each point (default: the variant's name).
    Returns the matplotlib figure.
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.5, 3))
    else:
        fig = ax.figure
    groups = table.groupby("variant", sort=False)
    stats = groups[[x, y]].agg(["mean", "std"])
    ax.errorbar(stats[(x, "mean")], stats[(y, "mean")], xerr=stats[(x, "std")].fillna(0.0),
                yerr=stats[(y, "std")].fillna(0.0), fmt="o", capsize=3)
    for name, row in stats.iterrows():
        text = name if label is None else str(groups.get_group(name)[label].iloc[0])
        ax.annotate(text, (row[(x, "mean")], row[(y, "mean")]), textcoords="offset points", xytext=(4, 4),
                    fontsize=7)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(y.replace("_", " "))
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig
