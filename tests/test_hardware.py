"""minidense.hardware: what the hardware does well, probed once per machine; the levers' defaults
decided in one place."""

import json

import pytest
import torch

from minidense import allocator, hardware
from minidense.hardware import (
    bf16_pays,
    channels_last_pays,
    default_eval_batch_size,
    forget_probes,
    network_slice,
    resolve_levers,
)
from minidense.options import Levers


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


def test_network_slice_is_stem_block1_transition1():
    # 96 -> 48 (7x7 conv, stride 2) -> 24 (max pool); 64 + 4 x 32 = 192 channels, halved to 96; 24 -> 12
    assert network_slice()(torch.zeros(2, 1, 96, 96)).shape == (2, 96, 12, 12)


def test_default_eval_batch_is_four_training_batches_at_most_1024_on_a_gpu_and_the_training_batch_on_a_cpu():
    assert default_eval_batch_size(64, "cuda") == 256
    assert default_eval_batch_size(512, "cuda") == 1024
    assert default_eval_batch_size(64, "cpu") == default_eval_batch_size(64) == 64
    with pytest.raises(ValueError, match="batch_size"):
        default_eval_batch_size(0)


def test_levers_given_are_kept_and_none_is_decided_by_the_probes(monkeypatch):
    asked = []
    monkeypatch.setattr(hardware, "bf16_pays", lambda device: asked.append(("bf16", device.type)) or True)
    monkeypatch.setattr(hardware, "channels_last_pays",
                        lambda device, precision: asked.append(("channels_last", device.type, precision)) or False)
    monkeypatch.setattr(allocator, "can_keep_freed_memory", lambda: True)
    resolved = resolve_levers(Levers(), "cpu", batch_size=128)
    assert (resolved.bf16, resolved.channels_last, resolved.eval_batch_size, resolved.keep_freed_memory) == \
        (True, False, 128, True)
    assert asked == [("bf16", "cpu"), ("channels_last", "cpu", "bf16")]  # channels-last probed in the precision chosen
    assert (resolved.compile, resolved.inplace_relu, resolved.host_sync) == (False, True, False)  # the defaults

    asked.clear()
    chosen = Levers(bf16=False, channels_last=True, eval_batch_size=7, keep_freed_memory=False)
    given = resolve_levers(chosen, "cpu", 128)
    assert (given.bf16, given.channels_last, given.eval_batch_size, given.keep_freed_memory) == (False, True, 7, False)
    assert asked == []  # nothing to probe
    assert resolve_levers(Levers(bf16=False, channels_last=False), "cpu").eval_batch_size is None  # no batch size: kept


def test_keep_freed_memory_defaults_on_for_a_cpu_and_only_where_glibc_allows(monkeypatch):
    fixed = Levers(bf16=False, channels_last=False)
    monkeypatch.setattr(allocator, "can_keep_freed_memory", lambda: True)
    assert resolve_levers(fixed, "cpu").keep_freed_memory is True
    assert resolve_levers(fixed, "cuda").keep_freed_memory is False
    assert resolve_levers(fixed.replace(keep_freed_memory=True), "cuda").keep_freed_memory is True
    monkeypatch.setattr(allocator, "can_keep_freed_memory", lambda: False)
    assert resolve_levers(fixed.replace(keep_freed_memory=True), "cpu").keep_freed_memory is False


@pytest.mark.parametrize("batch_size, device, expected", [
    (64, "cpu", 64), (1000, "cpu", 1000), (64, "cuda", 256), (255, "cuda", 1020), (256, "cuda", 1024),
    (300, "cuda", 1024), (1, "cuda", 4),
])
def test_default_eval_batch_size(batch_size, device, expected):
    assert default_eval_batch_size(batch_size, device) == expected


@pytest.mark.parametrize("value, error", [(0, ValueError), (-8, ValueError), (True, TypeError), (1.5, TypeError)])
def test_default_eval_batch_size_refuses_a_bad_batch(value, error):
    with pytest.raises(error, match=f"batch_size must be a positive integer, got {value!r}"):
        default_eval_batch_size(value)
