"""minidense.training: the loop, one step, evaluation and the recipe's parts, and the levers' effect.

Sections: reproducibility, continuing from given weights and bad input; the levers (precision and
channels-last are what the network computes in, every lever changes speed and never the result);
the recipe's parts against their formulas (label smoothing, flip TTA, the EMA with warm-up); the
learning-rate schedules, step by step; evaluation batches, rebatching and in-place ReLU.
"""

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.optim.optimizer import register_optimizer_step_pre_hook

import minidense
from conftest import tiny_densenet
from minidense import allocator
from minidense.options import Levers, Recipe
from minidense.training import (
    ema_with_warmup,
    evaluate_accuracy,
    inplace_relu_after_bn,
    predict,
    rebatch,
    training_step,
)

# The training loop: reproducibility, continuing from the weights given, bad input, and that it learns.

EXACT = dict(levers=Levers(channels_last=False, bf16=False), verbose=False)  # the reference arithmetic: fp32, NCHW


def without_timing(history):
    return [{k: v for k, v in r.items() if k not in ("examples_per_sec", "seconds")} for r in history.records]


def test_same_seed_gives_the_same_history_twice(tiny_data):
    runs = []
    for _ in range(2):
        train_iter, test_iter = tiny_data
        train_iter.set_epoch(0)
        runs.append(minidense.train(tiny_densenet(), train_iter, test_iter, 2, 0.1, "cpu", **EXACT))
    assert without_timing(runs[0]) == without_timing(runs[1])


def test_training_continues_from_the_weights_it_is_given(tiny_data):
    net = tiny_densenet()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    minidense.train(net, *tiny_data, 1, 0.1, "cpu", **EXACT)
    after = net.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    # a second call starts from `after`, not from a fresh initialisation
    history = minidense.train(net, *tiny_data, 1, 0.1, "cpu", **EXACT)
    assert history.records[0]["train_loss"] < 2.0


@pytest.mark.parametrize("kwargs, message", [
    ({"num_epochs": 0}, "num_epochs must be a positive integer, got 0"),
    ({"lr": -0.1}, "lr must be in (0, inf), got -0.1"),
    ({"recipe": "fast"}, "unknown recipe 'fast'; choose one of d2l, short, book"),
    ({"resume": True}, "resume=True needs checkpoint=PATH"),
])
def test_bad_options_are_clear_errors(tiny_data, kwargs, message):
    args = {"num_epochs": 1, "lr": 0.1, **kwargs}
    with pytest.raises(ValueError) as error:
        minidense.train(tiny_densenet(), *tiny_data, device="cpu", **args, **EXACT)
    assert message in str(error.value)


@pytest.mark.parametrize("kwargs, message", [
    ({"levers": "fast"}, "levers must be a minidense.Levers, got str"),
    ({"parallel": {"sync_bn": True}}, "parallel must be a minidense.Parallel, got dict"),
    ({"num_epochs": 1.5}, "num_epochs must be a positive integer, got 1.5"),
])
def test_arguments_of_the_wrong_type_are_type_errors(tiny_data, kwargs, message):
    args = {"num_epochs": 1, "lr": 0.1, "verbose": False, **kwargs}
    with pytest.raises(TypeError, match=message):
        minidense.train(tiny_densenet(), *tiny_data, device="cpu", **args)


def test_precise_bn_makes_running_statistics_the_plain_average():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.BatchNorm2d(3))
    batches = [(torch.randn(8, 3, 4, 4) * 2 + 1, None) for _ in range(4)]
    minidense.training.recompute_bn_statistics(net, batches, num_batches=3)
    mean = torch.stack([X.mean(dim=(0, 2, 3)) for X, _ in batches[:3]]).mean(0)
    torch.testing.assert_close(net[0].running_mean, mean)
    assert not net.training


