"""Parameter-efficient fine-tuning: freeze what you keep, train what you add.

Four ways to fine-tune a pre-trained network while leaving most of it alone:

- freezing by name (``freeze``/``unfreeze`` with a pattern); ``linear_probe`` trains the head only;
- LP-FT (Kumar et al., 2022): a linear probe first, then full fine-tuning from that head;
- bottleneck adapters (Houlsby et al., 2019): small residual MLPs inserted after chosen layers,
  ``h + up(relu(down(h)))`` with ``up`` initialised to zero, so the model starts unchanged;
- LoRA (Hu et al., 2021): a frozen ``nn.Linear`` W plus a trainable low-rank update,
  ``W x + (lora_alpha / r) B A x`` with A (r, d_in) random and B (d_out, r) zero, mergeable into W.
  The arguments carry Hugging Face peft's names (``r``, ``lora_alpha``, ``target_modules``, and
  scaling = lora_alpha / r), so what a learner writes here reads the same in peft's ``LoraConfig``.

Layer names are the dotted names of ``model.named_modules()`` / ``named_parameters()``
(e.g. ``"body.0"``, ``"blocks.1.attn.proj"``); a *pattern* is a regular expression that must
match a whole name (``re.fullmatch``), e.g. ``r"body\\..*"`` or ``r".*attn\\.(qkv|proj)"``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .checks import (
    check_bool,
    check_choice,
    check_int,
    check_module,
    check_number,
    check_positive_int,
)
from .models import MLP, TinyLM
from .training import fit


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


def trainable_parameters(model: nn.Module, required: bool = False) -> dict[str, nn.Parameter]:
    """The parameters that will be trained (``requires_grad=True``), by name, in model order.

    With ``required``, a model with none raises ValueError (nothing to train or differentiate).
    """
    check_module(model)
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    if required and not params:
        raise ValueError("the model has no trainable parameters (every requires_grad is False)")
    return params


def count_trainable(model: nn.Module) -> int:
    """Number of scalar parameters with ``requires_grad=True``."""
    return sum(p.numel() for p in trainable_parameters(model).values())


def count_frozen(model: nn.Module) -> int:
    """Number of scalar parameters with ``requires_grad=False``."""
    return sum(p.numel() for p in check_module(model).parameters() if not p.requires_grad)


def _set_requires_grad(model: nn.Module, pattern: str | None, value: bool) -> list[str]:
    check_module(model)
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


def linear_probe(model: nn.Module, head: str = "head") -> nn.Module:
    """Freeze everything except the parameters of submodule ``head`` (a linear probe); returns ``model``.

    ``head`` is the submodule's dotted name: ``"head"`` for ``MLP``, ``"lm_head"`` for ``TinyLM``.
    """
    check_module(model)
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
    check_int("probe_steps", probe_steps, low=0)
    check_int("finetune_steps", finetune_steps, low=0)
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


def _matching_linears(model: nn.Module, target_modules: str | Sequence[str]) -> list[str]:
    """Names of the ``nn.Linear`` submodules that ``target_modules`` selects, as in Hugging Face peft:
    a str is a regular expression that must match the whole dotted name; a list of names selects
    every layer whose name is one of them or ends with "." + one of them (``["qkv", "proj"]``).

    Raises ValueError when the selection takes in a layer that already has LoRA (wrapping it again
    would nest LoRA in LoRA), or when it selects nothing (naming the layers there are).
    """
    if isinstance(target_modules, str):
        regex = _compile(target_modules)

        def selected(name: str) -> bool:
            return bool(regex.fullmatch(name))
    elif isinstance(target_modules, Sequence) and all(isinstance(t, str) for t in target_modules):
        def selected(name: str) -> bool:
            return any(name == t or name.endswith("." + t) for t in target_modules)
    else:
        raise TypeError(f"target_modules must be a regular expression (str) or a list of layer names, "
                        f"got {type(target_modules).__name__}")
    with_lora = [n for n, m in model.named_modules() if isinstance(m, LoRALinear)]
    wrapped = {f"{n}.base" if n else "base": n for n in with_lora}  # the nn.Linear inside each LoRALinear
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    names = [n for n in linears if selected(n)]
    again = sorted({n for n in with_lora if selected(n)} | {wrapped[n] for n in names if n in wrapped})
    if again:
        raise ValueError(f"target_modules {target_modules!r} selects layers that already have LoRA ({again}): "
                         "wrap each layer once (merge_lora folds an update into the weights)")
    if not names:
        raise ValueError(f"target_modules {target_modules!r} selects no nn.Linear layer; the model's "
                         f"linear layers are {linears}")
    return names


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def default_targets(model: nn.Module, kind: str = "lora") -> str:
    """The layers the course adapts by default, as a pattern (``target_modules``).

    ``MLP``: its hidden ``nn.Linear`` layers (not the head). ``TinyLM``: for ``kind="lora"`` each
    block's attention projections and MLP layers; for ``kind="adapter"`` the output projection of
    attention and of the MLP in each block (Houlsby's two adapters per layer).
    """
    check_choice("kind", kind, ("lora", "adapter"))
    if isinstance(model, MLP):
        return r"body\.\d+"
    if isinstance(model, TinyLM):
        return r"blocks\.\d+\.(attn\.(qkv|proj)|mlp\.[02])" if kind == "lora" else r"blocks\.\d+\.(attn\.proj|mlp\.2)"
    raise ValueError(f"no default target layers for {type(model).__name__}: pass target_modules")


def add_adapters(model: nn.Module, bottleneck: int, target_modules: str | Sequence[str] | None = None,
                 freeze_rest: bool = True) -> nn.Module:
    """Insert an ``Adapter`` right after every ``nn.Linear`` that ``target_modules`` selects; returns ``model``.

    Each selected layer ``L`` is replaced (in place) by ``nn.Sequential(L, Adapter(L.out_features,
    bottleneck))``, on L's device. ``target_modules``: a pattern or a list of names, as in
    ``apply_lora``; default ``default_targets(model, "adapter")``. With ``freeze_rest`` only adapter
    parameters stay trainable (unfreeze a head yourself if it must learn).
    """
    check_module(model)
    check_positive_int("bottleneck", bottleneck)
    check_bool("freeze_rest", freeze_rest)
    names = _matching_linears(model, default_targets(model, "adapter") if target_modules is None else target_modules)
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


def lora_linear(x: Tensor, weight: Tensor, bias: Tensor | None, A: Tensor, B: Tensor, lora_alpha: float) -> Tensor:
    """The LoRA layer's output: ``x W^T + b + (lora_alpha / r) * (x A^T) B^T`` (Hu et al., 2021, eq. 3).

    Shapes: x (..., d_in), weight W (d_out, d_in), bias b (d_out,) or None, A (r, d_in),
    B (d_out, r); returns (..., d_out). The rank r is ``A.shape[0]``.
    """
    r = A.shape[0]
    return F.linear(x, weight, bias) + (lora_alpha / r) * F.linear(F.linear(x, A), B)


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable rank-``r`` update (Hu et al., 2021):

        y = W x + b + (lora_alpha / r) * B A x,   A (r, d_in) random,  B (d_out, r) zero.

    B = 0 makes the layer start exactly equal to ``base``. Only A and B train: r * (d_in + d_out)
    parameters instead of d_out * d_in (+ d_out). ``merge()`` folds the update into W (one matmul
    at inference, same outputs); ``unmerge()`` takes it out again. ``merged`` is a buffer, so a
    merged model's ``state_dict`` says so and loads correctly into a fresh ``apply_lora`` model.
    """

    def __init__(self, base: nn.Linear, r: int, lora_alpha: float = 1.0):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"base must be a torch.nn.Linear, got {type(base).__name__}")
        self.r = check_positive_int("r", r)
        self.lora_alpha = check_number("lora_alpha", lora_alpha, low=0.0, low_open=True)
        self.scaling = self.lora_alpha / self.r
        self.base = base
        base.requires_grad_(False)
        factory = dict(device=base.weight.device, dtype=base.weight.dtype)
        self.A = nn.Parameter(torch.empty(self.r, base.in_features, **factory))
        self.B = nn.Parameter(torch.zeros(base.out_features, self.r, **factory))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))  # as nn.Linear initialises its weight
        self.register_buffer("merged", torch.tensor(False, device=base.weight.device))

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def delta_weight(self) -> Tensor:
        """The update (lora_alpha / r) * B A, shape (d_out, d_in)."""
        return self.scaling * (self.B @ self.A)

    def forward(self, x: Tensor) -> Tensor:
        """x (..., d_in) -> (..., d_out)."""
        if self.merged:
            return self.base(x)
        return lora_linear(x, self.base.weight, self.base.bias, self.A, self.B, self.lora_alpha)

    @torch.no_grad()
    def merge(self) -> LoRALinear:
        """W <- W + (lora_alpha / r) B A; the layer then computes with W alone. Returns self."""
        if self.merged:
            raise RuntimeError("this LoRALinear is already merged: call unmerge() first")
        self.base.weight += self.delta_weight()
        self.merged.fill_(True)
        return self

    @torch.no_grad()
    def unmerge(self) -> LoRALinear:
        """W <- W - (lora_alpha / r) B A, undoing ``merge()``. Returns self."""
        if not self.merged:
            raise RuntimeError("this LoRALinear is not merged: nothing to unmerge")
        self.base.weight -= self.delta_weight()
        self.merged.fill_(False)
        return self

    def extra_repr(self) -> str:
        return f"r={self.r}, lora_alpha={self.lora_alpha:g}, merged={bool(self.merged)}"


