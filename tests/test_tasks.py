"""minidense.tasks: the garment task is d2l's cross-entropy; the rows task trains and scores readers with CTC."""

import pytest
import torch
from torch.nn import functional as F

import minidense
from minidense.ctc import greedy_decode, row_scores
from minidense.readers import row_reader
from minidense.rows import GarmentRows
from minidense.tasks import TASKS, task_of


def test_the_garment_task_is_cross_entropy_and_the_arg_max():
    torch.manual_seed(0)
    logits, y = torch.randn(16, 10), torch.randint(0, 10, (16,))
    task = TASKS["garment"]
    torch.testing.assert_close(task.loss(logits, y, 0.1), F.cross_entropy(logits, y, label_smoothing=0.1))
    assert task.count_correct(logits, y).item() == sum(int(a == b) for a, b in zip(logits.argmax(1), y))
    assert task_of([]) is task


@pytest.fixture
def row_data(data_root):
    """Rows from 2,000 training and 1,000 test images, batch 32."""
    images, labels = minidense.data.read_fashion_mnist("train", data_root)
    test_images, test_labels = minidense.data.read_fashion_mnist("test", data_root)
    train_rows = GarmentRows(images[:2000], labels[:2000], batch_size=32, num_rows=256, seed=0)
    test_rows = GarmentRows(test_images[:1000], test_labels[:1000], batch_size=32, num_rows=96, fresh=False)
    return train_rows, test_rows


@pytest.mark.slow
def test_a_reader_learns_rows_and_its_accuracy_is_rows_read_whole(row_data):
    train_rows, test_rows = row_data
    torch.manual_seed(0)
    reader = row_reader(convs_per_block=(2, 2))
    history = minidense.train(reader, train_rows, test_rows, 3, recipe=minidense.recipe("short"), verbose=False)
    losses = [record["train_loss"] for record in history.records]
    assert losses[-1] < losses[0] / 2  # CTC's loss falls from its start (tens) within three short epochs
    exact = sum(row_scores(greedy_decode(reader(X)), y)[0] for X, y in test_rows)
    assert history.records[-1]["test_acc"] == exact / test_rows.num_rows
    levers = minidense.Levers(eval_batch_size=50)  # re-cut batches: the same rows, the same accuracy
    assert minidense.evaluate_accuracy(reader, test_rows, levers=levers) == exact / test_rows.num_rows


@pytest.mark.parametrize("recipe", ["book", "d2l"])
def test_the_rows_task_refuses_what_reads_a_row_backwards_or_assumes_one_class(row_data, recipe):
    train_rows, test_rows = row_data
    if recipe == "d2l":
        minidense.tasks.TASKS["rows"].check(minidense.recipe("d2l"))  # plain SGD: nothing to refuse
        return
    with pytest.raises(ValueError, match=r"'rows' task cannot use label_smoothing .*translate .*flip .*tta"):
        minidense.train(row_reader(), train_rows, test_rows, 1, recipe=minidense.recipe("book"))


def test_a_network_is_tested_on_the_task_it_learns(row_data, tiny_data):
    train_rows, _ = row_data
    _, test_images = tiny_data
    with pytest.raises(ValueError, match="train_iter serves the 'rows' task and test_iter the 'garment' task"):
        minidense.train(row_reader(), train_rows, test_images, 1, 0.1)


def test_the_schema_names_the_tasks_and_backbones_the_library_has():
    from minidense import options, readers

    assert tuple(TASKS) == options.TASKS and options.BACKBONES == readers.BACKBONES


def test_backbone_and_max_items_are_settings_of_the_rows_task():
    from minidense.options import Network

    assert Network(task="rows", backbone="resnet", max_items=3).backbone == "resnet"
    with pytest.raises(ValueError, match="settings of the rows task"):
        Network(backbone="resnet")
    with pytest.raises(ValueError, match="backbone must be one of densenet, resnet, got 'vgg'"):
        Network(task="rows", backbone="vgg")
    with pytest.raises(ValueError, match="task must be one of garment, rows"):
        Network(task="words")


def test_the_runner_builds_a_reader_for_the_rows_task_and_checks_before_training(data_root):
    from minidense.experiments import FashionMNISTRun

    run = FashionMNISTRun("smoke", device="cpu", root=data_root)
    reader = run.build({"task": "rows", "backbone": "resnet"}, seed=0)
    assert reader(torch.rand(2, 1, 32, 160)).shape == (2, 40, 11)
    train_rows, test_rows = run.data({"task": "rows", "max_items": 3}, seed=0)
    assert isinstance(train_rows, GarmentRows) and train_rows.max_items == 3 and not test_rows.fresh
    assert run.key({"task": "rows"}, 0) != run.key({}, 0) == run.key({"task": "garment"}, 0)
    with pytest.raises(ValueError, match="at least 168 pixels wide"):
        run.check({"task": "rows", "max_items": 6})
    with pytest.raises(ValueError, match="cannot use label_smoothing"):
        run.check({"task": "rows", "recipe": "book"})
