"""From the toy to real LLMs: the course's measurements and mitigations on Hugging Face models.

Everything here works on any causal language model of ``transformers`` (GPT-2, SmolLM2, Llama,
...) and on its ``peft`` (LoRA) version:

- ``load_causal_lm``: a real pre-trained model when asked for (or on a GPU), else an offline
  stand-in, a tiny GPT-2 pre-trained for seconds on the course's synthetic ``general`` language;
  ``load_real_model`` fails with one clear ``RealModelUnavailable`` message, never a hub traceback;
- ``text_loss``: mean next-token loss (nats per token) on held-out text; exp() of it is perplexity;
- ``ForgettingMonitor``: a ``transformers.TrainerCallback`` that measures the loss on held-out
  "old" text and on the new task's held-out text every ``every`` steps (``measure(model, step)``
  does the same from a plain loop), keeps the history and plots it;
- mitigations: ``apply_lora`` (``peft.LoraConfig``), ``ReplayCollator``/``mix_replay`` (old
  windows mixed into every batch at an exact ratio), ``kl_to_base`` (distillation to a frozen
  copy of the base model), ``wise_ft`` (weight interpolation, ``forgetkit.interpolation``);
- ``self_generated_tokens``: when the pre-training data is gone, text sampled from the base model
  itself stands in for it, as replay and as the held-out "old" set (self-synthesized rehearsal,
  Huang et al., 2024);
- ``finetune``: the ``transformers.Trainer`` run the lesson uses (AdamW, linear warm-up and decay).

Importing this module imports ``transformers`` (seconds); ``import forgetkit`` alone does not.
Token sequences are 1-D int64 tensors; windows are (B, T) tensors ``x`` with next-token targets ``y``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

try:
    import transformers
    from transformers import GPT2Config, GPT2LMHeadModel, TrainerCallback
except ImportError as err:  # pragma: no cover (the course's requirements install it)
    raise ImportError("forgetkit.hf needs Hugging Face transformers, peft and accelerate: "
                      "pip install -r requirements.txt (or pip install forgetkit[hf])") from err

from .checks import check_number, check_positive_int
from .device import pick_device
from .interpolation import wise_ft as _interpolate_wise_ft
from .languages import ALPHABET, CharTokenizer, language_tokens, lm_batch, lm_windows
from .metrics import value_at_learning
from .plots import plot_old_vs_new
from .pretrained import _save_atomically, cache_dir
from .regularizers import distillation_loss
from .seeding import get_seed, make_generator
from .training import eval_mode, model_device, progress_enabled

REAL_MODEL_ENV_VAR = "FORGETKIT_REAL_MODEL"
CACHE_FORMAT = 1

# The offline stand-in: GPT-2's architecture, about a thousand times smaller than GPT-2 (124 M),
# over the course's 29-character alphabet. Changing a value here rebuilds the cache.
FALLBACK_CONFIG = dict(n_positions=64, n_embd=64, n_layer=2, n_head=4)
FALLBACK_TRAINING = dict(language="general", num_sentences=3000, num_steps=300, lr=1e-2, warmup_steps=20,
                         batch_size=8, block_size=64)


def _check_tokens(name: str, tokens: object, min_length: int = 2) -> Tensor:
    if not isinstance(tokens, Tensor) or tokens.ndim != 1 or tokens.dtype != torch.int64:
        got = f"{tokens.dtype} {tuple(tokens.shape)}" if isinstance(tokens, Tensor) else type(tokens).__name__
        raise TypeError(f"{name} must be a 1-D int64 tensor of token ids, got {got}")
    if len(tokens) < min_length:
        raise ValueError(f"{name} must hold at least {min_length} tokens, got {len(tokens)}")
    return tokens


def _check_model(model: object) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (a causal LM), got {type(model).__name__}")
    return model


def _check_fraction(name: str, value: object, high_open: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not 0.0 <= value < 1.0 if high_open else not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1{')' if high_open else ']'}, got {value!r}")
    return float(value)


# ------------------------------------------------------------------------------------------
# Tokens and losses for any causal LM
# ------------------------------------------------------------------------------------------


def encode(tokenizer, text: str) -> Tensor:
    """``text`` -> 1-D int64 token ids, with the course's ``CharTokenizer`` or a Hugging Face tokenizer."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if isinstance(tokenizer, CharTokenizer):
        return tokenizer.encode(text)
    if not callable(tokenizer):
        raise TypeError(f"tokenizer must be a CharTokenizer or a Hugging Face tokenizer, got {type(tokenizer).__name__}")
    ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
    return torch.tensor(ids, dtype=torch.int64)