@pytest.mark.slow  # the book's network at 96x96: ~6 s on 2 cores
def test_a_smoke_run_on_the_real_data_learns(data_root):
    p = minidense.profile("smoke")
    torch.manual_seed(0)
    train_iter, test_iter = minidense.load_fashion_mnist(p.batch_size, p.resize, data_root, "cpu",
                                                         p.num_train, p.num_test)
    history = minidense.train(minidense.densenet(), train_iter, test_iter, p.num_epochs, device="cpu",
                              recipe=p.recipe, verbose=False)
    assert history.last["test_acc"] > 0.3  # chance is 0.1; measured 0.445 on 2 cores


def test_a_nan_loss_stops_training_with_a_clear_error_and_keeps_the_last_good_checkpoint(tiny_data, tmp_path):
    net = nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 10))
    with torch.no_grad():
        net[1].weight.fill_(float("nan"))
    checkpoint = tmp_path / "ckpt.pt"
    with pytest.raises(FloatingPointError, match="the training loss became nan in epoch 1"):
        minidense.train(net, *tiny_data, 2, 0.1, checkpoint=checkpoint, **EXACT)
    assert not checkpoint.exists()


@pytest.mark.parametrize("train_iter, message", [
    ((batch for batch in []), "train_iter must have a length"),
    ([], "train_iter has no batches"),
])
def test_iterables_without_length_or_batches_are_clear_errors(train_iter, message):
    with pytest.raises(ValueError, match=message):
        minidense.train(tiny_densenet(), train_iter, [], 1, 0.1, "cpu", **EXACT)


def test_evaluating_no_batches_of_the_book_network_is_a_clear_error():
    with pytest.raises(ValueError, match="no batches"):
        minidense.evaluate_accuracy(tiny_densenet(), [], "cpu")


def test_augmentation_needs_the_librarys_iterator():
    batches = [(torch.zeros(4, 1, 32, 32), torch.zeros(4, dtype=torch.long))]
    with pytest.raises(ValueError, match="must be a minidense.data.FashionMNISTBatches"):
        minidense.train(tiny_densenet(), batches, batches, 1, recipe=Recipe(translate=2), device="cpu", **EXACT)


# The speed levers act during ``minidense.train``: a forward hook sees what they change.
#
# bf16 on: the convolutions' outputs are bf16 (autocast), off: fp32. channels-last on: the
# activations inside the network are stored channels-last (a 64-channel feature map with stride 1
# along the channels), off: in the usual NCHW order. bf16 autocast works on any CPU, slowly where
# it is emulated, so the network is tiny and the images few.

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


# The new recipe's parts against their formulas: label smoothing, flip TTA, the EMA with warm-up.

FP32 = Levers(bf16=False, channels_last=False)


def linear_net(seed=0, side=6):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(side * side, 10))


def images(n, seed=1, side=6):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, side, side, generator=generator), torch.randint(0, 10, (n,), generator=generator)


def smoothed_loss_by_hand(logits, y, epsilon, classes=10):
    """-sum_c q_c log p_c with q = (1 - epsilon) onehot(y) + epsilon / C, averaged over the batch."""
    log_p = logits.log_softmax(dim=1)
    q = torch.full_like(log_p, epsilon / classes)
    q[torch.arange(len(y)), y] += 1 - epsilon
    return -(q * log_p).sum(dim=1).mean()


@pytest.mark.parametrize("epsilon", [0.0, 0.1, 0.5])
def test_the_training_loss_is_the_smoothed_cross_entropy(epsilon):
    net = linear_net()
    X, y = images(32)
    with torch.no_grad():
        expected = smoothed_loss_by_hand(net(X), y, epsilon)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    loss, _ = training_step(net, optimizer, X, y, label_smoothing=epsilon)
    torch.testing.assert_close(loss, expected)


def test_train_reports_the_smoothed_loss_of_its_recipe():
    # One batch, one epoch: the reported training loss is the loss of the initial weights.
    X, y = images(32)
    X = 4 * X  # confident predictions: smoothing then changes the loss clearly
    with torch.no_grad():
        expected = smoothed_loss_by_hand(linear_net()(X), y, 0.2).item()
        plain = smoothed_loss_by_hand(linear_net()(X), y, 0.0).item()
    history = minidense.train(linear_net(), [(X, y)], [(X, y)], 1, device="cpu", levers=FP32, verbose=False,
                              progress=False, recipe=Recipe(lr=0.1, label_smoothing=0.2))
    assert history.last["train_loss"] == pytest.approx(expected, rel=1e-6)
    assert abs(expected - plain) > 0.01  # smoothing changes the number: the check can tell


