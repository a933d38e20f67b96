"""The training loop: d2l's recipe by default, the paper's recipe and the speed levers as options."""

import contextlib
import itertools
import math
import os
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from minidense import allocator
from minidense._checks import check_positive_int, check_state_dict_fits
from minidense.hardware import bf16_pays, channels_last_pays, default_device
from minidense.history import History, provenance

__all__ = ["train", "evaluate_accuracy", "recompute_bn_statistics", "predict", "confusion_counts", "rebatch",
           "inplace_relu_after_bn", "default_eval_batch_size", "SCHEDULES"]

SCHEDULES = (None, "step", "cosine", "onecycle")


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


def default_eval_batch_size(batch_size, device="cpu"):
    """Evaluation batch for a training batch of ``batch_size`` on ``device``.

    On a GPU four times as large, at most 1,024: under ``torch.inference_mode`` no activation is
    kept for a backward pass, and fewer, larger batches pay less per-batch overhead (Python,
    kernel launches). On a CPU the training batch itself: there four times it was never faster,
    and with malloc as it comes it was up to 2.6 times slower, as more of its tensors are faulted
    in afresh every batch (``benchmarks/train_speed.py``, its evaluation line, on a 2-core EPYC).
    """
    check_positive_int("batch_size", batch_size)
    if torch.device(device).type == "cuda":
        return min(4 * batch_size, 1024)
    return batch_size


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


def _keeps_freed_memory(device, keep_freed_memory):
    """Whether the allocator lever is in effect: ``None`` means on a CPU device; only with glibc."""
    if keep_freed_memory is None:
        keep_freed_memory = device.type == "cpu"
    return bool(keep_freed_memory) and allocator.can_keep_freed_memory()


def evaluate_accuracy(net, data_iter, device=None, bf16=False, memory_format=torch.contiguous_format,
                      batch_size=None, keep_freed_memory=None):
    """Fraction of correctly classified examples, in eval mode under ``torch.inference_mode``.

    Counts accumulate on the device and are read once at the end. With ``batch_size`` the
    examples are re-cut into batches of that size first (see :func:`rebatch`); the accuracy is
    the same, only the number of batches changes. ``keep_freed_memory`` as in :func:`train`
    (default: on for a CPU device).
    """
    if batch_size is not None:
        data_iter = rebatch(data_iter, batch_size)
    device = torch.device(device) if device is not None else next(net.parameters()).device
    net.eval()
    correct = torch.zeros((), dtype=torch.int64, device=device)
    total = 0
    with allocator.keep_freed_memory(_keeps_freed_memory(device, keep_freed_memory)), torch.inference_mode(), \
            _autocast(device, bf16):
        for X, y in data_iter:
            X, y = _to_device(X, y, device, memory_format)
            correct += (net(X).argmax(dim=1) == y).sum()
            total += len(y)
    return correct.item() / total


def predict(net, data_iter, device=None, bf16=False, keep_freed_memory=None):
    """The true and the predicted class of every example, in eval mode under ``torch.inference_mode``.

    Args:
        net: a classifier ``(N, C, H, W) -> (N, num_classes)``.
        data_iter: an iterable of ``(X, y)`` batches.
        device: where to run ``net``; default where its parameters are.
        bf16: bf16 autocast, as :func:`train` evaluated (its history's provenance says which).
        keep_freed_memory: as in :func:`train` (default: on for a CPU device).

    Returns:
        ``(y_true, y_pred)``: two int64 ``(num_examples,)`` tensors on the CPU, in the order of
        ``data_iter``.
    """
    device = torch.device(device) if device is not None else next(net.parameters()).device
    net.eval()
    y_true, y_pred = [], []
    with allocator.keep_freed_memory(_keeps_freed_memory(device, keep_freed_memory)), torch.inference_mode(), \
            _autocast(device, bf16):
        for X, y in data_iter:
            y_pred.append(net(X.to(device)).argmax(dim=1).cpu())
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


def recompute_bn_statistics(net, batches, num_batches, device=None, bf16=False,
                            memory_format=torch.contiguous_format):
    """Re-estimate every BatchNorm's running mean and variance over ``num_batches`` training batches.

    The running averages lag a network whose weights still change fast; after this each BN layer
    holds the plain average over the batches seen with the current weights ("precise BN", what
    ``torch.optim.swa_utils.update_bn`` does). Leaves the network in eval mode.
    """
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    device = torch.device(device) if device is not None else next(net.parameters()).device
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    net.train()
    with torch.no_grad(), _autocast(device, bf16):
        for X, _ in itertools.islice(batches, num_batches):
            net(X.to(device, non_blocking=True).contiguous(memory_format=memory_format))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    net.eval()


def _make_scheduler(optimizer, schedule, lr, num_epochs, steps_per_epoch):
    total = num_epochs * steps_per_epoch
    if schedule is None:
        return None
    if schedule == "onecycle":
        # momentum stays what the caller chose: OneCycleLR would otherwise cycle it.
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total,
                                                   cycle_momentum=False)
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    # "step": the paper's recipe, lr divided by 10 at 50% and 75% of the training
    milestones = [int(total * 0.5), int(total * 0.75)]
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)


