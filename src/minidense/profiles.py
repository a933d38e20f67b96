"""Profiles: the budgets a chapter trains under (``full`` on a GPU, ``cpu`` on a laptop, ``smoke`` in CI)."""

import dataclasses
import os

import torch

__all__ = ["Profile", "PROFILES", "profile"]


@dataclasses.dataclass(frozen=True)
class Profile:
    """One training budget. A profile only supplies defaults; every function takes explicit arguments."""

    name: str
    num_epochs: int  # passes over the training images
    batch_size: int  # training images per step
    lr: float  # learning rate (the peak of the one-cycle schedule when that is on)
    num_train: int | None  # training images (None: all 60,000); subsets are fixed and class-balanced
    num_test: int | None  # test images (None: all 10,000)
    resize: int  # images are resized from 28x28 to resize x resize
    schedule: str | None  # learning-rate schedule: None (constant, d2l), "onecycle", "cosine", "step"
    precise_bn: int  # training batches that re-estimate the BN statistics before each evaluation (0: off)
    momentum: float  # SGD momentum (0: d2l's plain SGD)
    nesterov: bool  # Nesterov momentum
    weight_decay: float  # L2 penalty added by the optimiser

    def train_options(self):
        """The keyword options of :func:`minidense.train` this profile turns on."""
        return {
            "schedule": self.schedule,
            "precise_bn": self.precise_bn,
            "momentum": self.momentum,
            "nesterov": self.nesterov,
            "weight_decay": self.weight_decay,
            "profile": self.name,
        }

    def __str__(self):
        subset = lambda n, total: f"{total:,}" if n is None else f"{n:,}"  # noqa: E731
        recipe = "d2l (constant lr, plain SGD)" if self.schedule is None else (
            f"{self.schedule} schedule, momentum {self.momentum}"
            f"{' (Nesterov)' if self.nesterov else ''}, weight decay {self.weight_decay}, "
            f"BN re-estimated over {self.precise_bn} batches")
        return (f"profile {self.name!r}: {self.num_epochs} epochs, batch {self.batch_size}, lr {self.lr}, "
                f"{subset(self.num_train, 60000)} train / {subset(self.num_test, 10000)} test images "
                f"at {self.resize}x{self.resize}; recipe: {recipe}")


_SHORT_BUDGET = dict(schedule="onecycle", precise_bn=20, momentum=0.9, nesterov=True, weight_decay=5e-4)

PROFILES = {
    "full": Profile("full", num_epochs=10, batch_size=256, lr=0.1, num_train=None, num_test=None,
                    resize=96, schedule=None, precise_bn=0, momentum=0.0, nesterov=False, weight_decay=0.0),
    "cpu": Profile("cpu", num_epochs=2, batch_size=128, lr=0.05, num_train=10_000, num_test=2_000,
                   resize=96, **_SHORT_BUDGET),
    "smoke": Profile("smoke", num_epochs=1, batch_size=64, lr=0.05, num_train=512, num_test=256,
                     resize=96, **_SHORT_BUDGET),
}


def profile(name=None):
    """The settings of a profile.

    The name comes from the argument, else the ``MINIDENSE_PROFILE`` environment variable, else
    ``"full"`` when CUDA is available and ``"cpu"`` otherwise.
    """
    if name is None:
        name = os.environ.get("MINIDENSE_PROFILE") or ("full" if torch.cuda.is_available() else "cpu")
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)} "
                         "(argument or MINIDENSE_PROFILE)")
    return PROFILES[name]
