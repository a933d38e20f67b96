"""The training loop: d2l's recipe by default, any :class:`minidense.options.Recipe` as an option.

One :func:`training_step` is what :func:`train`, the benchmarks and the chapters all run; it, the
evaluation functions (:func:`evaluate_accuracy`, :func:`predict`, :func:`recompute_bn_statistics`)
and :func:`train` take the speed levers as one :class:`minidense.Levers` (``levers=``).
:func:`train` reads like d2l's ``train_ch6``: its arguments resolved once into a frozen
:class:`RunSettings`, the optimiser, schedule and averaged weights built together
(:class:`Optimisation`), then per epoch one pass over the batches and an evaluation, and the
:class:`minidense.checkpoints.Checkpoint` that saves the run and restores it on resume.
"""

import contextlib
import dataclasses
import itertools
import math
import time

import torch
from torch import nn
from torch.nn import functional as F

from minidense import allocator, distributed
from minidense._checks import check_positive_int
from minidense.checkpoints import Checkpoint
from minidense.devices import resolve_device
from minidense.hardware import default_eval_batch_size, resolve_levers
from minidense.history import History, provenance
from minidense.options import Levers, Parallel, Recipe
from minidense.options import recipe as get_recipe
from minidense.precision import autocast, backward_and_step, grad_scaler
from minidense.tasks import TASKS, task_of

__all__ = ["train", "training_step", "ema_with_warmup", "RunningMetrics", "prepared", "levers_in_effect",
           "evaluate_accuracy", "recompute_bn_statistics", "predict", "confusion_counts", "rebatch",
           "inplace_relu_after_bn", "default_eval_batch_size"]


def _to_device(X, y, device, memory_format):
    return (X.to(device, non_blocking=True).contiguous(memory_format=memory_format),
            y.to(device, non_blocking=True))


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rebatch(batches, batch_size):
    """The same examples, in the same order, in batches of ``batch_size``.

    A :class:`minidense.data.FashionMNISTBatches` is re-cut directly (its images are resized
    batch by batch); any other iterable of ``(X, y)`` has consecutive batches concatenated.
    """
    check_positive_int("batch_size", batch_size)
    if hasattr(batches, "with_batch_size"):
        return batches.with_batch_size(batch_size)
    return _concatenated(batches, batch_size)


def _concatenated(batches, batch_size):
    pending_X, pending_y, count = [], [], 0
    for X, y in batches:
        pending_X.append(X)
        pending_y.append(y)
        count += len(y)
        while count >= batch_size:
            X_all, y_all = torch.cat(pending_X), torch.cat(pending_y)
            yield X_all[:batch_size], y_all[:batch_size]
            pending_X, pending_y = [X_all[batch_size:]], [y_all[batch_size:]]
            count -= batch_size
    if count:
        yield torch.cat(pending_X), torch.cat(pending_y)


@contextlib.contextmanager
def inplace_relu_after_bn(net):
    """Within the block, every ``nn.ReLU`` that directly follows a BatchNorm works in place.

    Eager PyTorch has no fused BN + ReLU kernel for training; letting the ReLU overwrite the BN
    output (which BN's backward does not need) saves one activation-sized write and allocation
    per pair. Outputs and gradients are unchanged. The flags are restored on exit.
    """
    changed = []
    for module in net.modules():
        if isinstance(module, nn.Sequential):
            children = list(module.children())
            for before, layer in zip(children, children[1:]):
                if isinstance(before, nn.modules.batchnorm._BatchNorm) and type(layer) is nn.ReLU \
                        and not layer.inplace:
                    layer.inplace = True
                    changed.append(layer)
    try:
        yield net
    finally:
        for layer in changed:
            layer.inplace = False


# What evaluation and a step use when no levers are given: fp32 in the default memory layout, the
# rest as decided for the device.
_PLAIN = Levers(precision="fp32", channels_last=False)


def _resolved(levers, device):
    """``levers`` (``None``: plain fp32) with every default decided for ``device``."""
    levers = _PLAIN if levers is None else levers
    return levers if isinstance(levers, Levers) and levers.resolved else resolve_levers(levers, device)


