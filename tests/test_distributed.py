"""Training on several processes: sharding, DDP against gradient accumulation, one History, resume, errors.

The multi-process tests start 2 gloo processes on the CPU with torchrun (``python -m
torch.distributed.run``), each in its own session and killed with its children if it runs past its
time: a rank left waiting fails the test instead of hanging it. Each takes 10 to 30 s on 2 cores
(starting the processes is most of it), so they are marked slow.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import ddp_worker
import pytest
import torch
from torch.nn import functional as F

import minidense
from minidense import distributed
from minidense.data import FashionMNISTBatches
from minidense.options import Parallel

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(ddp_worker.__file__)


def torchrun(args, timeout, nproc=2):
    """``torchrun --standalone --nproc_per_node=nproc ARGS``: ``(returncode, output, seconds)``.

    Past ``timeout`` seconds the launcher and every rank are killed and the test fails.
    """
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread per rank (torchrun's own default too)
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"torchrun ran past {timeout} s (a rank left waiting?):\n{output[-3000:]}")
    return process.returncode, output, time.perf_counter() - start


def train_cli(*args):
    return ["-m", "minidense", "train", "--device", "cpu", *args]


# --- Sharding: every rank's share of the same epoch (no processes needed) ---

def synthetic_batches(num_examples=70, batch_size=12):
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (num_examples, 28, 28), dtype=torch.uint8, generator=generator)
    return FashionMNISTBatches(images, torch.arange(num_examples), batch_size, resize=28, shuffle=True,
                               seed=3).augmented(translate=2, flip=True)


@pytest.mark.parametrize("world", [2, 3, 4])
def test_the_shares_of_every_batch_make_the_single_process_batch(world):
    whole = synthetic_batches()
    shards = [whole.sharded(rank, world) for rank in range(world)]
    assert len({len(shard) for shard in shards}) == 1  # the same number of steps on every rank
    for batches in (whole, *shards):
        batches.set_epoch(1)
    served = 0
    for (X, y), *shares in zip(whole, *shards):
        assert len({len(share_y) for _, share_y in shares}) == 1  # and the same batch sizes
        n = sum(len(share_y) for _, share_y in shares)
        X_joined, y_joined = torch.empty_like(X[:n]), torch.empty_like(y[:n])
        for rank, (share_X, share_y) in enumerate(shares):
            X_joined[rank::world], y_joined[rank::world] = share_X, share_y
        torch.testing.assert_close(X_joined, X[:n], rtol=0, atol=0)  # the same images, augmentation included
        assert torch.equal(y_joined, y[:n])
        served += n
    # 70 images in batches of 12: the last batch of 10 loses 10 % world images, the rest are all served
    assert served == 70 - 10 % world


def test_evaluation_shares_serve_every_example_once():
    whole = FashionMNISTBatches(torch.zeros(70, 28, 28, dtype=torch.uint8), torch.arange(70), 12, resize=28)
    labels = torch.cat([y for rank in range(4) for _, y in whole.sharded(rank, 4, even=False)])
    assert sorted(labels.tolist()) == list(range(70))


def test_a_batch_that_does_not_divide_is_refused():
    with pytest.raises(ValueError, match="a batch of 12 does not divide into 5 equal shares"):
        synthetic_batches().sharded(0, 5)
    with pytest.raises(ValueError, match="does not divide by the 5 processes: the batch size is the global"):
        distributed.check_batch_size(12, 5)
    with pytest.raises(ValueError, match="already rank 0's share of 2"):
        synthetic_batches().sharded(0, 2).sharded(0, 2)


# --- In one process the helpers change nothing ---

def test_one_process_needs_no_process_group(monkeypatch):
    assert (distributed.world_size(), distributed.rank(), distributed.is_main()) == (1, 0, True)
    assert distributed.sum_over_ranks(torch.tensor(1.5), torch.tensor(2), 3) == (1.5, 2, 3)
    assert distributed.describe(Parallel()) == {"world_size": 1, "backend": None, "sync_bn": False}
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(ValueError, match="not started by torchrun"):
        distributed.init()


def test_sync_bn_on_the_cpu_is_our_clear_error():
    net = minidense.densenet(growth_rate=8, convs_per_block=(2, 2))
    batches = [(torch.rand(4, 1, 32, 32), torch.arange(4))]
    with pytest.raises(ValueError, match="sync_bn=True needs CUDA: PyTorch's SyncBatchNorm runs only on GPUs"):
        minidense.train(net, batches, batches, 1, device="cpu", parallel=Parallel(sync_bn=True), verbose=False)


def test_sync_batchnorm_shares_the_weights_and_puts_the_originals_back():
    net = minidense.densenet(growth_rate=8, convs_per_block=(2, 2))
    originals = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    swapped = distributed._sync_batchnorm(net)
    synced = [m for m in net.modules() if isinstance(m, torch.nn.SyncBatchNorm)]
    assert len(synced) == len(originals) == len(swapped) and not any(
        type(m) is torch.nn.BatchNorm2d for m in net.modules())
    for bn, sync in zip(originals, synced):  # the same tensors: training the one trains the other
        assert sync.weight is bn.weight and sync.running_mean is bn.running_mean
    distributed._restore(swapped)
    assert [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)] == originals


# --- Two gloo processes ---

@pytest.fixture(scope="module")
def two_ranks(data_root, tmp_path_factory):
    """Two epochs of the worker on 2 ranks, uninterrupted: what each rank ends with."""
    out = tmp_path_factory.mktemp("ddp")
    code, output, _ = torchrun([WORKER, "--data", data_root, "--out", out], timeout=240)
    assert code == 0, output[-3000:]
    return [torch.load(out / f"rank{rank}.pt", weights_only=False) for rank in range(2)]


def accumulated_reference(data_root, num_epochs=2, world=2):
    """The worker's training in one process: each step sums the gradients of the ranks' shares of the
    batch, each share a forward pass of its own (so BN normalises each share with its own statistics,
    as every DDP rank does), each loss divided by the number of shares (DDP averages the gradients)."""
    recipe = ddp_worker.RECIPE
    net = ddp_worker.tiny_densenet()
    train_iter, _ = minidense.load_fashion_mnist(ddp_worker.BATCH, resize=ddp_worker.RESIZE, root=data_root,
                                                 device="cpu", num_train=ddp_worker.NUM_TRAIN,
                                                 num_test=ddp_worker.NUM_TEST, seed=0)
    train_iter = train_iter.augmented(recipe.translate, recipe.flip)
    optimizer = torch.optim.SGD(net.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                nesterov=recipe.nesterov, weight_decay=recipe.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.lr, cycle_momentum=False,
                                                    total_steps=num_epochs * len(train_iter))
    for epoch in range(num_epochs):
        net.train()
        train_iter.set_epoch(epoch)
        for X, y in train_iter:
            optimizer.zero_grad()
            for rank in range(world):  # rank r's share: positions r, r + world, ... of the batch
                (F.cross_entropy(net(X[rank::world]), y[rank::world]) / world).backward()
            optimizer.step()
            scheduler.step()
    return net


@pytest.mark.slow
def test_ddp_equals_gradient_accumulation_over_the_same_shards(two_ranks, data_root):
    reference = dict(accumulated_reference(data_root).named_parameters())
    trained = two_ranks[0]["state"]
    # float32. Halving a loss is exact in binary and two halves sum alike in DDP's buffers and in
    # .grad, so on this CPU the weights agree bit for bit after the 8 steps; the tolerance leaves
    # room for kernels that add in another order.
    for name, parameter in reference.items():
        # float32 sums in another order (all-reduce vs accumulation): measured up to 5.8e-6 on weights ~0.1
        torch.testing.assert_close(trained[name], parameter.detach(), rtol=1e-4, atol=5e-5, msg=name)


@pytest.mark.slow
def test_every_rank_ends_with_the_same_network_and_history(two_ranks):
    first, second = two_ranks
    for key, value in first["state"].items():  # the BN statistics too: averaged before evaluating
        assert torch.equal(value, second["state"][key]), key
    timing = ("examples_per_sec", "seconds")
    records = [[{k: v for k, v in r.items() if k not in timing} for r in rank["history"]["records"]]
               for rank in two_ranks]
    assert records[0] == records[1] and len(records[0]) == 2
    provenance = first["history"]["provenance"]
    assert (provenance["world_size"], provenance["backend"], provenance["batch_size"]) == (2, "gloo", 32)
    assert provenance["num_train"] == ddp_worker.NUM_TRAIN and provenance["num_test"] == ddp_worker.NUM_TEST


@pytest.mark.slow
def test_the_sharded_evaluation_counts_every_test_image(two_ranks, data_root):
    net = ddp_worker.tiny_densenet()
    net.load_state_dict(two_ranks[0]["state"])
    _, test_iter = minidense.load_fashion_mnist(ddp_worker.BATCH, resize=ddp_worker.RESIZE, root=data_root,
                                                device="cpu", num_train=ddp_worker.NUM_TRAIN,
                                                num_test=ddp_worker.NUM_TEST, seed=0)
    alone = minidense.evaluate_accuracy(net, test_iter)
    # Each image is classified once either way; batches of another size may round differently, and
    # could flip a near tie: at most one image of the 64.
    assert abs(two_ranks[0]["history"]["records"][-1]["test_acc"] - alone) <= 1 / ddp_worker.NUM_TEST


@pytest.mark.slow
def test_an_interrupted_run_resumes_where_it_stopped(two_ranks, data_root, tmp_path):
    checkpoint, out = tmp_path / "ckpt.pt", tmp_path / "out"
    common = [WORKER, "--data", data_root, "--out", out, "--checkpoint", checkpoint]
    code, output, seconds = torchrun([*common, "--interrupt-after", "1"], timeout=240)
    assert code != 0 and "interrupted at epoch 1.25" in output, output[-3000:]
    assert not out.exists(), "the interrupted run should not have finished"
    assert torch.load(checkpoint, weights_only=False)["epoch"] == 1  # rank 0 wrote epoch 1; rank 1 did not hang
    code, output, _ = torchrun([*common, "--resume"], timeout=240)
    assert code == 0, output[-3000:]
    resumed = [torch.load(out / f"rank{rank}.pt", weights_only=False) for rank in range(2)]
    for rank in range(2):  # every rank loaded the checkpoint, and ends where the uninterrupted run ends
        for key, value in two_ranks[rank]["state"].items():
            assert torch.equal(resumed[rank]["state"][key], value), (rank, key)
    assert [r["train_loss"] for r in resumed[0]["history"]["records"]] == \
        [r["train_loss"] for r in two_ranks[0]["history"]["records"]]


# --- The command line ---

def checkpoint_that_does_not_fit(path):
    """A checkpoint of the tiny network, which the CLI's book DenseNet cannot load."""
    net = ddp_worker.tiny_densenet()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    torch.save({"epoch": 1, "model": net.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": None,
                "history": {"records": [], "provenance": {}}, "recipe": {}, "run": {}, "rng": {}}, path)
    return path


