"""minidense.tables: parameter counts and the layer table, checked against arithmetic done by hand."""

import pytest
import torch
from torch import nn

import minidense
from minidense.tables import count_parameters, layer_table


def test_count_parameters_of_a_conv_block_by_hand():
    # BN: a scale and a shift per input channel; conv: 3 x 3 x 3 x 10 weights and 10 biases
    assert count_parameters(minidense.conv_block(3, 10)) == 2 * 3 + 9 * 3 * 10 + 10 == 286


def test_count_parameters_ignores_buffers():
    bn = nn.BatchNorm2d(4)  # running mean, variance and batch count are buffers, not parameters
    assert count_parameters(bn) == 8


def test_layer_table_of_the_book_network():
    table = layer_table(minidense.densenet(), (1, 1, 96, 96))
    rows = table.set_index("name")
    assert list(table["name"]) == ["stem", "denseblock1", "transition1", "denseblock2", "transition2",
                                   "denseblock3", "transition3", "denseblock4", "norm", "relu", "pool",
                                   "flatten", "fc", "total"]
    # stem: 96 -> 48 (conv 7x7, stride 2) -> 24 (max pool 3x3, stride 2); block 1 adds 4 x 32 channels
    assert rows.loc["stem", "output shape"] == (1, 64, 24, 24)
    assert rows.loc["denseblock1", "output shape"] == (1, 64 + 4 * 32, 24, 24) == (1, 192, 24, 24)
    assert rows.loc["transition1", "output shape"] == (1, 192 // 2, 12, 12)
    assert rows.loc["denseblock2", "output shape"] == (1, 96 + 4 * 32, 12, 12)
    assert rows.loc["transition2", "output shape"] == (1, 224 // 2, 6, 6)
    assert rows.loc["denseblock3", "output shape"] == (1, 112 + 4 * 32, 6, 6)
    assert rows.loc["transition3", "output shape"] == (1, 240 // 2, 3, 3)
    assert rows.loc["denseblock4", "output shape"] == (1, 120 + 4 * 32, 3, 3) == (1, 248, 3, 3)
    assert rows.loc["flatten", "output shape"] == (1, 248)
    assert rows.loc["total", "output shape"] == rows.loc["fc", "output shape"] == (1, 10)
    assert rows.loc["stem", "parameters"] == 49 * 64 + 64 + 2 * 64
    assert rows.loc["fc", "parameters"] == 248 * 10 + 10


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_layer_table_rows_add_up_to_the_total(depth):
    net = minidense.densenet()
    table = layer_table(net, (1, 1, 96, 96), depth=depth)
    layers, total = table.iloc[:-1], table.iloc[-1]
    assert total["name"] == "total"
    assert layers["parameters"].sum() == total["parameters"] == count_parameters(net) == 758_226


def test_layer_table_opens_the_layers_of_a_dense_block_at_depth_two():
    rows = layer_table(minidense.densenet(), (1, 1, 96, 96), depth=2).set_index("name")
    assert rows.loc["stem.0", "output shape"] == (1, 64, 48, 48)
    # every layer of a dense block adds growth_rate = 32 channels; the block concatenates them
    for i in range(4):
        assert rows.loc[f"denseblock1.net.{i}", "output shape"] == (1, 32, 24, 24)
        assert rows.loc[f"denseblock1.net.{i}", "parameters"] == 2 * (64 + 32 * i) + 9 * (64 + 32 * i) * 32 + 32


def test_layer_table_leaves_the_network_as_it_was():
    torch.manual_seed(0)
    net = minidense.densenet().train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rng = torch.get_rng_state()
    layer_table(net, (2, 1, 96, 96))
    assert net.training
    assert torch.equal(torch.get_rng_state(), rng)
    for key, value in net.state_dict().items():  # BN running statistics unchanged
        assert torch.equal(value, before[key]), key
    assert not any(m._forward_hooks for m in net.modules())


def test_layer_table_of_an_inline_sequential():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(8 * 4 * 4, 5))
    table = layer_table(net, (2, 3, 8, 8))
    assert list(table["output shape"]) == [(2, 8, 8, 8), (2, 8, 8, 8), (2, 8, 4, 4), (2, 128), (2, 5), (2, 5)]
    assert list(table["parameters"]) == [224, 0, 0, 0, 645, 869]


@pytest.mark.parametrize("bad", [(1, 1, 0, 96), (), "1x1x96x96", (1, 1, 96.0, 96), None])
def test_layer_table_rejects_a_bad_input_shape(bad):
    with pytest.raises(ValueError, match="input_shape"):
        layer_table(minidense.densenet(), bad)


def test_layer_table_rejects_a_bad_depth_and_a_non_module():
    with pytest.raises(ValueError, match="depth"):
        layer_table(minidense.densenet(), (1, 1, 96, 96), depth=0)
    with pytest.raises(ValueError, match="torch.nn.Module"):
        layer_table(lambda X: X, (1, 1, 96, 96))
    with pytest.raises(ValueError, match="torch.nn.Module"):
        count_parameters("densenet")


def test_layer_table_passes_on_the_networks_own_error():
    with pytest.raises(ValueError, match="1 input channels"):
        layer_table(minidense.densenet(), (1, 3, 96, 96))
