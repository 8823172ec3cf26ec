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
        try:
            got = learner_fn(*copy.deepcopy(args), **copy.deepcopy(kwargs))
        except NotImplementedError:
            return _fallback(name, "NOT DONE", f"Exercise '{name}' is not done yet.", reference_fn)
        except Exception as err:  # a learner's bug must not stop the lesson
            return _fallback(name, "WRONG", f"Exercise '{name}': hidden case {k + 1} raised "
                             f"{type(err).__name__}: {err}\n  Hint: {hint}", reference_fn)
        if not compare(expected, got):
            return _fallback(name, "WRONG", f"Exercise '{name}': hidden case {k + 1} expected "
                             f"{_short(expected)}, got {_short(got)}.\n  Hint: {hint}", reference_fn)
    _RESULTS[name] = "PASSED"
    print(f"PASSED  Exercise '{name}': your function agrees with the reference on {len(cases)} hidden cases. "
          "The lesson now uses your function.")
    return learner_fn


def _fallback(name: str, status: str, message: str, reference_fn: Callable) -> Callable:
    _RESULTS[name] = status
    print(f"{status:8s}{message}\n  The lesson goes on with forgetkit's reference implementation "
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
