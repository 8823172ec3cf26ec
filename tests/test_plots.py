"""Smoke tests of the core plots: each returns its Axes, titled and labelled; bad input raises."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.colors import to_hex

from forgetkit import plots


@pytest.fixture(autouse=True)
def _headless_and_closed():
    matplotlib.use("Agg")  # no windows, whatever the machine
    yield
    plt.close("all")


def test_colours() -> None:
    assert plots.OLD_COLOR != plots.NEW_COLOR
    assert plots.method_color("EWC") == plots.method_color("ewc") == plots.METHOD_COLORS["ewc"]
    assert plots.method_color("something new") == "#444444"
    capstone_methods = ["naive", "low-lr", "l2-sp", "ewc", "freeze", "head-only", "adapter", "lora", "replay", "wise-ft"]
    colours = [plots.method_color(m) for m in capstone_methods]
    assert len(set(colours)) == len(colours) and "#444444" not in colours  # each its own, none the fallback grey


def test_plot_accuracy_matrix() -> None:
    R = np.array([[0.9, 0.1], [0.4, 0.95]])
    ax = plots.plot_accuracy_matrix(R, task_names=["A", "B"])
    assert isinstance(ax, Axes) and ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert [t.get_text() for t in ax.texts] == ["0.90", "0.10", "0.40", "0.95"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["A", "B"]
    _, given = plt.subplots()
    assert plots.plot_accuracy_matrix(R.tolist(), ax=given, title="mine") is given
    assert given.get_title() == "mine"


@pytest.mark.parametrize("R", [np.zeros(3), np.zeros((2, 3)), np.zeros((2, 2, 2))])
def test_plot_accuracy_matrix_bad_shape(R) -> None:
    with pytest.raises(ValueError, match="R must be a square matrix"):
        plots.plot_accuracy_matrix(R)


def test_plot_accuracy_matrix_wrong_number_of_names() -> None:
    with pytest.raises(ValueError, match="one name per task"):
        plots.plot_accuracy_matrix(np.eye(3), task_names=["a", "b"])


def test_plot_old_vs_new() -> None:
    ax = plots.plot_old_vs_new([0, 10, 20], [1.0, 1.5, 2.0], [3.0, 2.0, 1.0])
    assert isinstance(ax, Axes) and ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    old, new = ax.get_lines()
    assert to_hex(old.get_color()) == plots.OLD_COLOR and to_hex(new.get_color()) == plots.NEW_COLOR
    assert list(old.get_ydata()) == [1.0, 1.5, 2.0]
    with pytest.raises(ValueError, match="equal lengths"):
        plots.plot_old_vs_new([0, 1, 2], [1.0, 2.0], [1.0, 2.0, 3.0])


def test_plot_frontier() -> None:
    ax = plots.plot_frontier([0.5, 0.8], [0.9, 0.6], label="EWC", annotate=["a", "b"])
    assert isinstance(ax, Axes) and ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    (line,) = ax.get_lines()
    assert to_hex(line.get_color()) == plots.method_color("ewc")
    assert [t.get_text() for t in ax.texts] == ["a", "b"]
    assert plots.plot_frontier([0.5], [0.9], ax=ax, connect=False) is ax
    with pytest.raises(ValueError, match="equal lengths"):
        plots.plot_frontier([0.5, 0.8], [0.9])


def test_plot_scenarios() -> None:
    axes = plots.plot_scenarios({"class-incremental": "lesson 07"}, highlight="domain-incremental")
    assert len(axes) == 3 and all(isinstance(ax, Axes) for ax in axes)
    assert [ax.get_title() for ax in axes] == list(plots.SCENARIOS)
    texts = [t.get_text() for t in axes[2].texts]
    assert "lesson 07" in texts and "one head: 0-9" in texts
    assert "head 2: 5-9" in [t.get_text() for t in axes[0].texts]  # task-incremental: a head per task
    assert axes[1].spines["left"].get_linewidth() > axes[0].spines["left"].get_linewidth()
    _, given = plt.subplots(1, 3)
    assert plots.plot_scenarios(axes=given) == list(given)


def test_plot_scenarios_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown scenarios"):
        plots.plot_scenarios({"online": "lesson 99"})
    with pytest.raises(TypeError, match="map scenario names to strings"):
        plots.plot_scenarios({"task-incremental": 6})
    with pytest.raises(ValueError, match="highlight"):
        plots.plot_scenarios(highlight="task incremental")
    _, two = plt.subplots(1, 2)
    with pytest.raises(ValueError, match="three matplotlib Axes"):
        plots.plot_scenarios(axes=two)
