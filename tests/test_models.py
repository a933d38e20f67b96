"""minidense.models: the book's DenseNet (shapes, the 758,226 parameters counted by hand, d2l's network, clear
errors) and the paper's family (torchvision's counts and logits, Tables 1 and 2, memory-efficient mode).
"""

import importlib.util
import json
import math
import os
import re
import subprocess
import sys

import pytest
import torch
import torchvision
from torch import nn

import minidense
from conftest import ROOT, tiny_densenet
from minidense.memory import saved_activation_bytes
from minidense.models import min_input_size

# The book's DenseNet: shapes, the 758,226 parameters counted by hand, d2l's network, clear errors.


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


@pytest.mark.parametrize("X, message", [
    (torch.zeros(2, 1, 32, 32, dtype=torch.float64), "expects torch.float32 input, the dtype of its weights"),
    (torch.zeros(2, 1, 32, 32, dtype=torch.uint8), "expects floating-point images"),
])
def test_input_of_another_dtype_is_an_error_in_the_librarys_terms(X, message):
    with pytest.raises(ValueError, match=message):
        tiny_densenet()(X)


def test_a_very_deep_network_builds_at_once():
    net = minidense.densenet(growth_rate=1, convs_per_block=(1,) * 18)  # 17 transitions: 2**19 pixels
    assert net.min_size == 524_285  # 4 * 2**17 for the stem and the transitions, less the padding's slack


# The paper's DenseNet: torchvision's counts and logits, Tables 1 and 2, memory-efficient mode, errors.


def params_by_formula(growth_rate, block_config, num_init_features, bottleneck=True, bn_size=4,
                      compression=0.5, stem="imagenet", in_channels=3, num_classes=1000):
    """Count layer by layer: stem, dense layers, transitions, final BN, classifier (no conv biases)."""
    if stem == "imagenet":
        total = in_channels * num_init_features * 7 * 7 + 2 * num_init_features  # conv0 + norm0
    else:
        total = in_channels * num_init_features * 3 * 3  # one 3x3 conv
    channels = num_init_features
    for i, num_layers in enumerate(block_config):
        for layer in range(num_layers):
            c_in = channels + layer * growth_rate
            if bottleneck:  # BN, 1x1 conv to bn_size*k, BN, 3x3 conv to k
                width = bn_size * growth_rate
                total += 2 * c_in + c_in * width + 2 * width + 9 * width * growth_rate
            else:  # BN, 3x3 conv to k
                total += 2 * c_in + 9 * c_in * growth_rate
        channels += num_layers * growth_rate
        if i != len(block_config) - 1:
            out = int(compression * channels)
            total += 2 * channels + channels * out  # BN + 1x1 conv
            channels = out
    return total + 2 * channels + channels * num_classes + num_classes  # final BN + linear


# Table 1 of the paper (k = 32) and DenseNet-161 from its ImageNet experiments.
IMAGENET = [
    # builder, growth rate, blocks, initial features, in torchvision
    ("densenet121", 32, (6, 12, 24, 16), 64, True),
    ("densenet169", 32, (6, 12, 32, 32), 64, True),
    ("densenet201", 32, (6, 12, 48, 32), 64, True),
    ("densenet161", 48, (6, 12, 36, 24), 96, True),
    ("densenet264", 32, (6, 12, 64, 48), 64, False),
]


@pytest.mark.parametrize("name, growth_rate, blocks, init, in_torchvision", IMAGENET)
def test_imagenet_models_match_table_1_and_torchvision(name, growth_rate, blocks, init, in_torchvision):
    net = getattr(minidense, name)()
    layers = [len(getattr(net.features, f"denseblock{i}")) for i in range(1, 5)]
    assert tuple(layers) == blocks
    assert net.growth_rate == growth_rate and net.features.conv0.out_channels == init
    assert num_params(net) == params_by_formula(growth_rate, blocks, init)
    # 121 = 1 stem conv + 2 convs per dense layer + 3 transition convs + 1 classifier; Table 1's
    # blocks for "264" give 1 + 2 * 130 + 3 + 1 = 265 (the paper's name is one off; torchvision has no 264)
    depth = 1 + 2 * sum(blocks) + 3 + 1
    assert depth == (265 if name == "densenet264" else int(name.removeprefix("densenet")))
    if in_torchvision:
        reference = getattr(torchvision.models, name)(weights=None)
        assert num_params(net) == num_params(reference)
        ours, theirs = net.state_dict(), reference.state_dict()
        assert list(ours) == list(theirs)
        assert all(ours[k].shape == theirs[k].shape for k in ours)


