"""Argument checks shared by forgetkit's modules, so bad input gets the same clear error everywhere.

Every public function checks its arguments with these, and every check follows two rules:

- a value of the wrong *type* raises ``TypeError``; a value of the right type but outside the
  allowed range raises ``ValueError``. Both say what was expected and what came in.
- ``True``/``False`` are not numbers here, although Python counts them as ints (``batch_size=True``
  is a mistake, not a batch of one), and strings are never converted (``lr="0.1"`` is refused).
  NumPy's integers and floats are numbers like Python's (``np.int64(3)`` is an int to a learner).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Collection, Mapping

import numpy as np
import torch.nn as nn
from torch import Tensor

StateDict = Mapping[str, Tensor]  # a state dict: parameter/buffer name -> tensor
ModelOrState = nn.Module | StateDict  # where a function reads weights: a model, or its state dict


def _got(value: object) -> str:
    """``value`` as an error message shows it: its type and a short repr."""
    text = repr(value)
    text = text if len(text) <= 40 else text[:37] + "..."
    return f"{type(value).__name__} {text}"


def _interval(low: float | None, high: float | None, low_open: bool = False, high_open: bool = False) -> str:
    """``"> 0"``, ``"<= 1"``, ``"in [0, 1)"`` ... ; empty when there is no bound."""
    def show(bound: float) -> str:
        return str(bound) if isinstance(bound, int) else f"{bound:g}"

    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{show(low)}, {show(high)}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {show(low)}"
    if high is not None:
        return f"{'<' if high_open else '<='} {show(high)}"
    return ""


def check_int(name: str, value: object, *, low: int | None = None, high: int | None = None,
              allow_none: bool = False) -> int | None:
    """``value`` as an ``int`` if it is an integer (Python or NumPy, not bool) in [low, high].

    ``None`` passes when ``allow_none``. TypeError for another type, ValueError out of range.
    """
    if allow_none and value is None:
        return None
    if low == 1 and high is None:
        expected = "a positive int"
    elif low == 0 and high is None:
        expected = "a non-negative int"
    else:
        expected = " ".join(filter(None, ["an int", _interval(low, high)]))
    expected += " or None" if allow_none else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be {expected}, got {_got(value)}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be {expected}, got {value}")
    return value


def check_positive_int(name: str, value: object, allow_none: bool = False) -> int | None:
    """``check_int(name, value, low=1)``: a count such as a batch size or a number of steps."""
    return check_int(name, value, low=1, allow_none=allow_none)


def check_number(name: str, value: object, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a ``float`` if it is a finite real number (Python or NumPy, not bool) in range.

    ``low``/``high`` bound it (excluded when ``low_open``/``high_open``), e.g.
    ``check_number("lr", lr, low=0, low_open=True)`` for lr > 0. TypeError for another type
    (a str, a tensor ...), ValueError for NaN, infinity or a value out of range.
    """
    expected = " ".join(filter(None, ["a finite number", _interval(low, high, low_open, high_open)]))
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {expected}, got {_got(value)}")
    number = float(value)
    if (not math.isfinite(number) or (low is not None and (number < low or (low_open and number == low)))
            or (high is not None and (number > high or (high_open and number == high)))):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return number


def check_bool(name: str, value: object) -> bool:
    """``value`` if it is ``True`` or ``False`` (a NumPy bool too); TypeError otherwise."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {_got(value)}")
    return bool(value)


def check_choice(name: str, value: object, choices: Collection[str]) -> str:
    """``value`` if it is one of the strings ``choices`` (e.g. an optimizer name); TypeError for a
    value that is not a str, ValueError listing the choices for an unknown one."""
    expected = f"one of {', '.join(repr(c) for c in choices)}"
    if not isinstance(value, str):
        raise TypeError(f"{name} must be {expected}, got {_got(value)}")
    if value not in choices:
        raise ValueError(f"{name} must be {expected}; got {value!r}")
    return value


def check_callable(name: str, value: object, signature: str) -> Callable:
    """``value`` if it can be called; TypeError naming the expected ``signature`` otherwise."""
    if not callable(value):
        raise TypeError(f"{name} must be a function {signature}, got {_got(value)}")
    return value


def check_module(value: object, name: str = "model") -> nn.Module:
    """``value`` if it is a ``torch.nn.Module``; TypeError otherwise."""
    if not isinstance(value, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(value).__name__}")
    return value


def check_tensor(name: str, value: object) -> Tensor:
    """``value`` if it is a ``torch.Tensor``; TypeError otherwise (a list or a NumPy array is not one)."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch tensor, got {type(value).__name__}")
    return value


def check_state_dict(name: str, value: ModelOrState) -> dict[str, Tensor]:
    """A state dict (name -> tensor) from a model or a mapping of names to tensors.

    A model's state is copied (a snapshot at the time of the call, detached); a mapping is used
    as it is. TypeError for anything else, or for a value that is not a tensor.
    """
    if isinstance(value, nn.Module):
        return {key: tensor.detach().clone() for key, tensor in value.state_dict().items()}
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a torch.nn.Module or a state dict (a mapping of names to "
                        f"tensors), got {type(value).__name__}")
    for key, tensor in value.items():
        if not isinstance(tensor, Tensor):
            raise TypeError(f"{name}[{key!r}] must be a tensor, got {type(tensor).__name__}")
    return dict(value)
