"""The exercise-check framework: run a learner's function on hidden cases, give a verdict, hand back
something that works.

``check_function`` runs the learner's function and a reference implementation on the same hidden
cases and prints one of

- PASSED: the learner's function is returned and the lesson uses it;
- NOT DONE: the stub still raises ``NotImplementedError``;
- WRONG: a case gives another answer (or raises), with a hint: hints are graded, the first WRONG
  gives a conceptual nudge, each further WRONG of the same exercise the next, more explicit one;

and in the last two cases returns the reference implementation, so a learner can skip an
exercise, or get it wrong, and the rest of the lesson still runs. Every verdict is recorded in a
``Verdicts`` object (the kernel's own is ``VERDICTS``); ``summary()`` lists them.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

Case = Callable[[], tuple[tuple, dict]]  # builds one hidden case: (args, kwargs)


class Verdicts:
    """The verdict of every exercise checked so far: name -> "PASSED", "NOT DONE" or "WRONG"."""

    def __init__(self) -> None:
        self.results: dict[str, str] = {}
        self.wrong: dict[str, int] = {}  # how many WRONG verdicts each exercise has had so far

    def next_hint(self, name: str, hints: Sequence[str]) -> str:
        """The hint for this exercise's next WRONG: the first one, then ever more explicit ones."""
        level = self.wrong.get(name, 0)
        self.wrong[name] = level + 1
        if not hints:
            return ""
        text = hints[min(level, len(hints) - 1)]
        if level + 1 < len(hints):
            text += "\n  (Fix it and run the cell again; if it is still WRONG, the next hint is more explicit.)"
        return text

    def __repr__(self) -> str:
        return f"Verdicts({self.results})"

    def record(self, name: str, status: str, message: str, use: Callable) -> Callable:
        """Store and print one verdict; return ``use``, the function the lesson goes on with."""
        self.results[name] = status
        if status == "PASSED":
            print(f"PASSED: Exercise '{name}': {message} The lesson now uses your function.")
        else:
            print(f"{status}: {message}\n  The lesson goes on with forgetkit's reference implementation "
                  f"({use.__module__}.{use.__name__}).")
        return use

    def summary(self) -> dict[str, str]:
        """Print and return (a copy of) the status of every exercise checked."""
        if not self.results:
            print("No exercise was checked in this session.")
        for name, status in self.results.items():
            print(f"{status:8s} {name}")
        todo = [n for n, s in self.results.items() if s != "PASSED"]
        if todo:
            print(f"{len(todo)} exercise(s) still to do: {', '.join(todo)}. The lesson ran on forgetkit's reference code.")
        elif self.results:
            print("All exercises passed.")
        return dict(self.results)


VERDICTS = Verdicts()  # the verdicts of this kernel, listed by summary()


def summary(verdicts: Verdicts | None = None) -> dict[str, str]:
    """Print and return the status of every exercise checked in this kernel (or in ``verdicts``)."""
    return (verdicts or VERDICTS).summary()


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


def short(value: Any) -> str:
    """A value as a verdict shows it: small tensors in full, big ones by shape, long reprs cut."""
    if isinstance(value, Tensor):
        return f"tensor of shape {tuple(value.shape)}" if value.numel() > 6 else f"tensor({value.tolist()})"
    text = repr(value)
    return text if len(text) < 80 else text[:77] + "..."


def call(fn: Callable, *args, **kwargs) -> Any:
    """The default ``observe``: what ``fn`` returns on the case."""
    return fn(*args, **kwargs)


def check_function(name: str, learner_fn: Callable, reference_fn: Callable, cases: Sequence[Case], *,
                   hint: str | Sequence[str] = "", observe: Callable[..., Any] = call, compare: Callable[[Any, Any], bool] = close,
                   explain: Callable[[Any, Any], str] | None = None, verdicts: Verdicts | None = None) -> Callable:
    """Run ``learner_fn`` and ``reference_fn`` on every case; print the verdict; return what to use.

    Each case is a zero-argument function returning ``(args, kwargs)``; each function gets its own
    deep copy, so a function that changes its inputs cannot affect the other. For each case and
    function, ``observe(fn, *args, **kwargs)`` says what is compared: by default what ``fn``
    returns; an ``observe`` can also record side effects (were the weights restored?) or run many
    trials (a random sampler's frequencies). ``compare(expected, got)`` decides; ``explain(expected,
    got)`` words the learner's answer in the verdict (default: "expected ..., got ..."). The
    verdict is recorded in ``verdicts`` (default: ``VERDICTS``). ``hint`` is one hint or a list of
    graded hints (a conceptual nudge first, the formula last): the n-th WRONG of ``name`` shows the
    n-th. Returns ``learner_fn`` if every case agrees, else ``reference_fn``.
    """
    if not callable(learner_fn):
        raise TypeError(f"{name}: expected your function, got {type(learner_fn).__name__}")
    hints = [hint] if isinstance(hint, str) else list(hint)
    if not all(isinstance(h, str) for h in hints):
        raise TypeError(f"{name}: hint must be a str or a sequence of str, got {hint!r}")
    verdicts = verdicts or VERDICTS
    got = expected = None
    for k, make_case in enumerate(cases, start=1):
        args, kwargs = make_case()
        expected = observe(reference_fn, *copy.deepcopy(args), **copy.deepcopy(kwargs))
        try:
            got = observe(learner_fn, *copy.deepcopy(args), **copy.deepcopy(kwargs))
        except NotImplementedError:
            return verdicts.record(name, "NOT DONE", f"Exercise '{name}' is not done yet.", reference_fn)
        except Exception as err:  # a learner's bug must not stop the lesson
            return verdicts.record(name, "WRONG", f"Exercise '{name}': hidden case {k} raised "
                                   f"{type(err).__name__}: {err}\n  Hint: {verdicts.next_hint(name, hints)}",
                                   reference_fn)
        try:
            same = compare(expected, got)
        except Exception:  # an answer of the wrong kind (a str where an array belongs ...) is wrong, not a crash
            same = False
        if not same:
            answer = explain(expected, got) if explain else f"hidden case {k} expected {short(expected)}, got {short(got)}"
            hint_text = verdicts.next_hint(name, hints)
            return verdicts.record(name, "WRONG", f"Exercise '{name}': {answer}.\n  Hint: {hint_text}", reference_fn)
    result = explain(expected, got) if explain else f"your function agrees with the reference on {len(cases)} hidden cases"
    return verdicts.record(name, "PASSED", result + ".", learner_fn)
