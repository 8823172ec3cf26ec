"""The table of a comparison (``Results``), and plain fine-tuning's forgetting at a given learning."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from ..metrics import value_at_learning
from .methods import METHODS
from .scenario import Scenario, Settings

METRICS = ("forgetting", "learning", "trainable", "seconds")
PLAIN_METHODS = ("naive", "low-lr")  # plain fine-tuning: only the learning rate and the number of steps differ


@dataclass(repr=False)
class Results:
    """The rows of a comparison (one per method, strength, seed and checkpoint step) and how they were made.

    Row keys: method, strength, seed, steps, general_loss, domain_loss, forgetting, learning,
    trainable, seconds (see ``forgetkit.capstone``).
    """

    rows: list[dict]
    settings: Settings
    seeds: list[int]
    base_seed: int | None = None
    scenarios: dict[int, Scenario] = field(default_factory=dict)  # by seed; not saved

    def __repr__(self) -> str:
        methods = list(dict.fromkeys(r["method"] for r in self.rows))
        return (f"Results({len(self.rows)} rows: {len(methods)} methods {methods}, seeds {self.seeds}, "
                f"checkpoints {self.settings.checkpoints})")

    def select(self, method: str | None = None, strength: float | None = None, steps: int | None = None) -> list[dict]:
        """The rows matching every given key."""
        return [r for r in self.rows if (method is None or r["method"] == method)
                and (strength is None or math.isclose(r["strength"], strength))
                and (steps is None or r["steps"] == steps)]

    def summary(self, steps: int | None = None) -> list[dict]:
        """Mean and standard deviation over seeds for every (method, strength, steps), in run order.

        Each entry: method, strength, steps, n (seeds) and ``<metric>_mean``/``<metric>_std`` for
        forgetting, learning, trainable, seconds. ``steps`` keeps one checkpoint only.
        """
        groups: dict[tuple, list[dict]] = {}
        for r in self.rows:
            if steps is None or r["steps"] == steps:
                groups.setdefault((r["method"], r["strength"], r["steps"]), []).append(r)
        out = []
        for (method, strength, step), rows in groups.items():
            entry = dict(method=method, strength=strength, steps=step, n=len(rows))
            for key in METRICS:
                values = np.array([r[key] for r in rows], dtype=float)
                entry[f"{key}_mean"] = float(values.mean())
                entry[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            out.append(entry)
        return out

    def lookup(self, method: str, strength: float, steps: int) -> dict | None:
        """The summary entry of one recipe, or None when it was not run."""
        for entry in self.summary(steps):
            if entry["method"] == method and math.isclose(entry["strength"], float(strength)):
                return entry
        return None

    def trajectories(self, methods: str | Sequence[str], seed: int | None = None) -> dict[tuple, tuple[list, list]]:
        """Every run of ``methods`` as (learning, forgetting) lists through its checkpoints, in step
        order, starting at (0, 0) before the first step: ``{(method, strength): (learning, forgetting)}``.
        Per seed if ``seed`` is given, else on the means over the seeds."""
        names = (methods,) if isinstance(methods, str) else tuple(methods)
        if seed is None:
            points = [(e["method"], e["strength"], e["steps"], e["learning_mean"], e["forgetting_mean"])
                      for e in self.summary()]
        else:
            points = [(r["method"], r["strength"], r["steps"], r["learning"], r["forgetting"])
                      for r in self.rows if r["seed"] == seed]
        curves: dict[tuple, tuple[list, list]] = {}
        for method, strength, _, learned, forgot in sorted(p for p in points if p[0] in names):
            learning, forgetting = curves.setdefault((method, strength), ([0.0], [0.0]))
            learning.append(learned)
            forgetting.append(forgot)
        return curves

    def forgetting_at(self, methods: str | Sequence[str], learning: float, seed: int | None = None) -> float:
        """The least forgetting that any run of ``methods`` (every strength) had when it first reached
        ``learning``: the method's frontier, read at matched learning.

        Each run is read along its checkpoints with ``fk.value_at_learning`` (linear interpolation
        between the checkpoints around the first crossing). Per seed if ``seed`` is given, else on
        the means over the seeds. NaN when no run of ``methods`` learned that much.
        """
        values = [value_at_learning(learned, forgot, learning)
                  for learned, forgot in self.trajectories(methods, seed).values()]
        reached = [v for v in values if not math.isnan(v)]
        return min(reached) if reached else math.nan

    def matched_forgetting(self, learning: float, methods: Sequence[str] | None = None) -> list[dict]:
        """Every method compared with plain fine-tuning at the same ``learning``, seed by seed.

        One entry per method (default: every method in the table but the plain ones), with lists
        over ``self.seeds``: ``forgetting`` (the method's frontier at ``learning``), ``plain``
        (plain fine-tuning's frontier there: naive and every low-lr run, at any number of steps) and
        ``ratios`` = forgetting / plain, below 1 when the method forgets less than simply training
        less would have. NaN where the method (or plain fine-tuning) never learned that much.
        """
        names = methods if methods is not None else [
            m for m in dict.fromkeys(r["method"] for r in self.rows) if m not in PLAIN_METHODS]
        plain = [self.forgetting_at(PLAIN_METHODS, learning, seed) for seed in self.seeds]
        out = []
        for name in names:
            forgot = [self.forgetting_at(name, learning, seed) for seed in self.seeds]
            out.append({"method": name, "learning": learning, "forgetting": forgot, "plain": plain,
                        "ratios": [f / p if p > 0 else math.nan for f, p in zip(forgot, plain)]})
        return out

    def to_markdown(self, steps: int | None = None) -> str:
        """A markdown leaderboard at ``steps`` (default: the last checkpoint), best retention first.

        Means +- standard deviations over the seeds; with one seed, just the numbers.
        """
        steps = self.settings.steps if steps is None else steps
        entries = sorted(self.summary(steps), key=lambda e: e["forgetting_mean"])
        one = len(self.seeds) == 1

        def show(e: dict, key: str, scale: float, digits: int) -> str:
            mean = f"{scale * e[f'{key}_mean']:.{digits}f}"
            return mean if one else f"{mean} +- {scale * e[f'{key}_std']:.{digits}f}"

        spread = "" if one else "mean +- std "
        lines = [f"Fine-tuning {steps} steps, {spread}over {len(self.seeds)} seed(s) {self.seeds}. "
                 "forgetting = rise of the general loss; learning = fall of the domain loss (both relative).",
                 "",
                 "| method | strength | forgetting (%) | learning (%) | trainable params | seconds |",
                 "|---|---|---:|---:|---:|---:|"]
        for e in entries:
            knob = METHODS[e["method"]].knob
            strength = "-" if knob == "-" else f"{knob} = {e['strength']:g}"
            lines.append(f"| {e['method']} | {strength} | {show(e, 'forgetting', 100, 1)} | {show(e, 'learning', 100, 1)} "
                         f"| {e['trainable_mean']:,.0f} | {show(e, 'seconds', 1, 2)} |")
        return "\n".join(lines) + "\n"

    def to_json(self) -> str:
        return json.dumps({"rows": self.rows, "settings": asdict(self.settings), "seeds": self.seeds,
                           "base_seed": self.base_seed})

    @classmethod
    def from_json(cls, text: str) -> Results:
        data = json.loads(text)
        settings = data["settings"]
        settings["checkpoints"] = tuple(settings["checkpoints"])
        return cls(data["rows"], Settings(**settings), data["seeds"], data["base_seed"])


def plain_forgetting_at(results: Results, learning: float, seed: int | None = None) -> float:
    """How much *plain* fine-tuning forgets once it has learned as much as ``learning``.

    Plain fine-tuning is every ``naive`` and ``low-lr`` run in ``results``: the least forgetting
    that a smaller learning rate or fewer steps achieve at that learning
    (``results.forgetting_at(PLAIN_METHODS, learning, seed)``). Per seed if ``seed`` is given, else
    on the means over seeds. Raises ValueError when no plain run learned that much (no fair
    comparison without extrapolating).
    """
    if not results.trajectories(PLAIN_METHODS, seed):
        raise ValueError("the results hold no plain fine-tuning run (naive or low-lr) for this seed")
    value = results.forgetting_at(PLAIN_METHODS, learning, seed)
    if math.isnan(value):
        best = max(max(learned) for learned, _ in results.trajectories(PLAIN_METHODS, seed).values())
        raise ValueError(f"plain fine-tuning never reached learning {learning:.3f} (at most {best:.3f})")
    return value
