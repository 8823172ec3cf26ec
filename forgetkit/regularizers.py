"""Weight regularization against forgetting: penalties that keep weights near where they were.

Every penalty here is a quadratic pull towards an *anchor* (a dict name -> tensor, like a state
dict), optionally weighted per parameter by an *importance*::

    penalty(theta) = lam / 2 * sum_i w_i * (theta_i - anchor_i)^2

- ``l2_penalty``: anchor = 0, w = 1 (plain weight decay).
- ``l2_anchor_penalty``: anchor = the previous task's weights, w = 1.
- ``l2_sp_penalty``: anchor = the starting point (pre-trained weights) for shared weights,
  plain L2 for new head weights (Li, Grandvalet & Davoine, 2018, "L2-SP").
- ``ewc_penalty``: anchor = the previous task's weights, w = the diagonal Fisher information
  (Kirkpatrick et al., 2017, "Overcoming catastrophic forgetting in neural networks").
- ``OnlineEWC``: one running Fisher for a stream, F <- gamma * F + F_new, anchor = latest
  weights (Schwarz et al., 2018, "Progress & Compress").

A different kind of penalty keeps the *outputs* instead of the weights near the start:
``distillation_penalty`` (Learning without Forgetting, Li & Hoiem, 2017) pulls the model's
softened predictions on the new task's own inputs towards a frozen base model's, the mitigation
that needs no old data. It needs each step's inputs, so ``Distillation`` plugs into the
``batch_penalty`` hook of ``fk.train``/``fk.fit``/``fk.fit_lm`` (``batch_penalty(model, X)``).

The weight penalties are plain functions of the model; plug one into ``fk.train``/``fk.fit`` as the
``extra_loss`` hook, e.g. ``extra_loss=lambda m: ewc_penalty(m, fisher, anchor, lam)``
(an ``OnlineEWC`` object is such a hook itself, and warns before a plain-SGD run that would
cross the stability limit lr * lam * max F = 2: ``check_ewc_stability``).

The Fisher is the **per-sample** diagonal Fisher, computed with ``torch.func`` (vmap over
per-sample gradients; for Linear layers the sum of squared per-sample gradients comes from one
outer-product identity, without storing them) in eval mode: ``fisher_diagonal``. ``fisher_diagonal_loop`` computes the
same numbers with a slow Python loop (the reference), and ``batched_fisher_shortcut`` the common
tutorial shortcut (square of each mini-batch's mean gradient), kept only to be contrasted: it is
about batch-size times too small. ``lm_fisher`` is the same Fisher for a language model's
next-character prediction.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call, grad, vmap

from .checks import (
    StateDict,
    check_bool,
    check_callable,
    check_choice,
    check_int,
    check_module,
    check_number,
    check_positive_int,
    check_tensor,
)
from .languages import lm_batch
from .models import TinyLM, eval_mode, model_device
from .peft import trainable_parameters
from .seeding import make_generator

Params = dict[str, Tensor]  # parameter name -> tensor shaped like that parameter (an anchor, a Fisher)
FISHER_VARIANTS = ("exact", "sampled", "empirical")
CHUNK_FLOATS = 4 * 2**20  # fisher_diagonal's automatic chunk: about this many gradient floats at once


# ------------------------------------------------------------------------------------------
# Checks shared by every function below
# ------------------------------------------------------------------------------------------


def _check_params(params: StateDict, model: nn.Module, what: str) -> None:
    """Raise unless ``params`` maps names of ``model``'s parameters to tensors of the same shape."""
    if not isinstance(params, dict):
        raise TypeError(f"{what} must be a dict name -> tensor (like a state dict), got {type(params).__name__}")
    shapes = {name: p.shape for name, p in model.named_parameters()}
    for name, value in params.items():
        if name not in shapes:
            raise ValueError(f"{what} has {name!r}, which is not a parameter of the model")
        if not isinstance(value, Tensor):
            raise TypeError(f"{what}[{name!r}] must be a tensor, got {type(value).__name__}")
        if value.shape != shapes[name]:
            raise ValueError(f"{what}[{name!r}] has shape {tuple(value.shape)}, "
                             f"expected the parameter's shape {tuple(shapes[name])}")


