"""Plots with one colour scheme for the whole course.

Old task (what may be forgotten) is always blue, new task (what is being learned) always orange;
methods keep the same colour in every lesson (``METHOD_COLORS``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from .metrics import value_at_learning

OLD_COLOR = "#1f77b4"  # blue: the old task / general knowledge
NEW_COLOR = "#ff7f0e"  # orange: the new task / the fine-tuning domain
METHOD_COLORS = {
    "naive": "#d62728",
    "full fine-tuning": "#d62728",
    "low-lr": "#ff9896",
    "freeze": "#bd9e39",
    "l2": "#8c564b",
    "l2-sp": "#e377c2",
    "ewc": "#2ca02c",
    "head-only": "#7f7f7f",
    "lp-ft": "#bcbd22",
    "adapter": "#17becf",
    "lora": "#9467bd",
    "replay": "#1f77b4",
    "distill": "#637939",
    "a-gem": "#2ca02c",
    "pcgrad": "#393b79",
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
    if len(names) != T:
        raise ValueError(f"task_names must hold one name per task ({T}), got {len(names)}")
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


def plot_loss_plane(plane, ax: Axes | None = None, names: Sequence[str] | None = None,
                    colors: Sequence[str] = (OLD_COLOR, NEW_COLOR), point_labels: Sequence[str] = ("θ_0", "θ_1", "θ_2"),
                    valley_factor: float = 2.0, levels: int = 7, title: str = "Two valleys in the plane of three networks") -> Axes:
    """Contours of two tasks' losses on a ``LossPlane`` (from ``evaluate_on_plane``), the three points marked.

    Each task gets contour lines in its colour (log-spaced loss levels) and a shaded "valley": the
    region where its loss is below ``valley_factor`` times its minimum on the plane.
    """
    names = list(names) if names is not None else list(plane.values)[:2]
    if len(names) != 2 or any(n not in plane.values for n in names):
        raise ValueError(f"names must be two keys of plane.values {list(plane.values)}, got {names!r}")
    if len(point_labels) != 3:
        raise ValueError(f"point_labels must hold three labels (origin, sd_1, sd_2), got {len(point_labels)}")
    if not valley_factor > 1:
        raise ValueError(f"valley_factor must be > 1, got {valley_factor!r}")
    ax = _axes(ax, (6, 5))
    X, Y = np.meshgrid(plane.xs, plane.ys)
    for name, color in zip(names, colors):
        Z = plane.values[name]
        low, high = float(Z.min()), float(np.percentile(Z, 90))
        ax.contourf(X, Y, Z, levels=[low, valley_factor * low], colors=[color], alpha=0.25)
        lines = np.geomspace(valley_factor * low, max(high, valley_factor * low * 1.01), levels)
        contour = ax.contour(X, Y, Z, levels=lines, colors=[color], linewidths=1.0)
        ax.clabel(contour, fmt="%.2f", fontsize=7)
        ax.plot([], [], color=color, label=f"{name} loss (shaded: < {valley_factor:g} x its minimum)")
    ax.plot(plane.points[:, 0], plane.points[:, 1], "k*", ms=12)
    for (x, y), text in zip(plane.points, point_labels):
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(6, 6), fontsize=11, weight="bold")
    ax.set_xlabel("direction 1 (weight-space distance)")
    ax.set_ylabel("direction 2 (weight-space distance)")
    ax.set_aspect("equal")
    ax.set_title(title)
    ax.legend(loc="lower left", fontsize=8)
    return ax


def plot_sweep_frontier(new, old, row_values: Sequence, col_values: Sequence, row_name: str = "learning rate",
                        col_name: str = "steps", selected: tuple[int, int] | None = None, ax: Axes | None = None,
                        xlabel: str = "new-task accuracy", ylabel: str = "old-task accuracy",
                        title: str = "Stability-plasticity frontier of a sweep") -> Axes:
    """A two-hyperparameter sweep as old-vs-new points: ``new``, ``old`` are (R, C) arrays, entry
    [r, c] for ``row_values[r]`` (one coloured curve per row) and ``col_values[c]`` (along the curve).

    ``selected = (r, c)`` marks one run with a star and writes its two numbers in the title.
    """
    new, old = np.asarray(new, dtype=float), np.asarray(old, dtype=float)
    shape = (len(row_values), len(col_values))
    if new.shape != shape or old.shape != shape:
        raise ValueError(f"new and old must have shape (len(row_values), len(col_values)) = {shape}, "
                         f"got {new.shape} and {old.shape}")
    ax = _axes(ax, (6, 4.5))
    colors = plt.cm.viridis(np.linspace(0.0, 0.9, shape[0]))
    for r, (value, color) in enumerate(zip(row_values, colors)):
        ax.plot(new[r], old[r], "o-", color=color, ms=3, lw=1, label=f"{row_name} = {value:g}")
    if selected is not None:
        r, c = selected
        if not (0 <= r < shape[0] and 0 <= c < shape[1]):
            raise ValueError(f"selected must index the sweep, (r, c) with r < {shape[0]} and c < {shape[1]}, got {selected!r}")
        ax.plot(new[r, c], old[r, c], "*", color="black", ms=16, zorder=5)
        title = (f"{title}\n{row_name} = {row_values[r]:g}, {col_name} = {col_values[c]:g}: "
                 f"{ylabel} {old[r, c]:.2f}, {xlabel} {new[r, c]:.2f}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    return ax


def plot_per_layer(values: dict[str, dict[str, float]], ax: Axes | None = None, ylabel: str = "relative change",
                   title: str = "Change per layer", colors: Sequence[str] | None = None,
                   xlabel: str = "layer (bottom to top)") -> Axes:
    """Grouped bars, one group per layer (bottom to top): ``values = {series: {layer: value}}``.

    Every series must name the same layers, e.g. ``{"full data": {"embeddings": 0.1, "block 0": 0.3}}``.
    """
    if not isinstance(values, dict) or not values or not all(isinstance(v, dict) and v for v in values.values()):
        raise ValueError("values must be a non-empty dict {series name: {layer name: value}}")
    layers = list(next(iter(values.values())))
    if any(list(v) != layers for v in values.values()):
        raise ValueError(f"every series must name the same layers in the same order: {layers}")
    colors = list(colors) if colors is not None else [OLD_COLOR, NEW_COLOR, "#2ca02c", "#9467bd"][: len(values)]
    if len(colors) < len(values):
        raise ValueError(f"need one colour per series ({len(values)}), got {len(colors)}")
    ax = _axes(ax)
    width = 0.8 / len(values)
    x = np.arange(len(layers))
    for k, ((name, series), color) in enumerate(zip(values.items(), colors)):
        ax.bar(x + (k - (len(values) - 1) / 2) * width, [series[layer] for layer in layers], width,
               color=color, label=name)
    ax.set_xticks(x, layers)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="y")
    if len(values) > 1:
        ax.legend(fontsize=8)
    return ax


def plot_attention(attention, text: str | None = None, ax: Axes | None = None, title: str = "Attention",
                   vmax: float | None = 1.0) -> Axes:
    """Heatmap of one head's attention (T, T): row t = what query position t attends to (columns <= t).

    ``text`` (T characters) labels both axes; spaces are shown as "_" and newlines as "\\n".
    """
    A = np.asarray(attention, dtype=float)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"attention must be a square (T, T) matrix, got shape {A.shape}")
    if text is not None and len(text) != A.shape[0]:
        raise ValueError(f"text must have T = {A.shape[0]} characters, got {len(text)}")
    ax = _axes(ax)
    image = ax.imshow(A, cmap="Blues", vmin=0.0, vmax=vmax)
    if text is not None:
        labels = ["_" if ch == " " else ("\\n" if ch == "\n" else ch) for ch in text]
        ax.set_xticks(range(len(labels)), labels, fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("key position (character attended to)")
    ax.set_ylabel("query position (character predicting the next)")
    ax.set_title(title)
    plt.colorbar(image, ax=ax, fraction=0.046, label="attention weight")
    return ax


def _place_labels(ax: Axes, labels: Sequence[tuple[float, float, str, str]],
                  lines: Sequence[np.ndarray], fontsize: float = 7, distance: float = 9.0) -> None:
    """Write each label ``(x, y, text, color)`` next to its point, on the side where it covers the fewest
    line segments (``lines``: (n, 2) arrays of data points) and no label already placed.

    Greedy: the eight directions around the point are tried in turn (below right first), in display
    coordinates with the axes' current limits, and the first with the least overlap wins.
    """
    to_px = ax.transData.transform
    px_per_pt = ax.figure.dpi / 72
    samples = [p for line in lines if len(line) > 1
               for a, b in zip(to_px(line[:-1]), to_px(line[1:])) for p in np.linspace(a, b, 25)]
    samples = np.array(samples).reshape(-1, 2)
    placed: list[tuple[np.ndarray, np.ndarray]] = []
    directions = [(1, -1), (1, 1), (-1, -1), (-1, 1), (1, 0), (-1, 0), (0, -1), (0, 1)]  # below right first
    for x, y, text, color in labels:
        half = np.array([0.3 * fontsize * len(text) + 1.5, 0.5 * fontsize + 1.5])  # half the box, in points
        best, best_cost, box = (0.0, 0.0), np.inf, None
        for dx, dy in directions:
            offset = np.array([dx * (half[0] + 0.5 * distance), dy * (half[1] + 0.5 * distance)])
            centre = to_px((x, y)) + px_per_pt * offset
            low, high = centre - px_per_pt * half, centre + px_per_pt * half
            margin = 3 * px_per_pt  # keep clear of lines by a few points (the axes may still shrink a little)
            cost = np.all((samples > low - margin) & (samples < high + margin), axis=1).sum() if len(samples) else 0
            cost += sum(100 for lo, hi in placed if np.all(low < hi) and np.all(lo < high))
            if cost < best_cost:
                best, best_cost, box = tuple(offset), cost, (low, high)
        placed.append(box)
        ax.annotate(text, (x, y), textcoords="offset points", xytext=best, fontsize=fontsize, color=color,
                    ha="center", va="center", zorder=6,
                    bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.8))


def frontier_curve(curves: Iterable[tuple[Sequence[float], Sequence[float]]], num_points: int = 60
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The lower envelope of learning-forgetting trajectories: at each learning x on a grid from 0 to
    the most any trajectory learned, the least forgetting of a trajectory when it first reached x
    (``fk.value_at_learning``). ``curves``: (learning, forgetting) pairs of lists, in step order.
    Returns (xs, ys), each (num_points,)."""
    curves = list(curves)
    top = max(max(learned) for learned, _ in curves)
    xs = np.linspace(0.0, top, num_points)
    ys = np.array([np.nanmin([value_at_learning(learned, forgot, x) for learned, forgot in curves]) for x in xs])
    return xs, ys


