"""The table of a comparison (``Results``), and plain fine-tuning's forgetting at a given learning."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np

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

    def relative_forgetting(self, steps: int | None = None) -> list[dict]:
        """Every method other than plain fine-tuning at ``steps`` (default: the last checkpoint), with
        its forgetting relative to plain fine-tuning's *at the same learning*, seed by seed.

        Each entry is the summary entry (``learning_mean``, ``forgetting_mean`` ...) plus ``ratios``:
        one number per seed of ``self.seeds``, forgetting / ``plain_forgetting_at(self, learning,
        seed)``, below 1 when the method forgets less than plain fine-tuning did when it had learned
        as much. NaN where the method learned more than any plain run (no fair comparison).
        """
        steps = self.settings.steps if steps is None else steps
        out = []
        for entry in self.summary(steps):
            if entry["method"] in PLAIN_METHODS:
                continue
            rows = {r["seed"]: r for r in self.select(entry["method"], entry["strength"], steps)}
            ratios = []
            for seed in self.seeds:
                try:
                    plain = plain_forgetting_at(self, rows[seed]["learning"], seed)
                except ValueError:  # learned more than any plain run
                    plain = math.nan
                ratios.append(rows[seed]["forgetting"] / plain)
            out.append({**entry, "ratios": ratios})
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

    Every plain run in ``results`` (``naive`` and each ``low-lr`` strength) is a trajectory of
    (learning, forgetting) points through its checkpoints, starting at (0, 0) before the first
    step; each is interpolated linearly at ``learning`` and the least forgetting wins: the best
    that a smaller learning rate or fewer steps achieve "at comparable domain learning". Per seed
    if ``seed`` is given, else on the means over seeds. Raises ValueError when no plain run
    learned that much (no fair comparison without extrapolating).
    """
    if seed is None:
        entries = [(e["method"], e["strength"], e["learning_mean"], e["forgetting_mean"]) for e in results.summary()]
    else:
        entries = [(r["method"], r["strength"], r["learning"], r["forgetting"]) for r in results.rows if r["seed"] == seed]
    curves: dict[tuple, list[tuple[float, float]]] = {}
    for method, strength, learned, forgot in entries:
        if method in PLAIN_METHODS:
            curves.setdefault((method, strength), [(0.0, 0.0)]).append((learned, forgot))
    if not curves:
        raise ValueError("the results hold no plain fine-tuning run (naive or low-lr) for this seed")
    reachable = []
    for points in curves.values():
        points = sorted(points)
        if learning <= points[-1][0]:
            xs, ys = zip(*points)
            reachable.append(float(np.interp(learning, xs, ys)))
    if not reachable:
        best = max(max(p[0] for p in c) for c in curves.values())
        raise ValueError(f"plain fine-tuning never reached learning {learning:.3f} (at most {best:.3f})")
    return min(reachable)