def decode(tokenizer, ids: Tensor | Sequence[int]) -> str:
    """Token ids -> text (either kind of tokenizer)."""
    if isinstance(tokenizer, CharTokenizer):
        return tokenizer.decode(ids)
    return tokenizer.decode(ids.tolist() if isinstance(ids, Tensor) else list(ids))


def lm_logits(model: nn.Module, x: Tensor) -> Tensor:
    """Logits (B, T, vocab) of a Hugging Face causal LM (or its peft version) for token ids x (B, T)."""
    return model(input_ids=x).logits


def lm_loss(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Mean next-token cross-entropy (nats per token): logits of x (B, T) against targets y (B, T)."""
    return F.cross_entropy(lm_logits(model, x).flatten(0, 1).float(), y.flatten())


@torch.no_grad()
def text_loss(model: nn.Module, tokens: Tensor, block_size: int, max_windows: int = 32, batch_size: int = 16) -> float:
    """Mean next-token loss over up to ``max_windows`` fixed, non-overlapping windows of ``tokens``.

    Deterministic (the same windows every call), in eval mode, in batches of ``batch_size``
    windows on the model's device. ``math.exp`` of it is the perplexity.
    """
    _check_model(model)
    _check_tokens("tokens", tokens, block_size + 1 if isinstance(block_size, int) else 2)
    check_positive_int("batch_size", batch_size)
    x, y = lm_windows(tokens, block_size, max_windows)
    device = model_device(model)
    total = 0.0
    with eval_mode(model):
        for start in range(0, len(x), batch_size):
            xb, yb = x[start : start + batch_size].to(device), y[start : start + batch_size].to(device)
            total += lm_loss(model, xb, yb).item() * len(xb)
    return total / len(x)


# ------------------------------------------------------------------------------------------
# Loading a real model, or the offline stand-in
# ------------------------------------------------------------------------------------------


class RealModelUnavailable(RuntimeError):
    """A real pre-trained model could not be loaded (no network and no cached copy, unknown name, ...)."""


def wants_real_model(device: torch.device | str, use_real: bool | None = None) -> bool:
    """Whether to load the real model: ``use_real`` if given, else ``$FORGETKIT_REAL_MODEL``
    (``1``/``0``), else only on a CUDA GPU.

    On a CPU the real model is opt-in: fine-tuning GPT-2 (124 M parameters) with AdamW needs
    about 2 GB for weights, gradients and optimizer state, more than a Binder session has, and
    minutes per run instead of seconds.
    """
    if use_real is not None:
        if not isinstance(use_real, bool):
            raise TypeError(f"use_real must be True, False or None, got {type(use_real).__name__}")
        return use_real
    raw = os.environ.get(REAL_MODEL_ENV_VAR, "").strip().lower()
    if raw:
        if raw not in ("1", "0", "true", "false", "yes", "no"):
            raise ValueError(f"{REAL_MODEL_ENV_VAR} must be 1 or 0, got {raw!r}")
        return raw in ("1", "true", "yes")
    return torch.device(device).type == "cuda"


def _hub_offline() -> bool:
    return any(os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on")
               for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _hub_unreachable(timeout: float = 3.0) -> str:
    """Why the Hugging Face hub (``$HF_ENDPOINT`` or huggingface.co) cannot be reached, or "" if it can."""
    import socket
    from urllib.parse import urlparse

    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as err:
        return f"no network: cannot reach {host} ({err})"
    return ""


def load_real_model(name: str, device: torch.device | str | None = None) -> tuple[nn.Module, object]:
    """``(model, tokenizer)`` of the pre-trained causal LM ``name`` (a hub id such as ``"gpt2"`` or a
    local folder), in eval mode on ``device`` (default: the CPU), in float32.

    The local cache is tried first; the hub only when that fails and ``HF_HUB_OFFLINE`` is not set.
    Any failure (no network, no cached copy, an unknown name) raises ``RealModelUnavailable`` with
    one line saying why, never a traceback from inside the hub client.
    """
    if not isinstance(name, str) or not name.strip():
        raise TypeError(f"name must be a model id or folder (a non-empty str), got {name!r}")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    attempts = [True] if _hub_offline() or Path(name).is_dir() else [True, False]
    reason = ""
    for local_files_only in attempts:
        if not local_files_only:
            unreachable = _hub_unreachable()
            if unreachable:  # fail in seconds, not after the hub client's minute of retries
                reason = unreachable
                break
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=local_files_only)
                model = AutoModelForCausalLM.from_pretrained(name, local_files_only=local_files_only)
            model = model.float()  # fine-tune in float32 (some checkpoints, e.g. SmolLM2, are bfloat16)
            model = _plain_causal_lm_loss(model).to(torch.device(device) if device is not None else "cpu")
            return model.eval(), tokenizer
        except Exception as err:  # noqa: BLE001 (every hub failure becomes one clear message)
            first_line = (str(err).strip().splitlines() or [""])[0][:200]
            reason = f"{type(err).__name__}: {first_line}" if first_line else type(err).__name__
    where = "the local Hugging Face cache" + ("" if len(attempts) == 1 else " nor the hub")
    raise RealModelUnavailable(f"neither {where} could give the model {name!r} ({reason})") from None


def tiny_gpt2_config() -> GPT2Config:
    """The stand-in's configuration: GPT-2's architecture with ``FALLBACK_CONFIG``'s sizes,
    the course's character vocabulary, no dropout and no end-of-text token."""
    return GPT2Config(vocab_size=len(ALPHABET), **FALLBACK_CONFIG, resid_pdrop=0.0, embd_pdrop=0.0,
                      attn_pdrop=0.0, bos_token_id=None, eos_token_id=None, pad_token_id=None)


def tiny_gpt2(seed: int | None = None) -> GPT2LMHeadModel:
    """A randomly initialised tiny GPT-2 (same init for the same seed, whatever ran before)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(get_seed(seed))
        return _plain_causal_lm_loss(GPT2LMHeadModel(tiny_gpt2_config()))


def _plain_causal_lm_loss(model: nn.Module) -> nn.Module:
    """Name the loss that GPT-2 uses anyway (next-token cross-entropy), so that transformers does not
    warn that it had to guess it from the class name."""
    if getattr(model, "loss_type", "") is None:
        model.loss_type = "ForCausalLM"
    return model


def _fallback_recipe(seed: int) -> dict:
    return dict(format=CACHE_FORMAT, seed=seed, config=FALLBACK_CONFIG, training=FALLBACK_TRAINING,
                torch=torch.__version__.split("+")[0], transformers=transformers.__version__)


def fallback_cache_path(seed: int | None = None) -> Path:
    """The file that caches the pre-trained stand-in for ``seed``."""
    recipe = _fallback_recipe(get_seed(seed))
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir() / f"tinygpt2-{FALLBACK_TRAINING['language']}-seed{recipe['seed']}-{digest}.pt"


def _load_fallback(path: Path, seed: int) -> GPT2LMHeadModel | None:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload.get("recipe") != json.dumps(_fallback_recipe(seed), sort_keys=True):
            return None  # made with other settings
        model = tiny_gpt2(seed)
        model.load_state_dict(payload["state_dict"])
        return model
    except Exception:  # noqa: BLE001 (missing, corrupt or truncated: rebuild it)
        return None


def pretrained_tiny_gpt2(seed: int | None = None, device: torch.device | str | None = None,
                         progress: bool | None = None) -> GPT2LMHeadModel:
    """The stand-in, pre-trained on the synthetic ``general`` language: from the cache, or trained
    (a few seconds, deterministic for a seed) and cached like ``fk.pretrained_lm``'s models
    (written atomically, loaded with ``weights_only=True``, rebuilt when corrupt or stale)."""
    seed = get_seed(seed)
    path = fallback_cache_path(seed)
    model = _load_fallback(path, seed)
    if model is None:
        model = tiny_gpt2(seed)
        settings = FALLBACK_TRAINING
        tokens = language_tokens(settings["language"], "train", settings["num_sentences"], seed)
        finetune(model, tokens, num_steps=settings["num_steps"], lr=settings["lr"], batch_size=settings["batch_size"],
                 block_size=settings["block_size"], warmup_steps=settings["warmup_steps"], seed=seed, progress=progress)
        try:
            _save_atomically(path, model, _fallback_recipe(seed))
        except OSError as err:
            warnings.warn(f"could not cache the tiny GPT-2 in {path.parent} ({err}); it will be trained again "
                          "next time.", stacklevel=2)
    return model.to(torch.device(device) if device is not None else "cpu").eval()


@dataclass
class LoadedLM:
    """What ``load_causal_lm`` returns: the model, its tokenizer, and which model it really is."""

    model: nn.Module
    tokenizer: object
    name: str  # the model actually loaded ("tiny GPT-2 (offline stand-in)" for the fallback)
    is_real: bool
    message: str  # the one line printed when it was loaded


def load_causal_lm(name: str, device: torch.device | str | None = None, use_real: bool | None = None,
                   seed: int | None = None, verbose: bool = True) -> LoadedLM:
    """The real model ``name`` when ``wants_real_model`` says so and it loads; else the offline
    stand-in (``pretrained_tiny_gpt2``). Prints one line saying which, and why."""
    device = pick_device(device)
    parameters = "{:.3g} M parameters"
    if wants_real_model(device, use_real):
        try:
            model, tokenizer = load_real_model(name, device)
        except RealModelUnavailable as err:
            reason = f"Could not load {name}: {err}. "
        else:
            count = sum(p.numel() for p in model.parameters())
            message = f"Loaded the real model {name} ({parameters.format(count / 1e6)}) on {device.type}."
            if verbose:
                print(message)
            return LoadedLM(model, tokenizer, name, True, message)
    else:
        reason = (f"Not loading {name} on the CPU unless asked (USE_REAL_MODEL = True or "
                  f"{REAL_MODEL_ENV_VAR}=1; a GPU loads it by default). ")
    model = pretrained_tiny_gpt2(seed, device)
    count = sum(p.numel() for p in model.parameters())
    message = (reason + f"Using the offline stand-in: a tiny GPT-2 ({parameters.format(count / 1e6)}) "
               f"pre-trained for seconds on the course's synthetic '{FALLBACK_TRAINING['language']}' language.")
    if verbose:
        print(message)
    return LoadedLM(model, CharTokenizer(), "tiny GPT-2 (offline stand-in)", False, message)


def python_docs_text() -> str:
    """English prose that ships with Python: the help topics of the language reference
    (``pydoc_data.topics``), about 0.5 MB, read at run time."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key] for key in sorted(topics))


def python_source_text(part: str = "train", max_chars: int = 400_000) -> str:
    """A narrow domain that ships with Python: the standard library's own source code (the
    top-level ``*.py`` files, in name order; ``"train"`` takes every even file, ``"test"`` every odd one)."""
    import sysconfig

    if part not in ("train", "test"):
        raise ValueError(f"part must be 'train' or 'test', got {part!r}")
    check_positive_int("max_chars", max_chars)
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[part == "test" :: 2]
    chunks, size = [], 0
    for path in files:
        if size >= max_chars:
            break
        text = path.read_text(encoding="utf-8", errors="replace")
        chunks.append(text)
        size += len(text)
    return "".join(chunks)[:max_chars]


def lesson_texts(loaded: LoadedLM, seed: int | None = None) -> dict[str, Tensor]:
    """The lesson's three token sequences: ``"old"`` (held-out general text), ``"new_train"`` and
    ``"new_test"`` (the narrow domain).

    The stand-in: the synthetic ``general`` language (what it was pre-trained on) and its
    ``clinical`` register. A real model: English prose from Python's help topics, and the
    standard library's source code as the domain (its real pre-training data is not at hand).
    """
    if not isinstance(loaded, LoadedLM):
        raise TypeError(f"loaded must be what load_causal_lm returns, got {type(loaded).__name__}")
    if not loaded.is_real:
        return {"old": language_tokens("general", "test", 300, seed),
                "new_train": language_tokens("clinical", "train", 1000, seed),
                "new_test": language_tokens("clinical", "test", 300, seed)}
    encode_text = lambda text: encode(loaded.tokenizer, text)  # noqa: E731
    return {"old": encode_text(python_docs_text()[:200_000]),
            "new_train": encode_text(python_source_text("train", 400_000)),
            "new_test": encode_text(python_source_text("test", 100_000))}


# ------------------------------------------------------------------------------------------
# Watching forgetting during fine-tuning
# ------------------------------------------------------------------------------------------


def old_loss_at(new_losses: Sequence[float], old_losses: Sequence[float], new_target: float) -> float:
    """The old-text loss of a fine-tuning trajectory at the moment its new-text loss reached ``new_target``.

    Checkpoints i = 0, 1, ... have losses ``new_losses[i]``, ``old_losses[i]``. Returns
    ``old_losses[0]`` if ``new_losses[0] <= new_target``; else, for the first segment with
    ``new_losses[i] > new_target >= new_losses[i + 1]``, the linear interpolation
    ``old[i] + (new[i] - new_target) / (new[i] - new[i + 1]) * (old[i + 1] - old[i])``. Raises
    ValueError when the trajectory never got there (no extrapolation). Comparing two methods'
    values at one ``new_target`` compares them at matched learning: it is
    ``fk.value_at_learning`` with learning measured as the fall of the new-text loss.
    """
    new, old = np.asarray(new_losses, dtype=float), np.asarray(old_losses, dtype=float)
    if not (np.isfinite(new).all() and np.isfinite(old).all()):
        raise ValueError("losses must be finite numbers")
    check_number("new_target", new_target)
    value = value_at_learning(-new, old, -float(new_target))  # a lower new loss is more learning
    if math.isnan(value):
        raise ValueError(f"the trajectory never reached a new-text loss of {new_target:.4g} (lowest {new.min():.4g})")
    return value


class ForgettingMonitor(TrainerCallback):
    """Measures the loss on held-out old text and new text during fine-tuning, every ``every`` steps.

    With ``transformers.Trainer``: ``Trainer(..., callbacks=[monitor])``; it measures at the start
    (step 0), every ``every`` optimizer steps and at the end. In a plain loop: call
    ``monitor.measure(model, step)`` yourself. ``texts`` adds more held-out sets by name (e.g.
    self-generated text). ``history[name]`` is the list of losses (nats per token), one per entry
    of ``steps``; ``perplexity(name)`` is their exp.
    """

    def __init__(self, old_tokens: Tensor, new_tokens: Tensor, every: int = 10, block_size: int = 64,
                 max_windows: int = 32, texts: Mapping[str, Tensor] | None = None):
        self.every = check_positive_int("every", every)
        self.block_size = check_positive_int("block_size", block_size)
        self.max_windows = check_positive_int("max_windows", max_windows)
        extra = dict(texts or {})
        if {"old", "new"} & set(extra):
            raise ValueError("texts must not use the names 'old' or 'new' (they name old_tokens and new_tokens)")
        self.texts = {"old": old_tokens, "new": new_tokens, **extra}
        for name, tokens in self.texts.items():
            _check_tokens(f"the {name!r} tokens", tokens, self.block_size + 1)
        self.steps: list[int] = []
        self.history: dict[str, list[float]] = {name: [] for name in self.texts}

    def measure(self, model: nn.Module, step: int) -> dict[str, float]:
        """Measure every text's loss now and record it under ``step``; returns ``{name: loss}``."""
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"step must be a non-negative int, got {step!r}")
        if self.steps and step <= self.steps[-1]:
            raise ValueError(f"step {step} is not after the last recorded step {self.steps[-1]}")
        values = {name: text_loss(model, tokens, self.block_size, self.max_windows)
                  for name, tokens in self.texts.items()}
        self.steps.append(step)
        for name, value in values.items():
            self.history[name].append(value)
        return values

    # -- the Trainer's hooks ------------------------------------------------------------------
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if not self.steps or self.steps[-1] < state.global_step:
            self.measure(model, state.global_step)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every == 0:
            self.measure(model, state.global_step)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if self.steps[-1] < state.global_step:
            self.measure(model, state.global_step)

    # -- reading the history ------------------------------------------------------------------
    def perplexity(self, name: str = "old") -> np.ndarray:
        """exp(loss) of one text at every recorded step."""
        if name not in self.history:
            raise ValueError(f"unknown text {name!r}: the monitor measures {list(self.history)}")
        return np.exp(np.asarray(self.history[name]))

    def old_at(self, new_target: float, old: str = "old") -> float:
        """The ``old`` text's loss when the new text's loss reached ``new_target`` (``old_loss_at``)."""
        return old_loss_at(self.history["new"], self.history[old], new_target)

    def plot(self, ax=None, perplexity: bool = False, old: str = "old", title: str | None = None, **kwargs):
        """Both curves over the fine-tuning steps with the course's ``plot_old_vs_new`` (old blue, new orange)."""
        if not self.steps:
            raise ValueError("nothing recorded yet: train with the monitor, or call measure(model, step)")
        values = {name: (self.perplexity(name) if perplexity else self.history[name]) for name in (old, "new")}
        return plot_old_vs_new(self.steps, values[old], values["new"], ax=ax,
                               ylabel="perplexity" if perplexity else "loss (nats per token)",
                               title=title or "Held-out old text vs new text during fine-tuning", **kwargs)


