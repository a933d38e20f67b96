"""Facts the chapters state about the recorded runs under book/results/: a new record that changes one
fails here, not in the middle of a chapter."""

import json
from pathlib import Path

import torch

import minidense
from minidense.reuse import as_matrix, chance_least_read, reuse_checks

RESULTS = Path(__file__).resolve().parents[2] / "book" / "results"


# --- the paper's DenseNet part: memory and feature reuse (chapters memory, feature-reuse) ---

def _record(name):
    return json.loads((RESULTS / name).read_text())


def _reuse_networks():
    """The initial matrices (rebuilt from the runs' seed) and the two recorded trainings'."""
    torch.manual_seed(0)
    initial = minidense.feature_reuse(minidense.densenet())
    short = [as_matrix(m) for m in _record("feature_reuse_cpu.json")["matrices"]]
    full = [as_matrix(m) for m in _record("trained-full.json")["matrices"]]
    return initial, short, full


def _holds(matrices):
    return [passed == out_of for passed, out_of, _ in reuse_checks(matrices).values()]


def test_feature_reuse_records_were_trained_from_seed_0():
    assert _record("feature_reuse_cpu.json")["provenance"]["seed"] == 0
    assert "--seed 0" in _record("trained-full.json")["provenance"]["command"]


def test_full_run_passes_a_c_d_and_not_b():
    _, _, full = _reuse_networks()
    assert _holds(full) == [True, False, True, True]


def test_initial_weights_pass_a_and_c_and_the_short_run_not_d():
    initial, short, _ = _reuse_networks()
    assert _holds(initial)[0] and _holds(initial)[2]
    assert not _holds(short)[3]


def test_a_and_c_hold_up_to_a_threshold_above_0_9_for_all_three_networks():
    for matrices in _reuse_networks():
        found = reuse_checks(matrices)
        assert min(found["(a) layers spread"][2], found["(c) transition spreads"][2]) > 0.9


def test_transition_read_least_beyond_chance_but_only_a_few_percent_less():
    _, _, full = _reuse_networks()
    _, p_value = chance_least_read(full)
    ratio = reuse_checks(full)["(b) transition read least"][2]
    assert p_value < 0.05 and 0 < 1 - ratio < 0.05


def test_full_run_change_from_initial_points_the_papers_way():
    initial, _, full = _reuse_networks()
    change = [m / i for m, i in zip(full, initial)]
    assert _holds(change)[1] and _holds(change)[3]
    inside = torch.cat([m[:, :-1][~m[:, :-1].isnan()] for m in change])
    assert (inside - 1).abs().max() < 0.1
    newest = [m[:t + 1, t].argmax().item() == t for m in change for t in range(1, len(m))]
    assert sum(newest) > len(newest) / 2


def test_memory_fit_has_a_quadratic_term_only_in_the_naive_mode():
    fit = _record("memory_vs_depth.json")["fit"]
    assert fit["naive"]["c"] > 0
    assert abs(fit["memory_efficient"]["c"]) < 1e-6 * fit["naive"]["c"]
