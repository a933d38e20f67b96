"""The book's layers: shapes, parameter counts by hand, the pool switch, and clear errors."""

import pytest
import torch
from torch import nn

from minidense import DenseBlock, conv_block, transition_block


def num_params(module):
    return sum(p.numel() for p in module.parameters())


def conv_block_params(c_in, c_out):
    """BN (scale and shift per input channel) + 3x3 conv weights + one bias per output channel."""
    return 2 * c_in + 9 * c_in * c_out + c_out


def test_conv_block_keeps_height_and_width():
    assert conv_block(3, 10)(torch.randn(4, 3, 8, 8)).shape == (4, 10, 8, 8)


def test_conv_block_parameter_count():
    assert num_params(conv_block(3, 10)) == conv_block_params(3, 10) == 6 + 270 + 10


def test_conv_block_is_bn_relu_conv():
    bn, relu, conv = conv_block(3, 10)
    assert isinstance(bn, nn.BatchNorm2d) and isinstance(relu, nn.ReLU)
    assert conv.kernel_size == (3, 3) and conv.padding == (1, 1) and conv.bias is not None


def test_dense_block_concatenates_growth_rate_channels_per_conv():
    blk = DenseBlock(2, 3, 10)
    assert blk.out_channels == 3 + 2 * 10 == 23
    Y = blk(torch.randn(4, 3, 8, 8))
    assert Y.shape == (4, 23, 8, 8)


def test_dense_block_keeps_its_input_as_the_first_channels():
    X = torch.randn(4, 3, 8, 8)
    assert torch.equal(DenseBlock(2, 3, 10)(X)[:, :3], X)


def test_dense_block_parameter_count():
    # layer i sees 3 + 10 i channels
    expected = conv_block_params(3, 10) + conv_block_params(13, 10)
    assert num_params(DenseBlock(2, 3, 10)) == expected


def test_dense_block_equals_its_layers_applied_by_hand():
    torch.manual_seed(0)
    blk = DenseBlock(3, 4, 5).eval()
    X = torch.randn(2, 4, 6, 6)
    features = [X]
    for layer in blk.net:
        features.append(layer(torch.cat(features, dim=1)))
    torch.testing.assert_close(blk(X), torch.cat(features, dim=1))


def test_transition_halves_height_and_width():
    assert transition_block(23, 10)(torch.randn(4, 23, 8, 8)).shape == (4, 10, 4, 4)


@pytest.mark.parametrize("pool, reduce", [("avg", lambda t: t.mean(dim=(-1, -2))),
                                          ("max", lambda t: t.amax(dim=(-1, -2)))])
def test_transition_pool_switch_really_swaps_the_pooling(pool, reduce):
    torch.manual_seed(0)
    blk = transition_block(6, 4, pool=pool).eval()
    X = torch.randn(2, 6, 4, 4)
    Z = blk[:3](X)  # BN -> ReLU -> 1x1 conv
    windows = Z.unfold(2, 2, 2).unfold(3, 2, 2)  # (N, C, 2, 2, 2, 2): the 2x2 windows
    torch.testing.assert_close(blk(X), reduce(windows))


@pytest.mark.parametrize("make, message", [
    (lambda: DenseBlock(2, 3, 0), "growth_rate must be a positive integer, got 0"),
    (lambda: DenseBlock(-1, 3, 10), "num_convs must be a positive integer, got -1"),
    (lambda: transition_block(23, 10, pool="min"), "pool must be one of ['avg', 'max'], got 'min'"),
    (lambda: conv_block(0, 10), "in_channels must be a positive integer, got 0"),
])
def test_invalid_configuration_is_a_clear_error(make, message):
    with pytest.raises(ValueError) as error:
        make()
    assert message in str(error.value)


def test_a_count_of_the_wrong_type_is_a_type_error():
    with pytest.raises(TypeError, match="growth_rate must be a positive integer, got 2.5"):
        DenseBlock(2, 3, 2.5)
    with pytest.raises(TypeError, match="in_channels must be a positive integer, got '3'"):
        conv_block("3", 10)


def test_dense_block_names_the_channels_it_expected():
    with pytest.raises(ValueError, match="DenseBlock expects 3 input channels, got 5"):
        DenseBlock(2, 3, 10)(torch.randn(4, 5, 8, 8))