def snapshot(model: nn.Module) -> Params:
    """A detached copy of every trainable parameter: the anchor for the penalties below."""
    return {name: p.detach().clone() for name, p in trainable_parameters(model).items()}


# ------------------------------------------------------------------------------------------
# Penalties (each usable as the ``extra_loss`` hook of ``fk.train`` through a lambda)
# ------------------------------------------------------------------------------------------


def quadratic_penalty(model: nn.Module, anchor: StateDict, lam: float, importance: StateDict | None = None) -> Tensor:
    """lam / 2 * sum_i w_i * (theta_i - anchor_i)^2 over the parameters named in ``anchor``.

    ``anchor`` and ``importance`` (w; all ones when None) are dicts name -> tensor shaped like
    the parameters. Returns a scalar tensor that gradients flow through.
    """
    check_module(model)
    check_number("lam", lam, low=0.0)
    _check_params(anchor, model, "anchor")
    if importance is not None:
        _check_params(importance, model, "importance")
        if importance.keys() != anchor.keys():
            raise ValueError("importance and anchor must name the same parameters, "
                             f"got {sorted(importance)} and {sorted(anchor)}")
    params = dict(model.named_parameters())
    total = torch.zeros((), device=model_device(model))
    for name, a in anchor.items():
        sq = (params[name] - a.to(params[name].device)) ** 2
        if importance is not None:
            sq = importance[name].to(sq.device) * sq
        total = total + sq.sum()
    return 0.5 * lam * total


def l2_penalty(model: nn.Module, lam: float) -> Tensor:
    """lam / 2 * ||theta||^2 over the trainable parameters: L2 towards zero (weight decay)."""
    anchor = {name: torch.zeros_like(p) for name, p in trainable_parameters(model).items()}
    return quadratic_penalty(model, anchor, lam)


def l2_anchor_penalty(model: nn.Module, anchor: StateDict, lam: float) -> Tensor:
    """lam / 2 * ||theta - theta_prev||^2: L2 towards earlier weights (``anchor = snapshot(model)``)."""
    return quadratic_penalty(model, anchor, lam)


def l2_sp_penalty(model: nn.Module, start: StateDict, lam: float, lam_new: float = 0.0) -> Tensor:
    """L2-SP (Li, Grandvalet & Davoine, 2018, eq. 3):

        lam / 2 * ||theta_S - theta_S^0||^2 + lam_new / 2 * ||theta_new||^2

    where theta_S are the shared weights (the names in ``start``, the starting point, e.g. the
    pre-trained weights) and theta_new are the trainable parameters ``start`` does not name
    (a new head); they have no starting point, so they get plain L2 towards zero.
    """
    check_number("lam_new", lam_new, low=0.0)
    shared = quadratic_penalty(model, start, lam)
    new = {name: torch.zeros_like(p) for name, p in trainable_parameters(model).items() if name not in start}
    if not new:
        return shared
    return shared + quadratic_penalty(model, new, lam_new)


def ewc_penalty(model: nn.Module, fisher: StateDict, anchor: StateDict, lam: float) -> Tensor:
    """EWC (Kirkpatrick et al., 2017, eq. 3): lam / 2 * sum_i F_i * (theta_i - theta*_i)^2.

    ``fisher`` is the diagonal Fisher of the old task(s) (``fisher_diagonal``), ``anchor`` the
    weights theta* after learning them (``snapshot``); both dicts name -> tensor.
    """
    if isinstance(fisher, dict) and isinstance(anchor, dict) and fisher.keys() != anchor.keys():
        raise ValueError(f"fisher and anchor must name the same parameters, got {sorted(fisher)} and {sorted(anchor)}")
    return quadratic_penalty(model, anchor, lam, importance=fisher)


