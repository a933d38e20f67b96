"""What a network is trained to do: the loss it minimises, what counts as right, what it predicts.

Two tasks, named by the batches a network learns from (their ``task`` attribute; batches without one
are garments):

- ``"garment"`` (:class:`minidense.data.FashionMNISTBatches`): one class per image. Logits
  ``(N, 10)``, labels ``(N,)``; cross-entropy; right when the arg-max is the label.
- ``"rows"`` (:class:`minidense.rows.GarmentRows`): a row of garments read left to right. Logits
  ``(N, T, 11)``, labels ``(N, max_items)`` padded with -1; CTC (:mod:`minidense.ctc`); right when the
  greedy reading is the whole label. Label smoothing, shifts, flips and flip TTA do not apply
  (:meth:`Task.check` says why).
"""

import dataclasses
from collections.abc import Callable

from torch.nn import functional as F

from minidense import ctc

__all__ = ["Task", "TASKS", "task_of"]


@dataclasses.dataclass(frozen=True)
class Task:
    """A task's loss ``(logits, y, label_smoothing) -> 0-d tensor``, its count of right answers
    ``(logits, y) -> int64 0-d tensor``, its predictions ``logits -> tensor``, and whether a mirror
    image keeps the label (``mirrors``)."""

    name: str
    loss: Callable
    count_correct: Callable
    predictions: Callable
    mirrors: bool

    def check(self, recipe):
        """Raise ``ValueError`` where ``recipe`` (a :class:`minidense.Recipe`) asks what this task cannot do."""
        if self.mirrors:
            return
        unsupported = {"label_smoothing": "is defined for one class per image", "translate": "acts on single "
                       "images (rows already place their garments at random)", "flip": "reads a row backwards",
                       "tta": "averages a row with its mirror image, which reads backwards"}
        asked = [f"{name} ({why})" for name, why in unsupported.items() if getattr(recipe, name)]
        if asked:
            raise ValueError(f"the {self.name!r} task cannot use {'; '.join(asked)}: set them off "
                             "(the 'short' recipe uses none of them)")


def _rows_loss(logits, y, label_smoothing=0.0):
    return ctc.ctc_loss(logits, y)


TASKS = {
    "garment": Task("garment", lambda logits, y, label_smoothing=0.0: F.cross_entropy(
        logits, y, label_smoothing=label_smoothing), lambda logits, y: (logits.argmax(dim=1) == y).sum(),
        lambda logits: logits.argmax(dim=1), mirrors=True),
    "rows": Task("rows", _rows_loss, ctc.rows_correct, ctc.greedy_decode, mirrors=False),
}


def task_of(batches):
    """The :class:`Task` of an iterable of batches: its ``task`` attribute, ``"garment"`` without one."""
    return TASKS[getattr(batches, "task", "garment")]
