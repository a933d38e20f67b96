"""minidense.checkpoints: what a run saves after every epoch, what a resume needs, how it is restored.

Resuming is exact where randomness is everywhere: dropout, the book recipe's augmentation, EMA, TTA.
A run interrupted in its second epoch of two, then resumed from the checkpoint of epoch 1, must
end with the weights of the uninterrupted run, max |dw| = 0: the checkpoint carries the model, the
optimiser's momentum, the schedule's position, the averaged weights and the RNG that dropout draws
from; the augmentation is seeded by (seed, epoch), so the resumed epoch sees the same images.
"""


import pytest
import torch

import minidense
from conftest import tiny_densenet
from minidense.options import Levers, Recipe

FP32 = Levers(bf16=False, channels_last=False)  # the reference arithmetic: fp32, NCHW
EXACT = dict(levers=FP32, verbose=False, progress=False)
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


class InterruptAtEpoch:
    """Wraps a loader and raises in the middle of epoch ``stop`` (0-based), like a killed job."""

    def __init__(self, loader, stop):
        self.loader, self.stop = loader, stop

    def __len__(self):
        return len(self.loader)

    def set_epoch(self, epoch):
        self.loader.set_epoch(epoch)
        self.epoch = epoch

    def __iter__(self):
        for i, batch in enumerate(self.loader):
            if self.epoch == self.stop and i == 2:
                raise Interrupted
            yield batch


@pytest.mark.parametrize("options", [{}, {"recipe": Recipe(schedule="onecycle", momentum=0.9, nesterov=True,
                                                            weight_decay=5e-4, precise_bn=2)}])
def test_resume_after_epoch_one_of_two_gives_the_same_final_weights(tiny_data, tmp_path, options):
    train_iter, test_iter = tiny_data
    whole = tiny_densenet()
    minidense.train(whole, train_iter, test_iter, 2, 0.1, "cpu", **options, **EXACT)

    checkpoint = tmp_path / "ckpt.pt"
    with pytest.raises(Interrupted):
        minidense.train(tiny_densenet(), InterruptAtEpoch(train_iter, 1), test_iter, 2, 0.1, "cpu",
                        checkpoint=checkpoint, **options, **EXACT)
    resumed = tiny_densenet(seed=99)  # different initial weights: everything must come from the checkpoint
    history = minidense.train(resumed, train_iter, test_iter, 2, 0.1, "cpu", checkpoint=checkpoint,
                              resume=True, **options, **EXACT)
    assert [r["epoch"] for r in history.records] == [1, 2]
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_checkpoint_that_does_not_fit_the_network_is_a_clear_error(tiny_data, tmp_path):
    checkpoint = tmp_path / "ckpt.pt"
    minidense.train(tiny_densenet(), *tiny_data, 1, 0.1, "cpu", checkpoint=checkpoint, **EXACT)
    torch.manual_seed(0)
    other = minidense.densenet(growth_rate=8, convs_per_block=(2, 3))
    with pytest.raises(ValueError) as error:
        minidense.train(other, *tiny_data, 2, 0.1, "cpu", checkpoint=checkpoint, resume=True, **EXACT)
    message = str(error.value)
    assert "does not fit" in message and "missing keys: denseblock2.net.2" in message


def test_corrupt_checkpoint_is_a_clear_error(tiny_data, tmp_path):
    checkpoint = tmp_path / "ckpt.pt"
    checkpoint.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="is not a minidense checkpoint"):
        minidense.train(tiny_densenet(), *tiny_data, 1, 0.1, "cpu", checkpoint=checkpoint, resume=True, **EXACT)


def test_unwritable_checkpoint_is_reported_before_the_first_step(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(OSError, match="cannot write"):
        minidense.train(tiny_densenet(), NoTraining(), [], 1, 0.1, "cpu", checkpoint=blocker / "ckpt.pt", **EXACT)


@pytest.fixture
def one_epoch_checkpoint(tiny_data, tmp_path):
    checkpoint = tmp_path / "ckpt.pt"
    recipe = Recipe(schedule="onecycle", momentum=0.9, nesterov=True)
    minidense.train(tiny_densenet(), *tiny_data, 1, recipe=recipe, checkpoint=checkpoint, **EXACT)
    return checkpoint, recipe


@pytest.mark.parametrize("change, epochs, message", [
    ({"lr": 0.05}, 1, "lr: checkpoint 0.1, now 0.05"),
    ({"momentum": 0.5}, 1, "momentum: checkpoint 0.9, now 0.5"),
    ({"nesterov": False}, 1, "nesterov: checkpoint True, now False"),
    ({"schedule": None}, 1, "schedule: checkpoint 'onecycle', now None"),
    ({}, 2, "num_epochs: checkpoint 1, now 2 (the onecycle schedule is laid out over the whole run)"),
])
def test_resume_with_a_changed_recipe_is_refused_naming_what_differs(one_epoch_checkpoint, tiny_data, change,
                                                                    epochs, message):
    checkpoint, recipe = one_epoch_checkpoint
    with pytest.raises(ValueError) as error:
        minidense.train(tiny_densenet(), *tiny_data, epochs, recipe=recipe.replace(**change), checkpoint=checkpoint,
                        resume=True, **EXACT)
    assert message in str(error.value) and "cannot resume" in str(error.value)


def test_more_epochs_at_a_constant_learning_rate_continue_the_run(tiny_data, tmp_path):
    checkpoint = tmp_path / "ckpt.pt"
    minidense.train(tiny_densenet(), *tiny_data, 1, 0.1, checkpoint=checkpoint, **EXACT)
    history = minidense.train(tiny_densenet(), *tiny_data, 2, 0.1, checkpoint=checkpoint, resume=True, **EXACT)
    assert [r["epoch"] for r in history.records] == [1, 2]


def test_a_checkpoint_without_an_optimiser_is_a_clear_error(tiny_data, tmp_path):
    checkpoint = tmp_path / "ckpt.pt"
    torch.save({"epoch": 1, "model": tiny_densenet().state_dict()}, checkpoint)
    with pytest.raises(ValueError, match="not a minidense checkpoint of this version: it needs .*optimizer"):
        minidense.train(tiny_densenet(), *tiny_data, 1, 0.1, checkpoint=checkpoint, resume=True, **EXACT)


class NoTraining:
    """A training iterator that fails the test if any batch is drawn."""

    batch_size = 8

    def __len__(self):
        return 4

    def __iter__(self):
        raise AssertionError("a batch was drawn before the bad input was reported")
