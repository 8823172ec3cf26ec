"""Exercise checks: test a learner's function on hidden cases, then hand back something that works.

Every exercise in the course ends with a line such as::

    count_trainable = fk.exercises.check_count_trainable(count_trainable)

The check runs the learner's function and forgetkit's reference implementation on the same
hidden cases and prints one of

- PASSED: the learner's function is returned and the lesson uses it;
- NOT DONE: the stub still raises ``NotImplementedError``;
- WRONG: a case gives another answer (or raises), with a hint;

and in the last two cases returns the reference implementation, so a learner can skip an
exercise, or get it wrong, and the rest of the lesson still runs. ``summary()`` lists them all.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

Case = Callable[[], tuple[tuple, dict]]
_RESULTS: dict[str, str] = {}


def close(expected: Any, got: Any, rtol: float = 1e-4, atol: float = 1e-6) -> bool:
    """Structural comparison: tensors/arrays with allclose, numbers with a tolerance, containers item by item."""
    if isinstance(expected, Tensor):
        return (isinstance(got, Tensor) and got.shape == expected.shape
                and torch.allclose(got.detach().double().cpu(), expected.detach().double().cpu(), rtol=rtol, atol=atol))
    if isinstance(expected, np.ndarray):
        got = np.asarray(got, dtype=float) if not isinstance(got, Tensor) else got.detach().cpu().numpy()
        return got.shape == expected.shape and np.allclose(got, expected, rtol=rtol, atol=atol)
    if isinstance(expected, bool) or isinstance(expected, str) or expected is None:
        return got == expected
    if isinstance(expected, (int, float, np.number)):
        if isinstance(got, Tensor) and got.numel() == 1:
            got = got.item()
        return isinstance(got, (int, float, np.number)) and math.isclose(float(got), float(expected), rel_tol=rtol, abs_tol=atol)
    if isinstance(expected, dict):
        return isinstance(got, dict) and got.keys() == expected.keys() and all(close(expected[k], got[k], rtol, atol) for k in expected)
    if isinstance(expected, (list, tuple)):
        return isinstance(got, (list, tuple)) and len(got) == len(expected) and all(close(e, g, rtol, atol) for e, g in zip(expected, got))
    return got == expected


def _short(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"tensor of shape {tuple(value.shape)}" if value.numel() > 6 else f"tensor({value.tolist()})"
    text = repr(value)
    return text if len(text) < 80 else text[:77] + "..."


def check_function(name: str, learner_fn: Callable, reference_fn: Callable, cases: Sequence[Case], *,
                   hint: str = "", compare: Callable[[Any, Any], bool] = close) -> Callable:
    """Run ``learner_fn`` and ``reference_fn`` on every case; print the verdict; return what to use.

    Each case is a zero-argument function returning ``(args, kwargs)``; both functions get their
    own deep copy, so a function that changes its inputs cannot affect the other.
    """
    if not callable(learner_fn):
        raise TypeError(f"{name}: expected your function, got {type(learner_fn).__name__}")
    for k, make_case in enumerate(cases):
        args, kwargs = make_case()
        expected = reference_fn(*copy.deepcopy(args), **copy.deepcopy(kwargs))
        failed, got = _call_learner(name, learner_fn, (copy.deepcopy(args), copy.deepcopy(kwargs)),
                                    reference_fn, hint, f"hidden case {k + 1}")
        if failed:
            return got
        try:
            same = compare(expected, got)
        except Exception:  # an answer of the wrong kind (a str where an array belongs ...) is wrong, not a crash
            same = False
        if not same:
            return _fallback(name, "WRONG", f"Exercise '{name}': hidden case {k + 1} expected "
                             f"{_short(expected)}, got {_short(got)}.\n  Hint: {hint}", reference_fn)
    _passed(name, f"your function agrees with the reference on {len(cases)} hidden cases.")
    return learner_fn


def _call_learner(name: str, learner_fn: Callable, call: tuple[tuple, dict], reference_fn: Callable,
                  hint: str, where: str) -> tuple[bool, Any]:
    """``(False, result)`` of the learner's function, or ``(True, fallback)`` when it is not done
    (``NotImplementedError``) or raises: a learner's bug must not stop the lesson."""
    args, kwargs = call
    try:
        return False, learner_fn(*args, **kwargs)
    except NotImplementedError:
        return True, _fallback(name, "NOT DONE", f"Exercise '{name}' is not done yet.", reference_fn)
    except Exception as err:
        return True, _fallback(name, "WRONG", f"Exercise '{name}': {where} raised {type(err).__name__}: {err}\n"
                               f"  Hint: {hint}", reference_fn)


