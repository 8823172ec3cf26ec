"""The exercise-check framework: PASSED / NOT DONE / WRONG, fallbacks, hints and summary()."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn

import forgetkit as fk
from forgetkit.exercises import (
    Verdicts,
    check_count_trainable,
    check_function,
    check_perplexity,
    close,
    framework,
    summary,
)

torch.set_num_threads(1)  # as fk.pick_device() does


@pytest.fixture(autouse=True)
def fresh_results(monkeypatch: pytest.MonkeyPatch) -> dict:
    """This test's own record of verdicts (the kernel's ``VERDICTS`` is left alone)."""
    verdicts = Verdicts()
    monkeypatch.setattr(framework, "VERDICTS", verdicts)
    return verdicts.results


def reference_square(x):
    return x * x


CASES = [lambda: ((2,), {}), lambda: ((3.0,), {}), lambda: ((np.arange(3.0),), {})]


def test_passed_returns_the_learners_function(capsys, fresh_results: dict) -> None:
    def mine(x):
        return x ** 2

    assert check_function("square", mine, reference_square, CASES, hint="multiply x by itself") is mine
    out = capsys.readouterr().out
    assert "PASSED" in out and "'square'" in out and "3 hidden cases" in out
    assert fresh_results == {"square": "PASSED"}


def test_not_done_falls_back_to_the_reference(capsys, fresh_results: dict) -> None:
    def stub(x):
        raise NotImplementedError

    assert check_function("square", stub, reference_square, CASES) is reference_square
    out = capsys.readouterr().out
    assert "NOT DONE" in out and "not done yet" in out and "reference implementation" in out
    assert "reference_square" in out
    assert fresh_results == {"square": "NOT DONE"}


def test_wrong_answer_falls_back_with_a_hint(capsys, fresh_results: dict) -> None:
    def off_on_floats(x):
        return x * x if isinstance(x, int) else x * x + 1

    assert check_function("square", off_on_floats, reference_square, CASES, hint="multiply x by itself") \
        is reference_square
    out = capsys.readouterr().out
    assert "WRONG" in out and "hidden case 2 expected 9.0, got 10.0" in out and "Hint: multiply x by itself" in out
    assert fresh_results == {"square": "WRONG"}


def test_an_exception_in_learner_code_is_caught(capsys, fresh_results: dict) -> None:
    def buggy(x):
        return x / 0

    assert check_function("square", buggy, reference_square, CASES, hint="no division needed") is reference_square
    out = capsys.readouterr().out
    assert "WRONG" in out and "hidden case 1 raised ZeroDivisionError" in out and "Hint: no division needed" in out
    assert fresh_results == {"square": "WRONG"}


@pytest.mark.parametrize("answer", ["nine", {"a": 1}, None, [1.0, 2.0], torch.zeros(5)])
def test_an_answer_of_the_wrong_kind_is_wrong_not_a_crash(capsys, answer) -> None:
    cases = [lambda: ((np.arange(3.0),), {})]
    assert check_function("square", lambda x: answer, reference_square, cases) is reference_square
    assert "WRONG" in capsys.readouterr().out


def test_each_function_gets_its_own_copy_of_the_inputs(capsys) -> None:
    shared = [1, 2, 3]

    def mutating_sum(values):
        total = sum(values)
        values.clear()
        return total

    assert check_function("sum", mutating_sum, sum, [lambda: ((shared,), {})] * 2) is mutating_sum
    assert shared == [1, 2, 3]
    capsys.readouterr()


def test_kwargs_reach_both_functions(capsys) -> None:
    def power(x, *, p):
        return x ** p

    cases = [lambda: ((2,), {"p": 3})]
    assert check_function("power", lambda x, p: x ** p, power, cases) is not power
    capsys.readouterr()


def test_not_a_function_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="expected your function"):
        check_function("square", 42, reference_square, CASES)


def test_summary(capsys, fresh_results: dict) -> None:
    assert summary() == {}
    assert "No exercise was checked" in capsys.readouterr().out
    check_function("a", reference_square, reference_square, CASES)
    capsys.readouterr()
    assert summary() == {"a": "PASSED"}
    assert "All exercises passed." in capsys.readouterr().out
    check_function("b", lambda x: (_ for _ in ()).throw(NotImplementedError), reference_square, CASES)
    capsys.readouterr()
    result = summary()
    out = capsys.readouterr().out
    assert result == {"a": "PASSED", "b": "NOT DONE"}
    assert "1 exercise(s) still to do: b" in out and "PASSED" in out and "NOT DONE" in out
    result["c"] = "PASSED"  # a copy: changing it does not change the record
    assert "c" not in fresh_results


def test_observe_and_explain() -> None:
    calls = []

    def observe(fn, x):  # what is compared: the answer and whether the input survived
        values = [x, x]
        return {"answer": fn(values), "input kept": values == [x, x]}

    def sums_and_clears(values):
        total = sum(values)
        values.clear()
        return total

    cases = [lambda: ((2,), {}), lambda: ((5,), {})]
    assert check_function("sum", sum, sum, cases, observe=observe) is sum
    assert check_function("sum", sums_and_clears, sum, cases, observe=observe,
                          explain=lambda e, g: calls.append(g) or f"your answer {g}") is sum
    assert calls == [{"answer": 4, "input kept": False}]


def test_explain_words_both_verdicts(capsys) -> None:
    explain = lambda expected, got: f"you said {got}"  # noqa: E731
    check_function("square", lambda x: x * x, reference_square, [lambda: ((3,), {})], explain=explain)
    assert "PASSED: Exercise 'square': you said 9." in capsys.readouterr().out
    check_function("square", lambda x: x + x, reference_square, [lambda: ((3,), {})], explain=explain,
                   hint="multiply")
    assert "WRONG: Exercise 'square': you said 6.\n  Hint: multiply" in capsys.readouterr().out


def test_a_verdicts_object_of_ones_own(capsys, fresh_results: dict) -> None:
    mine = Verdicts()
    check_function("square", reference_square, reference_square, CASES, verdicts=mine)
    assert mine.results == {"square": "PASSED"} and fresh_results == {}
    assert summary(mine) == {"square": "PASSED"} and "All exercises passed." in capsys.readouterr().out


def test_close_compares_structures() -> None:
    assert close(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0 + 1e-7]))
    assert close(torch.tensor([1.0, 2.0]), torch.tensor([1, 2]))  # dtype does not matter
    assert not close(torch.tensor([1.0, 2.0]), torch.tensor([[1.0, 2.0]]))  # shape does
    assert not close(torch.tensor([1.0]), [1.0])
    assert close(np.array([0.5, 1.5]), [0.5, 1.5]) and close(np.array([0.5]), torch.tensor([0.5]))
    assert not close(np.array([0.5, 1.5]), np.array([0.5, 1.6]))
    assert close(3, 3.0) and close(2.0, torch.tensor(2.0)) and not close(2.0, 2.1) and not close(2.0, "2")
    assert close(True, True) and not close(True, False) and close("a", "a") and not close("a", "b")
    assert close(None, None) and not close(None, 0)
    assert close({"x": 1.0, "y": [1, 2]}, {"x": 1.0 + 1e-9, "y": (1, 2)})
    assert not close({"x": 1.0}, {"x": 1.0, "y": 2.0}) and not close([1, 2], [1, 2, 3])


# ------------------------------------------------------------------------------------------
# The course's checks, with a correct and a wrong learner function each
# ------------------------------------------------------------------------------------------


def my_count_trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def counts_every_parameter(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def my_perplexity(model: nn.Module, tokens: torch.Tensor) -> float:
    with torch.no_grad():
        x, y = fk.lm_windows(tokens, model.block_size)
        return math.exp(model(x, y)[1].item())


def loss_not_perplexity(model: nn.Module, tokens: torch.Tensor) -> float:
    with torch.no_grad():
        x, y = fk.lm_windows(tokens, model.block_size)
        return model(x, y)[1].item()


@pytest.mark.parametrize("check, right, wrong, reference, name, hint", [
    (check_count_trainable, my_count_trainable, counts_every_parameter, fk.peft.count_trainable,
     "count_trainable", "requires_grad"),
    (check_perplexity, my_perplexity, loss_not_perplexity, fk.metrics.perplexity, "perplexity", "math.exp"),
])
def test_course_checks(capsys, fresh_results: dict, check, right, wrong, reference, name: str, hint: str) -> None:
    assert check(right) is right
    assert "PASSED" in capsys.readouterr().out and fresh_results == {name: "PASSED"}
    assert check(wrong) is reference
    first = capsys.readouterr().out
    assert "WRONG" in first and hint not in first and "more explicit" in first  # a conceptual nudge
    assert check(wrong) is reference
    second = capsys.readouterr().out
    assert "WRONG" in second and hint in second  # then the formula
    assert fresh_results == {name: "WRONG"}


def test_hints_are_graded_and_the_last_one_repeats(capsys, fresh_results: dict) -> None:
    verdicts = Verdicts()
    hints = ["think about squares", "x * x"]
    for expected in hints + hints[-1:]:
        check_function("square", lambda x: x + x, reference_square, CASES, hint=hints, verdicts=verdicts)
        out = capsys.readouterr().out
        assert expected in out and ("more explicit" in out) == (expected == hints[0])
    assert verdicts.wrong == {"square": 3}


def test_a_hint_must_be_text() -> None:
    with pytest.raises(TypeError, match="hint must be a str"):
        check_function("square", reference_square, reference_square, CASES, hint=[1, 2])