def tta_predictions_by_hand(net, X):
    with torch.no_grad():
        probabilities = (net(X).softmax(dim=1) + net(X.flip(-1)).softmax(dim=1)) / 2
    return probabilities.argmax(dim=1)


def test_tta_averages_the_probabilities_of_each_image_and_its_mirror():
    net = linear_net()
    X, _ = images(512)
    y = tta_predictions_by_hand(net, X)  # labels that only the averaged prediction gets all right
    with torch.no_grad():
        plain = net(X).argmax(dim=1)
        mean_logits = (net(X) + net(X.flip(-1))).argmax(dim=1)
    assert (plain != y).any() and (mean_logits != y).any()  # what makes the check below tell them apart
    batches = [(X[i:i + 64], y[i:i + 64]) for i in range(0, 512, 64)]
    assert evaluate_accuracy(net, batches, "cpu", tta=True) == 1.0
    assert evaluate_accuracy(net, batches, "cpu", tta=False) == (plain == y).float().mean().item()
    assert evaluate_accuracy(net, batches) == evaluate_accuracy(net, batches, "cpu", tta=False)  # default: no TTA
    y_true, y_pred = predict(net, batches, "cpu", tta=True)
    assert torch.equal(y_true, y) and torch.equal(y_pred, y)


def ema_after(weights, decay):
    """The EMA's weights after ``update_parameters`` was called once with each of ``weights``, as ``train`` does."""
    net = nn.Linear(1, 1, bias=False)
    ema = torch.optim.swa_utils.AveragedModel(net, multi_avg_fn=ema_with_warmup(decay))
    for w in weights:
        with torch.no_grad():
            net.weight.fill_(w)
        ema.update_parameters(net)
    return ema.module.weight.item()


def test_the_ema_after_three_updates_is_the_warm_up_formula():
    w1, w2, w3 = 1.0, 2.0, 4.0
    # The first update copies the weights. The n-th averaging step (n = 1, 2, ... updates already
    # averaged) keeps d = min(decay, (1 + n) / (10 + n)) of the average: 2/11, then 3/12.
    a1 = w1
    a2 = 2 / 11 * a1 + 9 / 11 * w2
    a3 = 3 / 12 * a2 + 9 / 12 * w3
    assert ema_after([w1, w2, w3], decay=0.998) == pytest.approx(a3, rel=1e-6)  # 3.4545...
    assert a3 == pytest.approx(3 + 5 / 11)


def test_the_warm_up_stops_at_the_decay():
    w1, w2, w3 = 1.0, 2.0, 4.0
    # decay 0.2: the first step keeps min(0.2, 2/11) = 2/11, the second min(0.2, 3/12) = 0.2
    a3 = 0.2 * (2 / 11 * w1 + 9 / 11 * w2) + 0.8 * w3
    assert ema_after([w1, w2, w3], decay=0.2) == pytest.approx(a3, rel=1e-6)
    # after many updates the average keeps `decay` per step: a constant weight is its own average
    assert ema_after([3.0] * 50, decay=0.9) == pytest.approx(3.0)


def test_evaluating_nothing_is_a_clear_error():
    with pytest.raises(ValueError, match="data_iter yielded no batches: there is nothing to evaluate"):
        evaluate_accuracy(linear_net(), [], "cpu")