def _passed(name: str, message: str) -> None:
    _RESULTS[name] = "PASSED"
    print(f"PASSED: Exercise '{name}': {message} The lesson now uses your function.")


def _fallback(name: str, status: str, message: str, reference_fn: Callable) -> Callable:
    _RESULTS[name] = status
    print(f"{status}: {message}\n  The lesson goes on with forgetkit's reference implementation "
          f"({reference_fn.__module__}.{reference_fn.__name__}).")
    return reference_fn


def summary() -> dict[str, str]:
    """Print and return the status of every exercise checked in this kernel."""
    if not _RESULTS:
        print("No exercise was checked in this session.")
    for name, status in _RESULTS.items():
        print(f"{status:8s} {name}")
    todo = [n for n, s in _RESULTS.items() if s != "PASSED"]
    if todo:
        print(f"{len(todo)} exercise(s) still to do: {', '.join(todo)}. The lesson ran on forgetkit's reference code.")
    elif _RESULTS:
        print("All exercises passed.")
    return dict(_RESULTS)


# ------------------------------------------------------------------------------------------
# The course's exercises, one check each (cases are built on the fly, never shown)
# ------------------------------------------------------------------------------------------


def check_count_trainable(fn: Callable[[nn.Module], int]) -> Callable[[nn.Module], int]:
    """Lesson 00: ``fn(model)`` = number of parameters (scalars) with requires_grad=True."""
    from .peft import count_trainable

    def case(sizes: tuple[int, ...], freeze_body: bool) -> Case:
        def make() -> tuple[tuple, dict]:
            from .models import MLP
            model = MLP(sizes)
            if freeze_body:
                for p in model.body.parameters():
                    p.requires_grad_(False)
            return (model,), {}
        return make

    cases = [case((8, 4, 2), False), case((64, 128, 10), True), case((5, 7, 7, 3), True)]
    return check_function("count_trainable", fn, count_trainable, cases,
                          hint="sum p.numel() over model.parameters() where p.requires_grad is True.")


def check_perplexity(fn: Callable) -> Callable:
    """Lesson 01: ``fn(model, tokens)`` = exp(mean next-character loss over ``lm_windows``)."""
    from .languages import CharTokenizer, language_tokens
    from .metrics import perplexity
    from .models import TinyLM

    def case(language: str, seed: int) -> Case:
        def make() -> tuple[tuple, dict]:
            torch.manual_seed(seed)
            model = TinyLM(CharTokenizer().vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=16).eval()
            return (model, language_tokens(language, "test", 40, seed)), {}
        return make

    return check_function("perplexity", fn, perplexity, [case("french", 1), case("japanese", 2)],
                          hint="x, y = fk.lm_windows(tokens, model.block_size); _, loss = model(x, y); "
                               "return math.exp(loss.item()) (run it under torch.no_grad()).")


