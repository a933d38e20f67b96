"""Figures the chapters draw with one line each, so a figure looks the same everywhere."""

import matplotlib.pyplot as plt

__all__ = ["LivePlot"]

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
