"""Continual-learning metrics on hand-computed matrices, exactly as pinned in COURSE.md."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import forgetkit as fk
from forgetkit.data import Task
from forgetkit.metrics import (
    accuracy_matrix,
    average_accuracy,
    backward_transfer,
    forgetting,
    forward_transfer,
    perplexity,
    summarize,
)

torch.set_num_threads(1)  # as fk.pick_device() does

# R[i, j] = accuracy on task j after training on task i. Task 0 *improves* while task 1 is
# learned (0.6 -> 0.9) and then drops to 0.5, so "max over earlier steps" (0.9) differs from
# "right after training on it" (0.6).
R = [[0.6, 0.1, 0.1],
     [0.9, 0.8, 0.2],
     [0.5, 0.3, 0.95]]
BASELINE = [0.2, 0.04, 0.1]


def test_average_accuracy() -> None:
    assert average_accuracy(R) == pytest.approx((0.5 + 0.3 + 0.95) / 3)
    assert average_accuracy([[0.7]]) == pytest.approx(0.7)
    assert average_accuracy(np.array(R)) == average_accuracy(R)


def test_backward_transfer_lopez_paz_2017() -> None:
    # mean_{j<T-1} (R[T-1, j] - R[j, j]) = mean(0.5 - 0.6, 0.3 - 0.8)
    assert backward_transfer(R) == pytest.approx(-0.3)
    assert backward_transfer([[0.5, 0.0], [0.7, 0.9]]) == pytest.approx(0.2)  # positive: later training helped


def test_forward_transfer_with_baseline() -> None:
    # mean_{j>0} (R[j-1, j] - b_j) = mean(0.1 - 0.04, 0.2 - 0.1)
    assert forward_transfer(R, BASELINE) == pytest.approx(0.08)
    assert forward_transfer(R, np.zeros(3)) == pytest.approx(0.15)


def test_forgetting_uses_the_max_over_earlier_steps() -> None:
    # j = 0: max(0.6, 0.9) - 0.5 = 0.4;  j = 1: max(0.1, 0.8) - 0.3 = 0.5
    assert forgetting(R) == pytest.approx(0.45)
    right_after_training = np.mean([0.6 - 0.5, 0.8 - 0.3])  # the other libraries' definition: 0.3
    assert forgetting(R) != pytest.approx(right_after_training)
    assert forgetting(R, k=2) == forgetting(R)
    assert forgetting(R, k=1) == pytest.approx(0.6 - 0.9)  # not clipped: improving is negative forgetting


def test_forgetting_counts_the_latest_old_task() -> None:
    # only the latest old task (1) is forgotten; task 0 is kept. Skipping task k-1 would give 0.
    R2 = [[0.9, 0.0, 0.0],
          [0.9, 0.9, 0.0],
          [0.9, 0.1, 0.9]]
    assert forgetting(R2) == pytest.approx((0.0 + 0.8) / 2)
    assert forgetting([[1.0, 0.0], [0.25, 1.0]]) == pytest.approx(0.75)


def test_summarize() -> None:
    assert summarize(R) == pytest.approx({"ACC": 1.75 / 3, "BWT": -0.3, "forgetting": 0.45})
    assert summarize(R, BASELINE) == pytest.approx({"ACC": 1.75 / 3, "BWT": -0.3, "forgetting": 0.45, "FWT": 0.08})
    assert summarize([[0.4]]) == pytest.approx({"ACC": 0.4})


@pytest.mark.parametrize("bad, message", [
    ([0.1, 0.2], r"R must be a non-empty square T x T matrix, got shape \(2,\)"),
    ([[0.1, 0.2]], r"R must be a non-empty square T x T matrix, got shape \(1, 2\)"),
    (np.zeros((0, 0)), r"got shape \(0, 0\)"),
    (np.zeros((2, 2, 2)), r"got shape \(2, 2, 2\)"),
    ([[0.1, np.nan], [0.2, 0.3]], "R contains NaN"),
])
@pytest.mark.parametrize("metric", [average_accuracy, backward_transfer, forgetting, summarize,
                                    lambda R: forward_transfer(R, [0.0, 0.0])])
def test_bad_matrices(metric, bad, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        metric(bad)


def test_one_task_is_not_enough_for_transfer() -> None:
    with pytest.raises(ValueError, match="backward transfer needs at least 2 tasks"):
        backward_transfer([[0.5]])
    with pytest.raises(ValueError, match="forward transfer needs at least 2 tasks"):
        forward_transfer([[0.5]], [0.1])
    with pytest.raises(ValueError, match=r"k must be an int in \[1, 0\]"):
        forgetting([[0.5]])


@pytest.mark.parametrize("baseline", [[0.1, 0.1], [0.1] * 4, [[0.1, 0.1, 0.1]]])
def test_forward_transfer_mismatched_task_count(baseline) -> None:
    with pytest.raises(ValueError, match=r"baseline must hold one accuracy per task, shape \(3,\)"):
        forward_transfer(R, baseline)
    with pytest.raises(ValueError, match=r"baseline must hold one accuracy per task"):
        summarize(R, baseline)


@pytest.mark.parametrize("k", [0, 3, -1, 1.0, "2"])
def test_forgetting_bad_k(k) -> None:
    with pytest.raises(ValueError, match=r"k must be an int in \[1, 2\]"):
        forgetting(R, k)


def _always_predicts(model: torch.nn.Module, cls: int) -> None:
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.nn.functional.one_hot(torch.tensor(cls), 3).float())


def test_accuracy_matrix_fills_r_row_by_row() -> None:
    # task j's labels are all j; "training" on task i makes the model predict class i everywhere,
    # so R[i, j] = 1 exactly when i == j
    X = torch.randn(6, 4)
    tasks = [Task(f"t{j}", X, torch.full((6,), j), X, torch.full((6,), j)) for j in range(3)]
    model, calls = fk.MLP((4, 5, 3)), []

    def train_on_task(m, i, task):
        calls.append((i, task.name))
        _always_predicts(m, i)

    result = accuracy_matrix(model, tasks, train_on_task, progress=False)
    assert calls == [(0, "t0"), (1, "t1"), (2, "t2")]
    assert isinstance(result, np.ndarray) and np.array_equal(result, np.eye(3))
    assert forgetting(result) == 1.0 and backward_transfer(result) == -1.0


def test_accuracy_matrix_bad_input() -> None:
    with pytest.raises(ValueError, match="tasks is empty: expected at least one task"):
        accuracy_matrix(fk.MLP((4, 3)), [], lambda m, i, t: None)


def test_perplexity_of_a_uniform_model_is_the_vocabulary_size() -> None:
    torch.manual_seed(0)
    model = fk.TinyLM(29, block_size=8, n_layer=1, n_head=1, n_embd=8)
    with torch.no_grad():
        model.lm_head.weight.zero_()
        model.lm_head.bias.zero_()
    tokens = fk.language_tokens("french", num_sentences=10, seed=0)
    assert perplexity(model, tokens) == pytest.approx(29.0, rel=1e-5)
    with pytest.raises(TypeError, match="tokens must be a 1-D int64 tensor"):
        perplexity(model, tokens.float())


# --- value_at_learning: one run read at a target learning --------------------------------------


def test_value_at_learning_interpolates_where_the_run_first_gets_there() -> None:
    learned = [0.0, 0.2, 0.6, 0.5, 0.9]
    forgotten = [0.0, 0.1, 0.5, 0.7, 0.9]
    assert fk.value_at_learning(learned, forgotten, 0.4) == pytest.approx(0.3)  # halfway from 0.2 to 0.6
    assert fk.value_at_learning(learned, forgotten, 0.6) == pytest.approx(0.5)  # first reached at k = 2
    assert fk.value_at_learning(learned, forgotten, 0.0) == 0.0
    assert np.isnan(fk.value_at_learning(learned, forgotten, 0.95))  # never reached


@pytest.mark.parametrize(("learned", "values", "target", "error", "phrase"), [
    ([0.1, 0.2], [0.1], 0.1, ValueError, "same length"),
    ([], [], 0.1, ValueError, "non-empty"),
    ([[0.1]], [[0.1]], 0.1, ValueError, "1-D"),
    ([0.1, float("nan")], [0.1, 0.2], 0.1, ValueError, "NaN"),
    ([0.1, 0.2], [0.1, 0.2], "0.1", TypeError, "real number"),
    ([0.1, 0.2], [0.1, 0.2], True, TypeError, "real number"),
])
def test_value_at_learning_refuses_bad_input(learned, values, target, error, phrase) -> None:
    with pytest.raises(error, match=phrase):
        fk.value_at_learning(learned, values, target)