def check_evaluate_along_line(fn: Callable) -> Callable:
    """Lesson 02: ``fn(model, sd_a, sd_b, alphas, eval_fns)`` = ``{name: array of fn(model) at each alpha}``
    on the line ``interpolate_state_dicts(sd_a, sd_b, alpha)``, with the model's weights restored."""
    import functools

    from .interpolation import evaluate_along_line
    from .models import MLP

    def with_restore_flag(line_fn: Callable) -> Callable:
        @functools.wraps(line_fn)
        def run(model, sd_a, sd_b, alphas, eval_fns):
            before = {k: v.detach().clone() for k, v in model.state_dict().items()}
            out = line_fn(model, sd_a, sd_b, alphas, eval_fns)
            restored = all(torch.equal(before[k], v) for k, v in model.state_dict().items())
            return {"values": out, "model weights restored": restored}
        return run

    def case(sizes: tuple[int, ...], alphas: list[float], names: tuple[str, ...], seed: int) -> Case:
        def make() -> tuple[tuple, dict]:
            torch.manual_seed(seed)
            sd_a, sd_b = MLP(sizes).state_dict(), MLP(sizes).state_dict()
            model = MLP(sizes)  # starts at a third point, which must be there again afterwards
            X, y = torch.randn(20, sizes[0]), torch.randint(0, sizes[-1], (20,))
            fns = {"loss": lambda m: torch.nn.functional.cross_entropy(m(X), y).item(),
                   "first weight": lambda m: m.head.weight[0, 0].item(),
                   "accuracy": lambda m: (m(X).argmax(1) == y).float().mean().item()}
            return (model, sd_a, sd_b, alphas, {n: fns[n] for n in names}), {}
        return make

    cases = [case((4, 3, 2), [0.0, 0.5, 1.0], ("first weight",), 1),
             case((6, 5, 3), [0.0, 0.25, 0.5, 0.75, 1.0], ("loss", "accuracy"), 2),
             case((8, 4, 4, 3), [-0.5, 0.0, 1.0, 1.5], ("loss", "first weight"), 3)]
    learner, reference = with_restore_flag(fn), with_restore_flag(evaluate_along_line)
    chosen = check_function("evaluate_along_line", learner, reference, cases,
                            hint="save original = copy.deepcopy(model.state_dict()); for each alpha: "
                                 "model.load_state_dict(fk.interpolate_state_dicts(sd_a, sd_b, alpha)) and append "
                                 "fn(model) for every name; return {name: np.array(values)}; finally "
                                 "model.load_state_dict(original).")
    return fn if chosen is learner else evaluate_along_line


def check_agem_project(fn: Callable[[Tensor, Tensor], Tensor]) -> Callable[[Tensor, Tensor], Tensor]:
    """Lesson 03: ``fn(g, g_ref)`` = g if g . g_ref >= 0, else g - (g . g_ref / g_ref . g_ref) g_ref."""
    from .interference import agem_project

    def case(g: list[float] | None, g_ref: list[float] | None, size: int = 0, seed: int = 0) -> Case:
        def make() -> tuple[tuple, dict]:
            if g is not None:
                return (torch.tensor(g), torch.tensor(g_ref)), {}
            generator = torch.Generator().manual_seed(seed)
            a, b = torch.randn(size, generator=generator), torch.randn(size, generator=generator)
            return (a - 2 * (a @ b).abs() / (b @ b) * b, b), {}  # a conflicting pair
        return make

    cases = [case([1.0, 2.0], [3.0, 1.0]),        # agreeing: unchanged
             case([1.0, 0.0], [0.0, 1.0]),        # orthogonal: unchanged
             case([1.0, -1.0], [0.0, 2.0]),       # conflicting: projected to [1, 0]
             case([-2.0, -4.0], [1.0, 2.0]),      # exactly opposite: projected to zero
             case(None, None, size=50, seed=7),   # conflicting, in 50 dimensions
             case([0.5, -3.0, 2.0], [1.0, 1.0, 1.0])]  # 0.5 - 3 + 2 < 0: projected
    return check_function("agem_project", fn, agem_project, cases,
                          hint="dot = g @ g_ref; if dot >= 0 return g unchanged; else return "
                               "g - dot / (g_ref @ g_ref) * g_ref (which is orthogonal to g_ref).")


