"""One seeding helper for the whole course.

Every lesson starts with ``seed = seed_everything()``. The default seed is 0; set the environment
variable ``FORGETKIT_SEED`` to rerun any lesson under another seed and check that what it teaches
does not hang on one lucky draw.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from .checks import check_int

DEFAULT_SEED = 0
SEED_ENV_VAR = "FORGETKIT_SEED"


def get_seed(seed: int | None = None) -> int:
    """The seed to use: ``seed`` if given, else ``$FORGETKIT_SEED``, else ``DEFAULT_SEED``."""
    if seed is None:
        raw = os.environ.get(SEED_ENV_VAR, "").strip()
        if not raw:
            return DEFAULT_SEED
        try:
            seed = int(raw)
        except ValueError:
            raise ValueError(f"{SEED_ENV_VAR} must be an integer, got {raw!r}") from None
    return check_int("seed", seed, low=0, high=2**32 - 1)


def seed_everything(seed: int | None = None) -> int:
    """Seed Python, NumPy and PyTorch (CPU and GPU); return the seed used.

    Same seed, same numbers: the course's models are small enough that the default
    (non-deterministic-algorithm-free) CPU kernels already reproduce exactly.
    """
    seed = get_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return seed


def make_generator(seed: int | None = None) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``get_seed(seed)``, for sampling that must not
    depend on how much randomness other code has consumed before it."""
    generator = torch.Generator()
    generator.manual_seed(get_seed(seed))
    return generator
