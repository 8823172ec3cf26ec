"""Fine-tuning runs: one (``finetune``), and methods x strengths x seeds (``run_comparison``)."""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn as nn
from tqdm.auto import tqdm

from ..checks import check_int
from ..interpolation import wise_ft
from ..models import TinyLM
from ..peft import count_trainable
from ..seeding import get_seed
from ..training import fit_lm, progress_enabled
from .methods import METHODS, Method, check_method
from .results import Results
from .scenario import Scenario, Settings, check_settings, make_scenario


def _row(scenario: Scenario, method: str, strength: float, step: int, losses: tuple[float, float],
         trainable: int, seconds: float) -> dict:
    general, domain = losses
    return dict(method=method, strength=float(strength), seed=scenario.seed, steps=step,
                general_loss=general, domain_loss=domain,
                forgetting=general / scenario.base_general - 1.0,
                learning=1.0 - domain / scenario.base_domain,
                trainable=trainable, seconds=seconds)


def _train(scenario: Scenario, method: Method, strength: float, seed: int, keep_states: bool = False):
    """Fine-tune a copy of the base model; measure both losses and the seconds of work at every checkpoint.

    The seconds count the method's preparation and the training steps, not the measurements.
    Returns (model, rows, states): states[k] is the state dict at checkpoint k when ``keep_states``.
    """
    settings = scenario.settings
    model = copy.deepcopy(scenario.base)
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # adapter / LoRA initialisation
        prepared = method.prepare(model, scenario, strength, seed)
    seconds = time.perf_counter() - start + prepared.setup_seconds
    trainable = count_trainable(model)
    rows: list[dict] = []
    states: list[dict] = []
    resumed = time.perf_counter()

    def checkpoint(step: int, m: nn.Module) -> None:
        """on_step hook: at each checkpoint, stop the clock, measure, and start it again."""
        nonlocal seconds, resumed
        if step not in settings.checkpoints:
            return
        seconds += time.perf_counter() - resumed
        rows.append(_row(scenario, method.name, strength, step, scenario.losses(m), trainable, seconds))
        if keep_states:
            states.append({k: v.detach().clone() for k, v in m.state_dict().items()})
        resumed = time.perf_counter()

    fit_lm(model, scenario.domain_train, num_steps=settings.steps, lr=settings.lr if prepared.lr is None else prepared.lr,
           batch_size=settings.batch_size, seed=seed, progress=False, extra_loss=prepared.extra_loss,
           batch_penalty=prepared.batch_penalty,
           extra_batch=prepared.extra_batch, on_step=checkpoint)
    return model, rows, states


def finetune(scenario: Scenario, method: str, strength: float | None = None,
             seed: int | None = None) -> tuple[TinyLM, list[dict]]:
    """Fine-tune a copy of ``scenario.base`` with ``method`` at ``strength`` (default: the method's default).

    Returns the model after the last step and one row per checkpoint (see ``Results``). ``seed``
    (default: the scenario's) fixes the batches and any fresh initialisation. ``naive`` and
    ``wise-ft`` share one memoised naive run per seed; WiSE-FT then mixes the base and the naive
    weights at every checkpoint: theta = (1 - alpha) theta_base + alpha theta_naive.
    """
    m = check_method(method)
    strength = m.check(m.default if strength is None else strength)
    seed = scenario.seed if seed is None else get_seed(seed)
    if m.name not in ("naive", "wise-ft"):
        model, rows, _ = _train(scenario, m, strength, seed)
        return model, rows
    key = ("naive run", seed)
    if key not in scenario.cache:
        scenario.cache[key] = _train(scenario, METHODS["naive"], 0.0, seed, keep_states=True)
    naive_model, naive_rows, states = scenario.cache[key]
    if m.name == "naive":
        return copy.deepcopy(naive_model), [dict(row) for row in naive_rows]
    model = copy.deepcopy(scenario.base)
    rows = []
    for naive_row, state in zip(naive_rows, states):
        start = time.perf_counter()
        model.load_state_dict(wise_ft(scenario.base, state, float(strength)))
        seconds = naive_row["seconds"] + time.perf_counter() - start
        rows.append(_row(scenario, "wise-ft", strength, naive_row["steps"], scenario.losses(model),
                         naive_row["trainable"], seconds))
    return model, rows


