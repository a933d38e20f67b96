"""The book's DenseNet: shapes, the 758,226 parameters counted by hand, d2l's network, clear errors."""

import importlib.util
import math

import pytest
import torch
from torch import nn

import minidense
from conftest import ROOT
from minidense.models import min_input_size


def d2l_densenet():
    """d2l's DenseNet for Fashion-MNIST, the reference network the benchmarks run too (benchmarks/d2l_reference.py)."""
    spec = importlib.util.spec_from_file_location("d2l_reference", ROOT / "benchmarks" / "d2l_reference.py")
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)
    return reference.d2l_densenet()


def num_params(module):
    return sum(p.numel() for p in module.parameters())


def densenet_params_by_formula(growth_rate=32, convs_per_block=(4, 4, 4, 4), in_channels=1, num_classes=10):
    """Count layer by layer: stem, dense blocks, transitions, head."""
    total = in_channels * 64 * 49 + 64 + 2 * 64  # 7x7 conv (+ bias) and its BN
    channels = 64
    for i, num_convs in enumerate(convs_per_block):
        for layer in range(num_convs):
            c_in = channels + layer * growth_rate
            total += 2 * c_in + 9 * c_in * growth_rate + growth_rate
        channels += num_convs * growth_rate
        if i != len(convs_per_block) - 1:
            total += 2 * channels + channels * (channels // 2) + channels // 2  # BN + 1x1 conv
            channels //= 2
    return total + 2 * channels + channels * num_classes + num_classes  # BN + linear


@pytest.mark.parametrize("pool", ["avg", "max"])
def test_default_network_has_758226_parameters_and_ten_outputs(pool):
    net = minidense.densenet(transition_pool=pool)
    assert num_params(net) == densenet_params_by_formula() == 758_226
    assert net(torch.randn(2, 1, 96, 96)).shape == (2, 10)


@pytest.mark.parametrize("growth_rate, convs_per_block", [(12, (2, 3)), (48, (6, 12, 24, 16)), (8, (1,))])
def test_parameter_count_matches_the_formula_for_other_configurations(growth_rate, convs_per_block):
    net = minidense.densenet(growth_rate=growth_rate, convs_per_block=convs_per_block)
    assert num_params(net) == densenet_params_by_formula(growth_rate, convs_per_block)


def test_channels_through_the_network():
    # 64 + 4 * 32 = 192 -> 96; 96 + 128 = 224 -> 112; 112 + 128 = 240 -> 120; 120 + 128 = 248
    net = minidense.densenet()
    assert [getattr(net, f"denseblock{i}").out_channels for i in range(1, 5)] == [192, 224, 240, 248]
    assert net.fc.in_features == 248


def test_transition_pool_switch_reaches_every_transition():
    pools = [type(m) for m in minidense.densenet(transition_pool="max").modules()
             if isinstance(m, (nn.AvgPool2d, nn.MaxPool2d))]
    assert pools == [nn.MaxPool2d] * 4  # the stem's max pool and three transitions
    pools = [type(m) for m in minidense.densenet().modules() if isinstance(m, (nn.AvgPool2d, nn.MaxPool2d))]
    assert pools == [nn.MaxPool2d] + [nn.AvgPool2d] * 3


def test_identical_to_d2l_network_on_the_same_weights():
    reference = d2l_densenet()
    net = minidense.densenet()
    ours, theirs = net.state_dict(), reference.state_dict()
    assert [v.shape for v in ours.values()] == [v.shape for v in theirs.values()]
    net.load_state_dict(dict(zip(ours, theirs.values())))
    X = torch.randn(3, 1, 96, 96)
    for mode in ("train", "eval"):
        getattr(net, mode)(), getattr(reference, mode)()
        torch.testing.assert_close(net(X), reference(X))


def test_xavier_uniform_initialisation():
    torch.manual_seed(0)
    for m in minidense.densenet().modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(m.weight)
            bound = math.sqrt(6 / (fan_in + fan_out))
            assert m.weight.abs().max() <= bound
            if m.weight.numel() > 1000:  # uniform on [-b, b] has standard deviation b / sqrt(3)
                assert m.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1)


def test_same_seed_same_initial_weights():
    torch.manual_seed(3)
    a = minidense.densenet()
    torch.manual_seed(3)
    b = minidense.densenet()
    for x, y in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(x, y)


def test_wrong_number_of_input_channels_names_both():
    with pytest.raises(ValueError, match="densenet expects 1 input channels, got 3"):
        minidense.densenet()(torch.randn(2, 3, 96, 96))


def test_smallest_image_is_computed_from_the_layers():
    net = minidense.densenet()
    # 29 -> conv 7x7/2 -> 15 -> max pool 3x3/2 -> 8 -> three transitions -> 4, 2, 1
    assert min_input_size(net) == 29
    net.eval()
    assert net(torch.randn(1, 1, 29, 29)).shape == (1, 10)
    with pytest.raises(ValueError, match="at least 29x29 pixels, got 28x28"):
        net(torch.randn(1, 1, 28, 28))


def test_input_must_be_a_batch_of_images():
    with pytest.raises(ValueError, match=r"expects a batch of shape \(N, 1, H, W\), got \(1, 96, 96\)"):
        minidense.densenet()(torch.randn(1, 96, 96))


@pytest.mark.parametrize("kwargs, message", [
    ({"growth_rate": 0}, "growth_rate must be a positive integer, got 0"),
    ({"convs_per_block": (4, 0)}, "num_convs (each entry of convs_per_block) must be a positive integer, got 0"),
    ({"convs_per_block": ()}, "convs_per_block must be a non-empty tuple"),
    ({"transition_pool": "median"}, "transition_pool must be one of ['avg', 'max'], got 'median'"),
    ({"num_classes": -2}, "num_classes must be a positive integer, got -2"),
])
def test_invalid_configuration_is_a_clear_error(kwargs, message):
    with pytest.raises(ValueError) as error:
        minidense.densenet(**kwargs)
    assert message in str(error.value)
