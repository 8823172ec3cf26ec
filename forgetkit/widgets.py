"""Interactive explorers over PRECOMPUTED results: moving a slider only redraws a figure.

Every builder returns an ipywidgets object; put it last in a cell (or ``display`` it). Nothing is
trained or evaluated when a slider moves, so a redraw takes a fraction of a second.
"""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np

from .capstone import METHODS, Results, Targets
from .metrics import summarize
from .plots import (
    NEW_COLOR,
    OLD_COLOR,
    plot_accuracy_matrix,
    plot_method_frontier,
    plot_sweep_frontier,
)


def sweep_explorer(new, old, row_values: Sequence[float], col_values: Sequence[float],
                   row_name: str = "learning rate", col_name: str = "steps", **plot_kwargs) -> widgets.interactive:
    """Two sliders (one per hyperparameter) over a precomputed (R, C) sweep; each move redraws
    ``plot_sweep_frontier`` with the chosen run starred and its accuracies in the title."""
    new, old = np.asarray(new, dtype=float), np.asarray(old, dtype=float)
    row_values, col_values = list(row_values), list(col_values)
    if len(row_values) == 0 or len(col_values) == 0:
        raise ValueError("row_values and col_values must be non-empty")
    shape = (len(row_values), len(col_values))
    if new.shape != shape or old.shape != shape:
        raise ValueError(f"new and old must have shape {shape}, got {new.shape} and {old.shape}")

    def draw(row_value: float, col_value: float) -> None:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        selected = (row_values.index(row_value), col_values.index(col_value))
        plot_sweep_frontier(new, old, row_values, col_values, row_name, col_name, selected=selected, ax=ax, **plot_kwargs)
        plt.show()

    style = {"description_width": "initial"}
    row_slider = widgets.SelectionSlider(options=row_values, value=row_values[len(row_values) // 2],
                                         description=row_name, style=style, continuous_update=False)
    col_slider = widgets.SelectionSlider(options=col_values, value=col_values[len(col_values) // 2],
                                         description=col_name, style=style, continuous_update=False)
    return widgets.interactive(draw, row_value=row_slider, col_value=col_slider)


def recipe_explorer(results, targets=None) -> widgets.VBox:
    """Lesson 09's dashboard over a PRECOMPUTED ``forgetkit.capstone.Results``: pick a method, its
    strength and the number of steps; the frontier stars that recipe and a bar chart shows its
    forgetting and learning (mean +- std over seeds, one dot per seed) against ``targets``.
    """
    if not isinstance(results, Results):
        raise TypeError(f"results must be a forgetkit.capstone.Results, got {type(results).__name__}")
    targets = targets or Targets()
    summary = results.summary()
    if not summary:
        raise ValueError("results is empty: run a comparison first")
    methods = list(dict.fromkeys(e["method"] for e in summary))
    strengths = {m: sorted({e["strength"] for e in summary if e["method"] == m}) for m in methods}
    steps = sorted({e["steps"] for e in summary})
    style = {"description_width": "initial"}
    method_box = widgets.Dropdown(options=methods, value=methods[0], description="method", style=style)
    strength_box = widgets.SelectionSlider(options=strengths[methods[0]], description="strength", style=style,
                                           continuous_update=False)
    steps_box = widgets.SelectionSlider(options=steps, value=steps[-1], description="steps", style=style,
                                        continuous_update=False)

    def update_strengths(change) -> None:
        strength_box.options = strengths[change["new"]]
        knob = METHODS[change["new"]].knob
        strength_box.description = "strength" if knob == "-" else f"strength ({knob})"

    method_box.observe(update_strengths, names="value")

    def draw(method: str, strength: float, num_steps: int) -> None:
        if strength not in strengths[method]:  # the slider is being refilled for a new method
            return
        recipe = {"method": method, "strength": strength, "steps": num_steps}
        fig, (ax_frontier, ax_bars) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.6, 1]})
        plot_method_frontier(results, ax=ax_frontier, steps=num_steps, targets=targets, highlight=recipe,
                             title=f"Points: every method at {num_steps} steps; lines: each method's frontier")
        rows = results.select(method, strength, num_steps)
        entry = results.lookup(method, strength, num_steps)
        names = ["forgetting", "learning"]
        means = [100 * entry["forgetting_mean"], 100 * entry["learning_mean"]]
        stds = [100 * entry["forgetting_std"], 100 * entry["learning_std"]]
        ax_bars.bar(names, means, yerr=stds, color=[OLD_COLOR, NEW_COLOR], alpha=0.8, capsize=4)
        for k, key in enumerate(names):
            ax_bars.plot([k] * len(rows), [100 * r[key] for r in rows], "k.", ms=6)
        ax_bars.plot([-0.4, 0.4], [100 * targets.max_forgetting] * 2, "k--", lw=1)
        ax_bars.plot([0.6, 1.4], [100 * targets.min_learning] * 2, "k--", lw=1)
        missed = targets.failures(entry["forgetting_mean"], entry["learning_mean"])
        verdict = "meets both targets" if not missed else "misses: " + " and ".join(m.split(" target")[0] for m in missed)
        ax_bars.set_ylabel("% (dots: seeds, dashed: targets)")
        ax_bars.set_title(f"{method}, strength {strength:g}, {num_steps} steps\n{verdict}; "
                          f"{entry['trainable_mean']:,.0f} trainable, {entry['seconds_mean']:.2f} s", fontsize=9)
        ax_bars.grid(alpha=0.3, axis="y")
        plt.tight_layout()
        plt.show()

    out = widgets.interactive_output(draw, {"method": method_box, "strength": strength_box, "num_steps": steps_box})
    return widgets.VBox([widgets.HBox([method_box, strength_box, steps_box]), out])


def accuracy_matrix_explorer(matrices: Sequence, values: Sequence[float], name: str = "lambda",
                             title: str = "Accuracy matrix") -> widgets.interactive:
    """A slider over a PRECOMPUTED sweep of accuracy matrices: ``matrices[k]`` (T x T, or None for a
    run that diverged) belongs to ``values[k]``. Each move redraws ``plot_accuracy_matrix`` with that
    run's ACC, BWT and forgetting in the title (Lopez-Paz & Ranzato 2017; Chaudhry et al. 2018)."""
    values = list(values)
    if len(values) == 0 or len(matrices) != len(values):
        raise ValueError(f"need one matrix per value and at least one value, got {len(matrices)} matrices "
                         f"and {len(values)} values")
    arrays = [None if R is None else np.asarray(R, dtype=float) for R in matrices]

    def draw(value: float) -> None:
        R = arrays[values.index(value)]
        fig, ax = plt.subplots(figsize=(5.2, 4.2))
        if R is None:
            ax.text(0.5, 0.5, "diverged: no accuracy matrix", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            ax.set_title(f"{title}, {name} = {value:g}")
        else:
            s = summarize(R)
            plot_accuracy_matrix(R, ax=ax, title=f"{title}, {name} = {value:g}\nACC {s['ACC']:.2f}, "
                                 f"BWT {s['BWT']:+.2f}, forgetting {s['forgetting']:.2f}")
        plt.show()

    slider = widgets.SelectionSlider(options=values, value=values[len(values) // 2], description=name,
                                     style={"description_width": "initial"}, continuous_update=True)
    return widgets.interactive(draw, value=slider)
