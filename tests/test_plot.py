"""minidense.plot: what each figure draws is what the arithmetic says; the training chapter's tools
(predictions, the confusion matrix, image grids, runs side by side).
"""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.patches import FancyArrowPatch

import minidense
from conftest import tiny_densenet
from minidense import plot
from minidense.history import History
from minidense.training import confusion_counts, predict


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize("num_layers", [1, 2, 5, 12])
def test_connectivity_draws_one_arrow_per_direct_connection(num_layers):
    ax = minidense.plot.connectivity(num_layers=num_layers)
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert len(arrows) == len(ax.patches) == num_layers * (num_layers + 1) // 2


def test_connectivity_of_five_layers_connects_every_node_to_every_later_layer():
    ax = minidense.plot.connectivity(num_layers=5)
    pairs = sorted(tuple(int(node) for node in arrow.get_gid().split("->")) for arrow in ax.patches)
    assert pairs == [(i, j) for i in range(6) for j in range(i + 1, 6)]
    assert len(pairs) == 15
    nodes = ax.collections[0].get_offsets()
    assert len(nodes) == 6  # the input x_0 and the layers H_1 ... H_5


def test_connectivity_draws_into_a_given_axes():
    _, ax = plt.subplots()
    assert minidense.plot.connectivity(num_layers=3, ax=ax) is ax


def test_channels_vs_layers_plots_k0_plus_l_times_k():
    growth_rates = (12, 24, 32, 48)
    ax = minidense.plot.channels_vs_layers(growth_rates=growth_rates, in_channels=64, num_layers=6)
    assert len(ax.lines) == len(growth_rates)
    for line, growth_rate in zip(ax.lines, growth_rates):
        layers, channels = line.get_data()
        assert list(layers) == [0, 1, 2, 3, 4, 5, 6]
        assert list(channels) == [64 + layer * growth_rate for layer in range(7)]
        assert str(growth_rate) in line.get_label()
    assert list(ax.lines[2].get_data()[1])[4] == 64 + 4 * 32 == 192  # the book's first dense block


@pytest.mark.parametrize("kwargs, message", [
    (dict(growth_rates=()), "growth_rates"),
    (dict(growth_rates=(12, 0)), "growth_rates"),
    (dict(in_channels=-1), "in_channels"),
])
def test_channels_vs_layers_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        minidense.plot.channels_vs_layers(**kwargs)
    with pytest.raises(TypeError, match="num_layers"):  # a count of the wrong type
        minidense.plot.channels_vs_layers(num_layers=2.5)


@pytest.mark.parametrize("num_layers, error", [(0, ValueError), (-3, ValueError), (True, TypeError), ("5", TypeError)])
def test_connectivity_rejects_a_bad_number_of_layers(num_layers, error):
    with pytest.raises(error, match="num_layers"):
        minidense.plot.connectivity(num_layers=num_layers)


def _sweep_table():
    import pandas as pd

    rows = []
    for sweep, variants in (("growth", {"k=8": (85_158, 0.81), "k=16": (236_234, 0.828)}),
                            ("depth", {"2-2-2-2": (216_266, 0.822), "6-6-6-6": (1_632_282, 0.8285)})):
        for name, (params, acc) in variants.items():
            for seed, noise in enumerate((-0.005, 0.005)):
                rows.append(dict(variant=name, seed=seed, sweep=sweep, num_params=params, test_acc=acc + noise,
                                 wall_seconds=50 + params / 10_000 + 5 * seed))
    return pd.DataFrame(rows)


def test_compare_scatter_returns_the_axes_and_draws_into_a_given_one():
    table = _sweep_table()
    ax = minidense.plot.compare_scatter(table)
    assert isinstance(ax, plt.Axes)
    _, given = plt.subplots()
    assert minidense.plot.compare_scatter(table, ax=given) is given


def test_compare_scatter_gives_each_hue_group_its_own_colour_and_legend_entry():
    ax = minidense.plot.compare_scatter(_sweep_table(), hue="sweep", logx=True)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["growth", "depth"]
    colours = {tuple(line.get_color()) if not isinstance(line.get_color(), str) else line.get_color()
               for container in ax.containers for line in container.lines[:1]}
    assert len(colours) == 2
    assert {t.get_text() for t in ax.texts} == {"k=8", "k=16", "2-2-2-2", "6-6-6-6"}


@pytest.mark.parametrize("x, logx", [("num_params", True), ("wall_seconds", False)])
def test_compare_scatter_labels_stay_inside_the_axes_and_do_not_overlap(x, logx):
    ax = minidense.plot.compare_scatter(_sweep_table(), x=x, hue="sweep", logx=logx)
    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    boxes = [t.get_window_extent(renderer) for t in ax.texts]
    for box in boxes:
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_compare_scatter_names_a_missing_column():
    with pytest.raises(ValueError, match="'sweep'"):
        minidense.plot.compare_scatter(_sweep_table().drop(columns="sweep"), hue="sweep")


