"""The training loop: d2l's recipe by default, any :class:`minidense.options.Recipe` as an option.

One :func:`training_step` is what :func:`train`, the benchmarks and the chapters all run.
"""

import contextlib
import dataclasses
import itertools
import math
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from minidense import allocator, distributed
from minidense._checks import check_positive_int, check_state_dict_fits
from minidense._files import atomic_write, check_writable
from minidense.hardware import default_device, default_eval_batch_size, resolve_levers
from minidense.history import History, provenance
from minidense.options import Levers, Parallel
from minidense.options import recipe as get_recipe

__all__ = ["train", "training_step", "ema_with_warmup", "RunningMetrics", "prepared", "levers_in_effect",
           "evaluate_accuracy", "recompute_bn_statistics", "predict", "confusion_counts", "rebatch",
           "inplace_relu_after_bn", "default_eval_batch_size"]


def _autocast(device, bf16):
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


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
_PLAIN = Levers(bf16=False, channels_last=False)


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
    """Fraction of correctly classified examples, in eval mode under ``torch.inference_mode``.

    Counts accumulate on the device and are read once at the end. ``levers`` (a
    :class:`minidense.Levers`; default plain fp32) set the precision, the memory format, freed
    memory kept, and ``eval_batch_size``: the examples re-cut into batches of that size first
    (see :func:`rebatch`), which changes the number of batches, never the accuracy. ``tta`` is the
    recipe's flip test-time augmentation.
    """
    device = _device_of(net, device)
    levers = _resolved(levers, device)
    if levers.eval_batch_size is not None:
        data_iter = rebatch(data_iter, levers.eval_batch_size)
    net.eval()
    correct = torch.zeros((), dtype=torch.int64, device=device)
    total = 0
    with allocator.keep_freed_memory(levers.keep_freed_memory), torch.inference_mode(), \
            _autocast(device, levers.bf16):
        for X, y in data_iter:
            X, y = _to_device(X, y, device, levers.memory_format)
            correct += (_logits(net, X, tta).argmax(dim=1) == y).sum()
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
    net.eval()
    y_true, y_pred = [], []
    with allocator.keep_freed_memory(levers.keep_freed_memory), torch.inference_mode(), \
            _autocast(device, levers.bf16):
        for X, y in data_iter:
            X = X.to(device).contiguous(memory_format=levers.memory_format)
            y_pred.append(_logits(net, X, tta).argmax(dim=1).cpu())
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
    with torch.no_grad(), _autocast(device, levers.bf16):
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


