"""minidense.rows: rows of garments, their labels and positions, seeded like the library's shuffling."""

import pytest
import torch

from minidense.rows import ITEM_SIZE, PAD_LABEL, GarmentRows, compose_rows, draw_rows


def _garments(n=30):
    """``n`` distinct 28x28 'garments': image i is filled with the value i + 1, its label i % 10."""
    images = (torch.arange(n, dtype=torch.uint8) + 1)[:, None, None].expand(n, ITEM_SIZE, ITEM_SIZE).clone()
    return images, torch.arange(n) % 10


def test_each_garment_lands_whole_where_it_was_drawn_and_the_label_reads_left_to_right():
    images, labels = _garments()
    counts, picks, xs, ys = draw_rows(200, len(images), 5, 32, 160, torch.Generator().manual_seed(0))
    X, y = compose_rows(images, labels, counts, picks, xs, ys, 32, 160)
    assert X.shape == (200, 1, 32, 160) and X.dtype == torch.float32 and y.shape == (200, 5)
    pixels = (X[:, 0] * 255).round().long()
    for r in range(200):
        n = int(counts[r])
        assert 1 <= n <= 5
        assert y[r, :n].tolist() == labels[picks[r, :n]].tolist() and (y[r, n:] == PAD_LABEL).all()
        lefts = xs[r, :n].tolist()
        assert lefts == sorted(lefts) and all(b - a >= ITEM_SIZE for a, b in zip(lefts, lefts[1:]))
        assert lefts[0] >= 0 and lefts[-1] + ITEM_SIZE <= 160
        for slot in range(n):
            x, top = int(xs[r, slot]), int(ys[r, slot])
            assert (pixels[r, top:top + ITEM_SIZE, x:x + ITEM_SIZE] == int(picks[r, slot]) + 1).all()
        assert (pixels[r] > 0).sum() == n * ITEM_SIZE * ITEM_SIZE  # nothing else on the canvas


def test_counts_cover_one_to_max_items_and_offsets_stay_on_the_canvas():
    counts, _, _, ys = draw_rows(2000, 10, 4, 34, 140, torch.Generator().manual_seed(1))
    assert set(counts.tolist()) == {1, 2, 3, 4}
    assert ys.min() >= 0 and ys.max() == 34 - ITEM_SIZE


def test_epochs_are_seeded_and_a_resumed_pass_sees_the_same_rows():
    images, labels = _garments()
    rows = GarmentRows(images, labels, batch_size=16, num_rows=40, seed=3)
    first, second = [torch.cat([y for _, y in rows]) for _ in range(2)]
    assert not torch.equal(first, second)  # a new epoch, new rows
    again = GarmentRows(images, labels, batch_size=7, num_rows=40, seed=3)
    again.set_epoch(1)
    assert torch.equal(torch.cat([y for _, y in again]), second)  # another batch size, same rows
    other_seed = GarmentRows(images, labels, batch_size=16, num_rows=40, seed=4)
    assert not torch.equal(torch.cat([y for _, y in other_seed]), first)


def test_test_rows_are_the_same_on_every_pass():
    images, labels = _garments()
    rows = GarmentRows(images, labels, batch_size=16, num_rows=40, seed=3, fresh=False)
    first, second = [torch.cat([X for X, _ in rows]) for _ in range(2)]
    assert torch.equal(first, second) and len(rows) == 3


def test_rows_use_only_their_own_split():
    images, labels = _garments(20)
    train = GarmentRows(images[:10], labels[:10], batch_size=50, num_rows=50, max_items=5, seed=0)
    X, _ = next(iter(train))
    values = set((X * 255).round().long().unique().tolist()) - {0}
    assert values <= set(range(1, 11))  # images 0..9 only (filled with 1..10)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"max_items": 6, "width": 160}, "at least 168 pixels wide"),
    ({"height": 20}, "at least 28 pixels high"),
    ({"max_items": 0}, "max_items must be a positive integer"),
])
def test_a_row_that_cannot_fit_the_canvas_is_a_clear_error(kwargs, message):
    images, labels = _garments()
    with pytest.raises(ValueError, match=message):
        GarmentRows(images, labels, batch_size=8, num_rows=8, **kwargs)


def test_images_of_another_size_are_a_clear_error():
    with pytest.raises(ValueError, match=r"\(N, 28, 28\)"):
        GarmentRows(torch.zeros(4, 96, 96, dtype=torch.uint8), torch.zeros(4), batch_size=2, num_rows=2)


def test_load_rows_composes_training_rows_from_training_images_and_test_rows_from_test_images(data_root):
    from minidense.data import read_fashion_mnist
    from minidense.rows import load_rows

    train_rows, test_rows = load_rows(32, num_train=100, num_test=50, root=data_root, device="cpu", seed=1)
    assert (train_rows.num_rows, test_rows.num_rows, len(test_rows)) == (100, 50, 2)
    assert (train_rows.fresh, test_rows.fresh) == (True, False)
    train_images, _ = read_fashion_mnist("train", data_root)
    test_images, _ = read_fashion_mnist("test", data_root)
    assert all(any(torch.equal(image, other) for other in train_images[:1000]) for image in train_rows.images)
    assert all(any(torch.equal(image, other) for other in test_images[:1000]) for image in test_rows.images)


def test_boxes_cut_each_garment_out_of_its_row_in_order():
    images, labels = _garments()
    rows = GarmentRows(images, labels, batch_size=16, num_rows=40, seed=5, fresh=False)
    counts, picks, _, _ = rows.draws(0)
    cut = torch.cat([b for _, _, b in rows.with_boxes()])
    expected = torch.cat([picks[r, :n] for r, n in enumerate(counts.tolist())])
    assert cut.shape == (int(counts.sum()), 1, ITEM_SIZE, ITEM_SIZE)
    assert torch.equal((cut * 255).round().long().amax((1, 2, 3)), expected + 1)
    assert torch.equal((cut * 255).round().long().amin((1, 2, 3)), expected + 1)  # whole garments, nothing else