def test_live_plot_is_a_callback_of_train(monkeypatch):
    import sys
    import types

    shown = []
    handle = types.SimpleNamespace(update=lambda fig: shown.append(fig))
    monkeypatch.setitem(sys.modules, "IPython.display",
                        types.SimpleNamespace(display=lambda fig, display_id=True: handle))
    live = minidense.plot.LivePlot(2)
    live(0.5, {"train_loss": 1.0, "train_acc": 0.5})
    live(1, {"epoch": 1, "train_loss": 0.8, "train_acc": 0.6, "test_acc": 0.55})
    assert live.points["train_loss"] == ([0.5, 1], [1.0, 0.8])
    assert live.points["test_acc"] == ([1], [0.55])
    assert len(shown) == 2
    (test_line,) = [line for line in live.ax.get_lines() if line.get_label() == "test acc"]
    assert test_line.get_marker() == "o"  # after one epoch its one point is drawn, not an invisible line


_REUSE = [[[0.04, 0.036, 0.10], [None, 0.0352, 0.098], [None, None, 0.102]],
          [[0.03, 0.0294, 0.05], [None, 0.03, 0.075], [None, None, 0.1]]]  # two blocks, as in JSON


def test_feature_reuse_heatmap_per_target_divides_each_column_by_its_largest_on_a_fixed_0_to_1_scale():
    import numpy as np

    axes = minidense.plot.feature_reuse_heatmap(_REUSE, per_target=True)
    assert len(axes) == 2
    for ax, matrix in zip(axes, _REUSE):
        image, = ax.get_images()
        assert image.get_clim() == (0.0, 1.0)  # a 2% spread stays a 2% spread of the colour range
        values = np.ma.filled(image.get_array(), np.nan)
        expected = np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=float)
        np.testing.assert_allclose(values, expected / np.nanmax(expected, axis=0), equal_nan=True)
    colorbar, = [a for a in axes[0].figure.axes if a not in axes]
    assert colorbar.get_ylabel() == "mean |W| / column max"


def test_feature_reuse_heatmap_raw_values_start_at_zero_and_say_what_they_show():
    axes = minidense.plot.feature_reuse_heatmap(_REUSE)
    assert all(ax.get_images()[0].get_clim() == (0.0, 0.102) for ax in axes)  # one scale for all blocks
    colorbar, = [a for a in axes[0].figure.axes if a not in axes]
    assert colorbar.get_ylabel() == "mean |W|"
    assert [t.get_text() for t in axes[0].get_xticklabels()][-1] == "T"
    assert [t.get_text() for t in axes[1].get_xticklabels()][-1] == "C"


def test_feature_reuse_heatmap_draws_into_given_axes_with_a_chosen_range_and_label():
    fig, given = plt.subplots(2, 2)
    axes = minidense.plot.feature_reuse_heatmap(_REUSE, ax=given[0], vmin=0.5, vmax=1.5, cmap="RdBu_r",
                                                label="trained / initial")
    assert list(axes) == list(given[0]) and axes[0].figure is fig
    assert given[1][0].get_images() == []
    assert axes[1].get_images()[0].get_clim() == (0.5, 1.5)
    colorbar = fig.axes[-1]
    assert colorbar.get_ylabel() == "trained / initial"
    assert axes[-1].get_images()[0].colorbar.extend == "min"  # values below the range: the bar says so
    with pytest.raises(ValueError, match="one Axes per dense block"):
        minidense.plot.feature_reuse_heatmap(_REUSE, ax=given.ravel()[:3])


def test_memory_vs_depth_plots_mib_per_depth_for_both_variants_into_the_given_axes():
    rows = [dict(depth=depth, memory_efficient=efficient, saved_bytes=depth * (1 if efficient else 3) * 2**20)
            for depth in (40, 10, 20) for efficient in (False, True)]
    _, given = plt.subplots()
    ax = minidense.plot.memory_vs_depth(rows, ax=given, title="t")
    assert ax is given and ax.get_title() == "t"
    naive, efficient = ax.get_lines()
    assert (naive.get_label(), efficient.get_label()) == ("naive", "memory-efficient")
    assert list(naive.get_xdata()) == [10, 20, 40] and list(naive.get_ydata()) == [30, 60, 120]  # MiB, by depth
    assert list(efficient.get_ydata()) == [10, 20, 40]
    assert isinstance(minidense.plot.memory_vs_depth(rows), plt.Axes)


def test_every_plot_function_returns_its_axes():
    import inspect

    rows = [dict(depth=10, memory_efficient=e, saved_bytes=2**20) for e in (False, True)]
    drawn = {
        "image_grid": lambda: minidense.plot.image_grid(torch.zeros(3, 8, 8), labels=[0, 1, 2]),
        "confusion_matrix": lambda: minidense.plot.confusion_matrix([0, 1], [0, 0]),
        "histories": lambda: minidense.plot.histories({"run": minidense.History(
            records=[{"epoch": 1, "train_loss": 1.0, "test_acc": 0.5}])}),
        "memory_vs_depth": lambda: minidense.plot.memory_vs_depth(rows),
        "connectivity": lambda: minidense.plot.connectivity(3),
        "channels_vs_layers": lambda: minidense.plot.channels_vs_layers(),
    }
    for name, draw in drawn.items():
        result = draw()
        panels = list(np.ravel(result)) if isinstance(result, np.ndarray) else [result]
        assert panels and all(isinstance(ax, plt.Axes) for ax in panels), name
        if "ax" in inspect.signature(getattr(minidense.plot, name)).parameters:
            assert isinstance(result, plt.Axes), f"{name} draws one panel: it returns that Axes"