def test_levers_travel_as_one_object_to_every_evaluation_and_step():
    net = linear_net()
    X, y = images(16)
    bf16 = Levers(bf16=True, channels_last=False)
    with torch.no_grad():
        expected = (net(X).argmax(dim=1) == y).float().mean().item()
    assert evaluate_accuracy(net, [(X, y)], "cpu", levers=FP32) == expected
    assert evaluate_accuracy(net, [(X, y)], "cpu", levers=FP32.replace(eval_batch_size=5)) == expected  # re-cut
    _, y_pred = predict(net, [(X, y)], levers=bf16)
    assert y_pred.shape == (16,)
    _, y_hat = training_step(net, torch.optim.SGD(net.parameters(), lr=0.0), X, y, levers=bf16)
    assert y_hat.dtype == torch.bfloat16  # the step ran under the levers' bf16 autocast
    _, y_hat = training_step(net, torch.optim.SGD(net.parameters(), lr=0.0), X, y)
    assert y_hat.dtype == torch.float32  # no levers: plain fp32


def test_levers_that_are_not_levers_are_a_type_error():
    net = linear_net()
    X, y = images(4)
    with pytest.raises(TypeError, match="levers must be a minidense.Levers, got dict"):
        evaluate_accuracy(net, [(X, y)], "cpu", levers={"bf16": False})
    with pytest.raises(TypeError, match="levers must be a minidense.Levers, got str"):
        minidense.training.recompute_bn_statistics(nn.Sequential(nn.BatchNorm2d(1)), [(X, y)], 1, levers="fp32")
    with pytest.raises(TypeError):  # the old positional bf16 after the device
        evaluate_accuracy(net, [(X, y)], "cpu", True)


# The learning rate and momentum of every step, read from the optimiser while ``train`` runs.
#
# A global optimiser pre-hook (``torch.optim.optimizer.register_optimizer_step_pre_hook``) records
# ``lr`` and ``momentum`` of the parameter group just before each SGD step: what that step uses.
# The training is 2 epochs of 20 batches, T = 40 steps, peak lr 0.1, momentum 0.9; every value is
# checked against the formula written out here.

LR, MOMENTUM, EPOCHS, BATCHES = 0.1, 0.9, 2, 20
T = EPOCHS * BATCHES


def trace(schedule):
    """``(lrs, momenta)``: one value per training step, in order."""
    generator = torch.Generator().manual_seed(0)
    batches = [(torch.rand(4, 1, 4, 4, generator=generator), torch.randint(0, 10, (4,), generator=generator))
               for _ in range(BATCHES)]
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 10))
    lrs, momenta = [], []

    def record(optimizer, args, kwargs):
        group = optimizer.param_groups[0]
        lrs.append(group["lr"])
        momenta.append(group["momentum"])

    handle = register_optimizer_step_pre_hook(record)
    try:
        minidense.train(net, batches, batches[:2], EPOCHS, device="cpu", recipe=Recipe(
            lr=LR, momentum=MOMENTUM, schedule=schedule), levers=Levers(bf16=False, channels_last=False),
            verbose=False, progress=False)
    finally:
        handle.remove()
    assert len(lrs) == T
    return lrs, momenta


@pytest.mark.parametrize("schedule", [None, "step", "cosine", "onecycle"])
def test_momentum_stays_what_the_recipe_says(schedule):
    _, momenta = trace(schedule)
    assert momenta == [MOMENTUM] * T  # one-cycle must not cycle it (OneCycleLR would, by default)


def test_no_schedule_keeps_the_lr_constant():
    lrs, _ = trace(None)
    assert lrs == [LR] * T


def test_step_divides_by_10_at_half_and_by_100_at_three_quarters():
    lrs, _ = trace("step")
    # steps 0..19 at lr, 20..29 (from 50% of the steps) at lr / 10, 30..39 (from 75%) at lr / 100
    assert lrs[:20] == [LR] * 20
    assert lrs[20:30] == pytest.approx([LR / 10] * 10, rel=1e-12)
    assert lrs[30:] == pytest.approx([LR / 100] * 10, rel=1e-12)


