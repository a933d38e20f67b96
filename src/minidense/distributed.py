"""Training on several processes: the process group from torchrun's environment, and the few
collectives the training loop needs.

``torchrun --nproc_per_node=N -m minidense train ...`` starts N copies of the program; each finds
its rank, the world size and where to meet the others in environment variables (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``). :func:`init` joins them into one
process group (nccl on CUDA, gloo on CPU). :func:`minidense.train` then gives every rank its share
of each batch (:meth:`minidense.data.FashionMNISTBatches.sharded`), wraps the network in
``DistributedDataParallel`` (:func:`data_parallel`), sums the metrics over the ranks
(:func:`sum_over_ranks`) and lets rank 0 alone print and write. In a single process every helper
here is a no-op.
"""

import contextlib
import datetime
import inspect
import os

import torch
from torch import distributed as dist
from torch import nn

__all__ = ["launched", "init", "destroy", "process_group", "is_initialized", "rank", "world_size", "is_main",
           "backend", "describe", "local_main_first", "check_run", "check_batch_size", "shard", "sum_over_ranks",
           "average_bn_statistics", "broadcast_object", "agree", "data_parallel", "BACKENDS", "INIT_TIMEOUT",
           "TIMEOUT"]

BACKENDS = ("nccl", "gloo")
# How long a rank waits for the others to join: machines of one run may start a little apart.
INIT_TIMEOUT = datetime.timedelta(minutes=5)
# How long a rank waits in one collective before it gives up with an error, instead of forever
# when another rank has died. Longer than anything one rank does alone between two collectives
# (rank 0 writing a checkpoint, the first step's torch.compile).
TIMEOUT = datetime.timedelta(minutes=10)


def launched():
    """Whether this process was started by torchrun (or anything that sets ``RANK`` and ``WORLD_SIZE``)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def _env_int(name, default):
    return int(os.environ.get(name, default))


def is_initialized():
    return dist.is_available() and dist.is_initialized()


def world_size():
    """The number of processes training together (1 without a process group)."""
    return dist.get_world_size() if is_initialized() else 1


def rank():
    """This process's rank, 0 to ``world_size() - 1`` (0 without a process group)."""
    return dist.get_rank() if is_initialized() else 0


def is_main():
    """Whether this is rank 0, the one that prints, plots and writes files."""
    return rank() == 0


def backend():
    """The process group's backend (``"nccl"`` or ``"gloo"``), or ``None`` without one."""
    return dist.get_backend() if is_initialized() else None


def describe(parallel=None):
    """What the provenance of a run records about its processes: ``world_size``, ``backend``, and
    the fields of ``parallel`` (a :class:`minidense.options.Parallel`)."""
    import dataclasses

    fields = dataclasses.asdict(parallel) if parallel is not None else {}
    return {"world_size": world_size(), "backend": backend(), **fields}


def _device_of(device):
    """This rank's device: ``device``, else its own GPU (``cuda:LOCAL_RANK``) with CUDA, else the CPU."""
    local = _env_int("LOCAL_RANK", 0)
    if device is None:
        return torch.device("cuda", local) if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", local)
    return device


def _check_backend(backend, device):
    if backend not in BACKENDS:
        raise ValueError(f"unknown process-group backend {backend!r}; choose nccl (CUDA GPUs) or gloo (CPU)")
    if backend == "nccl" and (device.type != "cuda" or not torch.cuda.is_available()):
        raise ValueError(f"the nccl backend needs CUDA GPUs, but this rank trains on {device} (CUDA available: "
                         f"{torch.cuda.is_available()}): use gloo, the CPU backend (the default without CUDA)")
    if backend == "nccl" and not dist.is_nccl_available():
        raise ValueError("this PyTorch was built without nccl: use gloo")


def _set_timeout(timeout):
    setter = getattr(dist, "set_timeout", None)
    if setter is None:  # before torch 2.13
        from torch.distributed import distributed_c10d

        setter = getattr(distributed_c10d, "_set_pg_timeout", None)
    if setter is not None:
        setter(timeout)