def plot_method_frontier(results, ax: Axes | None = None, steps: int | None = None, targets=None,
                         highlight: Mapping | None = None,
                         title: str = "Stability-plasticity frontier (lower right is better)") -> Axes:
    """The capstone's methods as forgetting (y) against learning (x), both in %, means over seeds.

    ``results`` is a ``forgetkit.capstone.Results``. Every method is drawn as its *frontier*: the
    least forgetting any of its runs (every strength, every checkpoint) had when it first reached
    each learning (``results.forgetting_at``), so two methods are compared at matched learning by
    reading the picture vertically. Plain fine-tuning (naive and every low-lr run: only the
    learning rate and the number of steps differ) is one thick red frontier: the very curve that
    ``results.matched_forgetting`` divides by. The points are each strength at ``steps`` (default:
    the last checkpoint), mean +- std over seeds, labelled with the strength. ``targets`` (a
    ``capstone.Targets``) shades the region meeting both; ``highlight`` (a recipe dict) is starred.
    """
    from .capstone import METHODS, PLAIN_METHODS, check_recipe_format

    ax = _axes(ax, (7, 5))
    steps = results.settings.steps if steps is None else steps
    summary = results.summary(steps)
    labels, lines = [], []  # strength labels, placed once every line is drawn
    if targets is not None:
        ax.fill_between([100 * targets.min_learning, 100], -5, 100 * targets.max_forgetting,
                        color="#2ca02c", alpha=0.12, label="meets both targets")
    methods = list(dict.fromkeys(r["method"] for r in results.rows))
    groups = ([PLAIN_METHODS] if any(m in PLAIN_METHODS for m in methods) else []) + [
        (m,) for m in methods if m not in PLAIN_METHODS]
    for group in groups:
        plain = group == PLAIN_METHODS
        color = method_color("naive" if plain else group[0])
        xs, ys = frontier_curve(results.trajectories(group).values())
        label = "plain fine-tuning (lower lr or fewer steps)" if plain else group[0]
        ax.plot(100 * xs, 100 * ys, "-", color=color, lw=2.5 if plain else 1.3, alpha=0.9, label=label)
        lines.append(np.column_stack([100 * xs, 100 * ys]))
        for name in group:
            points = [e for e in summary if e["method"] == name]
            if not points:
                continue
            px = [100 * e["learning_mean"] for e in points]
            py = [100 * e["forgetting_mean"] for e in points]
            ax.errorbar(px, py, xerr=[100 * e["learning_std"] for e in points],
                        yerr=[100 * e["forgetting_std"] for e in points], fmt="o", color=method_color(name), ms=5,
                        capsize=2, lw=1.0)
            if METHODS[name].knob != "-":
                labels += [(x, y, f"{e['strength']:g}", method_color(name)) for x, y, e in zip(px, py, points)]
    if highlight is not None:
        entry = results.lookup(*check_recipe_format(highlight))
        if entry is not None:
            ax.plot(100 * entry["learning_mean"], 100 * entry["forgetting_mean"], "*", color="black", ms=16, zorder=5)
    ax.set_xlabel("learning: fall of the domain (clinical) loss (%)")
    ax.set_ylabel("forgetting: rise of the general loss (%)")
    ax.set_title(title, fontsize=10)
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=-5)
    _place_labels(ax, labels, lines)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    return ax


