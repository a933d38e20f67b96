"""minidense.allocator: malloc keeps freed memory for the next step, measured in page faults; off where
glibc refuses."""

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from minidense import allocator

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