# ------------------------------------------------------------------------------------------
# Mitigations for any causal LM
# ------------------------------------------------------------------------------------------


def apply_lora(model: nn.Module, r: int = 8, lora_alpha: float = 16.0, target_modules: str | Sequence[str] = "all-linear",
               lora_dropout: float = 0.0) -> nn.Module:
    """LoRA (Hu et al., 2021) through ``peft``: returns the peft model, with only the A and B
    matrices trainable; the update of each adapted layer is (lora_alpha / r) * B A.

    ``target_modules="all-linear"`` adapts every linear (and GPT-2 ``Conv1D``) layer except the
    output head; a list of names (``["c_attn"]``, ``["q_proj", "v_proj"]``) adapts those only.
    ``model.merge_and_unload()`` folds the update into the weights and returns the plain model.
    """
    import peft
    from transformers.pytorch_utils import Conv1D

    _check_model(model)
    check_positive_int("r", r)
    if isinstance(lora_alpha, bool) or not isinstance(lora_alpha, (int, float)) or not lora_alpha > 0:
        raise ValueError(f"lora_alpha must be a number > 0, got {lora_alpha!r}")
    if not isinstance(target_modules, str) and not (
            isinstance(target_modules, Sequence) and target_modules and all(isinstance(t, str) for t in target_modules)):
        raise TypeError(f"target_modules must be 'all-linear' or a list of module names, got {target_modules!r}")
    _check_fraction("lora_dropout", lora_dropout)
    is_hf = isinstance(model, transformers.PreTrainedModel)
    config = peft.LoraConfig(
        r=r, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
        target_modules=target_modules if isinstance(target_modules, str) else list(target_modules),
        fan_in_fan_out=any(isinstance(m, Conv1D) for m in model.modules()),  # GPT-2 stores W transposed
        task_type="CAUSAL_LM" if is_hf else None)
    with warnings.catch_warnings():  # peft calls a transformers method that is deprecated in 5.x
        warnings.simplefilter("ignore", FutureWarning)
        return peft.get_peft_model(model, config)


