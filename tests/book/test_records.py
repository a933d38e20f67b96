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


# --- experiments: pooling, growth rate and depth (chapters experiments-pooling, experiments-growth) ---

def _runs(folder):
    import pandas as pd

    return pd.read_csv(RESULTS / folder / "results.csv")


def _pooling_full():
    """The book recipe's full-budget runs, each named by its pooling (the avg runs are named recipe=book)."""
    full = _runs("compare-full")
    pool = full["settings"].map(lambda s: json.loads(s)["transition_pool"])
    return full[full["recipe"] == "book"].assign(pool=pool, variant="transition_pool=" + pool)


def _reading(table, metric="test_acc", baseline="transition_pool=avg"):
    return minidense.read_differences(minidense.summarize(table, metric, baseline=baseline)).iloc[0]


def test_full_budget_pooling_runs_differ_in_nothing_but_their_pooling():
    settings = _pooling_full()["settings"].map(json.loads)
    rest = settings.map(lambda s: json.dumps({k: v for k, v in s.items() if k != "transition_pool"}, sort_keys=True))
    assert rest.nunique() == 1 and set(settings.map(lambda s: s["transition_pool"])) == {"avg", "max"}


def test_full_budget_poolings_agree_within_a_tenth_of_a_point_in_four_pairs_and_the_interval_holds_0():
    table = _pooling_full()
    per_seed = table.pivot(index="seed", columns="pool", values="test_acc")
    assert len(per_seed) == 4 and (per_seed["max"] - per_seed["avg"]).abs().max() <= 0.001
    assert _reading(table)["says"].startswith("not told apart")


def test_short_budget_intervals_are_many_times_wider_and_none_resolves_test_accuracy():
    full_width = _reading(_pooling_full())["half_width"]
    for folder in ("compare-pooling-cpu", "compare-pooling-cpu48"):
        reading = _reading(_runs(folder))
        assert reading["says"].startswith("not told apart") and reading["half_width"] > 5 * full_width


def test_at_48_average_pooling_scored_higher_in_most_seeds_and_its_interval_only_just_reaches_0():
    table = _runs("compare-pooling-cpu48")
    per_seed = table.pivot(index="seed", columns="transition_pool", values="test_acc")
    assert (per_seed["avg"] > per_seed["max"]).sum() > len(per_seed) / 2
    assert 0 < _reading(table)["ci_high"] < 0.001


def test_short_budget_max_pooling_fits_faster_at_96_and_speed_does_not_differ():
    assert _reading(_runs("compare-pooling-cpu"), "train_loss")["says"] == (
        "transition_pool=max lower than transition_pool=avg")
    for folder in ("compare-pooling-cpu", "compare-pooling-cpu48"):
        assert _reading(_runs(folder), "examples_per_sec")["says"].startswith("not told apart")


def test_growth_and_depth_sweeps_training_time_grew_far_less_than_the_parameters():
    for folder in ("compare-growth-cpu48", "compare-depth-cpu48"):
        means = _runs(folder).groupby("num_params")["wall_seconds"].mean()
        params, seconds = means.index, means.to_numpy()
        assert seconds[-1] / seconds[0] < 0.5 * params[-1] / params[0]


def test_seeds_agree_far_more_closely_at_the_full_budget_than_in_the_short_sweeps():
    full = _runs("compare-full")
    book = full[full["variant"] == "recipe=book"]["test_acc"].std()
    growth = _runs("compare-growth-cpu48").groupby("growth_rate")["test_acc"].std()
    assert 5 * book < growth.median()


# --- Going faster: the speed chapter's recorded benchmarks and lever accuracy (chapter speed) ---

def _lever_accuracy(name):
    """The paired difference 'levers on - levers off' of a lever-accuracy record, as summarize reads it."""
    import pandas as pd

    runs = pd.DataFrame(_record(name)["runs"]).rename(columns={"levers": "variant"})
    summary = minidense.summarize(runs, baseline="levers off")
    return runs, summary[summary["kind"] == "difference"].iloc[0]


def _relative_rates(name):
    """Images/s of each '-'/'+' ablation row over the row with every lever, in a speed record."""
    rate = {row["configuration"]: row["images_per_sec"] for row in _record(name)["ablation"]}
    every = rate["minidense, all levers (probed defaults)"]
    return {row: r / every for row, r in rate.items() if row[:2] in ("- ", "+ ")}


def test_bf16_costs_about_0_9_points_on_2000_training_images_every_seed():
    runs, diff = _lever_accuracy("speed-accuracy-cpu-2000.json")
    per_seed = runs.pivot(index="seed", columns="variant", values="test_acc")
    assert (per_seed["levers on"] < per_seed["levers off"]).all()
    assert -0.010 < diff["mean"] < -0.008 and diff["ci_high"] < 0


def test_bf16_cost_is_not_detected_on_the_cpu_profiles_10000_images():
    _, diff = _lever_accuracy("speed-accuracy-cpu.json")
    assert diff["ci_low"] < 0 < diff["ci_high"]


def test_compiling_took_longer_than_the_cpu_training_and_then_ran_no_faster():
    rows = {row["configuration"]: row for row in _record("speed-cpu-avx512bf16-compile.json")["ablation"]}
    training_seconds = sum(record["seconds"] for record in _record("train-cpu.json")["records"])
    assert rows["+ torch.compile"]["first_step_seconds"] > training_seconds
    assert rows["+ torch.compile"]["images_per_sec"] < rows["minidense, all levers (probed defaults)"]["images_per_sec"]


def test_keeping_freed_memory_is_worth_more_in_fp32_than_in_bf16():
    fp32 = _relative_rates("speed-cpu-avx2-limited.json")["- keep freed memory"]
    for bf16_record in ("speed-cpu-avx512bf16.json", "speed-cpu-avx512bf16-compile.json"):
        assert fp32 < _relative_rates(bf16_record)["- keep freed memory"] < 1