class OnlineEWC:
    """Online EWC for a task stream (Schwarz et al., 2018, sec. 2.2): one penalty, one anchor.

    After each task call ``update(model, fisher_new)``: F <- gamma * F + F_new and the anchor
    becomes the current weights. The object is an ``extra_loss`` hook: ``ewc(model)`` is
    ``penalty(model, F, anchor, lam)`` (zero before the first update); ``penalty`` defaults to
    ``ewc_penalty`` (a lesson passes the learner's own). Before a plain-SGD run ``fk.train`` calls
    ``check_stability(lr, momentum)``, which warns once when lr * lam * max F passes the limit.
    """

    def __init__(self, lam: float, gamma: float = 1.0, penalty: Callable[..., Tensor] | None = None):
        self.lam = check_number("lam", lam, low=0.0)
        self.gamma = check_number("gamma", gamma, low=0.0, high=1.0)
        if penalty is not None:
            check_callable("penalty", penalty, "(model, fisher, anchor, lam) -> Tensor")
        self.penalty = penalty or ewc_penalty
        self.fisher: Params | None = None
        self.anchor: Params | None = None

    def __repr__(self) -> str:
        tasks = "no task yet" if self.fisher is None else f"Fisher over {len(self.fisher)} tensors"
        return f"OnlineEWC(lam={self.lam:g}, gamma={self.gamma:g}, {tasks})"

    def update(self, model: nn.Module, fisher_new: StateDict) -> None:
        """Fold in the Fisher of the task just learned and move the anchor to the current weights."""
        _check_params(fisher_new, model, "fisher_new")
        if self.fisher is None:
            self.fisher = {name: f.detach().clone() for name, f in fisher_new.items()}
        else:
            if fisher_new.keys() != self.fisher.keys():
                raise ValueError("fisher_new must name the same parameters as the earlier Fishers")
            self.fisher = {name: self.gamma * self.fisher[name] + f.detach() for name, f in fisher_new.items()}
        self.anchor = {name: p for name, p in snapshot(model).items() if name in self.fisher}

    def check_stability(self, lr: float, momentum: float = 0.0) -> float | None:
        """``check_ewc_stability(lr, self.lam, self.fisher, momentum)``; None before the first update."""
        if self.fisher is None or self.lam == 0:
            return None
        return check_ewc_stability(lr, self.lam, self.fisher, momentum)

    def __call__(self, model: nn.Module) -> Tensor:
        if self.fisher is None or self.anchor is None:
            return torch.zeros((), device=model_device(model))
        return self.penalty(model, self.fisher, self.anchor, self.lam)


def ewc_stability_limit(lr: float, lam: float, fisher: StateDict) -> float:
    """lr * lam * max_i F_i: plain SGD on an EWC penalty diverges once this exceeds about 2.

    Why: along parameter i the penalty lam/2 * F_i * d_i^2 (d_i = theta_i - theta*_i) has
    curvature h_i = lam * F_i, so one SGD step maps d_i -> d_i - lr * h_i * d_i = (1 - lr h_i) d_i.
    While lr * h_i < 2 the factor |1 - lr h_i| is below 1 and d_i shrinks; above 2 it exceeds 1
    and d_i grows geometrically, flipping sign every step, until the loss overflows. The stiffest
    parameter (max F_i) breaks first; the task loss adds its own curvature, so keep a margin and
    pick lam below about 2 / (lr * max F) (the same bound as lr < 2 / L for any quadratic).
    """
    lr = check_number("lr", lr, low=0.0, low_open=True)
    lam = check_number("lam", lam, low=0.0)
    if not isinstance(fisher, dict) or not fisher:
        raise ValueError("fisher must be a non-empty dict name -> tensor (from fisher_diagonal)")
    max_f = max(float(f.max()) for f in fisher.values())
    if not math.isfinite(max_f):
        raise ValueError("fisher contains a non-finite value")
    return lr * lam * max_f


