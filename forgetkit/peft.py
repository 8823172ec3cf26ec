"""Parameter-efficient fine-tuning: freeze what you keep, train what you add.

Four ways to fine-tune a pre-trained network while leaving most of it alone:

- freezing by name (``freeze``/``unfreeze`` with a pattern); ``linear_probe`` trains the head only;
- LP-FT (Kumar et al., 2022): a linear probe first, then full fine-tuning from that head;
- bottleneck adapters (Houlsby et al., 2019): small residual MLPs inserted after chosen layers,
  ``h + up(relu(down(h)))`` with ``up`` initialised to zero, so the model starts unchanged;
- LoRA (Hu et al., 2021): a frozen ``nn.Linear`` W plus a trainable low-rank update,
  ``W x + (alpha / r) B A x`` with A (r, d_in) random and B (d_out, r) zero, mergeable into W.

Layer names are the dotted names of ``model.named_modules()`` / ``named_parameters()``
(e.g. ``"body.0"``, ``"blocks.1.attn.proj"``); a *pattern* is a regular expression that must
match a whole name (``re.fullmatch``), e.g. ``r"body\\..*"`` or ``r".*attn\\.(qkv|proj)"``.
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .checks import check_positive_int


def _check_module(model: object, name: str = "model") -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(model).__name__}")


def _compile(pattern: str | None) -> re.Pattern | None:
    if pattern is None:
        return None
    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be a regular expression string or None, got {type(pattern).__name__}")
    try:
        return re.compile(pattern)
    except re.error as err:
        raise ValueError(f"pattern {pattern!r} is not a valid regular expression: {err}") from None


# ------------------------------------------------------------------------------------------
# Counting and freezing
# ------------------------------------------------------------------------------------------


def count_trainable(model: nn.Module) -> int:
    """Number of scalar parameters with ``requires_grad=True``."""
    _check_module(model)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_frozen(model: nn.Module) -> int:
    """Number of scalar parameters with ``requires_grad=False``."""
    _check_module(model)
    return sum(p.numel() for p in model.parameters() if not p.requires_grad)


def _set_requires_grad(model: nn.Module, pattern: str | None, value: bool) -> list[str]:
    _check_module(model)
    regex = _compile(pattern)
    names = []
    for name, p in model.named_parameters():
        if regex is None or regex.fullmatch(name):
            p.requires_grad_(value)
            names.append(name)
    if regex is not None and not names:
        available = [name for name, _ in model.named_parameters()]
        raise ValueError(f"pattern {pattern!r} matches no parameter name; the names are {available}")
    return names


def freeze(model: nn.Module, pattern: str | None = None) -> nn.Module:
    """Set ``requires_grad=False`` on every parameter (or on those whose name fullmatches ``pattern``); returns ``model``.

    Raises ValueError when ``pattern`` matches no parameter name (usually a typo).
    """
    _set_requires_grad(model, pattern, False)
    return model


def unfreeze(model: nn.Module, pattern: str | None = None) -> nn.Module:
    """Set ``requires_grad=True`` on every parameter (or on those whose name fullmatches ``pattern``); returns ``model``."""
    _set_requires_grad(model, pattern, True)
    return model


def trainable_names(model: nn.Module) -> list[str]:
    """Names of the parameters that will be trained (``requires_grad=True``), in model order."""
    _check_module(model)
    return [name for name, p in model.named_parameters() if p.requires_grad]


def linear_probe(model: nn.Module, head: str = "head") -> nn.Module:
    """Freeze everything except the parameters of submodule ``head`` (a linear probe); returns ``model``.

    ``head`` is the submodule's dotted name: ``"head"`` for ``MLP``, ``"lm_head"`` for ``TinyLM``.
    """
    _check_module(model)
    if not isinstance(head, str) or head not in dict(model.named_modules()) or head == "":
        heads = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        raise ValueError(f"head {head!r} is not a submodule of the model; its linear layers are {heads}")
    freeze(model)
    return unfreeze(model, re.escape(head) + r"\..*")


def lp_ft(model: nn.Module, X: Tensor, y: Tensor, *, probe_steps: int, finetune_steps: int,
          probe_lr: float, lr: float, head: str = "head", **fit_kwargs):
    """LP-FT (Kumar et al., 2022): train only ``head`` for ``probe_steps``, then everything for ``finetune_steps``.

    Starting full fine-tuning from a trained head (instead of a random one) sends small gradients
    into the body, so its features change less. ``fit_kwargs`` go to ``fk.fit`` in both phases
    (``eval_fn``, ``eval_every``, ``seed`` ...). Returns ``(probe_history, finetune_history)``;
    afterwards every parameter is trainable.
    """
    from .training import fit

    for key, value in (("probe_steps", probe_steps), ("finetune_steps", finetune_steps)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{key} must be a non-negative int, got {value!r}")
    linear_probe(model, head)
    probe_history = fit(model, X, y, num_steps=probe_steps, lr=probe_lr, **fit_kwargs)
    unfreeze(model)
    finetune_history = fit(model, X, y, num_steps=finetune_steps, lr=lr, **fit_kwargs)
    return probe_history, finetune_history


# ------------------------------------------------------------------------------------------
# Bottleneck adapters (Houlsby et al., 2019)
# ------------------------------------------------------------------------------------------


class Adapter(nn.Module):
    """A residual bottleneck: h (..., dim) -> h + up(relu(down(h))), with down (dim -> bottleneck).

    ``up`` starts at zero (weight and bias), so a freshly inserted adapter is the identity and the
    pre-trained model's outputs are unchanged until training moves it (Houlsby et al., 2019).
    Trainable parameters: 2 * dim * bottleneck + bottleneck + dim.
    """

    def __init__(self, dim: int, bottleneck: int):
        super().__init__()
        check_positive_int("dim", dim)
        check_positive_int("bottleneck", bottleneck)
        self.down = nn.Linear(dim, bottleneck)
        self.up = nn.Linear(bottleneck, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: Tensor) -> Tensor:
        return h + self.up(F.relu(self.down(h)))


def _matching_linears(model: nn.Module, pattern: str) -> list[str]:
    """Names of the ``nn.Linear`` submodules whose dotted name fullmatches ``pattern``."""
    regex = _compile(pattern)
    if regex is None:
        raise TypeError("pattern must be a regular expression string, got None")
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    names = [n for n in linears if regex.fullmatch(n)]
    if not names:
        raise ValueError(f"pattern {pattern!r} matches no nn.Linear layer; the model's linear layers are {linears}")
    return names


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def default_targets(model: nn.Module, kind: str = "lora") -> str:
    """The layers the course adapts by default, as a pattern.

    ``MLP``: its hidden ``nn.Linear`` layers (not the head). ``TinyLM``: for ``kind="lora"`` each
    block's attention projections and MLP layers; for ``kind="adapter"`` the output projection of
    attention and of the MLP in each block (Houlsby's two adapters per layer).
    """
    from .models import MLP, TinyLM

    if kind not in ("lora", "adapter"):
        raise ValueError(f"kind must be 'lora' or 'adapter', got {kind!r}")
    if isinstance(model, MLP):
        return r"body\.\d+"
    if isinstance(model, TinyLM):
        return r"blocks\.\d+\.(attn\.(qkv|proj)|mlp\.[02])" if kind == "lora" else r"blocks\.\d+\.(attn\.proj|mlp\.2)"
    raise ValueError(f"no default target layers for {type(model).__name__}: pass a pattern")


def add_adapters(model: nn.Module, bottleneck: int, pattern: str | None = None,
                 freeze_rest: bool = True) -> nn.Module:
    """Insert an ``Adapter`` right after every ``nn.Linear`` whose name fullmatches ``pattern``; returns ``model``.

    Each matched layer ``L`` is replaced (in place) by ``nn.Sequential(L, Adapter(L.out_features,
    bottleneck))``, on L's device. Default pattern: ``default_targets(model, "adapter")``. With ``freeze_rest`` only adapter parameters stay trainable (unfreeze a
    head yourself if it must learn).
    """
    _check_module(model)
    check_positive_int("bottleneck", bottleneck)
    names = _matching_linears(model, pattern or default_targets(model, "adapter"))
    if freeze_rest:
        freeze(model)
    for name in names:
        layer = model.get_submodule(name)
        adapter = Adapter(layer.out_features, bottleneck).to(layer.weight.device, layer.weight.dtype)
        _replace(model, name, nn.Sequential(layer, adapter))
    return model


# ------------------------------------------------------------------------------------------
# LoRA (Hu et al., 2021)
# ------------------------------------------------------------------------------------------


def lora_linear(x: Tensor, weight: Tensor, bias: Tensor | None, A: Tensor, B: Tensor, alpha: float) -> Tensor:
    """The LoRA layer's output: ``x W^T + b + (alpha / r) * (x A^T) B^T`` (Hu et al., 2021, eq. 3).

    Shapes: x (..., d_in), weight W (d_out, d_in), bias b (d_out,) or None, A (r, d_in),
    B (d_out, r); returns (..., d_out). The rank r is ``A.shape[0]``.
    """
    r = A.shape[0]
    return F.linear(x, weight, bias) + (alpha / r) * F.linear(F.linear(x, A), B)


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable rank-``rank`` update (Hu et al., 2021):

        y = W x + b + (alpha / rank) * B A x,   A (rank, d_in) random,  B (d_out, rank) zero.

    B = 0 makes the layer start exactly equal to ``base``. Only A and B train:
    rank * (d_in + d_out) parameters instead of d_out * d_in (+ d_out). ``merge()`` folds the
    update into W (one matmul at inference, same outputs); ``unmerge()`` takes it out again.
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float = 1.0):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"base must be a torch.nn.Linear, got {type(base).__name__}")
        check_positive_int("rank", rank)
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha <= 0:
            raise ValueError(f"alpha must be a finite number > 0, got {alpha!r}")
        self.base = base
        base.requires_grad_(False)
        self.rank, self.alpha, self.scaling = rank, float(alpha), float(alpha) / rank
        factory = dict(device=base.weight.device, dtype=base.weight.dtype)
        self.A = nn.Parameter(torch.empty(rank, base.in_features, **factory))
        self.B = nn.Parameter(torch.zeros(base.out_features, rank, **factory))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))  # as nn.Linear initialises its weight
        self.merged = False

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def delta_weight(self) -> Tensor:
        """The update (alpha / rank) * B A, shape (d_out, d_in)."""
        return self.scaling * (self.B @ self.A)

    def forward(self, x: Tensor) -> Tensor:
        """x (..., d_in) -> (..., d_out)."""
        if self.merged:
            return self.base(x)
        return lora_linear(x, self.base.weight, self.base.bias, self.A, self.B, self.alpha)

    @torch.no_grad()
    def merge(self) -> LoRALinear:
        """W <- W + (alpha / rank) B A; the layer then computes with W alone. Returns self."""
        if self.merged:
            raise RuntimeError("this LoRALinear is already merged: call unmerge() first")
        self.base.weight += self.delta_weight()
        self.merged = True
        return self

    @torch.no_grad()
    def unmerge(self) -> LoRALinear:
        """W <- W - (alpha / rank) B A, undoing ``merge()``. Returns self."""
        if not self.merged:
            raise RuntimeError("this LoRALinear is not merged: nothing to unmerge")
        self.base.weight -= self.delta_weight()
        self.merged = False
        return self

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha:g}, merged={self.merged}"


def apply_lora(model: nn.Module, rank: int, alpha: float = 1.0, pattern: str | None = None,
               freeze_rest: bool = True) -> nn.Module:
    """Wrap every ``nn.Linear`` whose name fullmatches ``pattern`` in a ``LoRALinear``; returns ``model``.

    Works on any model (replacement is in place). Default pattern: ``default_targets(model)``.
    With ``freeze_rest`` every other parameter is frozen too, so only the A and B matrices train
    (unfreeze a head yourself if it must learn).
    """
    _check_module(model)
    check_positive_int("rank", rank)
    names = _matching_linears(model, pattern or default_targets(model))
    if freeze_rest:
        freeze(model)
    for name in names:
        _replace(model, name, LoRALinear(model.get_submodule(name), rank, alpha))
    return model


def lora_layers(model: nn.Module) -> list[LoRALinear]:
    """Every ``LoRALinear`` in ``model``, in module order."""
    _check_module(model)
    return [m for m in model.modules() if isinstance(m, LoRALinear)]


def _for_each_lora(model: nn.Module, action: str) -> nn.Module:
    layers = lora_layers(model)
    if not layers:
        raise ValueError("the model has no LoRALinear layers: call apply_lora first")
    for layer in layers:
        getattr(layer, action)()
    return model


def merge_lora(model: nn.Module) -> nn.Module:
    """``merge()`` every LoRA layer of ``model``; returns it. Raises ValueError if it has none."""
    return _for_each_lora(model, "merge")


def unmerge_lora(model: nn.Module) -> nn.Module:
    """``unmerge()`` every LoRA layer of ``model``; returns it. Raises ValueError if it has none."""
    return _for_each_lora(model, "unmerge")


def lora_parameter_count(d_in: int, d_out: int, rank: int) -> int:
    """Trainable parameters of one LoRA layer: rank * (d_in + d_out)."""
    for key, value in (("d_in", d_in), ("d_out", d_out), ("rank", rank)):
        check_positive_int(key, value)
    return rank * (d_in + d_out)