def test_host_sync_costs_little_on_the_cpu():
    for name in ("speed-cpu-avx512bf16.json", "speed-cpu-avx2-limited.json", "speed-cpu-avx512bf16-compile.json"):
        assert 0.95 < _relative_rates(name)["+ host sync every step"] < 1.05


def test_a_larger_cpu_evaluation_batch_is_slower_as_malloc_comes_and_wins_little_with_memory_kept():
    for name in ("speed-cpu-avx512bf16.json", "speed-cpu-avx2-limited.json", "speed-cpu-avx512bf16-compile.json"):
        rates, size = _record(name)["evaluation_images_per_sec"], _record(name)["settings"]["batch_size"]
        assert rates[f"eval, batch {4 * size}, malloc as it comes"] < rates[f"eval, batch {size}, malloc as it comes"]
        assert rates[f"eval, batch {4 * size}, memory kept"] < 1.1 * rates[f"eval, batch {size}, memory kept"]


def test_some_fp32_step_beats_the_fp32_matmul_limit():
    fractions = [row["fraction_of_limit"] for name in ("speed-cpu-avx512bf16.json", "speed-cpu-avx2-limited.json",
                                                       "speed-cpu-avx512bf16-compile.json")
                 for row in _record(name)["ablation"] if row["precision"] == "fp32"]
    assert max(fractions) > 1


# --- training and training-well: the short-budget fixes, the ablation, the full-budget headline ---

def _comparison(folder):
    import pandas as pd

    return pd.read_csv(RESULTS / folder / "results.csv")


def _by_seed(table, column="test_acc"):
    return table.pivot(index="seed", columns="variant", values=column)


def test_each_short_budget_fix_beats_d2l_in_every_seed():
    by_seed = _by_seed(_comparison("short-budget-recipes-cpu"))
    d2l = by_seed.pop("precise_bn=0 schedule=none")
    assert by_seed.gt(d2l, axis=0).all().all()


def test_precise_bn_changes_no_training_metric():
    table = _comparison("short-budget-recipes-cpu")
    for schedule in ("none", "onecycle"):
        for column in ("train_loss", "train_acc"):
            by_seed = _by_seed(table, column)
            assert by_seed[f"precise_bn=0 schedule={schedule}"].equals(by_seed[f"precise_bn=20 schedule={schedule}"])


def _says(table, baseline, variant):
    summary = minidense.summarize(table, baseline=baseline)
    differences = minidense.read_differences(summary).set_index("variant")
    return differences.loc[f"{variant} - {baseline}", "says"]


def test_no_short_budget_fix_is_told_apart_from_d2l_and_precise_bn_adds_nothing_after_one_cycle():
    table = _comparison("short-budget-recipes-cpu")
    for fix in ("precise_bn=20 schedule=none", "precise_bn=0 schedule=onecycle", "precise_bn=20 schedule=onecycle"):
        assert _says(table, "precise_bn=0 schedule=none", fix).startswith("not told apart")
    annealed = table[table["variant"].str.endswith("onecycle")]
    assert _says(annealed, "precise_bn=0 schedule=onecycle", "precise_bn=20 schedule=onecycle").startswith("not told")


def test_on_the_cpu_budget_the_short_recipe_beats_the_book_recipe_and_shifts_cost_accuracy():
    table = _comparison("ablation-cpu")
    assert _says(table, "label_smoothing=0.1", "recipe=short") == "recipe=short higher than label_smoothing=0.1"
    assert _says(table, "label_smoothing=0.1", "translate=0") == "translate=0 higher than label_smoothing=0.1"
    for variant in ("label_smoothing=0.0", "flip=False"):
        assert _says(table, "label_smoothing=0.1", variant).startswith("not told apart")


def test_on_the_full_budget_the_book_recipe_beats_d2l_in_every_seed():
    by_seed = _by_seed(_comparison("compare-full"))
    assert (by_seed["recipe=book"] > by_seed["recipe=d2l"]).all()
    assert sorted(by_seed.index) == [0, 1, 2, 3]


def test_the_average_of_the_weights_adds_nothing_under_one_cycle_and_tta_adds_a_little():
    book_cpu = _comparison("ablation-cpu").query("variant == 'label_smoothing=0.1'")
    book_full = _comparison("compare-full").query("variant == 'recipe=book'")
    for runs in (book_cpu, book_full):
        ways = minidense.by_evaluation(runs)
        assert _says(ways, "last weights", "averaged weights").startswith("not told apart")
        assert _says(ways, "last weights", "last weights + TTA") == "last weights + TTA higher than last weights"


def test_d2l_published_accuracy_lies_inside_the_interval_of_d2l_recipe_over_the_recorded_seeds():
    d2l = _comparison("compare-full").query("variant == 'recipe=d2l'")
    spread = minidense.summarize(d2l).iloc[0]
    assert spread["ci_low"] <= 0.880 <= spread["ci_high"]


def test_full_budget_max_pooling_was_never_lower_than_average_pooling():
    per_seed = _pooling_full().pivot(index="seed", columns="pool", values="test_acc")
    assert (per_seed["max"] >= per_seed["avg"]).all()


def test_the_fully_trained_network_confuses_the_upper_body_garments_most():
    counts = torch.tensor(_record("trained-full.json")["confusion"])
    off_diagonal = counts - torch.diag(torch.diag(counts))
    upper_body = {minidense.CLASS_NAMES.index(name) for name in ("t-shirt", "pullover", "coat", "shirt")}
    for index in off_diagonal.flatten().topk(3).indices.tolist():
        assert set(divmod(index, 10)) <= upper_body