def test_cosine_is_half_the_lr_half_way():
    lrs, _ = trace("cosine")
    # lr_i = lr (1 + cos(pi i / T)) / 2, from lr at step 0 towards 0 at step T
    assert lrs == pytest.approx([LR * (1 + math.cos(math.pi * i / T)) / 2 for i in range(T)], rel=1e-9, abs=1e-15)
    assert lrs[0] == LR and lrs[T // 2] == pytest.approx(LR / 2, rel=1e-12)


def test_onecycle_warms_up_for_30_percent_then_anneals():
    lrs, _ = trace("onecycle")
    # OneCycleLR with its defaults: start at lr / 25, rise along a half cosine to lr at step
    # 0.3 T - 1 = 11 (the 12th of 40 steps), then fall along a half cosine to lr / 25 / 10^4 at the last step.
    start, peak, end = LR / 25, 0.3 * T - 1, LR / 25 / 1e4

    def half_cosine(a, b, fraction):
        return b + (a - b) * (1 + math.cos(math.pi * fraction)) / 2

    expected = [half_cosine(start, LR, i / peak) if i <= peak else half_cosine(LR, end, (i - peak) / (T - 1 - peak))
                for i in range(T)]
    assert lrs == pytest.approx(expected, rel=1e-9)
    assert max(range(T), key=lrs.__getitem__) == 11 and lrs[11] == pytest.approx(LR, rel=1e-12)
    assert lrs[0] == pytest.approx(LR / 25) and lrs[-1] == pytest.approx(LR / 25 / 1e4)


# The speed levers change how fast training runs, never what it computes; the benchmark runs.

FAST = dict(progress=False, verbose=False)


def levers(**changes):
    """The levers of these tests: fp32, NCHW, no in-place ReLU, unless changed."""
    return Levers(bf16=False, channels_last=False, inplace_relu=False).replace(**changes)


@pytest.fixture
def small_data(data_root):
    """256 training and 128 test images at 32x32, batch 32: eight steps per epoch."""
    return minidense.load_fashion_mnist(32, resize=32, root=data_root, device="cpu", num_train=256,
                                        num_test=128, seed=0)


@pytest.mark.slow  # trains twice: seconds on an idle machine, more under load
def test_channels_last_gives_the_same_loss_curve(small_data):
    train_iter, test_iter = small_data
    runs = [minidense.train(tiny_densenet(), train_iter, test_iter, 1, 0.02, "cpu",
                            levers=levers(channels_last=channels_last), **FAST).to_frame()
            for channels_last in (False, True)]
    # the same sums in another order: fp32 rounding differs in the last digits, and each step carries
    # it on; after one epoch of eight steps the mean loss differs by 0.1-0.2% (which kernels run
    # depends on the CPU and the thread count), a wrong layout by far more
    torch.testing.assert_close(torch.tensor(runs[1]["train_loss"].to_numpy()),
                               torch.tensor(runs[0]["train_loss"].to_numpy()), rtol=5e-3, atol=0)
    assert (runs[1]["test_acc"] - runs[0]["test_acc"]).abs().max() <= 2 / 128  # at most two images flip


def test_channels_last_step_gives_the_same_loss_and_gradients():
    X, y = torch.rand(8, 1, 32, 32), torch.arange(8)
    losses, grads = [], []
    for memory_format in (torch.contiguous_format, torch.channels_last):
        net = tiny_densenet().to(memory_format=memory_format)
        loss = F.cross_entropy(net(X.contiguous(memory_format=memory_format)), y)
        loss.backward()
        losses.append(loss.detach())
        grads.append(torch.cat([p.grad.flatten() for p in net.parameters()]))
    torch.testing.assert_close(losses[1], losses[0])
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # trains twice: seconds on an idle machine, more under load
def test_bf16_stays_within_a_few_hundredths_of_fp32(small_data):
    train_iter, test_iter = small_data
    runs = [minidense.train(tiny_densenet(), train_iter, test_iter, 1, 0.1, "cpu", levers=levers(bf16=bf16),
                            **FAST).last for bf16 in (False, True)]
    fp32, bf16 = runs
    # bf16 keeps 8 bits of mantissa (2 to 3 significant digits): after 8 steps the curves part a little
    assert abs(bf16["train_loss"] - fp32["train_loss"]) < 0.05
    assert abs(bf16["train_acc"] - fp32["train_acc"]) < 0.05
    assert abs(bf16["test_acc"] - fp32["test_acc"]) < 0.05


def test_eval_batching_and_kept_memory_give_identical_accuracy(tiny_data):
    train_iter, test_iter = tiny_data
    net = tiny_densenet()
    expected = minidense.evaluate_accuracy(net, test_iter, "cpu")
    assert minidense.evaluate_accuracy(net, test_iter, "cpu", levers=levers(eval_batch_size=256)) == expected
    assert minidense.evaluate_accuracy(net, test_iter, "cpu", levers=levers(keep_freed_memory=False)) == expected
    assert minidense.evaluate_accuracy(net, test_iter, "cpu", levers=levers(eval_batch_size=100)) == expected
    assert minidense.evaluate_accuracy(net, list(test_iter), "cpu", levers=levers(eval_batch_size=100)) == expected


def test_rebatch_keeps_every_example_in_order():
    batches = [(torch.arange(i, i + 3).float(), torch.arange(i, i + 3)) for i in range(0, 9, 3)]
    sizes = [len(y) for _, y in rebatch(batches, 4)]
    assert sizes == [4, 4, 1]  # 9 examples in batches of 4
    assert torch.equal(torch.cat([y for _, y in rebatch(batches, 4)]), torch.arange(9))


def test_rebatch_of_fashion_mnist_batches_serves_the_same_images(tiny_data):
    _, test_iter = tiny_data
    X, y = next(iter(rebatch(test_iter, 256)))
    assert X.shape == (256, 1, 32, 32)
    torch.testing.assert_close(X[:64], next(iter(test_iter))[0])


def test_inplace_relu_gives_identical_outputs_and_gradients_and_is_undone():
    X = torch.randn(4, 1, 32, 32)
    outputs, grads = [], []
    for inplace in (False, True):
        net = tiny_densenet()
        net.train()
        if inplace:
            with inplace_relu_after_bn(net):
                assert all(m.inplace for m in net.modules() if isinstance(m, torch.nn.ReLU))
                out = net(X)
                out.square().sum().backward()
            assert not any(m.inplace for m in net.modules() if isinstance(m, torch.nn.ReLU))
        else:
            out = net(X)
            out.square().sum().backward()
        outputs.append(out.detach())
        grads.append([p.grad for p in net.parameters()])
    torch.testing.assert_close(outputs[1], outputs[0], rtol=0, atol=0)
    for g1, g0 in zip(grads[1], grads[0]):
        torch.testing.assert_close(g1, g0, rtol=0, atol=0)


@pytest.mark.slow  # trains twice: seconds on an idle machine, more under load
@pytest.mark.parametrize("lever", ["host_sync", "keep_freed_memory"])
def test_lever_changes_nothing_but_speed(small_data, lever):
    train_iter, test_iter = small_data
    runs = [minidense.train(tiny_densenet(), train_iter, test_iter, 1, 0.1, "cpu",
                            levers=levers(**{lever: on}), **FAST) for on in (False, True)]
    assert [run.provenance[lever] for run in runs] == [False, allocator.can_keep_freed_memory()
                                                       if lever == "keep_freed_memory" else True]
    assert runs[0].last["train_loss"] == runs[1].last["train_loss"]
    assert runs[0].last["test_acc"] == runs[1].last["test_acc"]


def test_compile_is_refused_under_smoke_and_eval_batch_must_be_positive(small_data):
    train_iter, test_iter = small_data
    with pytest.raises(ValueError, match="smoke"):
        minidense.train(tiny_densenet(), train_iter, test_iter, 1, 0.1, "cpu", levers=levers(compile=True),
                        profile="smoke", **FAST)
    with pytest.raises(ValueError, match="eval_batch_size"):
        minidense.train(tiny_densenet(), train_iter, test_iter, 1, 0.1, "cpu", levers=levers(eval_batch_size=0),
                        **FAST)