def check_linear_cka(fn: Callable[[Tensor, Tensor], float]) -> Callable[[Tensor, Tensor], float]:
    """Lesson 04: ``fn(X, Y)`` = linear CKA of activations X (N, D1), Y (N, D2) (Kornblith et al. 2019).

    Hidden cases: random activations compared with the reference, then the invariances a CKA must
    have: an orthogonal transform of one side, an isotropic scaling, and a shift of the columns.
    """
    from .representations import linear_cka

    def case(n: int, d1: int, d2: int, seed: int, transform: str = "") -> Case:
        def make() -> tuple[tuple, dict]:
            generator = torch.Generator().manual_seed(seed)
            X = torch.randn(n, d1, generator=generator)
            Y = X @ torch.randn(d1, d2, generator=generator) + 0.5 * torch.randn(n, d2, generator=generator)
            if transform == "orthogonal":  # Y = X Q with Q orthogonal: CKA must be 1
                Q, _ = torch.linalg.qr(torch.randn(d1, d1, generator=generator, dtype=torch.float64))
                Y = (X.double() @ Q).float()
            elif transform == "scale":  # Y = 3.7 X: CKA must be 1
                Y = 3.7 * X
            elif transform == "both":  # rotating and scaling Y must not change CKA(X, Y)
                Q, _ = torch.linalg.qr(torch.randn(d2, d2, generator=generator, dtype=torch.float64))
                Y = 0.2 * (Y.double() @ Q).float()
            elif transform == "shift":  # columns far from zero mean: centre them first
                X, Y = X + 5.0, Y - 3.0 * torch.arange(d2)
            return (X, Y), {}
        return make

    cases = [case(40, 5, 3, 1), case(200, 16, 16, 2), case(64, 8, 2, 3),
             case(50, 6, 6, 4, "orthogonal"), case(30, 4, 4, 5, "scale"), case(80, 10, 7, 6, "both"),
             case(60, 5, 5, 7, "shift")]
    return check_function("linear_cka", fn, linear_cka, cases,
                          hint="centre every column (X = X - X.mean(0), same for Y), then return "
                               "||Y^T X||_F^2 / (||X^T X||_F * ||Y^T Y||_F) as a float. Cases 1-3 are random "
                               "activations; 4 checks that Y = X @ Q (Q orthogonal) gives 1; 5 that Y = 3.7 * X "
                               "gives 1; 6 that rotating and scaling Y changes nothing; 7 shifts the columns.")


def check_lora_linear(fn: Callable) -> Callable:
    """Lesson 06: ``fn(x, weight, bias, A, B, alpha)`` = x W^T + b + (alpha / r) (x A^T) B^T, r = A.shape[0].

    Hidden cases use a non-zero B (a trained layer), a rank other than alpha, a 3-D input and no bias.
    """
    from .peft import lora_linear

    def case(lead: tuple[int, ...], d_in: int, d_out: int, rank: int, alpha: float, bias: bool, seed: int) -> Case:
        def make() -> tuple[tuple, dict]:
            generator = torch.Generator().manual_seed(seed)
            x = torch.randn(*lead, d_in, generator=generator)
            W, b = torch.randn(d_out, d_in, generator=generator), torch.randn(d_out, generator=generator)
            A, B = torch.randn(rank, d_in, generator=generator), torch.randn(d_out, rank, generator=generator)
            return (x, W, b if bias else None, A, B, alpha), {}
        return make

    cases = [case((5,), 6, 4, 2, 4.0, True, 1),      # alpha / r = 2
             case((3,), 8, 8, 3, 1.5, True, 2),      # alpha / r = 0.5
             case((2, 7), 5, 3, 1, 1.0, False, 3),   # a batch of sequences, no bias
             case((4,), 10, 6, 5, 5.0, False, 4)]
    return check_function("lora_linear", fn, lora_linear, cases,
                          hint="r = A.shape[0]; out = x @ weight.T + (alpha / r) * (x @ A.T) @ B.T; add bias "
                               "when it is not None. Case 2 has alpha != r, case 3 a 3-D x and bias None.")