def training_step(model, optimizer, X, y, *, levers=None, label_smoothing=0.0, metrics=None):
    """One step of SGD on the batch ``(X, y)``: forward (under bf16 autocast if the levers say so), loss,
    backward, step.

    ``levers`` is a :class:`minidense.Levers` (default plain fp32); a step reads its precision and
    ``host_sync`` (``X`` already in its memory format, the network :func:`prepared`). With ``metrics``
    (a :class:`RunningMetrics`) the batch is counted there, on the device; with ``levers.host_sync``
    the metrics are then read back to the host, as d2l's loop does after every step.
    Returns ``(loss, y_hat)``, detached and still on the device.
    """
    levers = _resolved(levers, X.device)
    with _autocast(X.device, levers.bf16):
        y_hat = model(X)
        loss = F.cross_entropy(y_hat, y, label_smoothing=label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    loss, y_hat = loss.detach(), y_hat.detach()
    if metrics is not None:
        metrics.add(loss, y_hat, y)
        if levers.host_sync:
            metrics.read()
    return loss, y_hat


class RunningMetrics:
    """The training loss and accuracy of an epoch so far, summed on the device (no host sync until read)."""

    def __init__(self, device):
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.n = 0

    def add(self, loss, y_hat, y):
        """Count one batch: its mean ``loss`` (a 0-d tensor), logits ``(B, classes)``, labels ``(B,)``."""
        self.loss_sum += loss.float() * len(y)
        self.correct += (y_hat.argmax(dim=1) == y).sum()
        self.n += len(y)

    def read(self):
        """``{"train_loss": ..., "train_acc": ...}`` as Python floats: one host sync."""
        return {"train_loss": self.loss_sum.item() / self.n, "train_acc": self.correct.item() / self.n}


# What a checkpoint must agree on with the run resuming from it: the recipe and, under a schedule,
# what fixes the schedule's length (at a constant lr more epochs simply train on). A change is
# refused, never silently ignored: the saved optimiser state would otherwise win over a new lr,
# momentum or Nesterov, and a one-cycle schedule cannot be stretched after the fact.
_SCHEDULE_LENGTH = ("num_epochs", "steps_per_epoch")


def _rng_states():
    states = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states):
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _save_checkpoint(path, state):
    """``state`` written to ``path`` atomically: an interruption mid-write never leaves half a checkpoint."""
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def _load_checkpoint(path, net, expected):
    """The checkpoint's state, after checking that it is one and that it fits ``net`` and the run ``expected``."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:
        raise ValueError(f"{path} is not a minidense checkpoint ({error})") from error
    needed = ("epoch", "model", "optimizer", "scheduler", "history", "recipe", "run", "rng")
    if not isinstance(state, dict) or any(key not in state for key in needed):
        have = ", ".join(state) if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"{path} is not a minidense checkpoint of this version: it needs "
                         f"{', '.join(needed)}; it has {have}")
    check_state_dict_fits(net, state["model"], source=f"checkpoint {path}")
    differences = [f"{key}: checkpoint {state['recipe'].get(key)!r}, now {value!r}"
                   for key, value in expected["recipe"].items() if state["recipe"].get(key) != value]
    if expected["recipe"]["schedule"] is not None:
        differences += [f"{key}: checkpoint {state['run'].get(key)!r}, now {expected['run'][key]!r} (the "
                        f"{expected['recipe']['schedule']} schedule is laid out over the whole run)"
                        for key in _SCHEDULE_LENGTH if state["run"].get(key) != expected["run"][key]]
    if differences:
        raise ValueError(f"cannot resume from {path}: the run has changed ({'; '.join(differences)}). "
                         "Resume with the checkpoint's settings, or start afresh with another checkpoint file")
    return state


def _check_train_iter(train_iter, recipe):
    try:
        steps = len(train_iter)
    except TypeError:
        raise ValueError("train_iter must have a length (the number of batches per epoch): the schedule and "
                         "the progress bar need it; wrap a generator in a list") from None
    if steps == 0:
        raise ValueError("train_iter has no batches: there is nothing to train on")
    if recipe.augments and not hasattr(train_iter, "augmented"):
        raise ValueError("the recipe augments the training images (translate, flip), which acts on the uint8 "
                         "images before the resize: train_iter must be a minidense.data.FashionMNISTBatches "
                         f"(got {type(train_iter).__name__})")
    if recipe.ema_decay is not None and not recipe.precise_bn:
        raise ValueError("ema_decay needs precise_bn > 0")
    return steps


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
        recipe: a :class:`minidense.options.Recipe` or the name of one (``"d2l"``, ``"short"``,
            ``"book"``); default d2l's. Its fields are documented there.
        levers: a :class:`minidense.Levers` (speed only); ``None`` fields are decided by
            :func:`minidense.hardware.resolve_levers`; under torchrun rank 0's decisions hold for all.
        parallel: a :class:`minidense.options.Parallel` (how the processes of a torchrun run work
            together; nothing changes in a single process).
        checkpoint: path of a file holding model, optimiser, schedule, averaged weights, RNG states
            and history, written after every epoch.
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
    recipe = get_recipe(recipe)
    if lr is not None:
        recipe = recipe.replace(lr=lr)
    check_positive_int("num_epochs", num_epochs)
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=PATH: the file to resume from")
    levers = levers if levers is not None else Levers()
    if not isinstance(levers, Levers):
        raise TypeError(f"levers must be a minidense.Levers, got {type(levers).__name__}")
    if levers.compile and profile == "smoke":
        raise ValueError("compile=True under the smoke profile: torch.compile takes minutes before the "
                         "first step, longer than a smoke run may take")
    steps_per_epoch = _check_train_iter(train_iter, recipe)
    device = torch.device(device) if device is not None else default_device()
    batch_size = getattr(train_iter, "batch_size", None)
    parallel = parallel if parallel is not None else Parallel()
    if not isinstance(parallel, Parallel):
        raise ValueError(f"parallel must be a minidense.options.Parallel, got {type(parallel).__name__}")
    distributed.check_run(parallel, device, batch_size)  # on every rank alike, before any collective
    num_train, num_test = (getattr(batches, "num_examples", None) for batches in (train_iter, test_iter))
    if distributed.world_size() > 1:  # each rank its share of every batch
        train_iter, test_iter = distributed.shard(train_iter, test_iter)
        steps_per_epoch = len(train_iter)
    levers = resolve_levers(levers, device, batch_size if getattr(test_iter, "batch_size", None) is not None else None)
    levers = distributed.broadcast_object(levers)  # every rank computes alike: rank 0's probes decide
    if recipe.augments:
        train_iter = train_iter.augmented(recipe.translate, recipe.flip)
    memory_format = levers.memory_format
    progress = not _in_notebook() if progress is None else progress
    if not distributed.is_main():  # rank 0 alone prints, shows progress and calls back
        verbose, progress, callback = False, False, None
    if checkpoint is not None:
        check_writable(checkpoint)

    model = prepared(net, levers, device)
    optimizer = torch.optim.SGD(net.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                nesterov=recipe.nesterov, weight_decay=recipe.weight_decay)
    scheduler = _make_scheduler(optimizer, recipe.schedule, recipe.lr, num_epochs * steps_per_epoch)
    ema = None
    if recipe.ema_decay is not None:
        ema = torch.optim.swa_utils.AveragedModel(net, multi_avg_fn=ema_with_warmup(recipe.ema_decay))

    run = dict(num_epochs=num_epochs, steps_per_epoch=steps_per_epoch, batch_size=batch_size,
               num_train=num_train, num_test=num_test)
    history = History(provenance=provenance(device, profile, recipe=recipe, levers=levers,
                                            **{k: v for k, v in run.items() if k != "steps_per_epoch"},
                                            **distributed.describe(parallel)))
    start_epoch = 0
    if resume and Path(checkpoint).exists():
        state = _load_checkpoint(checkpoint, net, {"recipe": dataclasses.asdict(recipe), "run": run})
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        _set_rng_states(state["rng"])
        start_epoch, history = state["epoch"], History.from_dict(state["history"])
        if verbose:
            print(f"resuming from {checkpoint} after epoch {start_epoch}")
    distributed.agree(start_epoch, f"the epoch to start from (does every machine see the same {checkpoint}?)")

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=(num_epochs - start_epoch) * steps_per_epoch, unit="batch", leave=False)
    if callback is not None:
        for record in history.records:
            callback(record["epoch"], record)
    report_every = max(1, steps_per_epoch // 5)

    # Under torchrun a step runs through DistributedDataParallel; evaluation runs the network itself.
    stepped = distributed.data_parallel(net, device, parallel.sync_bn, levers.compile) \
        if distributed.world_size() > 1 else contextlib.nullcontext(model)
    with levers_in_effect(net, levers), stepped as step_model:
        for epoch in range(start_epoch, num_epochs):
            net.train()
            if hasattr(train_iter, "set_epoch"):
                train_iter.set_epoch(epoch)
            metrics = RunningMetrics(device)  # read once per report: no host sync per step
            _sync(device)
            start = time.perf_counter()
            for i, (X, y) in enumerate(train_iter):
                X, y = _to_device(X, y, device, memory_format)
                training_step(step_model, optimizer, X, y, levers=levers, label_smoothing=recipe.label_smoothing,
                              metrics=metrics)
                if scheduler is not None:
                    scheduler.step()
                if ema is not None:
                    ema.update_parameters(net)
                if bar is not None:
                    bar.update()
                if callback is not None and (i + 1) % report_every == 0 and i + 1 < steps_per_epoch:
                    callback(epoch + (i + 1) / steps_per_epoch, metrics.read())
            _sync(device)
            seconds = time.perf_counter() - start
            loss_sum, correct, n = distributed.sum_over_ranks(metrics.loss_sum, metrics.correct, metrics.n)
            epoch_metrics = {"train_loss": loss_sum / n, "train_acc": correct / n}  # every rank's share
            train_loss = epoch_metrics["train_loss"]
            if not math.isfinite(train_loss):
                raise FloatingPointError(
                    f"the training loss became {train_loss} in epoch {epoch + 1}: the weights are lost. "
                    f"Lower the learning rate (now {recipe.lr:g}); the checkpoint, if any, keeps the last good epoch")

            accuracies = _evaluate(model, ema, train_iter, test_iter, epoch, device, recipe, levers,
                                   every_way=epoch + 1 == num_epochs)
            record = dict(epoch=epoch + 1, **epoch_metrics, test_acc=accuracies.pop("test_acc"),
                          examples_per_sec=n / seconds, seconds=seconds,
                          **accuracies)
            history.append(**record)
            if callback is not None:
                callback(epoch + 1, record)
            if checkpoint is not None and distributed.is_main():
                _save_checkpoint(checkpoint, {
                    "epoch": epoch + 1, "model": net.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "ema": ema.state_dict() if ema is not None else None, "rng": _rng_states(),
                    "history": history.to_dict(), "recipe": dataclasses.asdict(recipe), "run": run})

    if bar is not None:
        bar.close()
    if callback is not None and hasattr(callback, "close"):
        callback.close()
    if verbose and history.records:
        print(history.summary())
    return history


def _evaluate(model, ema, train_iter, test_iter, epoch, device, recipe, levers, every_way):
    """``{"test_acc": ...}`` as the recipe evaluates; with ``every_way``, each other way too."""
    nets = {"last": model} if ema is None else {"ema": ema.module, "last": model}
    accuracies = {}
    for name, net in nets.items():
        if recipe.precise_bn:
            # The same batches for every network evaluated; the RNG of augmentation is seeded per epoch.
            if hasattr(train_iter, "set_epoch"):
                train_iter.set_epoch(epoch)
            recompute_bn_statistics(net, train_iter, recipe.precise_bn, device, levers=levers)
        distributed.average_bn_statistics(net)  # under torchrun: every rank evaluates with the same statistics
        for tta in ((recipe.tta, not recipe.tta) if every_way and (recipe.tta or ema is not None) else (recipe.tta,)):
            key = f"test_acc_{name}{'_tta' if tta else ''}"
            accuracies[key] = evaluate_accuracy(net, test_iter, device, levers=levers, tta=tta)
        if not every_way:
            break
    official = f"test_acc_{'ema' if ema is not None else 'last'}{'_tta' if recipe.tta else ''}"
    result = {"test_acc": accuracies.pop(official) if not every_way else accuracies[official]}
    if every_way and len(accuracies) > 1:
        result.update(accuracies)
    return result


def _in_notebook():
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"
