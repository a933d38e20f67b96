"""The new recipe's parts against their formulas: label smoothing, flip TTA, the EMA with warm-up."""

import pytest
import torch
from torch import nn

import minidense
from minidense.options import Levers, Recipe
from minidense.training import ema_with_warmup, evaluate_accuracy, predict, training_step

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


def test_a_history_gives_back_the_levers_it_ran_with():
    history = minidense.History(provenance={"bf16": True, "channels_last": False, "eval_batch_size": 64,
                                            "keep_freed_memory": True, "lr": 0.1})
    assert history.levers == Levers(bf16=True, channels_last=False, eval_batch_size=64, keep_freed_memory=True)