def check_reservoir(fn: Callable) -> Callable:
    """Lesson 07: ``fn(stream, capacity, rng)`` = a uniform sample of min(capacity, n) items, in one pass.

    The sample is random, so the check is statistical: on hidden streams (iterators of distinct
    ints, read once) and thousands of seeded ``random.Random`` generators it checks the capacity
    invariant (exactly min(capacity, n) distinct items of the stream) and that every item's
    inclusion frequency is within 5 standard errors of capacity / n.
    """
    import functools
    import random

    from .replay import reservoir_sample

    def statistics(sample_fn: Callable) -> Callable:
        @functools.wraps(sample_fn)
        def run(n: int, capacity: int, trials: int, seed: int) -> dict[str, Any]:
            counts = np.zeros(n)
            for t in range(trials):
                out = list(sample_fn(iter(range(n)), capacity, random.Random(seed * 1_000_003 + t)))
                if (len(out) != min(n, capacity) or len(set(out)) != len(out)
                        or not all(isinstance(i, int) and 0 <= i < n for i in out)):
                    return {"invariant": False, "frequencies": None, "p": min(capacity, n) / n, "trials": trials,
                            "example": out}
                counts[out] += 1
            return {"invariant": True, "frequencies": counts / trials, "p": min(capacity, n) / n, "trials": trials}
        return run

    def compare(expected: dict, got: dict) -> bool:
        if not got["invariant"]:
            return False
        p, trials = expected["p"], expected["trials"]
        tolerance = 5 * math.sqrt(max(p * (1 - p), 1e-12) / trials) + 1e-9
        return bool(np.abs(got["frequencies"] - p).max() <= tolerance)

    def case(n: int, capacity: int, trials: int, seed: int) -> Case:
        return lambda: ((n, capacity, trials, seed), {})

    cases = [case(4, 6, 3, 1),          # a stream shorter than the capacity: keep everything
             case(1, 1, 3, 2),
             case(10, 3, 3000, 3),      # p = 0.3
             case(25, 5, 1500, 4),      # p = 0.2
             case(12, 11, 1500, 5)]     # p = 11/12: almost everything is kept
    learner, reference = statistics(fn), statistics(reservoir_sample)
    chosen = check_function("reservoir_sample", learner, reference, cases, compare=compare,
                            hint="for the n-th item (n = 1, 2, ...): if the sample holds fewer than capacity items, "
                                 "append it; else j = rng.randrange(n) and, if j < capacity, sample[j] = item. "
                                 "Read the stream once (it is an iterator) and return the list.")
    return fn if chosen is learner else reservoir_sample


def check_interpolation_sweep(fn: Callable) -> Callable:
    """Lesson 08: ``fn(model, sd_base, sd_finetuned, alphas, eval_fns)`` = ``fk.wise_ft_sweep``: every eval
    function at each WiSE-FT mixture, their mean, the best alpha, and the model left at that alpha."""
    import functools

    from .interpolation import wise_ft, wise_ft_sweep
    from .models import MLP

    def with_final_weights(sweep_fn: Callable) -> Callable:
        @functools.wraps(sweep_fn)
        def run(model, sd_base, sd_finetuned, alphas, eval_fns):
            out = sweep_fn(model, sd_base, sd_finetuned, alphas, eval_fns)
            if not isinstance(out, dict) or "best_alpha" not in out:
                return {"result": out}
            best = wise_ft(sd_base, sd_finetuned, float(out["best_alpha"]))
            at_best = all(torch.allclose(best[k], v, atol=1e-6) for k, v in model.state_dict().items())
            return {"result": out, "model left at the best alpha": at_best}
        return run

    def case(sizes: tuple[int, ...], alphas: list[float], seed: int) -> Case:
        def make() -> tuple[tuple, dict]:
            torch.manual_seed(seed)
            sd_base, sd_finetuned, model = MLP(sizes).state_dict(), MLP(sizes).state_dict(), MLP(sizes)
            X, y = torch.randn(30, sizes[0]), torch.randint(0, sizes[-1], (30,))
            X2, y2 = torch.randn(30, sizes[0]), torch.randint(0, sizes[-1], (30,))
            fns = {"old": lambda m: (m(X).argmax(1) == y).float().mean().item(),
                   "new": lambda m: -torch.nn.functional.cross_entropy(m(X2), y2).item()}
            return (model, sd_base, sd_finetuned, alphas, fns), {}
        return make

    cases = [case((4, 3, 2), [0.0, 0.5, 1.0], 1),
             case((6, 8, 3), [0.0, 0.2, 0.4, 0.6, 0.8, 1.0], 2),
             case((5, 4, 4, 3), [1.0, 0.25, 0.0], 3)]
    learner, reference = with_final_weights(fn), with_final_weights(wise_ft_sweep)
    chosen = check_function("interpolation_sweep", learner, reference, cases,
                            hint="for each alpha: model.load_state_dict(fk.wise_ft(sd_base, sd_finetuned, alpha)) "
                                 "and record every eval function; mean = the average over the functions at each alpha; "
                                 "best_alpha = alphas[argmax(mean)] (the first on a tie); load the best mixture into "
                                 "the model before returning {name: array, 'mean': array, 'best_alpha': float}.")
    return fn if chosen is learner else wise_ft_sweep


