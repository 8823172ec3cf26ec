"""forgetkit.checks: one rule for every module (wrong type: TypeError, wrong value: ValueError; bools and
strings are never numbers, NumPy's numbers are), and the cases that once slipped through elsewhere."""

import math

import numpy as np
import pytest
import torch
import torch.nn as nn

import forgetkit as fk
from forgetkit.checks import (
    check_bool,
    check_callable,
    check_choice,
    check_int,
    check_module,
    check_number,
    check_positive_int,
    check_state_dict,
    check_tensor,
)


def test_ints_pass_through_numpy_ints_become_ints():
    assert check_positive_int("batch_size", 64) == 64
    assert check_positive_int("chunk_size", None, allow_none=True) is None
    value = check_int("k", np.int64(3), low=1)
    assert value == 3 and type(value) is int
    assert check_int("n", 0, low=0) == 0 and check_int("any", -7) == -7


@pytest.mark.parametrize("value", [2.0, "8", True, False, None, [1], np.float64(2.0)])
def test_a_non_int_is_a_type_error_with_the_name(value):
    with pytest.raises(TypeError, match="batch_size must be a positive int"):
        check_positive_int("batch_size", value)


@pytest.mark.parametrize("value, low, high, phrase", [(0, 1, None, "a positive int"), (-1, 0, None, "a non-negative int"),
                                                     (5, 1, 4, r"an int in \[1, 4\]"), (1, 2, None, "an int >= 2")])
def test_an_int_out_of_range_is_a_value_error_that_says_the_range(value, low, high, phrase):
    with pytest.raises(ValueError, match=phrase):
        check_int("k", value, low=low, high=high)


def test_allow_none_says_so_in_the_message():
    with pytest.raises(ValueError, match="positive int or None"):
        check_positive_int("max_windows", 0, allow_none=True)


def test_numbers():
    assert check_number("lr", 0.1, low=0.0, low_open=True) == 0.1
    assert check_number("lr", np.float32(0.5)) == 0.5 and check_number("lam", 3) == 3.0
    assert check_number("ratio", 0.0, low=0.0, high=1.0, high_open=True) == 0.0


@pytest.mark.parametrize("value", ["0.1", True, None, torch.tensor(0.1), [0.1]])
def test_a_non_number_is_a_type_error(value):
    with pytest.raises(TypeError, match="lr must be a finite number"):
        check_number("lr", value, low=0.0, low_open=True)


@pytest.mark.parametrize("value, phrase", [(0.0, "> 0"), (-1.0, "> 0"), (math.nan, "finite"), (math.inf, "finite")])
def test_a_bad_number_is_a_value_error(value, phrase):
    with pytest.raises(ValueError, match=phrase):
        check_number("lr", value, low=0.0, low_open=True)


def test_ranges_are_written_as_intervals():
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        check_number("ratio", 1.0, low=0.0, high=1.0, high_open=True)
    with pytest.raises(ValueError, match=r"in \(0, 1\]"):
        check_number("fraction", 0.0, low=0.0, high=1.0, low_open=True)


def test_bools_choices_callables_modules_tensors():
    assert check_bool("relabel", True) is True and check_bool("relabel", np.bool_(False)) is False
    with pytest.raises(TypeError, match="relabel must be True or False"):
        check_bool("relabel", 1)
    assert check_choice("optimizer", "sgd", ("sgd", "adam")) == "sgd"
    with pytest.raises(ValueError, match="one of 'sgd', 'adam'"):
        check_choice("optimizer", "rmsprop", ("sgd", "adam"))
    with pytest.raises(TypeError, match="optimizer must be one of"):
        check_choice("optimizer", 3, ("sgd", "adam"))
    with pytest.raises(TypeError, match=r"combine must be a function \(g, g_ref\)"):
        check_callable("combine", "project", "(g, g_ref) -> g")
    layer = nn.Linear(2, 2)
    assert check_module(layer) is layer
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got list"):
        check_module([layer])
    with pytest.raises(TypeError, match="X must be a torch tensor, got ndarray"):
        check_tensor("X", np.zeros(2))


def test_state_dicts_from_models_are_snapshots():
    layer = nn.Linear(2, 2)
    state = check_state_dict("sd", layer)
    with torch.no_grad():
        layer.weight.add_(1.0)
    assert not torch.equal(state["weight"], layer.weight)  # a copy taken at the call
    given = {"w": torch.zeros(2)}
    assert check_state_dict("sd", given)["w"] is given["w"]
    with pytest.raises(TypeError, match=r"sd\['w'\] must be a tensor"):
        check_state_dict("sd", {"w": [0.0]})
    with pytest.raises(TypeError, match="sd must be a torch.nn.Module or a state dict"):
        check_state_dict("sd", [torch.zeros(2)])


# ------------------------------------------------------------------------------------------
# The cases that once slipped through modules with their own hand-written checks
# ------------------------------------------------------------------------------------------

def _blobs():
    X = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))
    return X, (X[:, 0] > 0).long()


def _calls():
    X, y = _blobs()
    R = [[0.9, 0.1], [0.5, 0.8]]
    lm = fk.TinyLM(fk.TinyLMConfig(vocab_size=29, block_size=8, n_layer=1, n_head=1, n_embd=8))
    task = fk.digits_task()
    return {
        "eval_every": lambda v: fk.train(nn.Linear(2, 2), lambda: (X, y), fk.training.classification_loss,
                                         num_steps=1, lr=0.1, eval_every=v, progress=False),
        "k": lambda v: fk.forgetting(R, v),
        "num_train": lambda v: task.subset(v),
        "max_new_tokens": lambda v: lm.generate(torch.zeros(1, 1, dtype=torch.int64), v),
        "batch_size": lambda v: fk.fit(fk.MLP((2, 2)), X, y, num_steps=1, batch_size=v, progress=False),
        "lr": lambda v: fk.fit(fk.MLP((2, 2)), X, y, num_steps=1, lr=v, progress=False),
        "seed": lambda v: fk.get_seed(v),
    }


@pytest.mark.parametrize("name", ["eval_every", "k", "num_train", "max_new_tokens", "batch_size", "lr", "seed"])
@pytest.mark.parametrize("bad", [True, "3"])
def test_bools_and_strings_are_type_errors_everywhere(name, bad):
    with pytest.raises(TypeError, match=name):
        _calls()[name](bad)


@pytest.mark.parametrize("name", ["k", "num_train", "max_new_tokens", "batch_size", "seed"])
def test_numpy_ints_are_ints_everywhere(name):
    _calls()[name](np.int64(1))


def test_numpy_int_in_forgetting():
    assert fk.forgetting([[0.9, 0.1], [0.5, 0.8]], np.int64(1)) == pytest.approx(0.4)
