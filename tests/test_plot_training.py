"""The training chapter's tools: predictions, the confusion matrix, image grids, runs side by side."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch

import minidense
from conftest import tiny_densenet
from minidense import plot
from minidense.history import History
from minidense.training import confusion_counts, predict


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_confusion_counts_of_a_hand_made_example():
    y_true = torch.tensor([0, 0, 1, 2, 2, 2])
    y_pred = torch.tensor([0, 1, 1, 2, 0, 2])
    expected = torch.tensor([[1, 1, 0],
                             [0, 1, 0],
                             [1, 0, 2]])
    assert torch.equal(confusion_counts(y_true, y_pred, num_classes=3), expected)


def test_confusion_counts_rejects_bad_input():
    with pytest.raises(ValueError, match="one class per example: got 3 and 2"):
        confusion_counts(torch.tensor([0, 1, 2]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="y_pred must hold classes 0..9"):
        confusion_counts(torch.tensor([0, 1]), torch.tensor([0, 10]))


def test_confusion_matrix_of_a_network_counts_every_test_image(tiny_data):
    train_iter, test_iter = tiny_data
    net = tiny_densenet()
    y_true, y_pred = predict(net, test_iter)
    counts = confusion_counts(y_true, y_pred)
    # 256 test images, class-balanced: 26 of classes 0-5, 25 of classes 6-9
    assert counts.sum() == test_iter.num_examples == 256
    assert counts.sum(dim=1).tolist() == [26] * 6 + [25] * 4
    # the diagonal is the number of correct predictions, counted another way
    assert counts.trace().item() == round(minidense.evaluate_accuracy(net, test_iter) * 256)
    assert torch.equal(y_true, test_iter.labels)


def test_predict_agrees_with_the_network_batch_by_batch(tiny_data):
    _, test_iter = tiny_data
    net = tiny_densenet().eval()
    _, y_pred = predict(net, test_iter)
    X, _ = next(iter(test_iter))
    with torch.no_grad():
        assert torch.equal(y_pred[:len(X)], net(X).argmax(dim=1))
    with pytest.raises(ValueError, match="no batches"):
        predict(net, [])


def test_confusion_matrix_plot_writes_every_count():
    y_true = torch.tensor([0, 0, 1, 2, 2, 2])
    y_pred = torch.tensor([0, 1, 1, 2, 0, 2])
    plot.confusion_matrix(y_true, y_pred, class_names=("a", "b", "c"))
    ax = plt.gcf().axes[0]
    assert [t.get_text() for t in ax.texts] == ["1", "1", "0", "0", "1", "0", "1", "0", "2"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]


def test_image_grid_titles_show_true_and_predicted_class_and_mark_mistakes():
    images = torch.rand(5, 1, 28, 28)
    plot.image_grid(images, labels=[0, 1, 2, 3, 9], predictions=[0, 1, 2, 3, 7], num_cols=3)
    axes = plt.gcf().axes
    assert len(axes) == 6  # 2 rows of 3, the last one empty
    titles = [ax.get_title() for ax in axes[:5]]
    assert titles[0] == "t-shirt\nt-shirt"
    assert titles[4] == "ankle boot\nsneaker"
    assert axes[4].title.get_color() == "tab:red" and axes[0].title.get_color() == "black"
    with pytest.raises(ValueError, match="one entry per image: 2 for 5 images"):
        plot.image_grid(images, labels=[0, 1])


def _history(test_accs):
    history = History(provenance={"device": "cpu"})
    for epoch, acc in enumerate(test_accs, 1):
        history.append(epoch=epoch, train_loss=1 / epoch, train_acc=acc, test_acc=acc,
                       examples_per_sec=100.0, seconds=1.0)
    return history


def test_histories_draws_one_line_per_run_in_each_panel():
    runs = {"a": _history([0.5, 0.7]), "b": _history([0.6, 0.8, 0.9])}
    plot.histories(runs)
    axes = plt.gcf().axes
    assert len(axes) == 2
    assert [len(ax.lines) for ax in axes] == [2, 2]
    assert list(axes[1].lines[1].get_ydata()) == [0.6, 0.8, 0.9]
    with pytest.raises(ValueError, match="unknown metric"):
        plot.histories(runs, metrics=("test_loss",))