def check_recipe(fn: Callable, results, targets=None) -> Callable:
    """Lesson 09: ``fn(results, targets)`` returns a recipe ``{"method", "strength", "steps"}`` that
    meets BOTH targets on the mean over the comparison's seeds.

    The recipe is evaluated for real: read from ``results`` (a ``forgetkit.capstone.Results``) when
    it was part of the comparison, else fine-tuned now under the same seeds. The verdict names the
    target it missed. Falls back to ``forgetkit.capstone.reference_recipe``.
    """
    from .capstone import Targets, evaluate_recipe, reference_recipe

    name = "choose_recipe"
    targets = targets or Targets()
    if not callable(fn):
        raise TypeError(f"{name}: expected your function, got {type(fn).__name__}")
    hint = ("a recipe is a dict such as {'method': 'ewc', 'strength': 300.0, 'steps': 30}; use the dashboard or "
            "loop over results.summary() to find an entry with forgetting_mean <= targets.max_forgetting and "
            "learning_mean >= targets.min_learning.")
    failed, recipe = _call_learner(name, fn, ((results, targets), {}), reference_recipe, hint, "your function")
    if failed:
        return recipe
    try:
        entry = evaluate_recipe(recipe, results)
    except (TypeError, ValueError) as err:
        return _fallback(name, "WRONG", f"Exercise '{name}': {err}\n  Hint: {hint}", reference_recipe)
    measured = (f"forgetting {100 * entry['forgetting_mean']:.1f}% +- {100 * entry['forgetting_std']:.1f}, "
                f"learning {100 * entry['learning_mean']:.1f}% +- {100 * entry['learning_std']:.1f} "
                f"(mean +- std over {entry['n']} seeds)")
    missed = targets.failures(entry["forgetting_mean"], entry["learning_mean"])
    if missed:
        return _fallback(name, "WRONG", f"Exercise '{name}': your recipe {recipe} gives {measured}.\n  "
                         + "\n  ".join(missed) + f"\n  Hint: {hint}", reference_recipe)
    _passed(name, f"your recipe {recipe} meets both targets: {measured}.")
    return fn


def check_ewc_penalty(fn: Callable) -> Callable:
    """Lesson 05: ``fn(model, fisher, anchor, lam)`` = lam/2 * sum_i F_i (theta_i - anchor_i)^2,
    a scalar tensor that gradients flow through (Kirkpatrick et al., 2017)."""
    from .models import MLP
    from .regularizers import ewc_penalty

    def case(sizes: tuple[int, ...], lam: float, seed: int, partial: bool) -> Case:
        def make() -> tuple[tuple, dict]:
            g = torch.Generator().manual_seed(seed)
            torch.manual_seed(seed)
            model = MLP(sizes)
            names = [n for n, _ in model.named_parameters()]
            if partial:  # a Fisher/anchor that covers only some parameters (e.g. a frozen body)
                names = [n for n in names if n.startswith("head")]
            params = dict(model.named_parameters())
            fisher = {n: torch.rand(params[n].shape, generator=g) for n in names}
            anchor = {n: params[n].detach() + 0.3 * torch.randn(params[n].shape, generator=g) for n in names}
            return (model, fisher, anchor, lam), {}
        return make

    def compare(expected: Any, got: Any) -> bool:
        return isinstance(got, Tensor) and got.requires_grad and close(expected, got.reshape(()))

    cases = [case((4, 3, 2), 1.0, 0, False), case((6, 5, 3), 7.5, 1, False), case((5, 4, 3), 0.2, 2, True)]
    return check_function("ewc_penalty", fn, ewc_penalty, cases, compare=compare,
                          hint="params = dict(model.named_parameters()); sum over the names in fisher of "
                               "(fisher[n] * (params[n] - anchor[n]) ** 2).sum(), times lam / 2. Loop over the "
                               "fisher's names (not all parameters) and keep a tensor: no .item(), no torch.no_grad().")
