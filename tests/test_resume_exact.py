"""Resuming is exact where randomness is everywhere: dropout, the book recipe's augmentation, EMA, TTA.

A run interrupted in its second epoch of two, then resumed from the checkpoint of epoch 1, must
end with the weights of the uninterrupted run, max |dw| = 0: the checkpoint carries the model, the
optimiser's momentum, the schedule's position, the averaged weights and the RNG that dropout draws
from; the augmentation is seeded by (seed, epoch), so the resumed epoch sees the same images.
"""

import pytest
import torch

import minidense
from minidense.options import Levers

FP32 = Levers(bf16=False, channels_last=False)  # the reference arithmetic: fp32, NCHW
BOOK = minidense.recipe("book").replace(precise_bn=2)  # onecycle, Nesterov, label smoothing, shifts, flips, EMA, TTA


def dropout_densenet(seed=0):
    """The paper's DenseNet, small, with dropout 0.2 after every dense layer (32x32 grey images)."""
    torch.manual_seed(seed)
    return minidense.DenseNet(growth_rate=8, block_config=(2, 2), num_init_features=16, drop_rate=0.2,
                              num_classes=10, in_channels=1, stem="cifar")


class Interrupted(Exception):
    pass


def interrupt_in_epoch_2(epoch, record):
    """A callback that stops the run part-way through epoch 2, like a killed job (after epoch 1's checkpoint)."""
    if 1 < epoch < 2:
        raise Interrupted


def identical(a, b):
    """Whether two (nested) states are equal, tensors bit for bit."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(identical(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(map(identical, a, b))
    return a == b


def without_timing(history):
    return [{k: v for k, v in r.items() if k not in ("examples_per_sec", "seconds")} for r in history.records]


@pytest.mark.slow
def test_resume_with_dropout_and_the_book_recipe_is_bit_exact(data_root, tmp_path):
    assert BOOK.augments and BOOK.ema_decay and BOOK.tta and BOOK.label_smoothing
    # 4 batches of 32 per epoch, 64 test images, at 32x32
    train_iter, test_iter = minidense.load_fashion_mnist(32, resize=32, root=data_root, device="cpu",
                                                         num_train=128, num_test=64, seed=0)
    net = dropout_densenet()
    X = next(iter(test_iter))[0][:4]
    net.train()
    assert not torch.equal(net(X), net(X))  # dropout draws from the global RNG: the check below can tell

    whole = dropout_densenet()
    uninterrupted = minidense.train(whole, train_iter, test_iter, 2, device="cpu", recipe=BOOK, levers=FP32,
                                    checkpoint=tmp_path / "whole.pt", verbose=False, progress=False)

    checkpoint = tmp_path / "ckpt.pt"
    with pytest.raises(Interrupted):
        minidense.train(dropout_densenet(), train_iter, test_iter, 2, device="cpu", recipe=BOOK, levers=FP32,
                        checkpoint=checkpoint, callback=interrupt_in_epoch_2, verbose=False, progress=False)
    assert torch.load(checkpoint, weights_only=False)["epoch"] == 1
    torch.manual_seed(12345)  # another global RNG state: the resumed run must take the checkpoint's
    resumed = dropout_densenet(seed=99)  # other initial weights: everything must come from the checkpoint
    history = minidense.train(resumed, train_iter, test_iter, 2, device="cpu", recipe=BOOK, levers=FP32,
                              checkpoint=checkpoint, resume=True, verbose=False, progress=False)

    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert (a.double() - b.double()).abs().max() == 0, f"{name} differs after resuming"
    # the averaged weights, the optimiser's momentum and the schedule's position agree too (each
    # run's checkpoint after epoch 2 holds them), and so does every test accuracy
    ends = [torch.load(path, weights_only=False) for path in (tmp_path / "whole.pt", checkpoint)]
    for part in ("ema", "optimizer", "scheduler"):
        assert identical(ends[0][part], ends[1][part]), f"the {part} state differs after resuming"
    assert without_timing(history) == without_timing(uninterrupted)
    assert {"test_acc_ema_tta", "test_acc_last"} <= set(history.last)
