"""forgetkit.claims: the lessons' assertions print their margin and fail when they should."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from forgetkit.claims import claim, claim_margin, parse_claim_line


@pytest.mark.parametrize(("value", "op", "bound", "margin"), [
    (4.0, ">=", 3.0, 1.0), (3.0, ">=", 3.0, 0.0), (2.0, "<", 3.0, 1.0), (0.5, "<=", 0.2, -0.3),
    (1.0, ">", 1.5, -0.5)])
def test_margin_is_the_distance_on_the_passing_side(value, op, bound, margin) -> None:
    assert claim_margin(value, op, bound) == pytest.approx(margin)


def test_a_passing_claim_prints_a_line_the_sweep_can_read(capsys) -> None:
    assert claim("loss rises", np.float64(4.2), ">=", 3) is None  # a cell ending in a claim echoes nothing
    line = capsys.readouterr().out.strip()
    parsed = parse_claim_line(line)
    assert parsed == {"statement": "loss rises", "passed": True, "value": 4.2, "op": ">=", "bound": 3.0,
                      "margin": pytest.approx(1.2)}


def test_a_failing_claim_raises_with_the_numbers(capsys) -> None:
    with pytest.raises(AssertionError, match="loss rises: expected 2.5 >= 3"):
        claim("loss rises", 2.5, ">=", 3)
    assert parse_claim_line(capsys.readouterr().out.strip())["passed"] is False


def test_strict_operators_fail_on_equality() -> None:
    with pytest.raises(AssertionError):
        claim("strictly more", 1.0, ">", 1.0)
    with pytest.raises(AssertionError):
        claim("strictly less", 1.0, "<", 1.0)


def test_nan_never_passes() -> None:
    with pytest.raises(AssertionError):
        claim("finite", math.nan, "<=", 1.0)


def test_record_mode_prints_but_does_not_raise(monkeypatch, capsys) -> None:
    monkeypatch.setenv("FORGETKIT_CLAIMS", "record")
    claim("loss rises", 2.5, ">=", 3)
    assert "CLAIM FAIL | loss rises | 2.5 >= 3 | margin -0.5" in capsys.readouterr().out


def test_scalar_tensors_are_numbers(capsys) -> None:
    claim("tensor", torch.tensor(2.0), ">", 1)
    assert parse_claim_line(capsys.readouterr().out.strip())["margin"] == pytest.approx(1.0)


@pytest.mark.parametrize(("kwargs", "error", "phrase"), [
    (dict(statement="", value=1, op=">", bound=0), ValueError, "statement"),
    (dict(statement="a | b", value=1, op=">", bound=0), ValueError, "statement"),
    (dict(statement="s", value=1, op="==", bound=0), ValueError, "op must be"),
    (dict(statement="s", value="1", op=">", bound=0), TypeError, "real number"),
    (dict(statement="s", value=True, op=">", bound=0), TypeError, "real number"),
    (dict(statement="s", value=torch.ones(3), op=">", bound=0), TypeError, "real number"),
])
def test_bad_arguments_get_clear_errors(kwargs, error, phrase) -> None:
    with pytest.raises(error, match=phrase):
        claim(**kwargs)


def test_bad_mode_is_refused(monkeypatch) -> None:
    monkeypatch.setenv("FORGETKIT_CLAIMS", "maybe")
    with pytest.raises(ValueError, match="FORGETKIT_CLAIMS"):
        claim("s", 0.0, "<", 1.0)


@pytest.mark.parametrize("line", ["", "CLAIM", "CLAIM PASS | x | 1 >= | margin 1", "PASSED: exercise",
                                  "CLAIM MAYBE | x | 1 >= 0 | margin 1"])
def test_other_lines_are_not_claims(line) -> None:
    assert parse_claim_line(line) is None
