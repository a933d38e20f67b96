"""The paper's four readings of Figure 5 as checks (minidense.reuse), on matrices a reader can check by hand."""

import math

import pytest
import torch

from minidense.reuse import as_matrix, chance_least_read, reuse_checks, reuse_verdicts

nan = math.nan


def block(columns):
    """A 3x3 feature-reuse matrix (2 layers + what follows) from its three columns, nan above."""
    first, second, after = columns
    return torch.tensor([[first, second[0], after[0]],
                         [nan, second[1], after[1]],
                         [nan, nan, after[2]]])


FLAT = block([1.0, (1.0, 1.0), (1.0, 1.0, 1.0)])
# source 0 read least by layer 2; the classifier's column rises 1 -> 2 -> 4
PAPER = [FLAT, block([1.0, (0.5, 1.0), (1.0, 2.0, 4.0)])]


def test_flat_columns_spread_and_a_flat_classifier_does_not_rise():
    found = reuse_checks([FLAT, FLAT])
    assert found["(a) layers spread"] == (2, 2, 1.0)
    assert found["(c) transition spreads"] == (1, 1, 1.0)
    assert found["(d) classifier on final maps"][:2] == (0, 2)


def test_a_transition_output_read_most_fails_b():
    found = reuse_checks([FLAT, block([1.0, (1.0, 0.9), (1.0, 1.0, 1.0)])])
    assert found["(b) transition read least"][:2] == (0, 1)


def test_the_papers_pattern_passes_b_and_d():
    found = reuse_checks(PAPER)
    assert found["(b) transition read least"] == (1, 1, 0.5)
    assert found["(d) classifier on final maps"] == (2, 2, 4.0)
    assert found["(a) layers spread"] == (2, 2, 0.5)  # layer 2 of block 2 reads source 0 at half


def test_json_matrices_with_none_read_like_tensors():
    as_json = [[None if math.isnan(v) else v for v in row] for row in PAPER[1].tolist()]
    torch.testing.assert_close(as_matrix(as_json), PAPER[1], equal_nan=True)
    assert reuse_checks([FLAT, as_json]) == reuse_checks(PAPER)


def test_verdict_table_says_holds_or_does_not():
    table = reuse_verdicts({"paper": PAPER})
    assert table.loc["paper", "(d) classifier on final maps"] == "2/2 (4.000): holds"


def test_chance_of_b_for_one_column_of_two_sources_is_one_half():
    assert chance_least_read(PAPER) == (0.5, 0.5)


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="at least two dense blocks"):
        reuse_checks([FLAT])
    with pytest.raises(ValueError, match="half must be in"):
        reuse_checks(PAPER, half=0)