# The three continual-learning scenarios of van de Ven, Tuytelaars & Tolias (2022, "Three types of
# incremental learning", Nature Machine Intelligence), drawn on the course's digits.
SCENARIOS: dict[str, dict[str, object]] = {
    "task-incremental": {
        "tasks": ("digits 0-4", "digits 5-9"),
        "heads": ("head 1: 0-4", "head 2: 5-9"),
        "hint": "a task id picks the head",
        "test": "which of these 5 digits?\n(the model is told the task)",
    },
    "domain-incremental": {
        "tasks": ("digits", "same digits,\npixels shuffled"),
        "heads": ("one head: 0-9",),
        "hint": "same labels, new inputs",
        "test": "which digit?\n(no task id, none needed)",
    },
    "class-incremental": {
        "tasks": ("digits 0-4", "digits 5-9"),
        "heads": ("one head: 0-9",),
        "hint": "new classes join one head",
        "test": "which of all 10 digits?\n(no task id)",
    },
}


def _box(ax: Axes, x: float, y: float, w: float, h: float, text: str, color: str, fontsize: float = 9) -> None:
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.01", facecolor=color, edgecolor="#444444",
                                alpha=0.35, lw=1, transform=ax.transAxes))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize, transform=ax.transAxes)


def plot_scenarios(lessons: Mapping[str, str] | None = None, highlight: str | None = None,
                   axes: Sequence[Axes] | None = None) -> list[Axes]:
    """Three panels, one per learning scenario (van de Ven et al., 2022): what task 1 and task 2
    hold, which output head(s) the model has, and what it is asked at test time.

    ``lessons`` maps a scenario name (a key of ``SCENARIOS``) to a line written under its panel,
    e.g. which lessons use it; ``highlight`` frames one scenario in black; ``axes`` are three Axes
    to draw into (default: a new 1 x 3 figure). Returns the three Axes.
    """
    names = list(SCENARIOS)
    lessons = {} if lessons is None else lessons
    if not isinstance(lessons, Mapping) or not all(isinstance(v, str) for v in lessons.values()):
        raise TypeError("lessons must map scenario names to strings")
    unknown = sorted(set(lessons) - set(names))
    if unknown:
        raise ValueError(f"lessons names unknown scenarios {unknown}; the scenarios are {names}")
    if highlight is not None and highlight not in SCENARIOS:
        raise ValueError(f"highlight must be one of {names} or None, got {highlight!r}")
    if axes is None:
        axes = list(plt.subplots(1, 3, figsize=(13, 4.6))[1])
    axes = list(axes)
    if len(axes) != 3 or not all(isinstance(ax, Axes) for ax in axes):
        raise ValueError(f"axes must be three matplotlib Axes, got {len(axes)} items")
    for ax, name in zip(axes, names):
        spec = SCENARIOS[name]
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        for spine in ax.spines.values():
            spine.set_color("black" if name == highlight else "#bbbbbb")
            spine.set_linewidth(2.5 if name == highlight else 1)
        ax.set_title(name, fontsize=12, fontweight="bold" if name == highlight else "normal")
        first, second = spec["tasks"]
        ax.text(0.26, 0.93, "task 1", ha="center", fontsize=8, color="#555555", transform=ax.transAxes)
        ax.text(0.74, 0.93, "task 2", ha="center", fontsize=8, color="#555555", transform=ax.transAxes)
        _box(ax, 0.05, 0.74, 0.42, 0.17, first, OLD_COLOR)
        _box(ax, 0.53, 0.74, 0.42, 0.17, second, NEW_COLOR)
        ax.text(0.5, 0.69, spec["hint"], ha="center", va="center", fontsize=8.5, style="italic",
                transform=ax.transAxes)
        _box(ax, 0.1, 0.5, 0.8, 0.12, "shared body (all weights)", "#aaaaaa")
        heads = spec["heads"]
        if len(heads) == 1:
            _box(ax, 0.25, 0.33, 0.5, 0.11, heads[0], "#2ca02c")
        else:
            _box(ax, 0.05, 0.33, 0.42, 0.11, heads[0], OLD_COLOR)
            _box(ax, 0.53, 0.33, 0.42, 0.11, heads[1], NEW_COLOR)
        ax.text(0.5, 0.2, "test: " + str(spec["test"]), ha="center", va="center", fontsize=8.5,
                transform=ax.transAxes)
        if name in lessons:
            ax.text(0.5, 0.05, lessons[name], ha="center", va="center", fontsize=8.5, fontweight="bold",
                    transform=ax.transAxes)
    return axes