def test_densenet121_has_7978856_parameters_and_264_has_33337704():
    assert num_params(minidense.densenet121()) == 7_978_856
    assert num_params(minidense.densenet264()) == params_by_formula(32, (6, 12, 64, 48), 64) == 33_337_704


@pytest.fixture(scope="module")
def torchvision_121():
    torch.manual_seed(0)
    reference = torchvision.models.densenet121(weights=None)
    for m in reference.modules():  # non-trivial BN statistics, so eval mode tests them too
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
    return reference.eval()


def test_torchvision_weights_give_the_same_logits(torchvision_121):
    net = minidense.load_torchvision_state_dict(minidense.densenet121(), torchvision_121.state_dict()).eval()
    X = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(net(X), torchvision_121(X), rtol=0, atol=0)


def to_legacy_keys(state_dict):
    """The format of torchvision's published checkpoints: `norm.1` for `norm1`, no BN counters."""
    legacy = re.compile(r"^(.*denselayer\d+\.(?:norm|conv))([12])\.(weight|bias|running_mean|running_var)$")
    return {legacy.sub(r"\1.\2.\3", k): v for k, v in state_dict.items() if not k.endswith("num_batches_tracked")}


def test_old_key_format_loads(torchvision_121):
    old = to_legacy_keys(torchvision_121.state_dict())
    assert "features.denseblock1.denselayer1.norm.1.weight" in old
    assert not any(k.endswith("num_batches_tracked") for k in old)
    net = minidense.load_torchvision_state_dict(minidense.densenet121(), old)
    for key, value in torchvision_121.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(net.state_dict()[key], value)


@pytest.mark.parametrize("builder, message", [
    (lambda: minidense.densenet121(num_classes=10),
     "shape mismatches: classifier.weight: expected (10, 1024), got (1000, 1024)"),
    (minidense.densenet169, "missing keys: features.denseblock3.denselayer25.norm1.weight"),
])
def test_state_dict_that_does_not_fit_names_keys_and_shapes(torchvision_121, builder, message):
    with pytest.raises(ValueError) as error:
        minidense.load_torchvision_state_dict(builder(), torchvision_121.state_dict())
    assert message in str(error.value)


def test_unexpected_keys_are_named(torchvision_121):
    state = dict(torchvision_121.state_dict(), **{"features.extra.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="unexpected keys: features.extra.weight"):
        minidense.load_torchvision_state_dict(minidense.densenet121(), state)


# Table 2 of the paper: parameters in millions, rounded to 0.1M.
TABLE_2 = [
    # depth, growth rate, bottleneck, compression, paper's parameters (M)
    (40, 12, False, 1.0, 1.0),
    (100, 12, False, 1.0, 7.0),
    (100, 24, False, 1.0, 27.2),
    (100, 12, True, 0.5, 0.8),
    (250, 24, True, 0.5, 15.3),
    (190, 40, True, 0.5, 25.6),
]


@pytest.mark.parametrize("depth, growth_rate, bottleneck, compression, paper_millions", TABLE_2)
def test_cifar_networks_reproduce_table_2(depth, growth_rate, bottleneck, compression, paper_millions):
    net = minidense.cifar_densenet(depth, growth_rate, bottleneck=bottleneck, compression=compression)
    n = (depth - 4) // (6 if bottleneck else 3)
    assert net.block_config == (n, n, n)
    init = 2 * growth_rate if bottleneck and compression < 1 else 16
    count = params_by_formula(growth_rate, (n, n, n), init, bottleneck, 4, compression, "cifar", 3, 10)
    assert num_params(net) == count
    assert round(count / 1e6, 1) == paper_millions
    # depth counts the layers with weights that an input passes through: convolutions and the classifier
    assert sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in net.modules()) == depth


def test_cifar_network_runs_on_32x32_images():
    net = minidense.cifar_densenet(16, 4, bottleneck=True, compression=0.5)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)