def check_ewc_stability(lr: float, lam: float, fisher: StateDict, momentum: float = 0.0) -> float:
    """Warn (RuntimeWarning) when SGD at ``lr`` is past the stability limit of the EWC penalty.

    The limit is lr * lam * max F < 2 for plain SGD (``ewc_stability_limit``) and 2 (1 + m) with
    heavy-ball momentum m, as PyTorch's SGD applies it (Polyak, 1964: on a quadratic of curvature
    h, momentum SGD converges iff 0 < lr h < 2 (1 + m)). The warning gives the number and the
    largest lam that stays below the limit. Returns lr * lam * max F.
    """
    number = ewc_stability_limit(lr, lam, fisher)
    bound = 2.0 * (1.0 + check_number("momentum", momentum, low=0.0, high=1.0, high_open=True))
    if number >= bound:
        safe_lam = lam * bound / number
        warnings.warn(f"EWC is past the stability limit of SGD: lr * lambda * max F = {number:.3g} >= {bound:g} "
                      f"(lr {lr:g}, lambda {lam:g}, max F {number / (lr * lam):.3g}). Along its stiffest weights "
                      f"the penalty will oscillate and grow instead of pulling them back. Keep lambda below "
                      f"{safe_lam:.3g} at this lr (2 / (lr * max F)), or lower the lr.", RuntimeWarning, stacklevel=3)
    return number


# ------------------------------------------------------------------------------------------
# Distillation to the base model (Learning without Forgetting)
# ------------------------------------------------------------------------------------------


def _output_logits(output: object) -> Tensor:
    """The logits of a forward pass: a tensor, the first item of a tuple (``TinyLM`` returns
    (logits, loss)) or the ``.logits`` of a Hugging Face output."""
    if isinstance(output, (tuple, list)) and output:
        output = output[0]
    output = getattr(output, "logits", output)
    if not isinstance(output, Tensor):
        raise TypeError(f"the model's forward pass must return logits (a tensor, a tuple starting with "
                        f"one, or an output with .logits), got {type(output).__name__}")
    return output


def distillation_loss(logits: Tensor, base_logits: Tensor, temperature: float = 2.0,
                      classes: Sequence[int] | None = None) -> Tensor:
    """T^2 * mean KL(softmax(base_logits / T) || softmax(logits / T)) over the rows of the logits.

    ``logits`` and ``base_logits`` have the same shape (..., C): (N, C) for a classifier, (B, T, V)
    for a language model (every position is a row). ``classes`` (optional) keeps only those output
    units before the softmax, e.g. the old classes in class-incremental learning (LwF.MC, Rebuffi et
    al., 2017). The T^2 factor keeps the gradient's scale independent of T (Hinton, Vinyals & Dean,
    2015, "Distilling the knowledge in a neural network"). Computed in float32; the gradient flows
    into ``logits`` only. Zero when the two agree.
    """
    check_tensor("logits", logits)
    check_tensor("base_logits", base_logits)
    temperature = check_number("temperature", temperature, low=0.0, low_open=True)
    if logits.ndim < 2 or logits.shape != base_logits.shape or logits.numel() == 0:
        raise ValueError(f"logits and base_logits must be non-empty (..., C) tensors of the same shape, "
                         f"got {tuple(logits.shape)} and {tuple(base_logits.shape)}")
    if classes is not None:
        index = _check_classes(classes, logits.shape[-1]).to(logits.device)
        logits, base_logits = logits.index_select(-1, index), base_logits.index_select(-1, index)
    log_p = F.log_softmax(logits.float() / temperature, dim=-1).flatten(0, -2)
    log_p_base = F.log_softmax(base_logits.detach().float() / temperature, dim=-1).flatten(0, -2)
    kl = F.kl_div(log_p, log_p_base, log_target=True, reduction="batchmean")
    return kl * temperature**2