def init(backend=None, device=None, init_timeout=INIT_TIMEOUT, timeout=TIMEOUT):
    """Join the process group that torchrun's environment describes; returns this rank's device.

    Args:
        backend: ``"nccl"`` or ``"gloo"``; default nccl when the device is a GPU, else gloo.
        device: default this rank's GPU, ``cuda:LOCAL_RANK``, with CUDA, else the CPU.
        init_timeout: how long to wait for every rank to join.
        timeout: how long any later collective waits for the other ranks before raising.

    Raises:
        ValueError: not started by torchrun, an unknown backend, or nccl without CUDA; raised
            before joining, so that no other rank is left waiting for this one.
    """
    if not launched():
        raise ValueError("not started by torchrun: RANK and WORLD_SIZE are not set. Launch with "
                         "torchrun --nproc_per_node=N -m minidense train ...")
    if not dist.is_available():
        raise ValueError("this PyTorch has no torch.distributed")
    device = _device_of(device)
    backend = backend or ("nccl" if device.type == "cuda" else "gloo")
    _check_backend(backend, device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, timeout=init_timeout, device_id=device if backend == "nccl" else None)
    _set_timeout(timeout)
    return device


def destroy():
    """Leave the process group (a no-op without one)."""
    if is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def process_group(backend=None, device=None, init_timeout=INIT_TIMEOUT, timeout=TIMEOUT):
    """:func:`init` for the duration of the block (yields the device), :func:`destroy` after it."""
    device = init(backend, device, init_timeout, timeout)
    try:
        yield device
    finally:
        destroy()


@contextlib.contextmanager
def local_main_first():
    """The block runs on each machine's first process (``LOCAL_RANK`` 0) before the others' (a
    download, say, that they would otherwise race to make). Every rank must enter it."""
    first = _env_int("LOCAL_RANK", 0) == 0
    if world_size() > 1 and not first:
        dist.barrier()
    yield
    if world_size() > 1 and first:
        dist.barrier()


def check_batch_size(batch_size, world):
    """Raise ``ValueError`` unless the global ``batch_size`` divides by ``world`` processes."""
    if batch_size is not None and batch_size % world:
        lower, upper = batch_size // world * world, -(-batch_size // world) * world
        raise ValueError(f"the batch size {batch_size} does not divide by the {world} processes: the batch "
                         f"size is the global batch, split evenly over the processes (each computes "
                         f"batch_size / {world} images per step); choose a multiple of {world}, like "
                         f"{lower or upper} or {upper}")


def check_run(parallel, device, batch_size, world=None):
    """Raise ``ValueError`` now, on every rank alike, if this run cannot be made: a batch that does
    not divide by the world size, or SyncBatchNorm off CUDA. ``world`` defaults to the process
    group's size (a launcher checks before joining it with the environment's ``WORLD_SIZE``)."""
    world = world_size() if world is None else world
    check_batch_size(batch_size, world)
    if parallel is not None and parallel.sync_bn and torch.device(device).type != "cuda":
        raise ValueError(f"sync_bn=True needs CUDA: PyTorch's SyncBatchNorm runs only on GPUs, and this run "
                         f"trains on {device}. Leave it off there: each process then normalises with the "
                         "statistics of its own share of the batch")


def shard(train_iter, test_iter):
    """This rank's share of the batches: of the training batches evenly (see
    :meth:`minidense.data.FashionMNISTBatches.sharded`), of the test images each one by one rank."""
    world = world_size()
    for name, batches in (("train_iter", train_iter), ("test_iter", test_iter)):
        if not hasattr(batches, "sharded"):
            raise ValueError(f"under {world} processes {name} must be a minidense.data.FashionMNISTBatches, "
                             f"which gives each process its share of every batch (got {type(batches).__name__})")
    return train_iter.sharded(rank(), world), test_iter.sharded(rank(), world, even=False)


