"""Claims: the assertion cells of the lessons, with their margins in plain sight.

A lesson shows an effect, then asserts it with ``claim``::

    fk.claim("A's loss ends at least 3x higher than it started", a_end / a_start, ">=", 3)

which prints one line such as::

    CLAIM PASS | A's loss ends at least 3x higher than it started | 4.213 >= 3 | margin +1.213

and raises ``AssertionError`` when the comparison fails. The *margin* is how far the measured
value lies on the right side of its bound (value - bound for ``>``/``>=``, bound - value for
``<``/``<=``): negative means the claim failed. ``tools/seed_sweep.py`` reads these lines from
every run of every lesson (seeds x thread counts) and reports the worst margin of each claim, so
the bounds are set from the distribution over seeds, not from one lucky run.

Set ``FORGETKIT_CLAIMS=record`` to print failing claims without raising (the seed sweep does this,
so that one failure does not hide the margins of the claims after it). The default, ``assert``,
is what learners and the test suite run.
"""

from __future__ import annotations

import math
import numbers
import os

CLAIMS_ENV_VAR = "FORGETKIT_CLAIMS"
PREFIX = "CLAIM"
_OPERATORS = {
    ">": lambda value, bound: value > bound,
    ">=": lambda value, bound: value >= bound,
    "<": lambda value, bound: value < bound,
    "<=": lambda value, bound: value <= bound,
}


def claim_mode() -> str:
    """``"assert"`` (the default: a failed claim raises) or ``"record"`` (it is only printed)."""
    mode = os.environ.get(CLAIMS_ENV_VAR, "assert").strip().lower() or "assert"
    if mode not in ("assert", "record"):
        raise ValueError(f"{CLAIMS_ENV_VAR} must be 'assert' or 'record', got {mode!r}")
    return mode


def claim_margin(value: float, op: str, bound: float) -> float:
    """How far ``value`` lies on the passing side of ``bound``: value - bound for ``>``/``>=``,
    bound - value for ``<``/``<=``. Negative (or zero for a strict operator) means it fails."""
    return value - bound if op in (">", ">=") else bound - value


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # 0-d tensor or array
            return _number(name, value.item())
        raise TypeError(f"claim {name} must be a real number, got {type(value).__name__}")
    return float(value)


def claim(statement: str, value: float, op: str, bound: float) -> None:
    """Check that ``value op bound`` holds and print it with its margin (``claim_margin``).

    Returns nothing, so a notebook cell that ends with a claim shows only the printed line.

    ``statement`` says the effect in words, without numbers (it names the claim in the seed
    sweep's table). ``op`` is one of ``>``, ``>=``, ``<``, ``<=``. Raises AssertionError when
    the comparison fails (unless ``$FORGETKIT_CLAIMS`` is ``record``), including when ``value``
    is NaN.
    """
    if not isinstance(statement, str) or not statement.strip() or "|" in statement:
        raise ValueError(f"statement must be a non-empty str without '|', got {statement!r}")
    if op not in _OPERATORS:
        raise ValueError(f"op must be one of {sorted(_OPERATORS)}, got {op!r}")
    mode = claim_mode()
    value, bound = _number("value", value), _number("bound", bound)
    passed = not math.isnan(value) and _OPERATORS[op](value, bound)
    margin = claim_margin(value, op, bound)
    print(f"{PREFIX} {'PASS' if passed else 'FAIL'} | {statement} | {value:.4g} {op} {bound:.4g} | "
          f"margin {margin:+.4g}")
    if not passed and mode == "assert":
        raise AssertionError(f"{statement}: expected {value:.4g} {op} {bound:.4g}")


def parse_claim_line(line: str) -> dict | None:
    """The fields of one line printed by ``claim`` (statement, passed, value, op, bound, margin),
    or None when ``line`` is not such a line."""
    if not line.startswith(PREFIX + " "):
        return None
    parts = [part.strip() for part in line.split("|")]
    if len(parts) != 4 or not parts[3].startswith("margin "):
        return None
    status = parts[0][len(PREFIX):].strip()
    comparison = parts[2].split()
    if status not in ("PASS", "FAIL") or len(comparison) != 3 or comparison[1] not in _OPERATORS:
        return None
    try:
        value, bound, margin = float(comparison[0]), float(comparison[2]), float(parts[3].split()[1])
    except ValueError:
        return None
    return {"statement": parts[1], "passed": status == "PASS", "value": value, "op": comparison[1],
            "bound": bound, "margin": margin}
