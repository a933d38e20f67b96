"""Figures the chapters draw with one line each, so a figure looks the same everywhere.

One rule for every function: a figure of one panel takes ``ax=None`` (draw into that Axes, or a new
figure) and returns its Axes; a figure of several panels returns the array of its Axes.
"""

import matplotlib.pyplot as plt

from minidense._checks import check_positive_int

__all__ = ["LivePlot", "image_grid", "confusion_matrix", "histories", "feature_reuse_heatmap", "memory_vs_depth",
           "compare_curves", "compare_scatter", "connectivity", "channels_vs_layers"]

# test accuracy comes once per epoch: its marker shows the single point of a one-epoch run
_CURVES = (("train_loss", "train loss", "-"), ("train_acc", "train acc", "--"), ("test_acc", "test acc", "o-."))


def _axes(ax, figsize):
    """``ax``, or the Axes of a new figure of ``figsize`` when ``ax`` is None."""
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


class LivePlot:
    """Training curves in a notebook that redraw in place: one figure, updated, not one per epoch.

    ``add(x, values)`` appends the values present (``train_loss``, ``train_acc``, ``test_acc``)
    at epoch ``x`` (fractions for points inside an epoch) and redraws. A LivePlot is a callback of
    :func:`minidense.train`: ``train(..., callback=LivePlot(num_epochs))`` calls it as
    ``callback(x, values)``, which is ``add``.
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

    def __call__(self, x, values):
        self.add(x, values)

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


def feature_reuse_heatmap(matrices, per_target=False, title=None, ax=None, vmin=None, vmax=None, label=None,
                          cmap="viridis"):
    """The paper's Figure 5: one heatmap per dense block of :func:`minidense.feature_reuse`'s matrices.

    Rows are source layers (0: the block's input), columns target layers; the last column is
    what reads the block's output (a transition ``T``, or the classifier ``C`` after the last
    block). All panels share one colour scale and one colour bar, labelled with what it shows.

    Args:
        matrices: one square matrix per dense block, tensors or nested lists (``None`` or ``nan``
            for no connection, as stored in JSON).
        per_target: divide each column by its largest entry, so every target's sources compare on
            one scale (a 1x1 transition conv has larger weights than a 3x3 conv). The scale is then
            fixed to 0..1: a column whose sources differ by 2% looks flat, as it is.
        title: the title above the panels.
        ax: an array (or list) of Axes, one per block, to draw into; default a new figure. The
            colour bar and the title go to the figure holding them: for two rows with a title and
            a colour bar each, draw each row into a subfigure (``fig.subfigures(2, 1)``).
        vmin, vmax: the colour scale's range. Default: 0..1 with ``per_target``, else 0 to the
            largest entry. Values outside it take the end colours (the bar shows an arrow).
        label: the colour bar's label; default ``"mean |W| / column max"`` with ``per_target``,
            else ``"mean |W|"``.
        cmap: the colour map (a diverging one, say ``"RdBu_r"``, suits ratios around 1).

    Returns:
        The Axes, one per block (a 1-D numpy array).
    """
    import numpy as np

    arrays = [np.array([[np.nan if v is None else v for v in row]
                        for row in (m.tolist() if hasattr(m, "tolist") else m)], dtype=float) for m in matrices]
    if not arrays:
        raise ValueError("feature_reuse_heatmap needs at least one matrix (one per dense block), got none")
    if per_target:
        arrays = [a / np.nanmax(a, axis=0, keepdims=True) for a in arrays]
    if vmin is None:
        vmin = 0.0
    if vmax is None:
        vmax = 1.0 if per_target else max(float(np.nanmax(a)) for a in arrays)
    if label is None:
        label = "mean |W| / column max" if per_target else "mean |W|"
    if ax is None:
        fig, axes = plt.subplots(1, len(arrays), figsize=(2.3 * len(arrays) + 1.0, 2.9), squeeze=False,
                                 layout="constrained")
        axes = axes[0]
    else:
        axes = np.asarray(ax, dtype=object).ravel()
        if len(axes) != len(arrays):
            raise ValueError(f"ax must hold one Axes per dense block: {len(axes)} Axes for {len(arrays)} "
                             f"matrices")
        fig = axes[0].figure
    for b, (panel, matrix) in enumerate(zip(axes, arrays), start=1):
        image = panel.imshow(np.ma.masked_invalid(matrix), cmap=cmap, vmin=vmin, vmax=vmax, origin="upper")
        size = len(matrix)
        last = "C" if b == len(arrays) else "T"
        panel.set_xticks(range(size), [*map(str, range(1, size)), last], fontsize=7)
        panel.set_yticks(range(size), [str(s) for s in range(size)], fontsize=7)
        panel.set_xlabel("target layer", fontsize=8)
        panel.set_title(f"dense block {b}", fontsize=9)
    axes[0].set_ylabel("source layer", fontsize=8)
    low = min(float(np.nanmin(a)) for a in arrays) < vmin
    high = max(float(np.nanmax(a)) for a in arrays) > vmax
    extend = {(False, False): "neither", (True, False): "min", (False, True): "max"}.get((low, high), "both")
    bar = fig.colorbar(image, ax=list(axes), extend=extend, shrink=0.9)
    bar.set_label(label, fontsize=8)
    bar.ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return axes


def memory_vs_depth(rows, ax=None, title=None):
    """Saved activation memory (MiB) against depth, naive and memory-efficient, from rows of
    ``{"depth", "memory_efficient", "saved_bytes"}`` (what ``benchmarks/memory.py`` records).
    Draws into ``ax`` (default: a new figure); returns the Axes."""
    ax = _axes(ax, (4.5, 3))
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
    ax.figure.tight_layout()
    return ax


def compare_curves(table, metric="test_acc", ax=None, title=None):
    """Per-epoch ``metric`` of every variant of a comparison: mean over seeds, band = ± one std.

    ``table`` is what :func:`minidense.experiments.compare` returns (or results.csv read back).
    Returns the Axes.
    """
    from minidense.experiments import epochs_long

    long = epochs_long(table)
    ax = _axes(ax, (4.5, 3))
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
    ax.figure.tight_layout()
    return ax


_MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def compare_scatter(table, x="num_params", y="test_acc", hue=None, label=None, ax=None, logx=False, title=None):
    """``y`` against ``x`` for every variant of a comparison: mean over seeds, error bars = ± one std.

    Args:
        table: what :func:`minidense.experiments.compare` returns (or results.csv read back), or
            several such tables concatenated; one point per ``variant``.
        x, y: the columns to plot, e.g. ``num_params`` or ``wall_seconds`` against ``test_acc``.
        hue: a column that sorts the variants into groups (say, which sweep each belongs to): each
            group gets its own colour and marker and a legend entry. Default: one group.
        label: a column whose value annotates each point (default: the variant's name).
        ax: the Axes to draw into (default: a new figure).
        logx: a logarithmic x axis.
        title: the Axes' title.

    Each label goes beside its point where it overlaps no other label, point or the legend and
    stays inside the Axes, trying the nearest places first. Returns the Axes.
    """
    missing = [c for c in dict.fromkeys(("variant", x, y, hue, label)) if c is not None and c not in table.columns]
    if missing:
        raise ValueError(f"compare_scatter needs the column(s) {', '.join(map(repr, missing))}; the table has "
                         f"{', '.join(map(str, table.columns))}")
    new_figure = ax is None
    ax = _axes(ax, (5.5, 3.6))
    groups = [(None, table)] if hue is None else list(table.groupby(hue, sort=False))
    points = []  # (x, y, x std, y std, text, colour) of every point, for the labels
    for i, (value, group) in enumerate(groups):
        variants = group.groupby("variant", sort=False)
        stats = variants[[x, y]].agg(["mean", "std"])
        colour = f"C{i % 10}"
        xerr, yerr = stats[(x, "std")].fillna(0.0), stats[(y, "std")].fillna(0.0)
        ax.errorbar(stats[(x, "mean")], stats[(y, "mean")], xerr=xerr, yerr=yerr, fmt=_MARKERS[i % len(_MARKERS)],
                    color=colour, capsize=3, markersize=5, label=None if hue is None else str(value))
        for name, row in stats.iterrows():
            text = name if label is None else str(variants.get_group(name)[label].iloc[0])
            points.append((row[(x, "mean")], row[(y, "mean")], xerr[name], yerr[name], text, colour))
    if logx:
        ax.set_xscale("log")
    ax.margins(x=0.15, y=0.2)  # room for the labels of the outermost points
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(y.replace("_", " "))
    ax.grid(True, alpha=0.3)
    if title:
        ax.set_title(title, fontsize=9)
    legend = ax.legend(fontsize=7, loc="best") if hue is not None else None
    if new_figure:
        ax.figure.tight_layout()
    _place_labels(ax, points, legend)
    return ax


def _place_labels(ax, points, legend=None, fontsize=7):
    """Annotate ``(x, y, x std, y std, text, colour)`` points, each label where it collides with the
    fewest things already drawn: markers, error bars, the legend and the labels placed before it."""
    from matplotlib.transforms import Bbox

    fig = ax.figure
    # Nearest places first: the four diagonals, above and below, then the same further out.
    near = [(5, 3, "left", "bottom"), (5, -3, "left", "top"), (-5, 3, "right", "bottom"),
            (-5, -3, "right", "top"), (0, 7, "center", "bottom"), (0, -7, "center", "top")]
    candidates = near + [(f * dx, f * dy, ha, va) for f in (2.5, 4.5) for dx, dy, ha, va in near]
    renderer = fig.canvas.get_renderer() if hasattr(fig.canvas, "get_renderer") else None
    if renderer is None:  # a backend that cannot measure text: the nearest place, no collision test
        for px, py, _, _, text, colour in points:
            dx, dy, ha, va = candidates[0]
            ax.annotate(text, (px, py), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                        fontsize=fontsize, color=colour)
        return
    frame = ax.get_window_extent(renderer)
    to_pixels = ax.transData.transform
    half = 4 * fig.dpi / 72  # half a marker, in pixels
    cap = 4 * fig.dpi / 72  # half an error bar's cap (capsize 3 points) and a margin
    obstacles = []
    for px, py, xerr, yerr, _, _ in points:
        (cx, cy), = to_pixels([(px, py)])
        obstacles.append(Bbox.from_extents(cx - half, cy - half, cx + half, cy + half))
        for low, high in (((px, py - yerr), (px, py + yerr)), ((px - xerr, py), (px + xerr, py))):
            (x0, y0), (x1, y1) = to_pixels([low, high])
            if (x0, y0) != (x1, y1):  # a bar, with room for its caps
                obstacles.append(Bbox.from_extents(min(x0, x1) - cap, min(y0, y1) - cap, max(x0, x1) + cap,
                                                   max(y0, y1) + cap))
    if legend is not None:
        obstacles.append(legend.get_window_extent(renderer))
    for px, py, _, _, text, colour in points:
        best = None
        for dx, dy, ha, va in candidates:
            annotation = ax.annotate(text, (px, py), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                                     fontsize=fontsize, color=colour)
            box = annotation.get_window_extent(renderer)
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            collisions = sum(box.overlaps(other) for other in obstacles) + (0 if inside else len(obstacles) + 1)
            if best is None or collisions < best[0]:
                if best is not None:
                    best[1].remove()
                best = (collisions, annotation, box)
            else:
                annotation.remove()
            if collisions == 0:
                break
        obstacles.append(best[2])


def _class_name(label, class_names):
    label = int(label)
    return class_names[label] if class_names is not None and 0 <= label < len(class_names) else str(label)


def image_grid(images, labels=None, predictions=None, num_cols=8, class_names=None, scale=1.3, titles=None):
    """Images in a grid, titled with their class (and the prediction, red where it is wrong).

    Args:
        images: ``(N, H, W)`` or ``(N, 1, H, W)``, uint8 or float in [0, 1].
        labels: the true classes, ``N`` ints, or ``None``.
        predictions: predicted classes, ``N`` ints, or ``None``; titles then read "true / predicted".
        num_cols: images per row.
        class_names: names of the classes; default ``minidense.CLASS_NAMES``.
        scale: inches per image (its width; the height follows the images' aspect).
        titles: ``N`` strings that replace the class names as titles.

    Returns:
        The grid's Axes, ``(rows, num_cols)``.
    """
    import torch

    from minidense.data import CLASS_NAMES

    class_names = CLASS_NAMES if class_names is None else class_names
    images = torch.as_tensor(images).detach().cpu()
    if images.dim() == 4 and images.shape[1] == 1:
        images = images[:, 0]
    if images.dim() != 3 or len(images) == 0:
        raise ValueError(f"images must be a non-empty (N, H, W) or (N, 1, H, W) batch, got shape {tuple(images.shape)}")
    for name, values in (("labels", labels), ("predictions", predictions), ("titles", titles)):
        if values is not None and len(values) != len(images):
            raise ValueError(f"{name} must have one entry per image: {len(values)} for {len(images)} images")
    num_cols = min(num_cols, len(images))
    num_rows = -(-len(images) // num_cols)
    titled = labels is not None or predictions is not None or titles is not None
    aspect = images.shape[1] / images.shape[2]  # a wide image (a row of garments) gets a short panel
    fig, axes = plt.subplots(num_rows, num_cols, squeeze=False,
                             figsize=(num_cols * scale, num_rows * scale * (aspect + (0.35 if titled else 0))))
    vmax = 255 if not images.is_floating_point() else 1
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= len(images):
            continue
        ax.imshow(images[i].float().numpy(), cmap="gray_r", vmin=0, vmax=vmax)
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
        elif labels is not None and predictions is not None:
            wrong = int(labels[i]) != int(predictions[i])
            ax.set_title(f"{_class_name(labels[i], class_names)}\n{_class_name(predictions[i], class_names)}",
                         fontsize=8, color="tab:red" if wrong else "black")
        elif titled:
            ax.set_title(_class_name(labels[i] if labels is not None else predictions[i], class_names), fontsize=8)
    fig.tight_layout()
    return axes


def confusion_matrix(y_true=None, y_pred=None, class_names=None, normalize=False, counts=None, ax=None,
                     title=None):
    """The confusion matrix as a heat map with the counts written in the cells.

    Rows are true classes, columns predicted ones: from ``y_true`` and ``y_pred`` (computed by
    :func:`minidense.training.confusion_counts`; :func:`minidense.training.predict` gives them), or
    ``counts`` already made (a recorded matrix). With ``normalize`` each row is divided by its total:
    the diagonal is then the accuracy on each class. Returns the Axes.
    """
    import torch

    from minidense.data import CLASS_NAMES
    from minidense.training import confusion_counts

    class_names = CLASS_NAMES if class_names is None else class_names
    if (counts is None) == (y_true is None or y_pred is None):
        raise ValueError("give either y_true and y_pred, or counts")
    counts = (confusion_counts(y_true, y_pred, len(class_names)) if counts is None
              else torch.as_tensor(counts)).double()
    values = counts / counts.sum(dim=1, keepdim=True).clamp(min=1) if normalize else counts
    ax = _axes(ax, (5.5, 5))
    ax.imshow(values.numpy(), cmap="Blues")
    threshold = values.max().item() / 2
    for i in range(len(class_names)):
        for j in range(len(class_names)):
            v = values[i, j].item()
            ax.text(j, i, f"{v:.2f}" if normalize else f"{int(v)}", ha="center", va="center", fontsize=7,
                    color="white" if v > threshold else "black")
    ax.set_xticks(range(len(class_names)), class_names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(class_names)), class_names, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if title:
        ax.set_title(title, fontsize=9)
    ax.figure.tight_layout()
    return ax


def histories(runs, metrics=("train_loss", "test_acc")):
    """Curves of several runs side by side, one panel per metric, one line per run.

    Args:
        runs: ``{label: History}`` (or the dicts of :meth:`minidense.History.to_dict`).
        metrics: record fields to plot, one panel each (``train_loss``, ``train_acc``, ``test_acc``).

    Returns:
        The Axes, one per metric.
    """
    from minidense.history import FIELDS, History

    if not runs:
        raise ValueError("runs is empty: pass {label: History}")
    unknown = [m for m in metrics if m not in FIELDS or m == "epoch"]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {[f for f in FIELDS if f != 'epoch']}")
    labels = dict(train_loss="train loss", train_acc="train accuracy", test_acc="test accuracy",
                  examples_per_sec="examples/sec", seconds="seconds")
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.2), squeeze=False)
    for label, history in runs.items():
        records = (history if isinstance(history, History) else History.from_dict(history)).records
        epochs = [r["epoch"] for r in records]
        for ax, metric in zip(axes[0], metrics):
            ax.plot(epochs, [r[metric] for r in records], "o-", label=label)
    for ax, metric in zip(axes[0], metrics):
        ax.set_xlabel("epoch")
        ax.set_title(labels[metric], fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return axes[0]


def connectivity(num_layers=5, ax=None):
    """The dense connectivity of a block of ``num_layers`` layers, as in Figure 1 of the paper.

    One node for the block's input ``x_0`` and one per layer ``H_1 ... H_L``; one arrow from every
    node to every later layer, coloured by its source: ``L(L+1)/2`` arrows in all, and nothing else
    in ``ax.patches`` (each arrow's gid names its ends, ``"0->3"``: from ``x_0`` into ``H_3``).
    Under each layer, the channels it sees: ``k_0 + (l-1) k``.

    Args:
        num_layers: layers in the block (``L``).
        ax: matplotlib axes to draw into; a new figure when ``None``.

    Returns:
        The matplotlib ``Axes``.
    """
    from matplotlib.patches import FancyArrowPatch

    check_positive_int("num_layers", num_layers)
    top = 0.25 * num_layers + 0.25  # the highest arc, from x_0 to H_L, rises 0.225 L (equal axes)
    ax = _axes(ax, (1.2 * (num_layers + 1.2), 1.2 * (top + 1.2)))
    colors = plt.get_cmap("tab10").colors
    for source in range(num_layers + 1):
        for target in range(source + 1, num_layers + 1):
            ax.add_patch(FancyArrowPatch((source, 0), (target, 0), connectionstyle="arc3,rad=-0.45",
                                         arrowstyle="-|>", mutation_scale=10, shrinkA=11, shrinkB=11,
                                         color=colors[source % len(colors)], lw=1.3, alpha=0.85,
                                         gid=f"{source}->{target}"))
    nodes = range(num_layers + 1)
    ax.scatter(nodes, [0] * (num_layers + 1), s=520, c=[colors[i % len(colors)] for i in nodes], zorder=3)
    for node in nodes:
        ax.text(node, 0, "$x_0$" if node == 0 else f"$H_{{{node}}}$", ha="center", va="center",
                color="white", fontsize=10, zorder=4)
        earlier = {0: "", 1: " + k"}.get(node - 1, f" + {node - 1}k")  # k channels from each earlier layer
        label = "input\n$k_0$" if node == 0 else f"sees\n$k_0{earlier}$"
        ax.text(node, -0.42, label, ha="center", va="top", fontsize=8)
    num_connections = num_layers * (num_layers + 1) // 2
    ax.set_title(f"dense connectivity: {num_layers} layers, {num_connections} direct connections", fontsize=9)
    ax.set_xlim(-0.6, num_layers + 0.6)
    ax.set_ylim(-0.85, top)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.figure.tight_layout()
    return ax


def channels_vs_layers(growth_rates=(12, 24, 32, 48), in_channels=64, num_layers=16, ax=None):
    """Channels coming out of a dense block after ``l`` layers, ``k_0 + l k``, for several growth rates.

    One line per growth rate ``k``, with a point for every ``l = 0, 1, ..., num_layers``.

    Args:
        growth_rates: the growth rates ``k`` to compare.
        in_channels: channels of the block's input (``k_0``).
        num_layers: layers of the block (the last ``l``).
        ax: matplotlib axes to draw into; a new figure when ``None``.

    Returns:
        The matplotlib ``Axes``; ``ax.lines[i]`` holds the values for ``growth_rates[i]``.
    """
    growth_rates = tuple(growth_rates)
    if not growth_rates:
        raise ValueError("growth_rates must name at least one growth rate, got an empty sequence")
    for growth_rate in growth_rates:
        check_positive_int("growth_rates (each entry)", growth_rate)
    check_positive_int("in_channels", in_channels)
    check_positive_int("num_layers", num_layers)
    ax = _axes(ax, (4.5, 3.2))
    layers = list(range(num_layers + 1))
    for growth_rate in growth_rates:
        channels = [in_channels + layer * growth_rate for layer in layers]
        line, = ax.plot(layers, channels, marker="o", markersize=3, label=f"$k = {growth_rate}$")
        ax.annotate(f"{channels[-1]}", (layers[-1], channels[-1]), textcoords="offset points", xytext=(4, -3),
                    fontsize=7, color=line.get_color())
    ax.set_xlabel("layers $l$ in the dense block")
    ax.set_ylabel("channels after $l$ layers")
    ax.set_title(f"$k_0 + l\\,k$ channels, $k_0 = {in_channels}$", fontsize=9)
    ax.set_xlim(0, num_layers * 1.12)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(True, alpha=0.3)
    ax.legend(title="growth rate", fontsize=8, title_fontsize=8)
    ax.figure.tight_layout()
    return ax
