"""Interactive explorers over PRECOMPUTED results: moving a slider only redraws a figure.

Every builder returns an ipywidgets object; put it last in a cell (or ``display`` it). Nothing is
trained or evaluated when a slider moves, so a redraw takes a fraction of a second.
"""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np

from .plots import plot_sweep_frontier


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