def _check_classes(classes: object, num_outputs: int | None = None) -> Tensor:
    """``classes`` as an int64 index of at least two distinct output units (< ``num_outputs``)."""
    if isinstance(classes, (str, bytes, Tensor)) or not isinstance(classes, Sequence | range):
        raise TypeError(f"classes must be a list of output units (ints), got {type(classes).__name__}")
    units = [check_int("classes[i]", c, low=0) for c in classes]
    if len(units) < 2 or len(set(units)) != len(units):
        raise ValueError(f"classes must list at least two distinct output units, got {list(classes)!r}")
    if num_outputs is not None and max(units) >= num_outputs:
        raise ValueError(f"classes must lie in [0, {num_outputs - 1}] (the model has {num_outputs} "
                         f"outputs), got {units}")
    return torch.tensor(units, dtype=torch.int64)


def distillation_penalty(model: nn.Module, base: nn.Module, x: Tensor, lam: float, temperature: float = 2.0,
                         classes: Sequence[int] | None = None) -> Tensor:
    """lam * T^2 * KL(softmax(base(x) / T) || softmax(model(x) / T)): Learning without Forgetting.

    Li & Hoiem (2017, "Learning without Forgetting") keep a model's old skill without its old data
    by distilling a frozen copy of the model as it was (``base``) on the *new* task's inputs x
    (N, ...): classifier logits (N, C) or language-model logits (B, T, V), averaged over rows
    (``distillation_loss``; ``classes`` keeps only those outputs). ``base`` runs in eval mode
    without gradients; only ``model`` gets gradients. Zero at the base model.
    """
    check_module(model)
    check_module(base, "base")
    check_tensor("x", x)
    lam = check_number("lam", lam, low=0.0)
    if base is model:
        raise ValueError("base is the model itself: distil a frozen copy (fk.Distillation(model, lam) makes one)")
    with eval_mode(base), torch.no_grad():
        base_logits = _output_logits(base(x))
    return lam * distillation_loss(_output_logits(model(x)), base_logits, temperature, classes)


class Distillation:
    """The ``batch_penalty`` hook of distillation to a frozen copy of ``base``, taken at creation.

    Create it before fine-tuning, ``penalty = Distillation(model, lam)``, then ``fk.fit(model, X, y,
    batch_penalty=penalty)``: every step adds ``distillation_penalty(model, base, X, lam,
    temperature, classes)`` on that step's inputs X.
    """

    def __init__(self, base: nn.Module, lam: float, temperature: float = 2.0,
                 classes: Sequence[int] | None = None):
        check_module(base, "base")
        self.lam = check_number("lam", lam, low=0.0)
        self.temperature = check_number("temperature", temperature, low=0.0, low_open=True)
        self.classes = None if classes is None else _check_classes(classes).tolist()
        self.base = copy.deepcopy(base).eval().requires_grad_(False)

    def __call__(self, model: nn.Module, x: Tensor) -> Tensor:
        return distillation_penalty(model, self.base, x, self.lam, self.temperature, self.classes)

    def __repr__(self) -> str:
        classes = "" if self.classes is None else f", classes={self.classes}"
        return (f"Distillation({type(self.base).__name__}, lam={self.lam:g}, "
                f"temperature={self.temperature:g}{classes})")


# ------------------------------------------------------------------------------------------
# The diagonal Fisher information
# ------------------------------------------------------------------------------------------


def _check_fisher_inputs(model: nn.Module, X: Tensor, y: Tensor | None, variant: str) -> None:
    check_module(model)
    check_choice("variant", variant, FISHER_VARIANTS)
    check_tensor("X", X)
    if X.ndim < 2 or len(X) == 0:
        raise ValueError(f"X must be a non-empty batch of shape (N, ...), got {tuple(X.shape)}")
    if variant == "empirical":
        if not isinstance(y, Tensor):
            raise ValueError("the empirical Fisher needs the true labels y, a (N,) int64 tensor")
        if y.shape != (len(X),):
            raise ValueError(f"y must have shape ({len(X)},) to match X, got {tuple(y.shape)}")
    trainable_parameters(model, required=True)