# The training chapter's tools: predictions, the confusion matrix, image grids, runs side by side.


def test_confusion_counts_of_a_hand_made_example():
    y_true = torch.tensor([0, 0, 1, 2, 2, 2])
    y_pred = torch.tensor([0, 1, 1, 2, 0, 2])
    expected = torch.tensor([[1, 1, 0],
                             [0, 1, 0],
                             [1, 0, 2]])
    assert torch.equal(confusion_counts(y_true, y_pred, num_classes=3), expected)


def test_confusion_counts_rejects_bad_input():
    with pytest.raises(ValueError, match="one class per example: got 3 and 2"):
        confusion_counts(torch.tensor([0, 1, 2]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="y_pred must hold classes 0..9"):
        confusion_counts(torch.tensor([0, 1]), torch.tensor([0, 10]))


def test_confusion_matrix_of_a_network_counts_every_test_image(tiny_data):
    train_iter, test_iter = tiny_data
    net = tiny_densenet()
    y_true, y_pred = predict(net, test_iter)
    counts = confusion_counts(y_true, y_pred)
    # 256 test images, class-balanced: 26 of classes 0-5, 25 of classes 6-9
    assert counts.sum() == test_iter.num_examples == 256
    assert counts.sum(dim=1).tolist() == [26] * 6 + [25] * 4
    # the diagonal is the number of correct predictions, counted another way
    assert counts.trace().item() == round(minidense.evaluate_accuracy(net, test_iter) * 256)
    assert torch.equal(y_true, test_iter.labels)


def test_predict_agrees_with_the_network_batch_by_batch(tiny_data):
    _, test_iter = tiny_data
    net = tiny_densenet().eval()
    _, y_pred = predict(net, test_iter)
    X, _ = next(iter(test_iter))
    with torch.no_grad():
        assert torch.equal(y_pred[:len(X)], net(X).argmax(dim=1))
    with pytest.raises(ValueError, match="no batches"):
        predict(net, [])


def test_confusion_matrix_plot_writes_every_count():
    y_true = torch.tensor([0, 0, 1, 2, 2, 2])
    y_pred = torch.tensor([0, 1, 1, 2, 0, 2])
    plot.confusion_matrix(y_true, y_pred, class_names=("a", "b", "c"))
    ax = plt.gcf().axes[0]
    assert [t.get_text() for t in ax.texts] == ["1", "1", "0", "0", "1", "0", "1", "0", "2"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]


def test_image_grid_titles_show_true_and_predicted_class_and_mark_mistakes():
    images = torch.rand(5, 1, 28, 28)
    plot.image_grid(images, labels=[0, 1, 2, 3, 9], predictions=[0, 1, 2, 3, 7], num_cols=3)
    axes = plt.gcf().axes
    assert len(axes) == 6  # 2 rows of 3, the last one empty
    titles = [ax.get_title() for ax in axes[:5]]
    assert titles[0] == "t-shirt\nt-shirt"
    assert titles[4] == "ankle boot\nsneaker"
    assert axes[4].title.get_color() == "tab:red" and axes[0].title.get_color() == "black"
    with pytest.raises(ValueError, match="one entry per image: 2 for 5 images"):
        plot.image_grid(images, labels=[0, 1])


def test_image_grid_gives_wide_images_short_panels():
    plot.image_grid(torch.zeros(2, 32, 160), num_cols=1, scale=2.0)  # rows of garments, 5 times as wide as high
    width, height = plt.gcf().get_size_inches()
    assert (width, height) == pytest.approx((2.0, 2 * 2.0 * 32 / 160))


def _history(test_accs):
    history = History(provenance={"device": "cpu"})
    for epoch, acc in enumerate(test_accs, 1):
        history.append(epoch=epoch, train_loss=1 / epoch, train_acc=acc, test_acc=acc,
                       examples_per_sec=100.0, seconds=1.0)
    return history


def test_histories_draws_one_line_per_run_in_each_panel():
    runs = {"a": _history([0.5, 0.7]), "b": _history([0.6, 0.8, 0.9])}
    plot.histories(runs)
    axes = plt.gcf().axes
    assert len(axes) == 2
    assert [len(ax.lines) for ax in axes] == [2, 2]
    assert list(axes[1].lines[1].get_ydata()) == [0.6, 0.8, 0.9]
    with pytest.raises(ValueError, match="unknown metric"):
        plot.histories(runs, metrics=("test_loss",))
