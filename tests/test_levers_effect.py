"""The speed levers act during ``minidense.train``: a forward hook sees what they change.

bf16 on: the convolutions' outputs are bf16 (autocast), off: fp32. channels-last on: the
activations inside the network are stored channels-last (a 64-channel feature map with stride 1
along the channels), off: in the usual NCHW order. bf16 autocast works on any CPU, slowly where
it is emulated, so the network is tiny and the images few.
"""

import pytest
import torch

import minidense
from conftest import tiny_densenet
from minidense.options import Levers


def synthetic_batches(num_batches=2, batch_size=8, size=32):
    generator = torch.Generator().manual_seed(0)
    return [(torch.rand(batch_size, 1, size, size, generator=generator),
             torch.randint(0, 10, (batch_size,), generator=generator)) for _ in range(num_batches)]


def seen_during_training(levers):
    """``(dtype, is channels-last, is NCHW-contiguous)`` of what the first dense block's first conv
    reads and writes, for every training step."""
    net = tiny_densenet()
    conv = net.denseblock1.net[0][2]  # BN -> ReLU -> Conv on 64 channels
    seen = []

    def hook(module, inputs, output):
        if module.training:
            X = inputs[0]
            channels_last = torch.channels_last
            seen.append(dict(out_dtype=output.dtype, in_channels_last=X.is_contiguous(memory_format=channels_last),
                             in_nchw=X.is_contiguous(),
                             out_channels_last=output.is_contiguous(memory_format=channels_last)))

    conv.register_forward_hook(hook)
    batches = synthetic_batches()
    minidense.train(net, batches, batches, 1, 0.05, "cpu", levers=levers, verbose=False, progress=False)
    assert len(seen) == len(batches)  # one record per training step
    return seen


def test_bf16_and_channels_last_on_are_what_the_network_computes_in():
    for step in seen_during_training(Levers(bf16=True, channels_last=True)):
        assert step["out_dtype"] == torch.bfloat16
        assert step["in_channels_last"] and not step["in_nchw"]
        assert step["out_channels_last"]


def test_bf16_and_channels_last_off_leave_fp32_nchw():
    for step in seen_during_training(Levers(bf16=False, channels_last=False)):
        assert step["out_dtype"] == torch.float32
        assert step["in_nchw"] and not step["in_channels_last"]


@pytest.mark.parametrize("bf16, channels_last", [(True, False), (False, True)])
def test_each_lever_alone(bf16, channels_last):
    for step in seen_during_training(Levers(bf16=bf16, channels_last=channels_last)):
        assert step["out_dtype"] == (torch.bfloat16 if bf16 else torch.float32)
        assert step["in_channels_last"] == channels_last and step["in_nchw"] == (not channels_last)


def test_evaluation_runs_in_the_levers_precision_too():
    net = tiny_densenet()
    dtypes = []
    net.fc.register_forward_hook(lambda module, inputs, output: dtypes.append((module.training, output.dtype)))
    batches = synthetic_batches()
    minidense.train(net, batches, batches, 1, 0.05, "cpu", levers=Levers(bf16=True, channels_last=False),
                    verbose=False, progress=False)
    assert {dtype for training, dtype in dtypes if not training} == {torch.bfloat16}