@torch.no_grad()
def _fisher_pairs(model: nn.Module, X: Tensor, y: Tensor | None, variant: str,
                  seed: int | None) -> tuple[Tensor, Tensor, Tensor]:
    """Which (example, class) gradients to square and with what weight, for one variant.

    Returns ``rows`` (M,), ``classes`` (M,) and ``weights`` (M,) such that

        F = 1/N * sum_m weights[m] * (d log p(classes[m] | X[rows[m]]) / d theta)^2.

    exact: every class c of every example, weighted by the model's p_c (the expectation over
    the model's own predictive distribution); sampled: one class per example drawn from p
    (seeded, on the CPU); empirical: the true label, weight 1.
    """
    device = model_device(model)
    N = len(X)
    if variant == "empirical":
        return torch.arange(N, device=device), y.to(device), torch.ones(N, device=device)
    probs = torch.cat([F.softmax(model(X[i : i + 1024].to(device)), dim=-1) for i in range(0, N, 1024)])
    if variant == "sampled":
        classes = torch.multinomial(probs.cpu(), 1, generator=make_generator(seed)).squeeze(1).to(device)
        return torch.arange(N, device=device), classes, torch.ones(N, device=device)
    C = probs.shape[1]
    rows = torch.arange(N, device=device).repeat_interleave(C)
    classes = torch.arange(C, device=device).repeat(N)
    return rows, classes, probs.reshape(-1)


def _outer_product_layers(model: nn.Module, x1: Tensor, trainable: Params) -> dict[str, nn.Linear]:
    """The ``nn.Linear`` layers whose Fisher can come from outer products (see ``fisher_diagonal``).

    A layer qualifies when one example's forward pass (``x1``, shape (1, ...)) calls it exactly
    once, on an input of shape (1, in_features) (one row: no sequence positions to sum over),
    its weight and bias are not shared with another module, and at least one of them trains.
    Returns a dict module name -> module.
    """
    by_id: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        by_id.setdefault(id(p), []).append(name)
    shared = {name for names in by_id.values() if len(names) > 1 for name in names}
    linears = {name: m for name, m in model.named_modules() if type(m) is nn.Linear}
    calls: dict[str, list[tuple[int, ...]]] = {name: [] for name in linears}

    def record(name: str) -> Callable:
        return lambda module, args, out: calls[name].append(tuple(args[0].shape))

    with _forward_hooks(linears, record), torch.no_grad():
        model(x1)
    chosen = {}
    for name, m in linears.items():
        own = [_param_name(name, p) for p, _ in m.named_parameters(recurse=False)]
        if calls[name] == [(1, m.in_features)] and not shared.intersection(own) and any(n in trainable for n in own):
            chosen[name] = m
    return chosen