def replay_windows(batch_size: int, ratio: float) -> int:
    """How many of ``batch_size`` windows are replayed old text at ``ratio``: exactly
    ``ratio * batch_size``, which must be a whole number (else ValueError, with the nearest ratios)."""
    check_positive_int("batch_size", batch_size)
    ratio = _check_fraction("ratio", ratio)
    k = round(ratio * batch_size)
    if abs(k - ratio * batch_size) > 1e-9:
        raise ValueError(f"ratio * batch_size must be a whole number of windows, got {ratio} * {batch_size} = "
                         f"{ratio * batch_size:g}; e.g. ratio {math.floor(ratio * batch_size) / batch_size:g} "
                         f"or {math.ceil(ratio * batch_size) / batch_size:g}")
    return k


def mix_replay(x_new: Tensor, old_tokens: Tensor, ratio: float, generator: torch.Generator) -> Tensor:
    """A batch (B, L) of token windows in which exactly ``ratio * B`` rows (the last ones) are
    replaced by random windows of ``old_tokens``: the replayed share of every batch is ``ratio``."""
    if not isinstance(x_new, Tensor) or x_new.ndim != 2 or x_new.dtype != torch.int64:
        raise TypeError("x_new must be a (B, L) int64 tensor of token windows")
    k = replay_windows(len(x_new), ratio)
    if k == 0:
        return x_new
    _check_tokens("old_tokens", old_tokens, x_new.shape[1] + 1)
    x_old, _ = lm_batch(old_tokens, k, x_new.shape[1], generator)
    return torch.cat([x_new[: len(x_new) - k], x_old.to(x_new.device)])


