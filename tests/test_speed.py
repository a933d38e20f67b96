"""The speed levers change how fast training runs, never what it computes; the benchmark runs."""

import json
import os
import subprocess
import sys

import pytest
import torch
from torch.nn import functional as F

import minidense
from conftest import ROOT, tiny_densenet
from minidense import allocator, hardware
from minidense.hardware import bf16_pays, channels_last_pays, forget_probes, network_slice
from minidense.options import Levers
from minidense.training import default_eval_batch_size, inplace_relu_after_bn, rebatch

FAST = dict(progress=False, verbose=False)


def levers(**changes):
    """The levers of these tests: fp32, NCHW, no in-place ReLU, unless changed."""
    return Levers(bf16=False, channels_last=False, inplace_relu=False).replace(**changes)


@pytest.fixture
def small_data(data_root):
    """256 training and 128 test images at 32x32, batch 32: eight steps per epoch."""
    return minidense.load_fashion_mnist(32, resize=32, root=data_root, device="cpu", num_train=256,
                                        num_test=128, seed=0)


def test_probes_answer_yes_or_no_and_leave_the_global_rng_alone():
    state = torch.get_rng_state()
    assert isinstance(bf16_pays("cpu"), bool)
    assert isinstance(channels_last_pays("cpu", "fp32"), bool)
    assert torch.equal(torch.get_rng_state(), state)


@pytest.fixture
def probe_file(monkeypatch, tmp_path):
    """The probe answers go to a fresh home; each test starts as a new process would."""
    monkeypatch.setenv("HOME", str(tmp_path))
    forget_probes()
    yield tmp_path / ".cache" / "minidense" / "probes.json"
    forget_probes()


def test_a_probe_answer_is_stored_and_later_processes_reuse_it(probe_file, monkeypatch):
    answer = channels_last_pays("cpu", "fp32")
    stored = json.loads(probe_file.read_text())
    (key,) = stored
    assert "channels-last" in key and "fp32" in key and stored[key] == answer

    # a new process (empty in-process cache) reads the file instead of measuring
    hardware._channels_last_pays.cache_clear()
    probe_file.write_text(json.dumps({key: not answer}))
    monkeypatch.setattr(hardware, "_channels_last_step_is_faster", lambda *args: pytest.fail("measured again"))
    assert channels_last_pays("cpu", "fp32") is (not answer)

    forget_probes()
    assert not probe_file.exists()


def test_an_unreadable_probe_file_is_measured_again_and_rewritten(probe_file):
    probe_file.parent.mkdir(parents=True)
    probe_file.write_text("{not json")
    answer = channels_last_pays("cpu", "fp32")
    assert list(json.loads(probe_file.read_text()).values()) == [answer]


ALLOCATOR_PROBE = """
import json, resource, torch
from minidense import allocator

BLOCK = 64 * 2**20  # above glibc's largest mmap threshold: by default every malloc of it maps fresh pages

def faults_of(rounds):  # minor page faults of allocating, filling and freeing the block `rounds` times
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(rounds):
        torch.empty(BLOCK, dtype=torch.uint8).fill_(1)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

def rounds_to_settle(limit=32):
    # rounds until three in a row fault in no page: small allocations can split a freed block,
    # so the heap takes a few blocks before one is always free for the next round
    quiet = 0
    for done in range(1, limit + 1):
        quiet = quiet + 1 if faults_of(1) == 0 else 0
        if quiet == 3:
            return done
    return None

def resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()

faults_of(4)  # by default malloc maps a block of this size afresh every time: nothing to settle
report = {"pages": BLOCK // resource.getpagesize(), "default": faults_of(4)}
with allocator.keep_freed_memory() as kept:
    with allocator.keep_freed_memory():
        pass
    report.update(kept=kept, settled_after=rounds_to_settle(), kept_after_inner_exit=faults_of(4),
                  resident_inside=resident_bytes())
report["resident_after"] = resident_bytes()
print(json.dumps(report))
"""


