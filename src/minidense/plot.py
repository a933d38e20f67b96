"""Figures the chapters draw with one line each, so a figure looks the same everywhere."""

import matplotlib.pyplot as plt

from minidense._checks import check_positive_int

__all__ = ["LivePlot"]

_CURVES = (("train_loss", "train loss", "-"), ("train_acc", "train acc", "--"), ("test_acc", "test acc", "-."))


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
    if ax is None:
        _, ax = plt.subplots(figsize=(1.2 * (num_layers + 1.2), 1.2 * (top + 1.2)))
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
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 3.2))
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


__all__ += ["connectivity", "channels_vs_layers"]


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