def _device_of(net, device):
    return torch.device(device) if device is not None else next(net.parameters()).device


def _logits(net, X, tta):
    """``net(X)``; with ``tta``, the log of the mean probabilities of ``X`` and its mirror image."""
    if not tta:
        return net(X)
    probabilities = F.softmax(net(X).float(), dim=1) + F.softmax(net(X.flip(-1)).float(), dim=1)
    return (probabilities / 2).log()


def evaluate_accuracy(net, data_iter, device=None, *, levers=None, tta=False):
    """Fraction of examples answered right (their task's :class:`~minidense.tasks.Task` counts: a garment
    classified, a row read whole), in eval mode under ``torch.inference_mode``.

    Counts accumulate on the device and are read once at the end. ``levers`` (a
    :class:`minidense.Levers`; default plain fp32) set the precision, the memory format, freed
    memory kept, and ``eval_batch_size``: the examples re-cut into batches of that size first
    (see :func:`rebatch`), which changes the number of batches, never the accuracy. ``tta`` is the
    recipe's flip test-time augmentation.
    """
    device = _device_of(net, device)
    levers = _resolved(levers, device)
    task = task_of(data_iter)
    if levers.eval_batch_size is not None:
        data_iter = rebatch(data_iter, levers.eval_batch_size)
    net.eval()
    correct = torch.zeros((), dtype=torch.int64, device=device)
    total = 0
    with allocator.keep_freed_memory(levers.keep_freed_memory), torch.inference_mode(), \
            autocast(device, levers.precision):
        for X, y in data_iter:
            X, y = _to_device(X, y, device, levers.memory_format)
            correct += task.count_correct(_logits(net, X, tta), y)
            total += len(y)
    if total == 0 and getattr(data_iter, "world_size", 1) == 1:
        raise ValueError("data_iter yielded no batches: there is nothing to evaluate")
    if getattr(data_iter, "world_size", 1) > 1:  # one rank's share of the examples: count every rank's
        correct, total = distributed.sum_over_ranks(correct, total)
        return correct / total
    return correct.item() / total


def predict(net, data_iter, device=None, *, levers=None, tta=False):
    """The true and the predicted class of every example, in eval mode under ``torch.inference_mode``.

    Args:
        net: a classifier ``(N, C, H, W) -> (N, num_classes)``.
        data_iter: an iterable of ``(X, y)`` batches.
        device: where to run ``net``; default where its parameters are.
        levers: a :class:`minidense.Levers` (default plain fp32); to predict as :func:`train`
            evaluated, its history's: ``History.levers``.
        tta: the recipe's flip test-time augmentation.

    Returns:
        ``(y_true, y_pred)``: two int64 ``(num_examples,)`` tensors on the CPU, in the order of
        ``data_iter``.
    """
    device = _device_of(net, device)
    levers = _resolved(levers, device)
    task = task_of(data_iter)
    net.eval()
    y_true, y_pred = [], []
    with allocator.keep_freed_memory(levers.keep_freed_memory), torch.inference_mode(), \
            autocast(device, levers.precision):
        for X, y in data_iter:
            X = X.to(device).contiguous(memory_format=levers.memory_format)
            y_pred.append(task.predictions(_logits(net, X, tta)).cpu())
            y_true.append(y.cpu())
    if not y_true:
        raise ValueError("data_iter yielded no batches: there is nothing to predict")
    return torch.cat(y_true), torch.cat(y_pred)


