"""The capstone's scenario: how every run is made (``Settings``) and what it starts from (``Scenario``)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
import torch.nn as nn
from torch import Tensor

from ..checks import check_int, check_number, check_positive_int
from ..languages import language_tokens
from ..models import TinyLM, model_device
from ..pretrained import pretrained_lm
from ..seeding import get_seed
from ..training import evaluate_lm


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
            object.__setattr__(self, name, check_positive_int(name, getattr(self, name)))
        object.__setattr__(self, "lr", check_number("lr", self.lr, low=0.0, low_open=True))
        checkpoints = tuple(check_int("every checkpoint", c, low=1, high=self.steps) for c in self.checkpoints) \
            or tuple(sorted({max(1, round(self.steps * k / 4)) for k in range(1, 5)}))
        if list(checkpoints) != sorted(set(checkpoints)) or checkpoints[-1] != self.steps:
            raise ValueError(f"checkpoints must be increasing ints in [1, steps={self.steps}] ending at steps, "
                             f"got {self.checkpoints!r}")
        object.__setattr__(self, "checkpoints", checkpoints)


@dataclass(repr=False)
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
    cache: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return (f"Scenario(seed={self.seed}, characters: general {len(self.general_train)} train / "
                f"{len(self.general_test)} test, clinical {len(self.domain_train)} train / {len(self.domain_test)} "
                f"test; base losses: general {self.base_general:.3f}, clinical {self.base_domain:.3f})")

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
    settings = check_settings(settings)
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


def check_settings(settings: Settings | None) -> Settings:
    """``settings``, or the default ``Settings()`` for None; TypeError for anything else."""
    settings = Settings() if settings is None else settings
    if not isinstance(settings, Settings):
        raise TypeError(f"settings must be a forgetkit.capstone.Settings, got {type(settings).__name__}")
    return settings
