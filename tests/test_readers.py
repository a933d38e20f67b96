"""minidense.readers: shapes, the time axis, the two encoders' sizes, and clear errors."""

import pytest
import torch

from minidense.ctc import BLANK
from minidense.readers import row_reader, time_steps
from minidense.tables import count_parameters


@pytest.mark.parametrize("backbone", ["densenet", "resnet"])
def test_a_reader_gives_scores_for_each_of_width_over_4_columns(backbone):
    reader = row_reader(backbone)
    assert reader(torch.rand(2, 1, 32, 160)).shape == (2, 40, BLANK + 1) == (2, time_steps(160), 11)


def test_the_two_encoders_are_of_similar_size():
    dense, res = (count_parameters(row_reader(b)) for b in ("densenet", "resnet"))
    assert abs(dense - res) / dense < 0.1


def test_each_column_sees_its_strip_of_the_row():
    torch.manual_seed(0)
    reader = row_reader("densenet", convs_per_block=(1, 1)).eval()
    X = torch.zeros(1, 1, 32, 160)
    before = reader(X)
    X[..., 152:] = 1.0  # only the right end changes
    changed = (reader(X) - before).abs().sum(-1)[0] > 1e-6
    assert not changed[:20].any() and changed[-1]


def test_too_few_time_steps_for_the_longest_row_is_a_clear_error():
    with pytest.raises(ValueError, match="widen the canvas to at least 36 pixels"):
        row_reader(max_items=5)(torch.rand(1, 1, 32, 32))


def test_an_unknown_backbone_is_a_clear_error():
    with pytest.raises(ValueError, match=r"backbone must be one of \['densenet', 'resnet'\], got 'vgg'"):
        row_reader("vgg")


def test_rows_too_low_for_the_stages_are_a_clear_error():
    with pytest.raises(ValueError, match="at least 32 pixels high, got 28"):
        row_reader()(torch.rand(1, 1, 28, 160))
    assert row_reader(convs_per_block=(2, 2))(torch.rand(1, 1, 28, 160)).shape == (1, 40, 11)


class _KnowsTheGarment(torch.nn.Module):
    """A stand-in classifier for the test garments of tests/test_rows.py: image i is filled with i + 1,
    its class is i % 10 (or always ``constant``)."""

    def __init__(self, constant=None):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.constant = constant

    def forward(self, X):
        index = (X.amax((1, 2, 3)) * 255).round().long() - 1
        classes = index % 10 if self.constant is None else torch.full_like(index, self.constant)
        return torch.nn.functional.one_hot(classes, 10).float()


def test_reading_with_true_boxes_scores_each_cut_out_garment():
    from minidense.readers import read_with_true_boxes
    from minidense.rows import GarmentRows

    n = 30
    images = (torch.arange(n, dtype=torch.uint8) + 1)[:, None, None].expand(n, 28, 28).clone()
    labels = torch.arange(n) % 10
    rows = GarmentRows(images, labels, batch_size=16, num_rows=40, seed=2, fresh=False)
    assert read_with_true_boxes(_KnowsTheGarment(), rows, resize=32) == (1.0, 0.0)
    y = torch.cat([y for _, y in rows])
    wrong = int(((y >= 0) & (y != 3)).sum())
    only_threes = int(((y == 3) | (y < 0)).all(1).sum())
    accuracy, item_error_rate = read_with_true_boxes(_KnowsTheGarment(constant=3), rows, resize=32)
    assert (accuracy, item_error_rate) == (only_threes / 40, wrong / int((y >= 0).sum()))