def run_method(scenario: Scenario, method: str, strength: float | None = None, seed: int | None = None) -> list[dict]:
    """The rows (one per checkpoint) of ``finetune(scenario, method, strength, seed)``."""
    return finetune(scenario, method, strength, seed)[1]


def parse_methods(methods: Sequence[str] | Mapping[str, Sequence[float]] | None) -> dict[str, tuple[float, ...]]:
    """``{name: strengths}`` from a list of names (each with its default sweep), a dict, or None (all).

    Raises ValueError for an unknown name or an empty list.
    """
    if methods is None:
        methods = list(METHODS)
    if isinstance(methods, str):
        raise TypeError(f"methods must be a list of names or a dict name -> strengths, not the str {methods!r}")
    if isinstance(methods, Mapping):
        plan = {}
        for name, strengths in methods.items():
            if isinstance(strengths, (str, bytes)) or not isinstance(strengths, (Sequence, np.ndarray)):
                raise TypeError(f"the strengths of {name!r} must be a list of numbers, got {strengths!r}")
            plan[check_method(name).name] = tuple(METHODS[name].check(s) for s in strengths)
    else:
        plan = {check_method(name).name: METHODS[name].strengths for name in methods}
    if not plan or any(len(s) == 0 for s in plan.values()):
        raise ValueError("methods must name at least one method, each with at least one strength")
    return plan


def seed_list(seeds: int | Sequence[int]) -> list[int]:
    """The seeds of a comparison: a list of distinct seeds, or a count (``$FORGETKIT_SEED`` + 0, 1, ...)."""
    if isinstance(seeds, Sequence) and not isinstance(seeds, str):
        seeds = [get_seed(s) for s in seeds]
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be a non-empty list of distinct ints, got {seeds!r}")
        return seeds
    count = check_int("seeds", seeds, low=1)
    first = get_seed()
    return [first + k for k in range(count)]


def run_comparison(methods: Sequence[str] | Mapping[str, Sequence[float]] | None = None,
                   seeds: int | Sequence[int] = 3, settings: Settings | None = None, *,
                   base_seed: int | None = None, device: torch.device | str | None = None,
                   progress: bool | None = None) -> Results:
    """Fine-tune every method at every strength under every seed; return the ``Results`` table.

    ``methods``: names (each with its default strengths ``METHODS[name].strengths``) or a dict
    name -> strengths; None = all. ``seeds``: a count (``$FORGETKIT_SEED`` + 0, 1, ...) or a
    list. ``base_seed``: pre-train one base model with it and share it across seeds (cheaper: only
    the fine-tuning varies: the seeds share the test texts and draw their own clinical corpus, batch
    order and initialisation); None gives every seed its own base model and texts. One progress bar
    counts runs.
    """
    plan = parse_methods(methods)
    seeds = seed_list(seeds)
    settings = check_settings(settings)
    jobs = [(seed, name, strength) for seed in seeds for name, strengths in plan.items() for strength in strengths]
    results = Results([], settings, seeds, base_seed)
    first: Scenario | None = None
    bar = tqdm(jobs, desc="comparing methods", unit="run", disable=not progress_enabled(progress))
    for seed, name, strength in bar:
        if seed not in results.scenarios:
            if first is None or base_seed is None:
                first = make_scenario(seed, settings, base_seed, device, progress=progress)
                results.scenarios[seed] = first
            else:  # one base model: share it, its test texts and its memo (the Fisher)
                results.scenarios[seed] = first.with_seed(seed)
        bar.set_postfix_str(f"seed {seed}: {name} {strength:g}")
        results.rows.extend(run_method(results.scenarios[seed], name, strength))
    bar.close()
    return results
