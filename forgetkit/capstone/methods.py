"""The capstone's mitigations: what each one does to a fresh copy of the base model before a run.

Every method is a ``Method`` in ``METHODS``: a name, one *strength* knob (with its default sweep and
a ``check`` of the values it accepts) and a ``prepare`` function. ``prepare(model, scenario,
strength, seed)`` changes the copy in place (freezing, adapters, LoRA) and returns a ``Prepared``:
what the run adds to ``fit_lm`` (a learning rate, a penalty, a penalty on each batch, a replay batch).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn as nn
from torch import Tensor

from ..checks import check_number
from ..languages import lm_windows
from ..models import TinyLM
from ..peft import add_adapters, apply_lora, freeze
from ..regularizers import Distillation, ewc_penalty, l2_sp_penalty, lm_fisher, snapshot
from ..replay import ReservoirBuffer, replay_mixer
from ..representations import group_of, layer_groups
from .scenario import Scenario


@dataclass(frozen=True)
class Prepared:
    """What a method adds to its fine-tuning run, besides the changes it made to the model.

    ``lr``: the learning rate (None: the settings' own); ``extra_loss``, ``batch_penalty``,
    ``extra_batch``: the hooks of ``fk.train``; ``setup_seconds``: work done once per scenario and reused (the EWC Fisher), charged
    to every run that reuses it so that the seconds of every run count its full cost.
    """

    lr: float | None = None
    extra_loss: Callable[[nn.Module], Tensor] | None = None
    batch_penalty: Callable[[nn.Module, Tensor], Tensor] | None = None
    extra_batch: Callable[[], tuple[Tensor, Tensor]] | None = None
    setup_seconds: float = 0.0


def prepare_naive(model: TinyLM, scenario: Scenario, strength: float, seed: int) -> Prepared:
    """Full fine-tuning: every parameter trains, nothing protects the general skill."""
    return Prepared()


def prepare_low_lr(model: TinyLM, scenario: Scenario, strength: float, seed: int) -> Prepared:
    """Full fine-tuning with the learning rate multiplied by ``strength`` (e.g. 0.1)."""
    return Prepared(lr=scenario.settings.lr * strength)


def prepare_l2_sp(model: TinyLM, scenario: Scenario, strength: float, seed: int) -> Prepared:
    """Penalty strength/2 * ||theta - theta_pretrained||^2 on every weight (L2-SP)."""
    start = snapshot(model)
    return Prepared(extra_loss=lambda m: l2_sp_penalty(m, start, strength))


def prepare_ewc(model: TinyLM, scenario: Scenario, strength: float, seed: int) -> Prepared:
    """Penalty strength/2 * sum_i F_i (theta_i - theta_pretrained_i)^2, F = Fisher on general text."""
    memoised = "fisher" in scenario.cache  # the Fisher depends only on the base model: compute it once
    if not memoised:
        start = time.perf_counter()
        fisher = lm_fisher(scenario.base, scenario.general_train, seed=scenario.seed)
        scenario.cache["fisher"] = fisher, time.perf_counter() - start
    fisher, fisher_seconds = scenario.cache["fisher"]
    anchor = snapshot(model)
    # the first run spent the Fisher's seconds inside this function; the others are charged them too
    return Prepared(extra_loss=lambda m: ewc_penalty(m, fisher, anchor, strength),
                    setup_seconds=fisher_seconds if memoised else 0.0)


def prepare_freeze(model: TinyLM, scenario: Scenario, strength: float, seed: int) -> Prepared:
    """Freeze the ``strength`` lowest layer groups (embeddings, block 0, ...); the rest trains."""
    groups = layer_groups(model)[:-1]  # the head always trains
    if not 1 <= strength <= len(groups):
        raise ValueError(f"freeze strength (layer groups frozen from the bottom) must be an int in "
                         f"[1, {len(groups)}], got {strength!r}")
    frozen = set(groups[: int(strength)])
    for name, p in model.named_parameters():
        p.requires_grad_(group_of(name) not in frozen)
    return Prepared()


def prepare_head_only(model: TinyLM, scenario: Scenario, strength: float, seed: int) -> Prepared:
    """Train only the final LayerNorm and the output layer (everything below is frozen)."""
    freeze(model, r"(token_embedding|position_embedding|blocks)\..*")
    return Prepared()


# Parameter-efficient methods train a few new weights on a frozen base and are usually run at a
# larger learning rate than full fine-tuning (Hu et al., 2021; Biderman et al., 2024 found LoRA's
# best learning rates about an order of magnitude above full fine-tuning's). At the settings' own
# rate, LoRA of rank 1-4 barely learns in the capstone's 12 steps.
PEFT_LR_FACTOR = 4.0


def prepare_adapter(model: TinyLM, scenario: Scenario, strength: float, seed: int) -> Prepared:
    """Bottleneck adapters of width ``strength`` after attention and MLP of every block (base
    frozen), trained at ``PEFT_LR_FACTOR`` times the settings' learning rate."""
    add_adapters(model, int(strength))
    return Prepared(lr=scenario.settings.lr * PEFT_LR_FACTOR)


def prepare_lora(model: TinyLM, scenario: Scenario, strength: float, seed: int) -> Prepared:
    """LoRA of rank r = ``strength`` on every attention and MLP layer (lora_alpha = r: scaling 1;
    base frozen), trained at ``PEFT_LR_FACTOR`` times the settings' learning rate."""
    apply_lora(model, r=int(strength), lora_alpha=float(strength))
    return Prepared(lr=scenario.settings.lr * PEFT_LR_FACTOR)


REPLAY_CAPACITY = 256  # general-text windows kept for rehearsal


def prepare_replay(model: TinyLM, scenario: Scenario, strength: float, seed: int) -> Prepared:
    """Mix general text into every batch: ``strength`` is its share of the mixed batch (e.g. 0.25)."""
    if strength == 0:
        return Prepared()
    T = model.block_size
    windows, _ = lm_windows(scenario.general_train, T + 1)  # (N, T + 1): input and target in one row
    buffer = ReservoirBuffer(REPLAY_CAPACITY, seed=seed).add(windows, torch.zeros(len(windows), dtype=torch.int64))
    mixer = replay_mixer(buffer, scenario.settings.batch_size, float(strength))

    def extra_batch() -> tuple[Tensor, Tensor]:
        rows, _ = mixer()
        return rows[:, :-1], rows[:, 1:]

    return Prepared(extra_batch=extra_batch)


DISTILL_TEMPERATURE = 1.0  # softmax temperature of the distillation to the base model


def prepare_distill(model: TinyLM, scenario: Scenario, strength: float, seed: int) -> Prepared:
    """Penalty strength * KL(base || model) of the next-character predictions on every clinical
    batch: distillation to the frozen base model, Learning without Forgetting (Li & Hoiem, 2017).
    Needs no general text; costs a forward pass of the base model and one more of the model per
    step (the hook sees the batch, not the loss's logits)."""
    return Prepared(batch_penalty=Distillation(scenario.base, strength, DISTILL_TEMPERATURE))


def strength_range(method: str, knob: str, low: float = 0.0, high: float | None = None, *,
                   low_open: bool = False, high_open: bool = False, whole: bool = False) -> Callable[[object], float]:
    """A ``Method.check``: the strength as a float if it lies in the range (a whole number if
    ``whole``); TypeError for a non-number, ValueError naming the method, its knob and the range."""
    what = f"{method} strength" + ("" if knob == "-" else f" ({knob})")

    def check(strength: object) -> float:
        value = check_number(what, strength, low=low, high=high, low_open=low_open, high_open=high_open)
        if whole and value != int(value):
            raise ValueError(f"{what} must be a whole number, got {strength!r}")
        return value

    return check


@dataclass(frozen=True)
class Method:
    """One mitigation: its strength knob, the default sweep, and how to prepare a run.

    ``check(strength)`` returns the strength as a float or raises saying what the method accepts.
    ``prepare(model, scenario, strength, seed)`` changes a fresh copy of the base model in place
    and returns a ``Prepared``. WiSE-FT has no ``prepare``: it interpolates the naive run's weights.
    """

    name: str
    knob: str
    strengths: tuple[float, ...]
    default: float
    summary: str
    lesson: str
    prepare: Callable[[TinyLM, Scenario, float, int], Prepared] | None = field(repr=False)
    check: Callable[[object], float] = field(repr=False)


METHODS: dict[str, Method] = {m.name: m for m in [
    Method("naive", "-", (0.0,), 0.0, "full fine-tuning", "01_polyglot", prepare_naive,
           strength_range("naive", "-", high=0.0)),
    Method("low-lr", "lr factor", (0.1, 0.3), 0.3, "full fine-tuning, smaller learning rate",
           "08_training_regime", prepare_low_lr, strength_range("low-lr", "lr factor", high=1.0, low_open=True)),
    Method("l2-sp", "lambda", (0.3, 1.0), 0.3, "pull every weight to its pre-trained value",
           "05_weight_regularization", prepare_l2_sp, strength_range("l2-sp", "lambda")),
    Method("ewc", "lambda", (100.0, 300.0), 300.0, "pull weights to pre-trained values, weighted by the Fisher",
           "05_weight_regularization", prepare_ewc, strength_range("ewc", "lambda")),
    Method("freeze", "frozen groups", (2.0, 3.0), 2.0, "freeze the lowest layer groups",
           "06_freezing_adapters_lora", prepare_freeze, strength_range("freeze", "frozen groups", low=1.0, whole=True)),
    Method("head-only", "-", (0.0,), 0.0, "train only the output head", "06_freezing_adapters_lora",
           prepare_head_only, strength_range("head-only", "-", high=0.0)),
    Method("adapter", "bottleneck", (2.0, 4.0), 4.0, "bottleneck adapters, base frozen",
           "06_freezing_adapters_lora", prepare_adapter, strength_range("adapter", "bottleneck", low=1.0, whole=True)),
    Method("lora", "rank", (1.0, 2.0, 4.0), 2.0, "low-rank updates, base frozen", "06_freezing_adapters_lora",
           prepare_lora, strength_range("lora", "rank", low=1.0, whole=True)),
    Method("replay", "general share", (0.5, 0.75), 0.75, "mix general text into every batch", "07_rehearsal",
           prepare_replay, strength_range("replay", "general share", high=1.0, high_open=True)),
    Method("distill", "lambda", (1.0, 3.0), 3.0, "distil the base model's predictions on the new text",
           "07_rehearsal", prepare_distill, strength_range("distill", "lambda")),
    Method("wise-ft", "alpha", (0.3, 0.5), 0.5, "average base and fine-tuned weights", "08_training_regime",
           None, strength_range("wise-ft", "alpha", high=1.0)),
]}


def check_method(name: object) -> Method:
    """The ``Method`` called ``name``; ValueError listing the known names otherwise."""
    if not isinstance(name, str) or name not in METHODS:
        raise ValueError(f"unknown method {name!r}: expected one of {', '.join(METHODS)}")
    return METHODS[name]