class ReplayCollator:
    """A ``data_collator`` for ``transformers.Trainer``: stacks ``{"input_ids", "labels"}`` windows
    and replaces exactly ``ratio`` of every batch by windows of ``old_tokens`` (``mix_replay``)."""

    def __init__(self, old_tokens: Tensor, ratio: float, seed: int | None = None):
        self.old_tokens = _check_tokens("old_tokens", old_tokens)
        self.ratio = _check_fraction("ratio", ratio)
        self.generator = make_generator(seed)

    def __call__(self, features: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        x = mix_replay(torch.stack([f["input_ids"] for f in features]), self.old_tokens, self.ratio, self.generator)
        return {"input_ids": x, "labels": x.clone()}


def frozen_copy(model: nn.Module) -> nn.Module:
    """A frozen copy of ``model`` in eval mode: the reference for ``kl_to_base``."""
    import copy

    reference = copy.deepcopy(_check_model(model)).eval()
    reference.requires_grad_(False)
    return reference


def kl_to_base(model: nn.Module, base: nn.Module, x: Tensor, temperature: float = 1.0) -> Tensor:
    """Mean per-token KL(p_base || p_model) of the next-token distributions on windows x (B, T).

    The distillation penalty (Hinton et al., 2015; as LwF, Li & Hoiem, 2017): add
    ``lam * kl_to_base(model, base, x)`` to the fine-tuning loss to keep the model's predictions
    close to the frozen base model's (``frozen_copy``). Zero when the two models agree; gradients
    flow into ``model`` only. Softmaxes use ``temperature``; the result is scaled by T^2 as usual.
    The arithmetic is ``forgetkit.regularizers.distillation_loss``, the course's own LwF penalty.
    """
    _check_model(model)
    _check_model(base)
    if not isinstance(x, Tensor) or x.ndim != 2 or x.dtype != torch.int64:
        raise TypeError("x must be a (B, T) int64 tensor of token ids")
    temperature = check_number("temperature", temperature, low=0.0, low_open=True)
    with torch.no_grad():
        base_logits = lm_logits(base, x)
    return distillation_loss(lm_logits(model, x), base_logits, temperature)


def _plain_state_dict(model_or_sd: nn.Module | Mapping[str, Tensor]) -> Mapping[str, Tensor]:
    """A state dict without adapters: a peft model's LoRA update is merged into a copy first."""
    if not isinstance(model_or_sd, nn.Module):
        return model_or_sd
    if hasattr(model_or_sd, "merge_and_unload") and hasattr(model_or_sd, "peft_config"):
        import copy

        return copy.deepcopy(model_or_sd).merge_and_unload().state_dict()
    return model_or_sd.state_dict()


def wise_ft(base: nn.Module | Mapping[str, Tensor], finetuned: nn.Module | Mapping[str, Tensor],
            alpha: float) -> dict[str, Tensor]:
    """WiSE-FT (Wortsman et al., 2022): (1 - alpha) * theta_base + alpha * theta_finetuned, as a
    state dict for the base architecture (``model.load_state_dict``). ``forgetkit.interpolation.wise_ft``
    does the arithmetic; here a peft (LoRA) model is merged first, so it mixes with the plain base."""
    return _interpolate_wise_ft(_plain_state_dict(base), _plain_state_dict(finetuned), alpha)


# ------------------------------------------------------------------------------------------
# Self-synthesized rehearsal (Huang et al., 2024)
# ------------------------------------------------------------------------------------------


def _start_token(tokenizer) -> int:
    if isinstance(tokenizer, CharTokenizer):
        return tokenizer.stoi["\n"]  # the stand-in's sentences start after a newline
    for attribute in ("bos_token_id", "eos_token_id"):
        value = getattr(tokenizer, attribute, None)
        if value is not None:
            return int(value)
    raise ValueError("the tokenizer has neither a bos nor an eos token to start generating from")


@torch.no_grad()
def self_generated_tokens(model: nn.Module, tokenizer, num_samples: int = 32, length: int = 63,
                          seed: int | None = None, temperature: float = 1.0, batch_size: int = 32) -> Tensor:
    """Text sampled from ``model`` itself, as one 1-D token sequence: ``num_samples`` samples, each a
    beginning-of-text token and ``length`` sampled tokens (plain sampling at ``temperature``).

    When the pre-training data is gone, this is what the base model "knows": replay it while
    fine-tuning, and hold part of it out to measure forgetting (Huang et al., 2024). The same seed
    and ``batch_size`` give the same text, whatever ran before.
    """
    _check_model(model)
    for key, value in (("num_samples", num_samples), ("length", length), ("batch_size", batch_size)):
        check_positive_int(key, value)
    limit = getattr(getattr(model, "config", None), "n_positions", None) or getattr(
        getattr(model, "config", None), "max_position_embeddings", None)
    if limit is not None and length >= limit:
        raise ValueError(f"length must be below the model's context of {limit} tokens, got {length}")
    device = model_device(model)
    start = _start_token(tokenizer)
    samples = []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), eval_mode(model):
        torch.manual_seed(get_seed(seed))
        for first in range(0, num_samples, batch_size):
            n = min(batch_size, num_samples - first)
            prompt = torch.full((n, 1), start, dtype=torch.int64, device=device)
            out = model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), do_sample=True,
                                 max_new_tokens=length, min_new_tokens=length, temperature=temperature,
                                 top_k=0, top_p=1.0, pad_token_id=start)
            samples.append(out.cpu())  # each sample starts with its beginning-of-text token
    return torch.cat(samples).reshape(-1)