def sum_over_ranks(*values):
    """The sums of ``values`` (numbers, or one-element tensors) over every rank, in one all-reduce.

    Returns Python numbers, ints for integer inputs; without a process group, the values
    themselves. Every rank must call it at the same point.
    """
    integral = [not torch.is_floating_point(torch.as_tensor(v)) for v in values]
    if world_size() == 1:
        numbers = [v.item() if isinstance(v, torch.Tensor) else v for v in values]
    else:
        device = next((v.device for v in values if isinstance(v, torch.Tensor)), torch.device("cpu"))
        if backend() == "nccl" and device.type != "cuda":
            device = torch.device("cuda", torch.cuda.current_device())
        stacked = torch.stack([torch.as_tensor(v, dtype=torch.float64, device=device).reshape(()) for v in values])
        dist.all_reduce(stacked)
        numbers = stacked.tolist()
    return tuple(int(round(x)) if whole else float(x) for x, whole in zip(numbers, integral))


def _norms(net):
    return [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def average_bn_statistics(net):
    """Every BatchNorm's running mean and variance set to their average over the ranks (in place).

    With equal shares per rank, the average of the ranks' running means is the running mean
    of all their batches, and the average of their variances is the variance within batches of
    each rank's size, the batches each rank normalised with while training. After it, every rank
    evaluates with the same statistics. A no-op in a single process.
    """
    world = world_size()
    buffers = [b for m in _norms(net) for b in (m.running_mean, m.running_var)]
    if world == 1 or not buffers:
        return
    flat = torch.cat([b.detach().flatten().float() for b in buffers])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for b in buffers:
        b.copy_(flat[offset:offset + b.numel()].view_as(b))
        offset += b.numel()


def broadcast_object(obj, src=0):
    """Rank ``src``'s ``obj`` on every rank (pickled); in a single process ``obj`` itself."""
    if world_size() == 1:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]


def agree(value, what):
    """Raise ``ValueError`` on every rank unless every rank holds the same ``value`` (``what`` names it)."""
    if world_size() == 1:
        return value
    values = [None] * world_size()
    dist.all_gather_object(values, value)
    if any(v != values[0] for v in values):
        shown = ", ".join(f"rank {r}: {v!r}" for r, v in enumerate(values))
        raise ValueError(f"the processes disagree on {what} ({shown})")
    return value


def _sync_batchnorm(net):
    """Swap every BatchNorm of ``net`` for a SyncBatchNorm sharing its parameters and buffers;
    returns what :func:`_restore` needs to put the originals back."""
    swapped = []
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, nn.SyncBatchNorm):
                setattr(parent, name, nn.SyncBatchNorm.convert_sync_batchnorm(child))
                swapped.append((parent, name, child))
    return swapped


def _restore(swapped):
    """Put back the modules :func:`_sync_batchnorm` swapped out."""
    for parent, name, child in swapped:
        setattr(parent, name, child)


def _ddp_options():
    """Buffers are not broadcast from rank 0 before every forward: each rank keeps its own BN running
    statistics, and :func:`average_bn_statistics` averages them before evaluating."""
    from torch.nn.parallel import DistributedDataParallel

    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters:
        return {"forward_sync_buffers": False}  # torch >= 2.13
    return {"broadcast_buffers": False}


@contextlib.contextmanager
def data_parallel(net, device, sync_bn=False, compile=False):
    """``net`` wrapped in ``DistributedDataParallel`` for the duration of the block (yields the wrapper).

    The wrapper broadcasts rank 0's parameters when it is made, then averages the gradients over
    the ranks during every backward pass, bucket by bucket, so that communication overlaps the
    rest of the backward pass. With ``sync_bn`` (CUDA only) every BatchNorm normalises with the
    statistics of the whole global batch while training; the original BatchNorm modules, which
    share their parameters and buffers with the synchronised ones, are put back afterwards.
    ``compile`` compiles the wrapper (as PyTorch recommends: DDP first, then ``torch.compile``).
    """
    from torch.nn.parallel import DistributedDataParallel

    swapped = _sync_batchnorm(net) if sync_bn else []
    try:
        gpu = [device.index if device.index is not None else torch.cuda.current_device()] \
            if device.type == "cuda" else None
        wrapper = DistributedDataParallel(net, device_ids=gpu, **_ddp_options())
        yield torch.compile(wrapper) if compile else wrapper
    finally:
        _restore(swapped)
