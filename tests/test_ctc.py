"""minidense.ctc: the loss equals the sum over alignments counted by hand, decoding matches a plain loop."""

import itertools
import math

import pytest
import torch

from minidense.ctc import BLANK, ctc_loss, edit_distance, greedy_decode, row_scores, rows_correct


def _reads(alignment):
    """What an alignment reads: repeats merged, then blanks dropped."""
    merged = [s for i, s in enumerate(alignment) if i == 0 or s != alignment[i - 1]]
    return [s for s in merged if s != BLANK]


@pytest.mark.parametrize("label", [[3], [3, 3], [1, 4], [2, 2, 7]])
def test_the_loss_is_minus_the_log_of_the_probability_of_every_alignment_that_reads_the_label(label):
    torch.manual_seed(len(label))
    T = 5
    logits = torch.randn(1, T, BLANK + 1, dtype=torch.float64)
    probs = logits.softmax(-1)[0]
    total = sum(math.prod(probs[t, s].item() for t, s in enumerate(a))
                for a in itertools.product(range(BLANK + 1), repeat=T) if _reads(list(a)) == label)
    y = torch.tensor([label])
    assert ctc_loss(logits, y).item() == pytest.approx(-math.log(total) / len(label), rel=1e-5)


def test_padding_is_ignored_and_the_mean_is_over_rows_of_per_garment_losses():
    torch.manual_seed(0)
    logits = torch.randn(2, 9, BLANK + 1)
    one = ctc_loss(logits[:1], torch.tensor([[1, 2]]))
    two = ctc_loss(logits[1:], torch.tensor([[5, 5, 6]]))
    both = ctc_loss(logits, torch.tensor([[1, 2, -1], [5, 5, 6]]))
    assert both.item() == pytest.approx((one.item() + two.item()) / 2, rel=1e-5)


def test_too_few_time_steps_for_the_label_is_a_clear_error():
    logits = torch.zeros(1, 3, BLANK + 1)
    with pytest.raises(ValueError, match="needs at least 4"):
        ctc_loss(logits, torch.tensor([[7, 7, 2]]))  # 7, blank, 7, 2
    ctc_loss(logits, torch.tensor([[7, 1, 2]]))  # three different garments fit in three steps


def test_a_wrong_output_shape_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\(N, T, 11\)"):
        greedy_decode(torch.zeros(2, 10))


def _greedy_by_hand(scores):
    return _reads([max(range(len(step)), key=step.__getitem__) for step in scores])


def test_greedy_decoding_matches_a_plain_loop():
    torch.manual_seed(1)
    logits = torch.randn(50, 12, BLANK + 1)
    logits[:, :, BLANK] += 1.0  # blanks common, as in a trained reader
    decoded = greedy_decode(logits).tolist()
    for row, scores in zip(decoded, logits.tolist()):
        expected = _greedy_by_hand(scores)
        assert row == expected + [-1] * (12 - len(expected))


def test_two_equal_neighbours_need_a_blank_between_them():
    one_hot = lambda symbols: torch.nn.functional.one_hot(torch.tensor([symbols]), BLANK + 1).float()
    assert greedy_decode(one_hot([3, 3, 3, 3]))[0, :2].tolist() == [3, -1]
    assert greedy_decode(one_hot([3, 3, BLANK, 3]))[0, :2].tolist() == [3, 3]


@pytest.mark.parametrize(("a", "b", "distance"), [
    ([], [], 0), ([1, 2, 3], [], 3), ([], [4], 1), ([1, 2, 3], [1, 3], 1), ([1, 2], [2, 1], 2),
    ([5, 5, 6], [5, 6, 6], 1), ([1, 2, 3, 4], [2, 3, 4, 5], 2),
])
def test_edit_distance_counts_insertions_deletions_and_substitutions(a, b, distance):
    assert edit_distance(a, b) == distance == edit_distance(b, a)


def test_row_scores_and_rows_correct():
    decoded = torch.tensor([[1, 2, -1], [3, -1, -1], [4, 4, 4]])
    y = torch.tensor([[1, 2], [3, 5], [4, 4]])
    assert row_scores(decoded, y) == (1, 2, 6)  # row 1 exact; row 2 misses a 5; row 3 has an extra 4
    one_hot = torch.nn.functional.one_hot(torch.tensor([[1, BLANK, 2], [3, 3, BLANK]]), BLANK + 1).float()
    assert rows_correct(one_hot, torch.tensor([[1, 2], [3, 5]])).item() == 1
