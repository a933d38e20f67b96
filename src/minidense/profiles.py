"""Profiles: the budgets a chapter trains under (``full`` on a GPU, ``cpu`` on a laptop, ``smoke`` in CI)."""

import dataclasses
import os

import torch

from minidense.options import RECIPES, Budget

__all__ = ["Profile", "PROFILES", "profile"]


@dataclasses.dataclass(frozen=True)
class Profile(Budget):
    """A named budget, and the recipe it trains with (the fields are :class:`minidense.options.Budget`'s).
    A profile only supplies defaults; every function takes explicit arguments."""

    name: str = dataclasses.field(default=dataclasses.MISSING, kw_only=True)

    @property
    def lr(self):
        """The recipe's learning rate (the peak of its schedule, if it has one)."""
        return RECIPES[self.recipe].lr

    def __str__(self):
        train, test = self.images
        return (f"profile {self.name!r}: {self.num_epochs} epochs, batch {self.batch_size}, "
                f"{train:,} train / {test:,} test images at {self.resize}x{self.resize}; "
                f"recipe {self.recipe!r}: {RECIPES[self.recipe]}")


PROFILES = {
    "full": Profile(name="full", num_epochs=10, batch_size=256, num_train=None, num_test=None, resize=96,
                    recipe="d2l"),
    "cpu": Profile(name="cpu", num_epochs=2, batch_size=128, num_train=10_000, num_test=2_000, resize=96,
                   recipe="short"),
    "smoke": Profile(name="smoke", num_epochs=1, batch_size=64, num_train=512, num_test=256, resize=96,
                     recipe="short"),
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
