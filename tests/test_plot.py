"""minidense.plot's static figures: what they draw is what the arithmetic says."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.patches import FancyArrowPatch  # noqa: E402

import minidense  # noqa: E402


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
    (dict(num_layers=2.5), "num_layers"),
])
def test_channels_vs_layers_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        minidense.plot.channels_vs_layers(**kwargs)


@pytest.mark.parametrize("num_layers", [0, -3, True, "5"])
def test_connectivity_rejects_a_bad_number_of_layers(num_layers):
    with pytest.raises(ValueError, match="num_layers"):
        minidense.plot.connectivity(num_layers=num_layers)
