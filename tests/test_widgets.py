"""Tests for forgetkit.widgets and the sweep-frontier plot it redraws."""

from __future__ import annotations

import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import forgetkit as fk  # noqa: E402
from forgetkit.plots import plot_sweep_frontier  # noqa: E402
from forgetkit.widgets import sweep_explorer  # noqa: E402

LRS, STEPS = [0.01, 0.1, 1.0], [10, 100]
NEW = np.array([[0.1, 0.3], [0.5, 0.8], [0.7, 0.9]])
OLD = np.array([[0.9, 0.85], [0.8, 0.6], [0.6, 0.4]])


def test_plot_sweep_frontier_marks_the_selected_run():
    ax = plot_sweep_frontier(NEW, OLD, LRS, STEPS, selected=(1, 0))
    assert "learning rate = 0.1, steps = 10" in ax.get_title() and "0.80" in ax.get_title()
    assert len(ax.get_legend().get_texts()) == 3 and ax.get_xlabel() and ax.get_ylabel()
    plt.close("all")


def test_plot_sweep_frontier_bad_input():
    with pytest.raises(ValueError, match="shape"):
        plot_sweep_frontier(NEW[:2], OLD, LRS, STEPS)
    with pytest.raises(ValueError, match="selected"):
        plot_sweep_frontier(NEW, OLD, LRS, STEPS, selected=(3, 0))
    plt.close("all")


def test_sweep_explorer_redraws_quickly():
    explorer = sweep_explorer(NEW, OLD, LRS, STEPS)
    row, col = explorer.children[:2]
    assert row.value == 0.1 and col.value == 100  # starts in the middle of each list
    start = time.perf_counter()
    row.value, col.value = 1.0, 100
    explorer.update()
    assert time.perf_counter() - start < 5.0  # a redraw, not a recomputation (generous for a busy CI machine)
    plt.close("all")


def test_sweep_explorer_bad_input():
    with pytest.raises(ValueError, match="shape"):
        sweep_explorer(NEW, OLD[:, :1], LRS, STEPS)
    with pytest.raises(ValueError, match="non-empty"):
        sweep_explorer(np.zeros((0, 2)), np.zeros((0, 2)), [], STEPS)


def test_widgets_module_is_exported():
    assert fk.widgets.sweep_explorer is sweep_explorer


def test_accuracy_matrix_explorer_redraws_and_handles_a_diverged_run():
    from forgetkit.widgets import accuracy_matrix_explorer

    R = np.array([[0.9, 0.1], [0.5, 0.95]])
    explorer = accuracy_matrix_explorer([R, None, R * 0.5], [1.0, 10.0, 100.0], name="lambda")
    slider = explorer.children[0]
    assert slider.value == 10.0  # the middle value: the diverged run draws a message, not an error
    start = time.perf_counter()
    for value in (1.0, 100.0):
        slider.value = value
        explorer.update()
    assert time.perf_counter() - start < 5.0
    plt.close("all")
    with pytest.raises(ValueError, match="one matrix per value"):
        accuracy_matrix_explorer([R], [1.0, 2.0])
