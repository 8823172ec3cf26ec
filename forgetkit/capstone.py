"""The capstone: a general language model becomes a domain specialist. Which recipe keeps it general?

Scenario. ``pretrained_lm("general")`` is a ``TinyLM`` that speaks the "general" synthetic
language. We fine-tune it on the "clinical" register (same function words, new jargon, rigid
report templates) and measure two numbers on held-out text after every run::

    forgetting = L_general(after) / L_general(before) - 1    (relative rise of the general loss; 0 = kept)
    learning   = 1 - L_domain(after) / L_domain(before)      (relative fall of the domain loss; higher = learned)

plus the number of trainable parameters and the seconds of training. Every mitigation of the
course is one entry of ``METHODS`` with one *strength* knob:

==============  =====================================  ========================================
name            strength                               idea (lesson)
==============  =====================================  ========================================
naive           (none)                                 full fine-tuning, the baseline (01)
low-lr          learning-rate factor (< 1)             a gentler training regime (08)
l2-sp           lambda of the pull to the start        L2-SP (Li et al., 2018) (05)
ewc             lambda of the Fisher-weighted pull     EWC (Kirkpatrick et al., 2017) (05)
freeze          layer groups frozen from the bottom    freezing lower layers (00, 06)
head-only       (none)                                 train only the final LayerNorm + head (06)
adapter         bottleneck width                       Houlsby et al., 2019 (06)
lora            rank                                   Hu et al., 2021 (06)
replay          share of general text in each batch    rehearsal (07)
wise-ft         weight alpha of the fine-tuned model   WiSE-FT (Wortsman et al., 2022) (08)
==============  =====================================  ========================================

``run_comparison`` runs methods x strengths x seeds and returns a ``Results`` table with one row
per (method, strength, seed, checkpoint step): a single run also yields its earlier checkpoints,
so "fewer steps" costs nothing extra. ``naive`` and ``wise-ft`` share one training run per seed.
The notebook (lesson 09) and the command line (``python -m forgetkit.bench``) both use it.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor
from tqdm.auto import tqdm

from .checks import check_positive_int
from .interpolation import wise_ft
from .languages import language_tokens, lm_batch, lm_windows
from .models import TinyLM
from .peft import add_adapters, apply_lora, count_trainable, freeze
from .pretrained import pretrained_lm
from .regularizers import ewc_penalty, fisher_diagonal, l2_sp_penalty, snapshot
from .replay import ReservoirBuffer, replay_mixer
from .representations import group_of, layer_groups
from .seeding import get_seed, make_generator
from .training import evaluate_lm, fit_lm, model_device, progress_enabled

METRICS = ("forgetting", "learning", "trainable", "seconds")


# ------------------------------------------------------------------------------------------
# Settings and the scenario
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """How every fine-tuning run of a comparison is made.

    ``checkpoints``: the steps at which both losses are measured (increasing, the last one equal
    to ``steps``); default: four evenly spaced steps. The defaults are the course's: 12 AdamW steps
    of 8 windows at lr 7.5e-3, a fraction of a second on a laptop CPU. Corpora sizes are in
    sentences; ``eval_windows`` windows of each test text are scored (the same ones for every run).
    """

    steps: int = 12
    lr: float = 7.5e-3
    batch_size: int = 8
    checkpoints: tuple[int, ...] = ()
    domain_sentences: int = 300
    test_sentences: int = 100
    eval_windows: int = 24

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "domain_sentences", "test_sentences", "eval_windows"):
            check_positive_int(name, getattr(self, name))
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        checkpoints = tuple(self.checkpoints) or tuple(sorted({max(1, round(self.steps * k / 4)) for k in range(1, 5)}))
        if any(isinstance(c, bool) or not isinstance(c, int) or not 1 <= c <= self.steps for c in checkpoints) \
                or list(checkpoints) != sorted(set(checkpoints)) or checkpoints[-1] != self.steps:
            raise ValueError(f"checkpoints must be increasing ints in [1, steps={self.steps}] ending at steps, "
                             f"got {self.checkpoints!r}")
        object.__setattr__(self, "checkpoints", checkpoints)


@dataclass
class Scenario:
    """One draw of the scenario: the base model and the four corpora (1-D int64 character ids).

    ``base`` is never trained (every run fine-tunes a copy). ``base_general``/``base_domain``
    are its losses (nats per character) on the two test sets. Expensive by-products (the Fisher,
    the naive run that WiSE-FT reuses) are memoised in ``cache``.
    """

    seed: int
    base: TinyLM
    general_train: Tensor
    general_test: Tensor
    domain_train: Tensor
    domain_test: Tensor
    settings: Settings
    base_general: float = 0.0
    base_domain: float = 0.0
    cache: dict = field(default_factory=dict, repr=False)

    def losses(self, model: nn.Module) -> tuple[float, float]:
        """(general test loss, domain test loss) of ``model``, in nats per character."""
        n = self.settings.eval_windows
        return evaluate_lm(model, self.general_test, n), evaluate_lm(model, self.domain_test, n)

    def with_seed(self, seed: int) -> Scenario:
        """The same base model, test texts, general text and memo, with a domain corpus drawn with ``seed``:
        only the fine-tuning data (and, in a run, its order and initialisation) differ."""
        seed = get_seed(seed)
        domain_train = language_tokens("clinical", "train", self.settings.domain_sentences, seed)
        return replace(self, seed=seed, domain_train=domain_train.to(self.domain_train.device))


def make_scenario(seed: int | None = None, settings: Settings | None = None, base_seed: int | None = None,
                  device: torch.device | str | None = None, progress: bool | None = None) -> Scenario:
    """The scenario under ``seed``: corpora drawn with ``seed``; the base model pre-trained with
    ``base_seed`` (default: ``seed`` itself, so each seed also has its own base model).

    The base model comes from ``pretrained_lm("general", ...)`` (cached on disk after first use).
    """
    seed = get_seed(seed)
    settings = settings or Settings()
    if not isinstance(settings, Settings):
        raise TypeError(f"settings must be a forgetkit.capstone.Settings, got {type(settings).__name__}")
    base = pretrained_lm("general", seed=seed if base_seed is None else get_seed(base_seed), device=device, progress=progress)
    device = model_device(base)
    n_test = settings.test_sentences
    scenario = Scenario(
        seed=seed, base=base, settings=settings,
        general_train=language_tokens("general", "train", settings.domain_sentences, seed).to(device),
        general_test=language_tokens("general", "test", n_test, seed).to(device),
        domain_train=language_tokens("clinical", "train", settings.domain_sentences, seed).to(device),
        domain_test=language_tokens("clinical", "test", n_test, seed).to(device),
    )
    scenario.base_general, scenario.base_domain = scenario.losses(base)
    return scenario


# ------------------------------------------------------------------------------------------
# The methods: each prepares a copy of the base model and returns what ``fit_lm`` should add
# ------------------------------------------------------------------------------------------

Prepared = dict  # keyword arguments for fit_lm: lr, extra_loss, extra_batch


def prepare_naive(model: TinyLM, scenario: Scenario, strength: float, seed: int) -> Prepared:
    """Full fine-tuning: every parameter trains, nothing protects the general skill."""
    return {}


def prepare_low_lr(model: TinyLM, scenario: Scenario, strength: float, seed: int) -> Prepared:
    """Full fine-tuning with the learning rate multiplied by ``strength`` (e.g. 0.1)."""
    return {"lr": scenario.settings.lr * strength}


def prepare_l2_sp(model: TinyLM, scenario: Scenario, strength: float, seed: int) -> Prepared:
    """Penalty strength/2 * ||theta - theta_pretrained||^2 on every weight (L2-SP)."""
    start = snapshot(model)
    return {"extra_loss": lambda m: l2_sp_penalty(m, start, strength)}


def lm_fisher(model: TinyLM, tokens: Tensor, num_windows: int = 32, seed: int | None = None) -> dict[str, Tensor]:
    """Diagonal per-sample Fisher of a ``TinyLM`` for predicting the next character.

    Each sample is a random window of ``tokens`` (block_size characters); the model predicts the
    character after it from a distribution over the vocabulary, and ``fisher_diagonal`` (exact
    variant: expectation over the model's own prediction) squares the per-sample gradients of
    its log-probabilities. Returns a dict name -> tensor shaped like each trainable parameter.
    """
    if not isinstance(model, TinyLM):
        raise TypeError(f"model must be a forgetkit TinyLM, got {type(model).__name__}")
    x, _ = lm_batch(tokens, num_windows, model.block_size, make_generator(seed))
    fisher = fisher_diagonal(_NextCharacter(model), x, variant="exact")
    return {name.removeprefix("lm."): value for name, value in fisher.items()}


class _NextCharacter(nn.Module):
    """A classifier view of a TinyLM: windows (N, T) -> logits (N, vocab) of the character after each window."""

    def __init__(self, lm: TinyLM):
        super().__init__()
        self.lm = lm

    def forward(self, idx: Tensor) -> Tensor:
        return self.lm(idx)[0][:, -1, :]


def prepare_ewc(model: TinyLM, scenario: Scenario, strength: float, seed: int) -> Prepared:
    """Penalty strength/2 * sum_i F_i (theta_i - theta_pretrained_i)^2, F = Fisher on general text."""
    memoised = "fisher" in scenario.cache  # the Fisher depends only on the base model: compute it once
    if not memoised:
        start = time.perf_counter()
        fisher = lm_fisher(scenario.base, scenario.general_train, seed=scenario.seed)
        scenario.cache["fisher"] = fisher, time.perf_counter() - start
    fisher, fisher_seconds = scenario.cache["fisher"]
    anchor = snapshot(model)
    return {"extra_loss": lambda m: ewc_penalty(m, fisher, anchor, strength),
            # every EWC run is charged the Fisher's cost, also when it was memoised
            "setup_seconds": fisher_seconds if memoised else 0.0}


def prepare_freeze(model: TinyLM, scenario: Scenario, strength: float, seed: int) -> Prepared:
    """Freeze the ``strength`` lowest layer groups (embeddings, block 0, ...); the rest trains."""
    groups = layer_groups(model)[:-1]  # the head always trains
    if not 1 <= strength <= len(groups):
        raise ValueError(f"freeze strength (layer groups frozen from the bottom) must be an int in "
                         f"[1, {len(groups)}], got {strength!r}")
    frozen = set(groups[: int(strength)])
    for name, p in model.named_parameters():
        p.requires_grad_(group_of(name) not in frozen)
    return {}


def prepare_head_only(model: TinyLM, scenario: Scenario, strength: float, seed: int) -> Prepared:
    """Train only the final LayerNorm and the output layer (everything below is frozen)."""
    freeze(model, r"(token_embedding|position_embedding|blocks)\..*")
    return {}


def prepare_adapter(model: TinyLM, scenario: Scenario, strength: float, seed: int) -> Prepared:
    """Bottleneck adapters of width ``strength`` after attention and MLP of every block."""
    add_adapters(model, int(strength))
    return {}


def prepare_lora(model: TinyLM, scenario: Scenario, strength: float, seed: int) -> Prepared:
    """LoRA of rank ``strength`` on every attention and MLP layer (alpha = rank: scaling 1)."""
    apply_lora(model, int(strength), alpha=float(strength))
    return {}


REPLAY_CAPACITY = 256  # general-text windows kept for rehearsal


def prepare_replay(model: TinyLM, scenario: Scenario, strength: float, seed: int) -> Prepared:
    """Mix general text into every batch: ``strength`` is its share of the mixed batch (e.g. 0.25)."""
    if strength == 0:
        return {}
    T = model.block_size
    windows, _ = lm_windows(scenario.general_train, T + 1)  # (N, T + 1): input and target in one row
    buffer = ReservoirBuffer(REPLAY_CAPACITY, seed=seed).add(windows, torch.zeros(len(windows), dtype=torch.int64))
    mixer = replay_mixer(buffer, scenario.settings.batch_size, float(strength))

    def extra_batch() -> tuple[Tensor, Tensor]:
        rows, _ = mixer()
        return rows[:, :-1], rows[:, 1:]

    return {"extra_batch": extra_batch}


@dataclass(frozen=True)
class Method:
    """One mitigation: its strength knob, the default sweep, and how to prepare a run.

    ``prepare(model, scenario, strength, seed)`` changes a fresh copy of the base model in place
    (freezing, adapters, LoRA) and returns extra ``fit_lm`` arguments (lr, extra_loss,
    extra_batch). WiSE-FT has no ``prepare``: it interpolates the naive run's weights instead.
    """

    name: str
    knob: str
    strengths: tuple[float, ...]
    default: float
    summary: str
    lesson: str
    prepare: Callable[[TinyLM, Scenario, float, int], Prepared] | None
    low: float = 0.0  # allowed strengths: low < s (or <=, see low_open) ... < high
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    integer: bool = False

    def check(self, strength: object) -> float:
        """``strength`` as a float if this method accepts it; else ValueError/TypeError saying what it accepts."""
        what = f"{self.name} strength" + ("" if self.knob == "-" else f" ({self.knob})")
        if isinstance(strength, bool) or not isinstance(strength, (int, float, np.number)):
            raise TypeError(f"{what} must be a number, got {strength!r}")
        value = float(strength)
        lo, hi = "(" if self.low_open else "[", ")" if self.high_open else "]"
        if (math.isnan(value) or value < self.low or value > self.high or (self.low_open and value == self.low)
                or (self.high_open and value == self.high) or (self.integer and value != int(value))):
            kind = "a whole number" if self.integer else "a number"
            raise ValueError(f"{what} must be {kind} in {lo}{self.low:g}, {self.high:g}{hi}, got {strength!r}")
        return value


METHODS: dict[str, Method] = {m.name: m for m in [
    Method("naive", "-", (0.0,), 0.0, "full fine-tuning", "01_polyglot", prepare_naive, high=0.0),
    Method("low-lr", "lr factor", (0.1, 0.3), 0.3, "full fine-tuning, smaller learning rate",
           "08_training_regime", prepare_low_lr, high=1.0, low_open=True),
    Method("l2-sp", "lambda", (0.3, 1.0), 0.3, "pull every weight to its pre-trained value",
           "05_weight_regularization", prepare_l2_sp),
    Method("ewc", "lambda", (300.0, 1000.0), 300.0, "pull weights to pre-trained values, weighted by the Fisher",
           "05_weight_regularization", prepare_ewc),
    Method("freeze", "frozen groups", (2.0, 3.0), 2.0, "freeze the lowest layer groups",
           "06_freezing_adapters_lora", prepare_freeze, low=1.0, integer=True),
    Method("head-only", "-", (0.0,), 0.0, "train only the output head", "06_freezing_adapters_lora",
           prepare_head_only, high=0.0),
    Method("adapter", "bottleneck", (4.0, 16.0), 16.0, "bottleneck adapters, base frozen",
           "06_freezing_adapters_lora", prepare_adapter, low=1.0, integer=True),
    Method("lora", "rank", (4.0, 16.0), 16.0, "low-rank updates, base frozen", "06_freezing_adapters_lora",
           prepare_lora, low=1.0, integer=True),
    Method("replay", "general share", (0.5, 0.75), 0.75, "mix general text into every batch", "07_rehearsal",
           prepare_replay, high=1.0, high_open=True),
    Method("wise-ft", "alpha", (0.3, 0.5), 0.5, "average base and fine-tuned weights", "08_training_regime",
           None, high=1.0),
]}


def check_method(name: object) -> Method:
    """The ``Method`` called ``name``; ValueError listing the known names otherwise."""
    if not isinstance(name, str) or name not in METHODS:
        raise ValueError(f"unknown method {name!r}: expected one of {', '.join(METHODS)}")
    return METHODS[name]


# ------------------------------------------------------------------------------------------
# One run
# ------------------------------------------------------------------------------------------


def _row(scenario: Scenario, method: str, strength: float, step: int, losses: tuple[float, float],
         trainable: int, seconds: float) -> dict:
    general, domain = losses
    return dict(method=method, strength=float(strength), seed=scenario.seed, steps=step,
                general_loss=general, domain_loss=domain,
                forgetting=general / scenario.base_general - 1.0,
                learning=1.0 - domain / scenario.base_domain,
                trainable=trainable, seconds=seconds)


def _train(scenario: Scenario, method: Method, strength: float, seed: int, keep_states: bool = False):
    """Fine-tune a copy of the base model; measure both losses and the training seconds at every checkpoint.

    Returns (model, rows, states): states[k] is the state dict at checkpoint k when ``keep_states``.
    """
    settings = scenario.settings
    model = copy.deepcopy(scenario.base)
    prepare_start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # adapter / LoRA initialisation
        prepared = method.prepare(model, scenario, strength, seed)
    setup_seconds = time.perf_counter() - prepare_start + prepared.pop("setup_seconds", 0.0)
    trainable = count_trainable(model)
    every = math.gcd(*settings.checkpoints)
    rows: list[dict] = []
    states: list[dict[str, Tensor]] = []
    clock = {"calls": 0, "start": 0.0, "paused": 0.0}

    def measure(m: nn.Module) -> dict[str, float]:
        """eval_fn hook: called at steps 0, every, 2 * every, ...; records the checkpoints."""
        pause = time.perf_counter()
        step = clock["calls"] * every
        clock["calls"] += 1
        if step == 0:  # called once the optimizer exists, right before the first step: start the clock
            clock["start"] = pause
        elif step in settings.checkpoints:
            seconds = setup_seconds + pause - clock["start"] - clock["paused"]
            rows.append(_row(scenario, method.name, strength, step, scenario.losses(m), trainable, seconds))
            if keep_states:
                states.append({k: v.detach().clone() for k, v in m.state_dict().items()})
        clock["paused"] += time.perf_counter() - pause
        return {}

    lr = prepared.pop("lr", settings.lr)
    fit_lm(model, scenario.domain_train, num_steps=settings.steps, lr=lr, batch_size=settings.batch_size,
           seed=seed, progress=False, eval_fn=measure, eval_every=every, **prepared)
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


# ------------------------------------------------------------------------------------------
# Many runs: methods x strengths x seeds, and the table they fill
# ------------------------------------------------------------------------------------------


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


def _seed_list(seeds: int | Sequence[int]) -> list[int]:
    if isinstance(seeds, bool):
        raise TypeError("seeds must be a positive int (how many) or a list of ints")
    if isinstance(seeds, int):
        if seeds < 1:
            raise ValueError(f"seeds must be at least 1, got {seeds}")
        first = get_seed()
        return [first + k for k in range(seeds)]
    seeds = [get_seed(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be a non-empty list of distinct ints, got {seeds!r}")
    return seeds


@dataclass
class Results:
    """The rows of a comparison (one per method, strength, seed and checkpoint step) and how they were made.

    Row keys: method, strength, seed, steps, general_loss, domain_loss, forgetting, learning,
    trainable, seconds (see the module docstring).
    """

    rows: list[dict]
    settings: Settings
    seeds: list[int]
    base_seed: int | None = None
    scenarios: dict[int, Scenario] = field(default_factory=dict, repr=False)  # by seed; not saved

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

    def to_markdown(self, steps: int | None = None) -> str:
        """A markdown leaderboard at ``steps`` (default: the last checkpoint), best retention first."""
        steps = self.settings.steps if steps is None else steps
        entries = sorted(self.summary(steps), key=lambda e: e["forgetting_mean"])
        lines = [f"Fine-tuning {steps} steps, mean +- std over {len(self.seeds)} seed(s) {self.seeds}. "
                 "forgetting = rise of the general loss; learning = fall of the domain loss (both relative).",
                 "",
                 "| method | strength | forgetting (%) | learning (%) | trainable params | seconds |",
                 "|---|---|---:|---:|---:|---:|"]
        for e in entries:
            knob = METHODS[e["method"]].knob
            strength = "-" if knob == "-" else f"{knob} = {e['strength']:g}"
            lines.append(f"| {e['method']} | {strength} | {100 * e['forgetting_mean']:.1f} +- {100 * e['forgetting_std']:.1f} "
                         f"| {100 * e['learning_mean']:.1f} +- {100 * e['learning_std']:.1f} "
                         f"| {e['trainable_mean']:,.0f} | {e['seconds_mean']:.2f} +- {e['seconds_std']:.2f} |")
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
    seed_list = _seed_list(seeds)
    settings = settings or Settings()
    if not isinstance(settings, Settings):
        raise TypeError(f"settings must be a forgetkit.capstone.Settings, got {type(settings).__name__}")
    jobs = [(seed, name, strength) for seed in seed_list for name, strengths in plan.items() for strength in strengths]
    results = Results([], settings, seed_list, base_seed)
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


# ------------------------------------------------------------------------------------------
# Comparing with plain fine-tuning, targets and recipes
# ------------------------------------------------------------------------------------------


PLAIN_METHODS = ("naive", "low-lr")  # plain fine-tuning: only the learning rate and the number of steps differ


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


@dataclass(frozen=True)
class Targets:
    """What the specialist must achieve: forgetting at most ``max_forgetting`` AND learning at least
    ``min_learning`` (both fractions, e.g. 0.15 = a 15% rise of the general loss)."""

    max_forgetting: float = 0.20
    min_learning: float = 0.50

    def failures(self, forgetting: float, learning: float) -> list[str]:
        """The targets a recipe with these numbers misses, in words (empty when it meets both)."""
        missed = []
        if forgetting > self.max_forgetting:
            missed.append(f"retention target missed: the general loss rose {100 * forgetting:.1f}%, "
                          f"more than the allowed {100 * self.max_forgetting:.0f}%")
        if learning < self.min_learning:
            missed.append(f"learning target missed: the domain loss fell {100 * learning:.1f}%, "
                          f"less than the required {100 * self.min_learning:.0f}%")
        return missed


def check_recipe_format(recipe: object) -> tuple[str, float, int]:
    """``(method, strength, steps)`` from a recipe dict ``{"method", "strength", "steps"}``; clear errors otherwise."""
    if not isinstance(recipe, Mapping) or set(recipe) != {"method", "strength", "steps"}:
        raise ValueError('a recipe must be a dict with exactly the keys "method", "strength" and "steps", '
                         f"got {recipe!r}")
    method = check_method(recipe["method"]).name
    strength = METHODS[method].check(recipe["strength"])
    steps = recipe["steps"]
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    return method, float(strength), int(steps)


def evaluate_recipe(recipe: Mapping, results: Results, progress: bool | None = None) -> dict:
    """The summary entry (means and stds over ``results.seeds``) of a recipe.

    Read from ``results`` when the recipe was part of the comparison, else measured now with a
    quick run under the same settings and seeds (steps may exceed the comparison's).
    """
    method, strength, steps = check_recipe_format(recipe)
    entry = results.lookup(method, strength, steps)
    if entry is not None:
        return entry
    settings = Settings(**{**asdict(results.settings), "steps": steps, "checkpoints": (steps,)})
    quick = run_comparison({method: [strength]}, results.seeds, settings, base_seed=results.base_seed,
                           progress=progress)
    return quick.summary()[0]


def target_margin(entry: Mapping, targets: Targets) -> float:
    """The smaller of the two slacks of a summary entry: min(max_forgetting - forgetting, learning - min_learning).

    Positive: the recipe meets both targets with at least that much room; negative: it misses one.
    """
    return min(targets.max_forgetting - entry["forgetting_mean"], entry["learning_mean"] - targets.min_learning)


def reference_recipe(results: Results, targets: Targets) -> dict:
    """The recipe in ``results`` with the largest ``target_margin``: it meets both targets with the most
    room on the means over seeds (if none meets them, it is the closest miss)."""
    best = max(results.summary(), key=lambda e: target_margin(e, targets))
    return {"method": best["method"], "strength": best["strength"], "steps": best["steps"]}


# ------------------------------------------------------------------------------------------
# Pictures
# ------------------------------------------------------------------------------------------


def plot_method_frontier(results: Results, ax=None, steps: int | None = None, targets: Targets | None = None,
                  highlight: Mapping | None = None, title: str = "Stability-plasticity frontier (lower right is better)"):
    """Every method as forgetting (y) against learning (x), both in %, mean +- std over seeds.

    Naive fine-tuning is drawn as its whole trajectory over steps (the plain fine-tuning curve);
    every other method as one point per strength at ``steps`` (default: the last checkpoint),
    joined in strength order. ``targets`` shades the region meeting both; ``highlight`` (a
    recipe dict) is starred.
    """
    import matplotlib.pyplot as plt

    from .plots import method_color

    ax = ax if ax is not None else plt.subplots(figsize=(7, 5))[1]
    steps = results.settings.steps if steps is None else steps
    summary = results.summary()
    if targets is not None:
        ax.fill_between([100 * targets.min_learning, 100], -5, 100 * targets.max_forgetting,
                        color="#2ca02c", alpha=0.12, label="meets both targets")
    for name in dict.fromkeys(e["method"] for e in summary):
        color = method_color(name)
        if name == "naive":
            line = [e for e in summary if e["method"] == "naive"]
            xs = [0.0] + [100 * e["learning_mean"] for e in line]
            ys = [0.0] + [100 * e["forgetting_mean"] for e in line]
            ax.plot(xs, ys, "-", color=color, lw=2, label="naive (0 to {} steps)".format(line[-1]["steps"]))
            ax.plot(xs[1:], ys[1:], "o", color=color, ms=4)
            continue
        points = [e for e in summary if e["method"] == name and e["steps"] == steps]
        if not points:
            continue
        xs = [100 * e["learning_mean"] for e in points]
        ys = [100 * e["forgetting_mean"] for e in points]
        ax.errorbar(xs, ys, xerr=[100 * e["learning_std"] for e in points],
                    yerr=[100 * e["forgetting_std"] for e in points], fmt="o-", color=color, ms=5,
                    capsize=2, lw=1.2, label=name)
        knob = METHODS[name].knob
        if knob != "-":
            for x, y, e in zip(xs, ys, points):
                ax.annotate(f"{e['strength']:g}", (x, y), textcoords="offset points", xytext=(4, 3),
                            fontsize=7, color=color)
    if highlight is not None:
        entry = results.lookup(*check_recipe_format(highlight))
        if entry is not None:
            ax.plot(100 * entry["learning_mean"], 100 * entry["forgetting_mean"], "*", color="black", ms=16, zorder=5)
    ax.set_xlabel("learning: fall of the domain (clinical) loss (%)")
    ax.set_ylabel("forgetting: rise of the general loss (%)")
    ax.set_title(title, fontsize=10)
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=-5)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    return ax