@pytest.mark.slow  # ~9 s on 2 cores
@pytest.mark.skipif(not allocator.can_keep_freed_memory(), reason="needs Linux with glibc's malloc")
def test_keep_freed_memory_stops_the_page_faults_of_reallocating_a_block():
    # in a fresh process: malloc's settings are process-wide, and other tests' training changed them
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    report = json.loads(subprocess.run([sys.executable, "-c", ALLOCATOR_PROBE], check=True, env=env,
                                       capture_output=True, text=True, timeout=120).stdout)
    # by default every page of every buffer is faulted in again: 4 x 16,384 pages of 4 KiB, or one
    # fault per 2 MiB where transparent huge pages are always on
    assert report["default"] >= 4 * report["pages"] // 512
    assert report["kept"] and report["settled_after"] is not None, report  # the heap stops growing ...
    assert report["kept_after_inner_exit"] * 10 < report["default"], report  # ... and keeps the block; nesting is fine
    assert report["resident_inside"] - report["resident_after"] >= 32 * 2**20  # handed back on exit


def test_keep_freed_memory_can_be_off_and_is_off_without_glibc(monkeypatch):
    with allocator.keep_freed_memory(enabled=False) as kept:
        assert kept is False
    monkeypatch.setattr(allocator.platform, "libc_ver", lambda: ("", ""))
    assert not allocator.can_keep_freed_memory()
    with allocator.keep_freed_memory() as kept:
        assert kept is False


def test_keep_freed_memory_is_off_where_glibc_refuses_a_setting(monkeypatch):
    calls = []

    class RefusingLibc:
        def mallopt(self, parameter, value):
            calls.append(parameter.value)
            return 0  # glibc's answer to a value it does not accept

        def malloc_trim(self, pad):
            raise AssertionError("nothing was kept, so nothing is trimmed")

    monkeypatch.setattr(allocator, "_glibc", RefusingLibc)
    with allocator.keep_freed_memory() as kept:
        assert kept is False
    assert len(calls) == len(allocator._KEEP) + len(allocator._RESTORE)  # tried, then put back
    assert allocator._depth == 0


def test_network_slice_is_stem_block1_transition1():
    # 96 -> 48 (7x7 conv, stride 2) -> 24 (max pool); 64 + 4 x 32 = 192 channels, halved to 96; 24 -> 12
    assert network_slice()(torch.zeros(2, 1, 96, 96)).shape == (2, 96, 12, 12)


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


def test_default_eval_batch_is_four_training_batches_at_most_1024_on_a_gpu_and_the_training_batch_on_a_cpu():
    assert default_eval_batch_size(64, "cuda") == 256
    assert default_eval_batch_size(512, "cuda") == 1024
    assert default_eval_batch_size(64, "cpu") == default_eval_batch_size(64) == 64
    with pytest.raises(ValueError, match="batch_size"):
        default_eval_batch_size(0)


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


@pytest.mark.slow
def test_benchmark_smoke_runs(data_root, tmp_path):
    pytest.importorskip("d2l")
    out = tmp_path / "speed.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "train_speed.py"), "--smoke", "--data", str(data_root),
                    "--out", str(out)], check=True, env=env, cwd=tmp_path, timeout=600)
    import json

    result = json.loads(out.read_text())
    assert result["end_to_end"]["ratio"] > 0 and result["step"]["ratio"] > 0
    configurations = {row["configuration"] for row in result["ablation"]}
    assert configurations >= {"d2l train_ch6 step", "minidense, all levers (probed defaults)"}
    assert ("- keep freed memory" in configurations) == allocator.can_keep_freed_memory()
    assert all(row["first_step_seconds"] > 0 and row["images_per_sec"] > 0 for row in result["ablation"])
    assert result["hardware"]["flops_per_image"] > 0
    assert result["provenance"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