@contextmanager
def _forward_hooks(modules: dict[str, nn.Module], make_hook: Callable[[str], Callable]) -> Iterator[None]:
    """Inside the block, ``modules[name]`` runs the forward hook ``make_hook(name)``; removed after."""
    handles = [module.register_forward_hook(make_hook(name)) for name, module in modules.items()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _param_name(module_name: str, param: str) -> str:
    return f"{module_name}.{param}" if module_name else param


def fisher_diagonal(model: nn.Module, X: Tensor, y: Tensor | None = None, variant: str = "exact",
                    chunk_size: int | None = None, seed: int | None = None, outer_product: bool = True) -> Params:
    """The per-sample diagonal Fisher F_i = E_x E_{c ~ q(.|x)} [(d log p(c|x) / d theta_i)^2].

    X is (N, ...) (the inputs of the old task), y (N,) its labels (only the "empirical" variant
    uses them). The distribution q of the class c:

    - ``"exact"``: the model's own prediction, summed over classes: sum_c p_c * g_c^2 (the true
      Fisher; C gradients per example);
    - ``"sampled"``: one label sampled from the model (``seed`` fixes the draw);
    - ``"empirical"``: the true label (the "empirical Fisher"; it is not the Fisher).

    Per-example gradients come from ``torch.func`` (``functional_call`` + ``grad`` under
    ``vmap``), ``chunk_size`` (example, class) pairs at a time to bound memory; None picks it so
    that one chunk's full per-example gradients (below) hold about 4M floats (16 MB in float32),
    between 16 and 1024 pairs: on a CPU, chunks much larger than that fall off the memory
    allocator's fast path and run slower, not faster.

    ``outer_product=True`` (the default) saves most of the work for ``nn.Linear`` layers used
    once per example, out = W a + b. There the per-example gradient is an outer product,
    dW = delta a^T with delta = d log p / d out (shape (out,)) and a the layer's input (in,), so

        sum_n dW_n^2 = (delta^2)^T (a^2)      (elementwise squares; one (out, N) @ (N, in) product)

    (Goodfellow, 2015, "Efficient Per-Example Gradient Computations"). ``vmap`` then only
    computes delta, as the gradient of a zero "probe" added to the layer's output, and records a;
    the (N, out, in) per-example weight gradients are never formed. Every other trainable
    parameter (and every layer when ``outer_product=False``) gets its full per-example gradient
    squared and summed: chunk_size x its size floats at a time.

    The model is put in eval mode (dropout off, batch-norm on running statistics) and restored
    afterwards. Returns a dict name -> tensor shaped like each trainable parameter, on the
    model's device.
    """
    _check_fisher_inputs(model, X, y, variant)
    check_positive_int("chunk_size", chunk_size, allow_none=True)
    check_bool("outer_product", outer_product)
    device = model_device(model)
    with eval_mode(model):
        trainable = {name: p.detach() for name, p in trainable_parameters(model).items()}
        layers = _outer_product_layers(model, X[:1].to(device), trainable) if outer_product else {}
        from_layers = {_param_name(name, p) for name in layers for p in ("weight", "bias")}
        full = {name: p for name, p in trainable.items() if name not in from_layers}  # full per-example grads
        if chunk_size is None:
            chunk_size = min(1024, max(16, CHUNK_FLOATS // max(1, sum(p.numel() for p in full.values()))))
        fixed = {name: p.detach() for name, p in model.named_parameters() if name not in full}
        fixed.update(dict(model.named_buffers()))
        probes = {name: torch.zeros(1, m.out_features, device=device) for name, m in layers.items()}

        def log_prob(params: Params, probes: Params, x: Tensor, c: Tensor) -> tuple[Tensor, Params]:
            inputs: Params = {}

            def probe(name: str) -> Callable:
                def hook(module: nn.Module, args: tuple, out: Tensor) -> Tensor:
                    inputs[name] = args[0]  # a: (1, in)
                    return out + probes[name]  # d log p / d probe = delta: (1, out)
                return hook

            with _forward_hooks(layers, probe):
                logits = functional_call(model, {**params, **fixed}, (x.unsqueeze(0),))
            return F.log_softmax(logits, dim=-1)[0].gather(0, c.unsqueeze(0)).squeeze(0), inputs  # log p(c | x)

        per_pair = vmap(grad(log_prob, argnums=(0, 1), has_aux=True), in_dims=(None, None, 0, 0))
        rows, classes, weights = _fisher_pairs(model, X, y, variant, seed)
        fisher = {name: torch.zeros_like(p) for name, p in trainable.items()}
        for start in range(0, len(rows), chunk_size):
            r, c, w = rows[start : start + chunk_size], classes[start : start + chunk_size], weights[start : start + chunk_size]
            (grads, deltas), inputs = per_pair(full, probes, X[r.cpu()].to(device), c)
            for name, g in grads.items():  # g: (pairs, *param.shape), squared in place, then weighted sum
                fisher[name] += (w @ g.mul_(g).flatten(1)).view_as(fisher[name])
            for name in layers:
                weight, bias = _param_name(name, "weight"), _param_name(name, "bias")
                w_delta2 = w[:, None] * deltas[name].flatten(1).square()  # (pairs, out)
                if weight in fisher:
                    fisher[weight] += w_delta2.T @ inputs[name].flatten(1).square()  # (out, in)
                if bias in fisher:
                    fisher[bias] += w_delta2.sum(0)
    return {name: f / len(X) for name, f in fisher.items()}


def fisher_diagonal_loop(model: nn.Module, X: Tensor, y: Tensor | None = None, variant: str = "exact",
                         seed: int | None = None) -> Params:
    """The same Fisher as ``fisher_diagonal``, one backward pass per (example, class) pair.

    The slow, obviously-correct reference: a plain Python loop of ``autograd.grad`` calls, used
    by the tests and the library benchmark to check the ``torch.func`` version.
    """
    _check_fisher_inputs(model, X, y, variant)
    device = model_device(model)
    with eval_mode(model):
        trainable = trainable_parameters(model)
        names, params = list(trainable), list(trainable.values())
        fisher = {name: torch.zeros_like(p) for name, p in trainable.items()}
        rows, classes, weights = _fisher_pairs(model, X, y, variant, seed)
        for r, c, w in zip(rows.tolist(), classes.tolist(), weights.tolist()):
            log_p = F.log_softmax(model(X[r : r + 1].to(device)), dim=-1)[0, c]
            for name, g in zip(names, torch.autograd.grad(log_p, params)):
                fisher[name] += w * g.pow(2)
    return {name: f / len(X) for name, f in fisher.items()}


def batched_fisher_shortcut(model: nn.Module, X: Tensor, y: Tensor, batch_size: int = 64) -> Params:
    """The tutorial shortcut, NOT the Fisher: mean over mini-batches of (mean-batch gradient)^2.

    Splits (X (N, ...), y (N,)) into consecutive mini-batches of ``batch_size``, takes the
    gradient of each batch's mean cross-entropy and averages its square. Squaring an average of
    B per-example gradients cancels most of them (they point in many directions, and near a
    minimum they sum to about zero), so the result is roughly B times smaller than the
    per-sample Fisher: this is why code built on it needs lambdas in the thousands.
    Kept only to be compared with ``fisher_diagonal``. Computed in eval mode.
    """
    _check_fisher_inputs(model, X, y, "empirical")
    check_positive_int("batch_size", batch_size)
    device = model_device(model)
    with eval_mode(model):
        trainable = trainable_parameters(model)
        fisher = {name: torch.zeros_like(p) for name, p in trainable.items()}
        num_batches = 0
        for start in range(0, len(X), batch_size):
            xb, yb = X[start : start + batch_size].to(device), y[start : start + batch_size].to(device)
            loss = F.cross_entropy(model(xb), yb)
            for name, g in zip(trainable, torch.autograd.grad(loss, list(trainable.values()))):
                fisher[name] += g.pow(2)
            num_batches += 1
    return {name: f / num_batches for name, f in fisher.items()}


class NextCharacter(nn.Module):
    """A classifier view of a ``TinyLM``: windows (N, T) -> logits (N, vocab) of the character after each window."""

    def __init__(self, lm: TinyLM):
        super().__init__()
        self.lm = lm

    def forward(self, idx: Tensor) -> Tensor:
        return self.lm(idx)[0][:, -1, :]


def lm_fisher(model: TinyLM, tokens: Tensor, num_windows: int = 32, seed: int | None = None) -> Params:
    """Diagonal per-sample Fisher of a ``TinyLM`` for predicting the next character.

    Each sample is a random window of ``tokens`` (block_size characters, drawn with ``seed``); the
    model predicts the character after it from a distribution over the vocabulary, and
    ``fisher_diagonal`` (exact variant: expectation over the model's own prediction) squares the
    per-sample gradients of its log-probabilities. Returns a dict name -> tensor shaped like each
    trainable parameter of ``model``.
    """
    if not isinstance(model, TinyLM):
        raise TypeError(f"model must be a forgetkit TinyLM, got {type(model).__name__}")
    x, _ = lm_batch(tokens, num_windows, model.block_size, make_generator(seed))
    fisher = fisher_diagonal(NextCharacter(model), x, variant="exact")
    return {name.removeprefix("lm."): value for name, value in fisher.items()}