def _in_notebook():
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _save_checkpoint(path, net, optimizer, scheduler, history, epoch):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"epoch": epoch, "model": net.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "history": history.to_dict()}, tmp)
    os.replace(tmp, path)  # an interruption mid-write never leaves half a checkpoint


def _load_checkpoint(path, net, optimizer, scheduler):
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        model_state, epoch = state["model"], state["epoch"]
    except Exception as error:
        raise ValueError(f"{path} is not a minidense checkpoint ({error})") from error
    check_state_dict_fits(net, model_state, source=f"checkpoint {path}")
    net.load_state_dict(model_state)
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    return epoch, History.from_dict(state["history"])


def _check_options(num_epochs, lr, momentum, weight_decay, schedule, precise_bn, checkpoint, resume):
    check_positive_int("num_epochs", num_epochs)
    for name, value, low in (("lr", lr, 0.0), ("momentum", momentum, 0.0), ("weight_decay", weight_decay, 0.0)):
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < low or (
                name == "lr" and value == 0):
            raise ValueError(f"{name} must be a {'positive' if name == 'lr' else 'non-negative'} number, "
                             f"got {value!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if isinstance(precise_bn, bool) or not isinstance(precise_bn, int) or precise_bn < 0:
        raise ValueError(f"precise_bn must be a number of batches >= 0, got {precise_bn!r}")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=PATH: the file to resume from")


def train(net, train_iter, test_iter, num_epochs, lr, device=None, *, momentum=0.0, nesterov=False,
          weight_decay=0.0, schedule=None, precise_bn=0, channels_last=None, bf16=None, compile=False,
          checkpoint=None, resume=False, plot=None, progress=None, profile=None, verbose=True,
          eval_batch_size=None, inplace_relu=True, host_sync=False, keep_freed_memory=None):
    """Train ``net`` with SGD and cross-entropy; evaluate on ``test_iter`` after every epoch.

    The defaults are d2l's recipe (plain SGD at a constant ``lr``). The weights are never
    re-initialised, so training continues from whatever ``net`` holds.

    Args:
        net: the network; moved to ``device``.
        train_iter, test_iter: iterables of ``(X, y)`` batches. When ``train_iter`` has
            ``set_epoch`` (as :func:`minidense.load_fashion_mnist`'s does), epoch ``e`` gets
            its own order, so a resumed run sees the same batches as an uninterrupted one.
        num_epochs: passes over ``train_iter``.
        lr: learning rate; with ``schedule="onecycle"`` its peak.
        device: default CUDA when available, else the CPU.
        momentum, nesterov, weight_decay: SGD options (the paper: 0.9, True, 1e-4).
        schedule: ``None`` (constant), ``"step"`` (divide by 10 at 50% and 75%, the paper),
            ``"cosine"`` or ``"onecycle"`` (warm up, then anneal), stepped every batch.
        precise_bn: re-estimate BN statistics over this many training batches before each
            evaluation (0: off).
        channels_last: channels-last memory format; ``None`` probes whether it pays here
            (:func:`minidense.hardware.channels_last_pays`, with the precision chosen).
        bf16: bf16 autocast; ``None`` uses it where the hardware runs bf16 natively
            (:func:`minidense.hardware.bf16_pays`).
        compile: wrap the network in ``torch.compile`` (off by default: on the book's CPUs
            it compiled for minutes and then ran no faster; refused under the ``smoke`` profile).
        checkpoint: path of a file holding model, optimiser and history, written after every epoch.
        resume: continue from ``checkpoint`` (from its last finished epoch) when it exists.
        plot: live curves that update in place; default on in a notebook.
        progress: a tqdm progress bar; default on outside a notebook.
        profile: name of the profile the settings came from, for the record.
        verbose: print the closing line.
        eval_batch_size: batch size of evaluation; ``None``: :func:`default_eval_batch_size` of the training
            batch on this device (on a GPU four times it, at most 1,024; on a CPU the training batch),
            or the test set's own batches when their size
            is unknown.
        inplace_relu: every ReLU right after a BatchNorm works in place during training
            (:func:`inplace_relu_after_bn`); identical results, a little less memory traffic.
        host_sync: read the loss and accuracy back to the host after every step, as d2l does
            (to measure what that costs); by default they accumulate on the device and are
            read once per epoch or plot update.
        keep_freed_memory: while training on a CPU, malloc keeps freed memory for the next step
            instead of the kernel mapping and zeroing it again every step
            (:func:`minidense.allocator.keep_freed_memory`; Linux with glibc). ``None``: on for a
            CPU device. The process holds its peak memory until ``train`` returns.

    Returns:
        A :class:`minidense.History`.
    """
    _check_options(num_epochs, lr, momentum, weight_decay, schedule, precise_bn, checkpoint, resume)
    if compile and profile == "smoke":
        raise ValueError("compile=True under the smoke profile: torch.compile takes minutes before the "
                         "first step, longer than a smoke run may take")
    device = torch.device(device) if device is not None else default_device()
    if eval_batch_size is None and getattr(test_iter, "batch_size", None) is not None:
        eval_batch_size = default_eval_batch_size(getattr(train_iter, "batch_size", None) or test_iter.batch_size,
                                                  device)
    if eval_batch_size is not None:
        check_positive_int("eval_batch_size", eval_batch_size)
    if bf16 is None:
        bf16 = bf16_pays(device)
    if channels_last is None:
        channels_last = channels_last_pays(device, bf16)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    keep_freed_memory = _keeps_freed_memory(device, keep_freed_memory)
    in_notebook = _in_notebook()
    plot = in_notebook if plot is None else plot
    progress = not in_notebook if progress is None else progress

    net.to(device, memory_format=memory_format)
    model = torch.compile(net) if compile else net
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum, nesterov=nesterov,
                                weight_decay=weight_decay)
    steps_per_epoch = len(train_iter)
    scheduler = _make_scheduler(optimizer, schedule, lr, num_epochs, steps_per_epoch)

    settings = dict(num_epochs=num_epochs, lr=lr, momentum=momentum, nesterov=nesterov,
                    weight_decay=weight_decay, schedule=schedule, precise_bn=precise_bn,
                    channels_last=channels_last, bf16=bf16, compile=compile,
                    eval_batch_size=eval_batch_size, inplace_relu=inplace_relu, host_sync=host_sync,
                    keep_freed_memory=keep_freed_memory, batch_size=getattr(train_iter, "batch_size", None),
                    num_train=getattr(train_iter, "num_examples", None),
                    num_test=getattr(test_iter, "num_examples", None))
    history, start_epoch = History(provenance=provenance(device, profile, **settings)), 0
    if resume and Path(checkpoint).exists():
        start_epoch, history = _load_checkpoint(checkpoint, net, optimizer, scheduler)
        if verbose:
            print(f"resuming from {checkpoint} after epoch {start_epoch}")

    live = None
    if plot:
        from minidense.plot import LivePlot

        live = LivePlot(num_epochs, title=f"{type(net).__name__} on {device}")
        for record in history.records:
            live.add(record["epoch"], record)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=(num_epochs - start_epoch) * steps_per_epoch, unit="batch", leave=False)
    plot_every = max(1, steps_per_epoch // 5)

    with contextlib.ExitStack() as levers:
        levers.enter_context(allocator.keep_freed_memory(keep_freed_memory))
        if inplace_relu:
            levers.enter_context(inplace_relu_after_bn(net))
        for epoch in range(start_epoch, num_epochs):
            net.train()
            if hasattr(train_iter, "set_epoch"):
                train_iter.set_epoch(epoch)
            loss_sum = torch.zeros((), device=device)  # summed on the device, read once per plot update
            correct = torch.zeros((), dtype=torch.int64, device=device)
            n = 0
            _sync(device)
            start = time.perf_counter()
            for i, (X, y) in enumerate(train_iter):
                X, y = _to_device(X, y, device, memory_format)
                with _autocast(device, bf16):
                    y_hat = model(X)
                    loss = F.cross_entropy(y_hat, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                with torch.no_grad():
                    loss_sum += loss.detach().float() * len(y)
                    correct += (y_hat.argmax(dim=1) == y).sum()
                n += len(y)
                if host_sync:  # what d2l's Accumulator does: read the metrics back after every step
                    loss_sum.item(), correct.item()
                if bar is not None:
                    bar.update()
                if live is not None and (i + 1) % plot_every == 0 and i + 1 < steps_per_epoch:
                    live.add(epoch + (i + 1) / steps_per_epoch,
                             {"train_loss": loss_sum.item() / n, "train_acc": correct.item() / n})
            _sync(device)
            seconds = time.perf_counter() - start

            if precise_bn:
                if hasattr(train_iter, "set_epoch"):
                    train_iter.set_epoch(epoch)
                recompute_bn_statistics(model, train_iter, precise_bn, device, bf16, memory_format)
            test_acc = evaluate_accuracy(model, test_iter, device, bf16, memory_format, eval_batch_size,
                                         keep_freed_memory)
            record = dict(epoch=epoch + 1, train_loss=loss_sum.item() / n, train_acc=correct.item() / n,
                          test_acc=test_acc, examples_per_sec=n / seconds, seconds=seconds)
            history.append(**record)
            if live is not None:
                live.add(epoch + 1, record)
            if checkpoint is not None:
                _save_checkpoint(checkpoint, net, optimizer, scheduler, history, epoch + 1)

    if bar is not None:
        bar.close()
    if live is not None:
        live.close()
    if verbose and history.records:
        print(history.summary())
    return history
