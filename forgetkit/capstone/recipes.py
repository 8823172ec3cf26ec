"""Targets a specialist must meet, and recipes ``{"method", "strength", "steps"}`` that meet them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

from ..checks import check_int, check_number
from .methods import METHODS, check_method
from .results import Results
from .run import run_comparison
from .scenario import Settings


@dataclass(frozen=True)
class Targets:
    """What the specialist must achieve: forgetting at most ``max_forgetting`` AND learning at least
    ``min_learning`` (both fractions, e.g. 0.15 = a 15% rise of the general loss)."""

    max_forgetting: float = 0.25  # lesson 09's hospital: at most a 25% rise of the general loss
    min_learning: float = 0.45  # and at least 45% of the clinical loss gone

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_forgetting", check_number("max_forgetting", self.max_forgetting))
        object.__setattr__(self, "min_learning", check_number("min_learning", self.min_learning, high=1.0))

    def failures(self, forgetting: float, learning: float) -> list[str]:
        """The targets a recipe with these numbers misses, in words (empty when it meets both)."""
        missed = []
        if forgetting > self.max_forgetting:
            missed.append(f"retention target missed: the general loss rose {100 * forgetting:.1f}%, "
                          f"more than the allowed {100 * self.max_forgetting:.0f}%")
        if learning < self.min_learning:
            missed.append(f"learning target missed: the domain loss fell {100 * learning:.1f}%, "
                          f"less than the required {100 * self.min_learning:.0f}%")
        return missed


def check_recipe_format(recipe: object) -> tuple[str, float, int]:
    """``(method, strength, steps)`` from a recipe dict ``{"method", "strength", "steps"}``; clear errors otherwise."""
    if not isinstance(recipe, Mapping) or set(recipe) != {"method", "strength", "steps"}:
        raise ValueError('a recipe must be a dict with exactly the keys "method", "strength" and "steps", '
                         f"got {recipe!r}")
    method = check_method(recipe["method"]).name
    strength = METHODS[method].check(recipe["strength"])
    return method, strength, check_int("steps", recipe["steps"], low=1)


def evaluate_recipe(recipe: Mapping, results: Results, progress: bool | None = None) -> dict:
    """The summary entry (means and stds over ``results.seeds``) of a recipe.

    Read from ``results`` when the recipe was part of the comparison, else measured now with a
    quick run under the same settings and seeds (steps may exceed the comparison's).
    """
    method, strength, steps = check_recipe_format(recipe)
    entry = results.lookup(method, strength, steps)
    if entry is not None:
        return entry
    settings = Settings(**{**asdict(results.settings), "steps": steps, "checkpoints": (steps,)})
    quick = run_comparison({method: [strength]}, results.seeds, settings, base_seed=results.base_seed,
                           progress=progress)
    return quick.summary()[0]


def target_margin(entry: Mapping, targets: Targets) -> float:
    """The smaller of the two slacks of a summary entry: min(max_forgetting - forgetting, learning - min_learning).

    Positive: the recipe meets both targets with at least that much room; negative: it misses one.
    """
    return min(targets.max_forgetting - entry["forgetting_mean"], entry["learning_mean"] - targets.min_learning)


def reference_recipe(results: Results, targets: Targets) -> dict:
    """The recipe in ``results`` with the largest ``target_margin``: it meets both targets with the most
    room on the means over seeds (if none meets them, it is the closest miss)."""
    best = max(results.summary(), key=lambda e: target_margin(e, targets))
    return {"method": best["method"], "strength": best["strength"], "steps": best["steps"]}
