"""A training run's checkpoint: what is saved after every epoch, what a resume needs, how it is restored.

One :class:`Checkpoint` owns the file's format. It holds the model, the optimiser, the schedule and
the averaged weights (:class:`minidense.training.Optimisation`), the RNG states, the history, and
what the run resuming from it must agree on: the recipe and, under a schedule, what fixes the
schedule's length (at a constant lr more epochs simply train on). A change is refused, never
silently ignored: the saved optimiser state would otherwise win over a new lr, momentum or
Nesterov, and a one-cycle schedule cannot be stretched after the fact.
"""

import dataclasses
from pathlib import Path

import torch

from minidense._checks import check_state_dict_fits
from minidense.files import atomic_write, check_writable
from minidense.history import History

__all__ = ["Checkpoint"]

SCHEDULE_LENGTH = ("num_epochs", "steps_per_epoch")


def _rng_states():
    states = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states):
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class Checkpoint:
    """The checkpoint file of one run.

    Args:
        path: the file (checked for writing now, before any training).
        recipe: the run's :class:`minidense.Recipe`.
        run: ``{"num_epochs", "steps_per_epoch", ...}``: the run's shape, of which a resume under a
            schedule must keep :data:`SCHEDULE_LENGTH`.
    """

    # Every entry of the file (``scheduler`` and ``ema`` are None when the recipe has none, ``scaler``
    # outside fp16), and the entries a resume needs: all but the averaged weights, which only a recipe
    # with an average reads, and the gradient scaler, which a checkpoint saved before fp16 joined lacks.
    FORMAT = ("epoch", "model", "optimizer", "scheduler", "ema", "scaler", "rng", "history", "recipe", "run")
    NEEDED = tuple(key for key in FORMAT if key not in ("ema", "scaler"))

    def __init__(self, path, recipe, run):
        self.path = Path(path)
        self.recipe = dataclasses.asdict(recipe)
        self.run = dict(run)
        check_writable(self.path)

    def exists(self):
        return self.path.exists()

    def save(self, epoch, net, optimisation, history):
        """Write the state after ``epoch`` epochs, atomically: an interruption never leaves half a checkpoint."""
        state = {"epoch": epoch, "model": net.state_dict(), **optimisation.state_dict(), "rng": _rng_states(),
                 "history": history.to_dict(), "recipe": self.recipe, "run": self.run}
        atomic_write(self.path, lambda tmp: torch.save(state, tmp))

    def restore(self, net, optimisation):
        """Load the saved state into ``net``, ``optimisation`` and the RNGs; returns ``(epoch, history)``."""
        state = self._load(net)
        net.load_state_dict(state["model"])
        optimisation.load_state_dict(state)
        _set_rng_states(state["rng"])
        return state["epoch"], History.from_dict(state["history"])

    def _load(self, net):
        """The saved state, after checking that it is a checkpoint that fits ``net`` and this run."""
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=False)
        except Exception as error:
            raise ValueError(f"{self.path} is not a minidense checkpoint ({error})") from error
        if not isinstance(state, dict) or any(key not in state for key in self.NEEDED):
            have = ", ".join(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"{self.path} is not a minidense checkpoint of this version: it needs "
                             f"{', '.join(self.NEEDED)}; it has {have}")
        check_state_dict_fits(net, state["model"], source=f"checkpoint {self.path}")
        differences = self._differences(state)
        if differences:
            raise ValueError(f"cannot resume from {self.path}: the run has changed ({'; '.join(differences)}). "
                             "Resume with the checkpoint's settings, or start afresh with another checkpoint file")
        return state

    def _differences(self, state):
        differences = [f"{key}: checkpoint {state['recipe'].get(key)!r}, now {value!r}"
                       for key, value in self.recipe.items() if state["recipe"].get(key) != value]
        if self.recipe["schedule"] is not None:
            differences += [f"{key}: checkpoint {state['run'].get(key)!r}, now {self.run[key]!r} (the "
                            f"{self.recipe['schedule']} schedule is laid out over the whole run)"
                            for key in SCHEDULE_LENGTH if state["run"].get(key) != self.run[key]]
        return differences