def confusion_counts(y_true, y_pred, num_classes=10):
    """The confusion matrix: entry ``[i, j]`` counts the examples of class ``i`` predicted as ``j``.

    Shapes: ``(N,), (N,) -> (num_classes, num_classes)`` int64. The rows sum to the number of
    examples of each class, the diagonal holds the correct predictions, and the whole matrix
    sums to ``N``.
    """
    y_true, y_pred = torch.as_tensor(y_true).flatten(), torch.as_tensor(y_pred).flatten()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must hold one class per example: got {len(y_true)} "
                         f"and {len(y_pred)} classes")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if len(y) and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{name} must hold classes 0..{num_classes - 1}, got values from "
                             f"{y.min().item()} to {y.max().item()}")
    flat = y_true.long() * num_classes + y_pred.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def recompute_bn_statistics(net, batches, num_batches, device=None, *, levers=None):
    """Re-estimate every BatchNorm's running mean and variance over ``num_batches`` training batches.

    The running averages lag a network whose weights still change fast; after this each BN layer
    holds the plain average over the batches seen with the current weights ("precise BN", what
    ``torch.optim.swa_utils.update_bn`` does). ``levers`` (default plain fp32) set the precision
    and memory format, as :func:`train` uses them. Leaves the network in eval mode.
    """
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    device = _device_of(net, device)
    levers = _resolved(levers, device)
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    net.train()
    with torch.no_grad(), autocast(device, levers.precision):
        for X, _ in itertools.islice(batches, num_batches):
            net(X.to(device, non_blocking=True).contiguous(memory_format=levers.memory_format))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    net.eval()


def _make_scheduler(optimizer, schedule, lr, total_steps):
    if schedule is None:
        return None
    if schedule == "onecycle":
        # momentum stays what the recipe says: OneCycleLR would otherwise cycle it.
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total_steps,
                                                   cycle_momentum=False)
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    # "step": the paper's recipe, lr divided by 10 at 50% and 75% of the training
    milestones = [int(total_steps * 0.5), int(total_steps * 0.75)]
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)


def ema_with_warmup(decay):
    """``multi_avg_fn`` of an exponential moving average whose decay grows to ``decay``.

    After ``n`` updates the average moves towards the current weights by ``1 - d`` with
    ``d = min(decay, (1 + n) / (10 + n))``: early on, when the weights are far from where they
    will end, the average forgets them fast (as TensorFlow's ``ExponentialMovingAverage`` does with
    ``num_updates``). Without it an average of a short run would still be mostly its first weights:
    ``decay ** steps`` of them after ``steps`` updates. All on the device: no host sync.
    """
    def update(averaged, current, num_averaged):
        n = num_averaged.to(torch.float32)
        keep = torch.clamp((1 + n) / (10 + n), max=decay)
        torch._foreach_mul_(averaged, keep)
        torch._foreach_add_(averaged, torch._foreach_mul(current, 1 - keep))
    return update


def prepared(net, levers, device):
    """``net`` on ``device`` in the levers' memory format; returns what to call: ``torch.compile(net)``
    with ``levers.compile``, else ``net`` itself. ``levers`` must be resolved."""
    net.to(device, memory_format=levers.memory_format)
    return torch.compile(net) if levers.compile else net