SMALL = [
    # a small network of each kind, for the memory-efficient mode and input checks
    dict(growth_rate=8, block_config=(3, 3), num_init_features=16, num_classes=5),
    dict(growth_rate=6, block_config=(2, 2, 2), num_init_features=12, bottleneck=False, compression=1.0,
         stem="cifar", num_classes=5),
    dict(growth_rate=6, block_config=(2, 2), num_init_features=12, drop_rate=0.2, stem="cifar", num_classes=5),
]


@pytest.mark.parametrize("config", SMALL)
def test_memory_efficient_mode_gives_the_same_outputs_gradients_and_statistics(config):
    torch.manual_seed(0)
    naive = minidense.DenseNet(**config)
    efficient = minidense.DenseNet(**config, memory_efficient=True)
    efficient.load_state_dict(naive.state_dict())
    X = torch.randn(4, 3, 32, 32)
    outputs, grads = [], []
    for net in (naive, efficient):
        torch.manual_seed(1)  # the same dropout masks
        Y = net(X)
        (Y * torch.arange(Y.numel()).reshape(Y.shape)).sum().backward()
        outputs.append(Y)
        grads.append({k: p.grad for k, p in net.named_parameters()})
    torch.testing.assert_close(outputs[1], outputs[0])
    for key in grads[0]:
        torch.testing.assert_close(grads[1][key], grads[0][key], msg=key)
    # the recomputation in the backward pass does not update BN's running averages a second time
    for (key, a), b in zip(naive.state_dict().items(), efficient.state_dict().values()):
        torch.testing.assert_close(b, a, msg=key)


def test_memory_efficient_saves_memory_that_grows_linearly_with_depth():
    X = torch.randn(2, 3, 32, 32)
    saved = {True: [], False: []}
    for depth in (16, 28, 40):
        net = minidense.cifar_densenet(depth, 12)
        for memory_efficient in (False, True):
            net.memory_efficient = memory_efficient
            saved[memory_efficient].append(saved_activation_bytes(net, X)[0])
    for mode, (a, b, c) in saved.items():
        first, second = b - a, (c - b) - (b - a)
        if mode:  # linear: equal steps for equal steps in depth
            assert abs(second) < 0.05 * first
        else:  # quadratic: the steps grow
            assert second > 0.3 * first
    assert all(e < n for e, n in zip(saved[True], saved[False]))


@pytest.mark.slow  # ~8 s on 2 cores
def test_memory_benchmark_smoke(tmp_path):
    out = tmp_path / "memory.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])))
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "memory.py"), "--smoke", "--out", str(out)],
                   check=True, env=env, capture_output=True, timeout=300)
    result = json.loads(out.read_text())
    assert {r["depth"] for r in result["rows"]} == {16, 28, 40}
    assert result["fit"]["naive"]["c"] > 0
    assert result["provenance"]["command"].startswith("memory.py --smoke")


def test_input_checks_name_what_was_expected():
    net = minidense.densenet121()
    assert net.min_size == 29  # 29 -> 15 (conv 7x7/2) -> 8 (max pool) -> 4, 2, 1 (transitions)
    with pytest.raises(ValueError, match="DenseNet expects 3 input channels, got 1"):
        net(torch.randn(1, 1, 64, 64))
    with pytest.raises(ValueError, match="at least 29x29 pixels, got 28x28"):
        net(torch.randn(1, 3, 28, 28))
    assert minidense.cifar_densenet(40, 12).min_size == 4  # 4 -> 2 -> 1 (two transitions)


