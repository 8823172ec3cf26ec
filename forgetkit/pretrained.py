"""A base language model that "already speaks" a language, trained once and cached on disk.

The first call trains a ``TinyLM`` on the language deterministically (a few seconds on a laptop
CPU) and saves it; later calls load it in well under a second. The cache is safe by default:

- written atomically (a temporary file, then ``os.replace``), so a crash never leaves half a file;
- loaded with ``torch.load(..., weights_only=True)``, so a cache file cannot run code;
- a corrupt, truncated or stale file (other settings, other torch) is rebuilt, never a crash.

The cache folder is ``$FORGETKIT_CACHE`` if set, else ``~/.cache/forgetkit``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from dataclasses import asdict
from pathlib import Path

import torch

from .device import _choose
from .languages import ALPHABET, LANGUAGE_NAMES, language_tokens
from .models import TinyLM, TinyLMConfig
from .seeding import get_seed
from .training import fit_lm

CACHE_ENV_VAR = "FORGETKIT_CACHE"
CACHE_FORMAT = 1

# How every base model is made. Changing any value changes the cache key, so old files are rebuilt.
BASE_CONFIG = TinyLMConfig(vocab_size=len(ALPHABET), block_size=32, n_layer=3, n_head=4, n_embd=32)
BASE_TRAINING = dict(num_sentences=3000, num_steps=600, lr=1e-2, batch_size=16)


def cache_dir() -> Path:
    """Where cached models live: ``$FORGETKIT_CACHE`` or ``~/.cache/forgetkit``."""
    root = os.environ.get(CACHE_ENV_VAR) or Path.home() / ".cache" / "forgetkit"
    return Path(root)


def _recipe(language: str, seed: int) -> dict:
    return dict(format=CACHE_FORMAT, language=language, seed=seed, model=asdict(BASE_CONFIG),
                training=BASE_TRAINING, torch=torch.__version__.split("+")[0])


def cache_path(language: str, seed: int | None = None) -> Path:
    """The file that holds the base model for ``language`` under ``seed``."""
    recipe = _recipe(language, get_seed(seed))
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir() / f"tinylm-{language}-seed{recipe['seed']}-{digest}.pt"


def train_base_lm(language: str, seed: int | None = None, progress: bool | None = None) -> TinyLM:
    """Train a fresh base ``TinyLM`` on ``language`` (deterministic for a given seed)."""
    seed = get_seed(seed)
    tokens = language_tokens(language, "train", BASE_TRAINING["num_sentences"], seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TinyLM(BASE_CONFIG)
    fit_lm(model, tokens, num_steps=BASE_TRAINING["num_steps"], lr=BASE_TRAINING["lr"],
           batch_size=BASE_TRAINING["batch_size"], seed=seed, progress=progress,
           desc=f"pre-training the base model on {language}")
    return model.eval()


def pretrained_lm(language: str = "french", seed: int | None = None, device: torch.device | str | None = None,
                  progress: bool | None = None) -> TinyLM:
    """A ``TinyLM`` pre-trained on ``language``: loaded from the cache, or trained and cached.

    Returns a fresh copy each call (in eval mode, on ``device`` or the CPU), so a lesson can
    fine-tune it without touching the cached weights.
    """
    if language not in LANGUAGE_NAMES:
        raise ValueError(f"unknown language {language!r}: expected one of {LANGUAGE_NAMES}")
    device = _choose(device) if device is not None else torch.device("cpu")  # fail before training, not after
    seed = get_seed(seed)
    path = cache_path(language, seed)
    model = _load(path, _recipe(language, seed))
    if model is None:
        model = train_base_lm(language, seed, progress)
        try:
            _save_atomically(path, model, _recipe(language, seed))
        except OSError as err:  # a read-only or full cache folder costs time, never the lesson
            warnings.warn(f"could not cache the base model in {path.parent} ({err}); it will be "
                          f"trained again next time. Set {CACHE_ENV_VAR} to a writable folder.", stacklevel=2)
    return model.to(device).eval()


def _load(path: Path, recipe: dict) -> TinyLM | None:
    """The cached model, or None when the file is missing, unreadable or made from another recipe."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload.get("recipe") != json.dumps(recipe, sort_keys=True):
            return None  # stale: made with other settings
        model = TinyLM(BASE_CONFIG)
        model.load_state_dict(payload["state_dict"])
        return model
    except FileNotFoundError:
        return None
    except Exception:  # corrupt or truncated file, wrong format: rebuild it
        return None


def _save_atomically(path: Path, model: TinyLM, recipe: dict) -> None:
    """Write to a temporary file in the same folder, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"recipe": json.dumps(recipe, sort_keys=True), "state_dict": model.state_dict()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; a shared (JupyterHub) cache must be readable
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