@contextlib.contextmanager
def levers_in_effect(net, levers):
    """Within the block: freed memory kept (``levers.keep_freed_memory``) and the ReLUs after a BN in
    place (``levers.inplace_relu``), as :func:`train` runs its epochs. ``levers`` must be resolved."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(allocator.keep_freed_memory(levers.keep_freed_memory))
        if levers.inplace_relu:
            stack.enter_context(inplace_relu_after_bn(net))
        yield


def training_step(model, optimizer, X, y, *, levers=None, label_smoothing=0.0, metrics=None, task=None,
                  scaler=None):
    """One step of SGD on the batch ``(X, y)``: forward (under autocast in the levers' precision), loss,
    backward, step; under fp16 through ``scaler`` (:func:`minidense.precision.grad_scaler`), which skips
    a step whose gradients overflowed.

    ``levers`` is a :class:`minidense.Levers` (default plain fp32); a step reads its precision and
    ``host_sync`` (``X`` already in its memory format, the network :func:`prepared`). With ``metrics``
    (a :class:`RunningMetrics`) the batch is counted there, on the device; with ``levers.host_sync``
    the metrics are then read back to the host, as d2l's loop does after every step. ``task`` (a
    :class:`minidense.tasks.Task`, default the garment task's cross-entropy) gives the loss.
    Returns ``(loss, y_hat)``, detached and still on the device.
    """
    levers = _resolved(levers, X.device)
    with autocast(X.device, levers.precision):
        y_hat = model(X)
        loss = (task or TASKS["garment"]).loss(y_hat, y, label_smoothing)
    skipped = backward_and_step(loss, optimizer, scaler)
    loss, y_hat = loss.detach(), y_hat.detach()
    if metrics is not None:
        metrics.skipped_steps += skipped
        metrics.add(loss, y_hat, y, task)
        if levers.host_sync:
            metrics.read()
    return loss, y_hat


class RunningMetrics:
    """The training loss and accuracy of an epoch so far, summed on the device (no host sync until read),
    and the steps the fp16 gradient scaler skipped."""

    def __init__(self, device):
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.n = 0
        self.skipped_steps = 0

    def add(self, loss, y_hat, y, task=None):
        """Count one batch: its mean ``loss`` (a 0-d tensor), its logits and labels, right answers as
        ``task`` counts them (a :class:`minidense.tasks.Task`, default the garment task's arg-max)."""
        self.loss_sum += loss.float() * len(y)
        self.correct += (task or TASKS["garment"]).count_correct(y_hat, y)
        self.n += len(y)

    def read(self):
        """``{"train_loss": ..., "train_acc": ...}`` as Python floats: one host sync."""
        return {"train_loss": self.loss_sum.item() / self.n, "train_acc": self.correct.item() / self.n}


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """Everything :func:`train` decides before its first step, resolved once.

    ``levers`` are resolved for ``device`` (under torchrun, rank 0's decisions); ``steps_per_epoch``
    counts this process's batches; ``num_train`` and ``num_test`` are the sizes of the data sets
    where the batches know them.
    """

    recipe: Recipe
    levers: Levers
    parallel: Parallel
    device: torch.device
    num_epochs: int
    steps_per_epoch: int
    batch_size: int | None
    num_train: int | None
    num_test: int | None
    profile: str | None

    @property
    def shape(self):
        """What the checkpoint keeps of the run's shape (a schedule's length depends on it)."""
        return dict(num_epochs=self.num_epochs, steps_per_epoch=self.steps_per_epoch, batch_size=self.batch_size,
                    num_train=self.num_train, num_test=self.num_test)

    def provenance(self):
        """The History's provenance: the machine, every recipe and lever field, the run's shape."""
        shape = {k: v for k, v in self.shape.items() if k != "steps_per_epoch"}
        return provenance(self.device, self.profile, recipe=self.recipe, levers=self.levers, **shape,
                          **distributed.describe(self.parallel))


def _check_train_iter(train_iter, test_iter, recipe):
    """The batches per epoch, after checking that ``train_iter`` can serve the recipe and the task."""
    try:
        steps = len(train_iter)
    except TypeError:
        raise ValueError("train_iter must have a length (the number of batches per epoch): the schedule and "
                         "the progress bar need it; wrap a generator in a list") from None
    if steps == 0:
        raise ValueError("train_iter has no batches: there is nothing to train on")
    task = task_of(train_iter)
    if task is not task_of(test_iter):
        raise ValueError(f"train_iter serves the {task.name!r} task and test_iter the {task_of(test_iter).name!r} "
                         "task: a network is tested on the task it learns")
    task.check(recipe)
    if recipe.augments and not hasattr(train_iter, "augmented"):
        raise ValueError("the recipe augments the training images (translate, flip), which acts on the uint8 "
                         "images before the resize: train_iter must be a minidense.data.FashionMNISTBatches "
                         f"(got {type(train_iter).__name__})")
    return steps


def _option_group(value, cls, name):
    value = cls() if value is None else value
    if not isinstance(value, cls):
        raise TypeError(f"{name} must be a minidense.{cls.__name__}, got {type(value).__name__}")
    return value


def _settings(train_iter, test_iter, num_epochs, lr, device, recipe, levers, parallel, profile):
    """``(RunSettings, train_iter, test_iter)``: the arguments of :func:`train` checked and resolved, the
    batches this process trains and evaluates on (its share under torchrun, augmented as the recipe says)."""
    recipe = get_recipe(recipe)
    recipe = recipe if lr is None else recipe.replace(lr=lr)
    check_positive_int("num_epochs", num_epochs)
    levers = _option_group(levers, Levers, "levers")
    parallel = _option_group(parallel, Parallel, "parallel")
    if levers.compile and profile == "smoke":
        raise ValueError("compile=True under the smoke profile: torch.compile takes minutes before the "
                         "first step, longer than a smoke run may take")
    steps_per_epoch = _check_train_iter(train_iter, test_iter, recipe)
    device = resolve_device(device)  # a device this machine lacks: refused before any step
    batch_size = getattr(train_iter, "batch_size", None)
    distributed.check_run(parallel, device, batch_size)  # on every rank alike, before any collective
    num_train, num_test = (getattr(batches, "num_examples", None) for batches in (train_iter, test_iter))
    if distributed.world_size() > 1:  # each rank its share of every batch
        train_iter, test_iter = distributed.shard(train_iter, test_iter)
        steps_per_epoch = len(train_iter)
    levers = resolve_levers(levers, device, batch_size if getattr(test_iter, "batch_size", None) is not None else None)
    levers = distributed.broadcast_object(levers)  # every rank computes alike: rank 0's probes decide
    if recipe.augments:
        train_iter = train_iter.augmented(recipe.translate, recipe.flip)
    settings = RunSettings(recipe, levers, parallel, device, num_epochs, steps_per_epoch, batch_size, num_train,
                           num_test, profile)
    return settings, train_iter, test_iter


class Optimisation:
    """The optimiser, the learning-rate schedule and the averaged weights of a run: built, stepped and
    saved together.

    SGD with the recipe's momentum, Nesterov and weight decay; the recipe's schedule over
    ``total_steps`` (none: a constant lr); with ``ema_decay`` an exponential moving average of the
    weights (:func:`ema_with_warmup`), else ``ema`` is None; under fp16 the gradient scaler
    (:func:`minidense.precision.grad_scaler` for ``device`` and ``precision``), else ``scaler`` is None.
    """

    def __init__(self, net, recipe, total_steps, device="cpu", precision="fp32"):
        self.optimizer = torch.optim.SGD(net.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                         nesterov=recipe.nesterov, weight_decay=recipe.weight_decay)
        self.scheduler = _make_scheduler(self.optimizer, recipe.schedule, recipe.lr, total_steps)
        self.ema = None
        if recipe.ema_decay is not None:
            self.ema = torch.optim.swa_utils.AveragedModel(net, multi_avg_fn=ema_with_warmup(recipe.ema_decay))
        self.scaler = grad_scaler(device, precision)

    def after_step(self, net):
        """The schedule's step and the average's update, after every optimiser step."""
        if self.scheduler is not None:
            self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(net)

    def state_dict(self):
        return {"optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "ema": self.ema.state_dict() if self.ema is not None else None,
                "scaler": self.scaler.state_dict() if self.scaler is not None else None}

    def load_state_dict(self, state):
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        if self.scaler is not None and state.get("scaler"):  # a run saved in another precision has none
            self.scaler.load_state_dict(state["scaler"])


class _Progress:
    """What a run shows while it trains: a progress bar (``bar``) and ``callback`` about five times an
    epoch and after each; rank 0 alone shows anything."""

    def __init__(self, settings, start_epoch, history, callback, progress):
        show = distributed.is_main()
        self.callback = callback if show else None
        self.steps = settings.steps_per_epoch
        self.every = max(1, self.steps // 5)
        self.bar = None
        if show and (not _in_notebook() if progress is None else progress):
            from tqdm.auto import tqdm

            self.bar = tqdm(total=(settings.num_epochs - start_epoch) * self.steps, unit="batch", leave=False)
        for record in history.records if self.callback is not None else ():
            self.callback(record["epoch"], record)

    def step(self, epoch, i, metrics):
        """After step ``i`` (from 0) of ``epoch`` (from 0)."""
        if self.bar is not None:
            self.bar.update()
        if self.callback is not None and (i + 1) % self.every == 0 and i + 1 < self.steps:
            self.callback(epoch + (i + 1) / self.steps, metrics.read())

    def epoch(self, record):
        if self.callback is not None:
            self.callback(record["epoch"], record)

    def close(self):
        if self.bar is not None:
            self.bar.close()
        if self.callback is not None and hasattr(self.callback, "close"):
            self.callback.close()


def _train_epoch(step_model, net, optimisation, train_iter, epoch, settings, progress):
    """One pass over ``train_iter``: ``({"train_loss", "train_acc"}, {"examples_per_sec", "seconds"})``, the
    metrics summed over every rank's share. The time counts the training pass alone, data loading
    included."""
    device = settings.device
    net.train()
    if hasattr(train_iter, "set_epoch"):
        train_iter.set_epoch(epoch)
    metrics = RunningMetrics(device)  # read once per report: no host sync per step
    _sync(device)
    start = time.perf_counter()
    for i, (X, y) in enumerate(train_iter):
        X, y = _to_device(X, y, device, settings.levers.memory_format)
        training_step(step_model, optimisation.optimizer, X, y, levers=settings.levers,
                      label_smoothing=settings.recipe.label_smoothing, metrics=metrics,
                      task=task_of(train_iter), scaler=optimisation.scaler)
        optimisation.after_step(net)
        progress.step(epoch, i, metrics)
    _sync(device)
    seconds = time.perf_counter() - start
    loss_sum, correct, n = distributed.sum_over_ranks(metrics.loss_sum, metrics.correct, metrics.n)
    if not math.isfinite(loss_sum / n):
        raise FloatingPointError(
            f"the training loss became {loss_sum / n} in epoch {epoch + 1}: the weights are lost. Lower the "
            f"learning rate (now {settings.recipe.lr:g}); the checkpoint, if any, keeps the last good epoch")
    skipped = {} if optimisation.scaler is None else {"skipped_steps": metrics.skipped_steps}
    return {"train_loss": loss_sum / n, "train_acc": correct / n, **skipped}, {"examples_per_sec": n / seconds,
                                                                              "seconds": seconds}


def _evaluate(model, ema, train_iter, test_iter, epoch, settings, every_way):
    """``{"test_acc": ...}`` as the recipe evaluates; with ``every_way`` (the last epoch), each other way too:
    the last and the averaged weights, with and without TTA (``test_acc_last``, ``test_acc_ema_tta``, ...)."""
    recipe = settings.recipe
    nets = {"last": model} if ema is None else {"ema": ema.module, "last": model}
    ttas = (recipe.tta, not recipe.tta) if every_way and (recipe.tta or ema is not None) else (recipe.tta,)
    accuracies = {}
    for name, net in itertools.islice(nets.items(), None if every_way else 1):
        if recipe.precise_bn:
            # The same batches for every network evaluated; the RNG of augmentation is seeded per epoch.
            if hasattr(train_iter, "set_epoch"):
                train_iter.set_epoch(epoch)
            recompute_bn_statistics(net, train_iter, recipe.precise_bn, settings.device, levers=settings.levers)
        distributed.average_bn_statistics(net)  # under torchrun: every rank evaluates with the same statistics
        for tta in ttas:
            accuracies[f"test_acc_{name}{'_tta' if tta else ''}"] = evaluate_accuracy(
                net, test_iter, settings.device, levers=settings.levers, tta=tta)
    official = f"test_acc_{'ema' if ema is not None else 'last'}{'_tta' if recipe.tta else ''}"
    if not every_way or len(accuracies) == 1:
        return {"test_acc": accuracies[official]}
    return {"test_acc": accuracies[official], **accuracies}


def train(net, train_iter, test_iter, num_epochs, lr=None, device=None, *, recipe=None, levers=None,
          parallel=None, checkpoint=None, resume=False, callback=None, progress=None, verbose=True,
          profile=None):
    """Train ``net`` with SGD and cross-entropy; evaluate on ``test_iter`` after every epoch.

    ``train(net, train_iter, test_iter, num_epochs, lr)`` is d2l's recipe (plain SGD at a
    constant ``lr``). The weights are never re-initialised, so training continues from whatever
    ``net`` holds.

    Under torchrun (a process group made by :func:`minidense.distributed.init`) every rank runs
    this same call: the batch size of ``train_iter`` is the global batch, and each rank trains on
    its share of every batch through ``DistributedDataParallel``, evaluates its share of the test
    images with BN statistics averaged over the ranks, and sums its counts with the others'; rank 0
    alone prints, shows progress, calls ``callback`` and writes the checkpoint.

    Args:
        net: the network; moved to ``device``.
        train_iter, test_iter: iterables of ``(X, y)`` batches; ``train_iter`` needs a length.
            When it has ``set_epoch`` (as :func:`minidense.load_fashion_mnist`'s does), epoch ``e``
            gets its own order, so a resumed run sees the same batches as an uninterrupted one.
        num_epochs: passes over ``train_iter``.
        lr: learning rate; overrides the recipe's (``None``: the recipe's).
        device: default CUDA when available, else the CPU.
        recipe: a :class:`minidense.Recipe` or the name of one (``"d2l"``, ``"short"``, ``"book"``);
            default d2l's. Its fields are documented there.
        levers: a :class:`minidense.Levers` (speed only); ``None`` fields are decided by
            :func:`minidense.hardware.resolve_levers`; under torchrun rank 0's decisions hold for all.
        parallel: a :class:`minidense.options.Parallel` (how the processes of a torchrun run work
            together; nothing changes in a single process).
        checkpoint: path of a file holding model, optimiser, schedule, averaged weights, RNG states
            and history, written after every epoch (:class:`minidense.checkpoints.Checkpoint`).
        resume: continue from ``checkpoint`` (after its last finished epoch) when it exists. The
            recipe, ``num_epochs`` and the batches per epoch must be the checkpoint's: a change
            is refused with a message naming it, never silently ignored.
        callback: ``callback(x, values)`` at points of the run (``x`` in epochs, fractions inside an
            epoch; ``values`` the running ``train_loss``/``train_acc``, or an epoch's record), for
            example :class:`minidense.plot.LivePlot`; its ``close()`` is called at the end.
        progress: a tqdm progress bar; default on outside a notebook.
        verbose: print the closing line.
        profile: name of the profile the settings came from, for the record.

    Returns:
        A :class:`minidense.History`; with an averaged model or TTA, the last record also holds the
        test accuracy of each way of evaluating (``test_acc_last``, ``test_acc_last_tta``,
        ``test_acc_ema``, ``test_acc_ema_tta``, as far as they apply).
    """
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=PATH: the file to resume from")
    settings, train_iter, test_iter = _settings(train_iter, test_iter, num_epochs, lr, device, recipe, levers,
                                                parallel, profile)
    saved = None if checkpoint is None else Checkpoint(checkpoint, settings.recipe, settings.shape)
    model = prepared(net, settings.levers, settings.device)
    optimisation = Optimisation(net, settings.recipe, settings.num_epochs * settings.steps_per_epoch,
                                settings.device, settings.levers.precision)
    history, start_epoch = History(provenance=settings.provenance()), 0
    if resume and saved.exists():
        start_epoch, history = saved.restore(net, optimisation)
        if verbose and distributed.is_main():
            print(f"resuming from {checkpoint} after epoch {start_epoch}")
    distributed.agree(start_epoch, f"the epoch to start from (does every machine see the same {checkpoint}?)")

    progress = _Progress(settings, start_epoch, history, callback, progress)
    with levers_in_effect(net, settings.levers), _data_parallel(net, model, settings) as step_model:
        for epoch in range(start_epoch, settings.num_epochs):
            metrics, timing = _train_epoch(step_model, net, optimisation, train_iter, epoch, settings, progress)
            accuracies = _evaluate(model, optimisation.ema, train_iter, test_iter, epoch, settings,
                                   every_way=epoch + 1 == settings.num_epochs)
            history.append(epoch=epoch + 1, **metrics, test_acc=accuracies.pop("test_acc"), **timing, **accuracies)
            progress.epoch(history.last)
            if saved is not None and distributed.is_main():
                saved.save(epoch + 1, net, optimisation, history)
    progress.close()
    if verbose and distributed.is_main() and history.records:
        print(history.summary())
    return history


def _data_parallel(net, model, settings):
    """What a training step calls: under torchrun ``DistributedDataParallel`` around ``net``, else ``model``.
    (Evaluation runs the network itself.)"""
    if distributed.world_size() > 1:
        return distributed.data_parallel(net, settings.device, settings.parallel.sync_bn, settings.levers.compile)
    return contextlib.nullcontext(model)


def _in_notebook():
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"
