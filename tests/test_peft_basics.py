"""Counting and freezing parameters (peft.count_trainable, count_frozen, freeze)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import forgetkit as fk
from forgetkit.peft import count_frozen, count_trainable, freeze


def test_counts_on_hand_made_models() -> None:
    layer = nn.Linear(3, 2)  # 3 * 2 weights + 2 biases
    assert (count_trainable(layer), count_frozen(layer)) == (8, 0)
    mlp = fk.MLP((4, 3, 2))  # body 4*3+3 = 15, head 3*2+2 = 8
    assert (count_trainable(mlp), count_frozen(mlp)) == (23, 0)
    mlp.body[0].bias.requires_grad_(False)
    assert (count_trainable(mlp), count_frozen(mlp)) == (20, 3)
    assert (count_trainable(nn.ReLU()), count_frozen(nn.ReLU())) == (0, 0)


def test_freeze_everything_returns_the_model() -> None:
    mlp = fk.MLP((4, 3, 2))
    assert freeze(mlp) is mlp
    assert (count_trainable(mlp), count_frozen(mlp)) == (0, 23)
    assert all(not p.requires_grad for p in mlp.parameters())


def test_freeze_by_pattern_fullmatches_names() -> None:
    mlp = fk.MLP((4, 3, 2))
    freeze(mlp, r"body\..*")
    assert (count_trainable(mlp), count_frozen(mlp)) == (8, 15)
    freeze(mlp, r"head\.bias")
    assert (count_trainable(mlp), count_frozen(mlp)) == (6, 17)
    assert mlp.head.weight.requires_grad and not mlp.head.bias.requires_grad


def test_frozen_parameters_get_no_gradient() -> None:
    mlp = freeze(fk.MLP((4, 3, 2)), r"body\..*")
    mlp(torch.randn(5, 4)).sum().backward()
    assert mlp.body[0].weight.grad is None and mlp.head.weight.grad is not None


def test_freeze_pattern_that_matches_nothing() -> None:
    mlp = fk.MLP((4, 3, 2))
    with pytest.raises(ValueError, match="matches no parameter name"):
        freeze(mlp, "body")  # a prefix is not a whole name
    with pytest.raises(ValueError, match="matches no parameter name"):
        freeze(mlp, r"encoder\..*")
    assert count_frozen(mlp) == 0  # a failed call changes nothing


def test_freeze_bad_pattern() -> None:
    with pytest.raises(ValueError, match=r"pattern '\(' is not a valid regular expression"):
        freeze(fk.MLP((4, 2)), "(")
    with pytest.raises(TypeError, match="pattern must be a regular expression"):
        freeze(fk.MLP((4, 2)), 3)


@pytest.mark.parametrize("fn", [count_trainable, count_frozen, freeze])
def test_not_a_module(fn) -> None:
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        fn([nn.Parameter(torch.zeros(2))])


def test_exported() -> None:
    assert fk.count_trainable is count_trainable and fk.count_frozen is count_frozen and fk.freeze is freeze