# ------------------------------------------------------------------------------------------
# Fine-tuning with transformers.Trainer
# ------------------------------------------------------------------------------------------


class WindowDataset(torch.utils.data.Dataset):
    """``num_windows`` random windows of ``block_size`` tokens as ``{"input_ids", "labels"}`` (the
    model shifts the labels by one itself: block_size - 1 predictions each), drawn once with ``seed``."""

    def __init__(self, tokens: Tensor, block_size: int, num_windows: int, seed: int | None = None):
        self.block_size = check_positive_int("block_size", block_size)
        self.tokens = _check_tokens("tokens", tokens, block_size + 1)
        check_positive_int("num_windows", num_windows)
        self.starts = torch.randint(len(tokens) - block_size, (num_windows,), generator=make_generator(seed))

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        window = self.tokens[self.starts[i] : self.starts[i] + self.block_size]
        return {"input_ids": window, "labels": window}


class _ProgressBar(transformers.ProgressCallback):
    """The Trainer's progress bar without its printout of the final metrics."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        pass


def finetune(model: nn.Module, tokens: Tensor, *, num_steps: int, lr: float, batch_size: int = 8,
             block_size: int = 64, warmup_steps: int = 0, monitor: ForgettingMonitor | None = None,
             replay_tokens: Tensor | None = None, replay_ratio: float = 0.0, seed: int | None = None,
             progress: bool | None = None) -> transformers.Trainer:
    """Fine-tune ``model`` in place on random windows of ``tokens`` with ``transformers.Trainer``.

    AdamW (no weight decay), the learning rate warmed up linearly for ``warmup_steps`` and then
    decayed linearly to zero, gradients clipped at norm 1 (the Trainer's defaults otherwise).
    ``monitor`` is added as a callback; ``replay_tokens`` are mixed into every batch at
    ``replay_ratio`` (``ReplayCollator``). Nothing is written to disk. Returns the trainer.
    """
    from transformers import PrinterCallback, ProgressCallback, Trainer, TrainingArguments

    _check_model(model)
    check_positive_int("num_steps", num_steps)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr must be a number > 0, got {lr!r}")
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or not 0 <= warmup_steps <= num_steps:
        raise ValueError(f"warmup_steps must be an int in [0, num_steps], got {warmup_steps!r}")
    if monitor is not None and not isinstance(monitor, ForgettingMonitor):
        raise TypeError(f"monitor must be a ForgettingMonitor or None, got {type(monitor).__name__}")
    seed = get_seed(seed)
    collator = None
    if replay_tokens is not None:
        replay_windows(batch_size, replay_ratio)
        collator = ReplayCollator(replay_tokens, replay_ratio, seed + 1)
    elif replay_ratio:
        raise ValueError("replay_ratio > 0 needs replay_tokens")
    dataset = WindowDataset(tokens, block_size, num_steps * batch_size, seed)
    show = progress_enabled(progress)
    with tempfile.TemporaryDirectory(prefix="forgetkit-trainer-") as output_dir, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        args = TrainingArguments(
            output_dir=output_dir, max_steps=num_steps, per_device_train_batch_size=batch_size, learning_rate=lr,
            warmup_steps=warmup_steps, lr_scheduler_type="linear", weight_decay=0.0, max_grad_norm=1.0,
            optim="adamw_torch", seed=seed, data_seed=seed, dataloader_drop_last=True, remove_unused_columns=False,
            report_to="none", save_strategy="no", logging_strategy="no", disable_tqdm=not show,
            use_cpu=model_device(model).type == "cpu")
        trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator,
                          callbacks=[monitor] if monitor is not None else None)
        trainer.remove_callback(PrinterCallback)  # it prints the final metrics (run time) of every run
        trainer.remove_callback(ProgressCallback)
        if show:
            trainer.add_callback(_ProgressBar)
        trainer.train()
    model.eval()
    return trainer