@pytest.mark.parametrize("call, message", [
    (lambda: minidense.cifar_densenet(41, 12),
     "depth must be 3n + 4 (without bottleneck) for a positive integer n, got 41; the nearest that fit are 40 and 43"),
    (lambda: minidense.cifar_densenet(41, 12, bottleneck=True),
     "depth must be 6n + 4 (with bottleneck) for a positive integer n, got 41; the nearest that fit are 40 and 46"),
    (lambda: minidense.cifar_densenet(4, 12), "got 4; the nearest that fit are 7"),
    (lambda: minidense.cifar_densenet(40, 0), "growth_rate must be a positive integer, got 0"),
    (lambda: minidense.cifar_densenet(40, 12, compression=0), "compression must be in (0, 1], got 0"),
    (lambda: minidense.cifar_densenet(40, 12, compression=1.5), "compression must be in (0, 1], got 1.5"),
    (lambda: minidense.densenet121(num_classes=0), "num_classes must be a positive integer, got 0"),
    (lambda: minidense.DenseNet(block_config=()), "block_config must be a non-empty tuple"),
    (lambda: minidense.DenseNet(block_config=(6, 0)), "num_layers (each entry of block_config) must be a positive"),
    (lambda: minidense.DenseNet(drop_rate=1.0), "drop_rate must be in [0, 1), got 1.0"),
    (lambda: minidense.DenseNet(stem="mnist"), "stem must be one of ('imagenet', 'cifar'), got 'mnist'"),
    (lambda: minidense.DenseNet(growth_rate=1, block_config=(1, 1), num_init_features=1, compression=0.1),
     "compression 0.1 leaves no channels after dense block 1"),
])
def test_an_invalid_paper_configuration_is_a_clear_error(call, message):
    with pytest.raises(ValueError) as error:
        call()
    assert message in str(error.value)


def test_a_growth_rate_of_the_wrong_type_is_a_type_error():
    with pytest.raises(TypeError, match="growth_rate must be a positive integer, got 12.5"):
        minidense.DenseNet(growth_rate=12.5)


def test_feature_reuse_reads_the_weights_of_each_source():
    torch.manual_seed(0)
    net = minidense.densenet(growth_rate=4, convs_per_block=(2, 3))
    blk = net.denseblock2  # input: (64 + 2 * 4) // 2 = 36 channels, then 4 per layer
    readers = [conv_block[-1] for conv_block in blk.net] + [net.fc]
    for t, reader in enumerate(readers, start=1):
        with torch.no_grad():
            for s, (lo, hi) in enumerate([(0, 36), (36, 40), (40, 44), (44, 48)][:t]):
                reader.weight[:, lo:hi] = -(10 * s + t)  # sign does not matter: |W|
    matrix = minidense.feature_reuse(net)[1]
    assert matrix.shape == (4, 4)
    for s in range(4):
        for t in range(1, 5):
            expected = 10 * s + t if s < t else math.nan
            torch.testing.assert_close(matrix[s, t - 1], torch.tensor(float(expected)), equal_nan=True)


def test_feature_reuse_of_the_paper_family_has_one_matrix_per_block():
    matrices = minidense.feature_reuse(minidense.cifar_densenet(16, 4, bottleneck=True, compression=0.5))
    assert [tuple(m.shape) for m in matrices] == [(3, 3)] * 3
    assert torch.isnan(matrices[0][1, 0]) and not torch.isnan(matrices[0][0, 2])


def test_output_shapes_on_the_meta_device_follow_table_1():
    from minidense.tables import output_shapes

    with torch.device("meta"):
        net = minidense.densenet121()
        shapes = output_shapes(net.features, torch.zeros(1, 3, 224, 224))
    assert shapes["conv0"] == (1, 64, 112, 112) and shapes["pool0"] == (1, 64, 56, 56)
    # 64 + 6 * 32 = 256 -> 128; 128 + 12 * 32 = 512 -> 256; 256 + 24 * 32 = 1024 -> 512; 512 + 16 * 32 = 1024
    assert [shapes[f"denseblock{i}"][1] for i in range(1, 5)] == [256, 512, 1024, 1024]
    assert shapes["norm5"] == (1, 1024, 7, 7)


def test_feature_reuse_of_a_network_without_dense_blocks_is_a_clear_error():
    with pytest.raises(ValueError, match="feature_reuse needs a DenseNet"):
        minidense.feature_reuse(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten()))