def apply_lora(model: nn.Module, r: int, lora_alpha: float = 1.0, target_modules: str | Sequence[str] | None = None,
               freeze_rest: bool = True) -> nn.Module:
    """Wrap every ``nn.Linear`` that ``target_modules`` selects in a ``LoRALinear``; returns ``model``.

    Works on any model (replacement is in place). ``target_modules`` as in Hugging Face peft: a
    regular expression matching whole layer names, or a list of names (a layer is selected when
    its name is one of them or ends with "." + one); default ``default_targets(model)``. With
    ``freeze_rest`` every other parameter is frozen too, so only the A and B matrices train
    (unfreeze a head yourself if it must learn). A layer that already has LoRA is refused
    (ValueError), so calling this twice never nests LoRA in LoRA.
    """
    check_module(model)
    check_positive_int("r", r)
    check_number("lora_alpha", lora_alpha, low=0.0, low_open=True)
    check_bool("freeze_rest", freeze_rest)
    names = _matching_linears(model, default_targets(model) if target_modules is None else target_modules)
    if freeze_rest:
        freeze(model)
    for name in names:
        _replace(model, name, LoRALinear(model.get_submodule(name), r, lora_alpha))
    return model


def lora_layers(model: nn.Module) -> list[LoRALinear]:
    """Every ``LoRALinear`` in ``model``, in module order."""
    return [m for m in check_module(model).modules() if isinstance(m, LoRALinear)]


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
