"""Profiles: the budgets a chapter trains under (``full`` on a GPU, ``cpu`` on a laptop, ``smoke`` in CI)."""

import dataclasses
import os

import torch

from minidense.options import RECIPES
from minidense.options import recipe as get_recipe

__all__ = ["Profile", "PROFILES", "profile"]


@dataclasses.dataclass(frozen=True)
class Profile:
    """One training budget, and the recipe it trains with. A profile only supplies defaults; every
    function takes explicit arguments."""

    name: str
    num_epochs: int  # passes over the training images
    batch_size: int  # training images per step
    num_train: int | None  # training images (None: all 60,000); subsets are fixed and class-balanced
    num_test: int | None  # test images (None: all 10,000)
    resize: int  # images are resized from 28x28 to resize x resize
    recipe: str  # the name of the recipe in minidense.options.RECIPES

    def __post_init__(self):
        get_recipe(self.recipe)  # an unknown name fails here

    @property
    def lr(self):
        """The recipe's learning rate (the peak of its schedule, if it has one)."""
        return RECIPES[self.recipe].lr

    def __str__(self):
        subset = lambda n, total: f"{total:,}" if n is None else f"{n:,}"
        return (f"profile {self.name!r}: {self.num_epochs} epochs, batch {self.batch_size}, "
                f"{subset(self.num_train, 60000)} train / {subset(self.num_test, 10000)} test images "
                f"at {self.resize}x{self.resize}; recipe {self.recipe!r}: {RECIPES[self.recipe]}")


PROFILES = {
    "full": Profile("full", num_epochs=10, batch_size=256, num_train=None, num_test=None, resize=96, recipe="d2l"),
    "cpu": Profile("cpu", num_epochs=2, batch_size=128, num_train=10_000, num_test=2_000, resize=96,
                   recipe="short"),
    "smoke": Profile("smoke", num_epochs=1, batch_size=64, num_train=512, num_test=256, resize=96, recipe="short"),
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
