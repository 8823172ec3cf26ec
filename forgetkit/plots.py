"""Plots with one colour scheme for the whole course.

Old task (what may be forgotten) is always blue, new task (what is being learned) always orange;
methods keep the same colour in every lesson (``METHOD_COLORS``).
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

OLD_COLOR = "#1f77b4"  # blue: the old task / general knowledge
NEW_COLOR = "#ff7f0e"  # orange: the new task / the fine-tuning domain
METHOD_COLORS = {
    "naive": "#d62728",
    "full fine-tuning": "#d62728",
    "l2": "#8c564b",
    "l2-sp": "#e377c2",
    "ewc": "#2ca02c",
    "head-only": "#7f7f7f",
    "lp-ft": "#bcbd22",
    "adapter": "#17becf",
    "lora": "#9467bd",
    "replay": "#1f77b4",
    "a-gem": "#2ca02c",
    "wise-ft": "#ff7f0e",
}


def method_color(name: str) -> str:
    """The course's colour for a method name (case-insensitive), grey if it has none."""
    return METHOD_COLORS.get(name.lower(), "#444444")


def _axes(ax: Axes | None, figsize: tuple[float, float] = (5, 4)) -> Axes:
    return ax if ax is not None else plt.subplots(figsize=figsize)[1]


def plot_accuracy_matrix(R, ax: Axes | None = None, title: str = "Accuracy matrix R[i, j]",
                         task_names: Sequence[str] | None = None) -> Axes:
    """Heatmap of R (T x T) with each entry printed: rows = after training on task i."""
    R = np.asarray(R, dtype=float)
    if R.ndim != 2 or R.shape[0] != R.shape[1]:
        raise ValueError(f"R must be a square matrix, got shape {R.shape}")
    ax = _axes(ax)
    image = ax.imshow(R, vmin=0.0, vmax=1.0, cmap="viridis")
    T = len(R)
    names = list(task_names) if task_names is not None else [str(t) for t in range(T)]
    ax.set_xticks(range(T), names)
    ax.set_yticks(range(T), names)
    ax.set_xlabel("evaluated on task j")
    ax.set_ylabel("after training on task i")
    ax.set_title(title)
    for i in range(T):
        for j in range(T):
            ax.text(j, i, f"{R[i, j]:.2f}", ha="center", va="center",
                    color="white" if R[i, j] < 0.6 else "black", fontsize=8)
    plt.colorbar(image, ax=ax, fraction=0.046, label="accuracy")
    return ax


def plot_old_vs_new(steps: Sequence[float], old: Sequence[float], new: Sequence[float], ax: Axes | None = None,
                    ylabel: str = "loss (nats per character)", title: str = "Old task vs new task during fine-tuning",
                    old_label: str = "old task", new_label: str = "new task", xlabel: str = "fine-tuning step") -> Axes:
    """Two curves over training: the old task's metric (blue) and the new task's (orange)."""
    if not len(steps) == len(old) == len(new):
        raise ValueError(f"steps, old and new must have equal lengths, got {len(steps)}, {len(old)}, {len(new)}")
    ax = _axes(ax)
    ax.plot(steps, old, color=OLD_COLOR, marker="o", ms=3, label=old_label)
    ax.plot(steps, new, color=NEW_COLOR, marker="o", ms=3, label=new_label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    return ax


def plot_frontier(new: Sequence[float], old: Sequence[float], ax: Axes | None = None, label: str | None = None,
                  color: str | None = None, xlabel: str = "new-task accuracy", ylabel: str = "old-task accuracy",
                  title: str = "Stability-plasticity frontier", connect: bool = True, annotate: Sequence[str] | None = None) -> Axes:
    """Points (new, old) of several runs; up and right is better. ``connect`` joins them in order."""
    if len(new) != len(old):
        raise ValueError(f"new and old must have equal lengths, got {len(new)} and {len(old)}")
    ax = _axes(ax)
    color = color or (method_color(label) if label else None)
    ax.plot(new, old, "o-" if connect else "o", color=color, label=label, ms=5)
    if annotate is not None:
        for x, y, text in zip(new, old, annotate):
            ax.annotate(text, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if label:
        ax.legend()
    return ax