BAD_INPUT = {
    "batch not divisible": (lambda tmp: train_cli("--profile", "smoke", "--batch-size", "63"),
                            "the batch size 63 does not divide by the 2 processes"),
    "nccl without CUDA": (lambda tmp: train_cli("--profile", "smoke", "--backend", "nccl"),
                          "the nccl backend needs CUDA GPUs"),
    "SyncBatchNorm on the CPU": (lambda tmp: train_cli("--profile", "smoke", "--sync-bn"),
                                 "sync_bn=True needs CUDA"),
    "checkpoint that does not fit": (
        lambda tmp: train_cli("--profile", "smoke", "--resume",
                              "--checkpoint", checkpoint_that_does_not_fit(tmp / "tiny.pt")),
        "does not fit this BookDenseNet"),
    "compare under torchrun": (lambda tmp: ["-m", "minidense", "compare", "--vary", "transition_pool=avg,max"],
                               "compare runs each of its runs in one process and does not run under torchrun"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_is_a_clear_error_and_no_rank_is_left_waiting(case, data_root, tmp_path):
    make_args, message = BAD_INPUT[case]
    args = make_args(tmp_path)
    if args[2] == "train":
        args += ["--data", data_root, "--out", tmp_path / "run.json"]
    code, output, seconds = torchrun(args, timeout=180)
    # Every rank checks alike and stops; torchrun ends the others once the first has failed.
    assert code != 0 and message in output, output[-3000:]
    assert not (tmp_path / "run.json").exists()


@pytest.mark.slow
def test_torchrun_smoke_run_writes_one_history_from_rank_0(data_root, tmp_path):
    out = tmp_path / "runs" / "smoke.json"
    code, output, seconds = torchrun(train_cli("--profile", "smoke", "--data", data_root, "--out", out),
                                     timeout=600)
    assert code == 0, output[-3000:]
    assert list(tmp_path.rglob("*.json")) == [out]
    run = json.loads(out.read_text())
    assert len(run["records"]) == 1
    provenance = run["provenance"]
    assert (provenance["world_size"], provenance["backend"], provenance["profile"]) == (2, "gloo", "smoke")
    assert (provenance["batch_size"], provenance["num_train"]) == (64, 512)  # the global batch, all the images
    assert output.count("smoke budget:") == 1 and output.count("wrote ") == 1  # rank 0 alone prints
