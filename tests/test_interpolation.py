"""Tests for forgetkit.interpolation: lines and planes in weight space."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import forgetkit as fk
from forgetkit.interpolation import interpolate_state_dicts


def _sd(w: float, b: float, count: int = 3) -> dict[str, torch.Tensor]:
    return {"w": torch.full((2, 2), w), "b": torch.tensor([b, b]), "count": torch.tensor(count)}


def test_interpolate_endpoints_midpoint_and_extrapolation():
    a, b = _sd(0.0, 2.0, 3), _sd(4.0, -2.0, 7)
    assert torch.equal(interpolate_state_dicts(a, b, 0.0)["w"], a["w"])
    assert torch.equal(interpolate_state_dicts(a, b, 1)["w"], b["w"])
    mid = interpolate_state_dicts(a, b, 0.5)
    assert torch.allclose(mid["w"], torch.full((2, 2), 2.0))
    assert torch.allclose(mid["b"], torch.zeros(2))
    assert torch.allclose(interpolate_state_dicts(a, b, -0.5)["w"], torch.full((2, 2), -2.0))
    assert torch.allclose(interpolate_state_dicts(a, b, torch.tensor(0.25))["w"], torch.full((2, 2), 1.0))


def test_interpolate_copies_integer_buffers_from_a_and_leaves_inputs_alone():
    a, b = _sd(0.0, 0.0, 3), _sd(1.0, 1.0, 7)
    out = interpolate_state_dicts(a, b, 0.5)
    assert out["count"].item() == 3 and out["count"].dtype == a["count"].dtype
    out["w"].add_(100.0)
    out["count"].add_(1)
    assert torch.equal(a["w"], torch.zeros(2, 2)) and a["count"].item() == 3  # a copy, not a view
    assert torch.equal(b["w"], torch.ones(2, 2))


def test_interpolate_real_model_state_dicts_load_back():
    torch.manual_seed(0)
    m1, m2 = fk.MLP((4, 3, 2)), fk.MLP((4, 3, 2))
    mid = interpolate_state_dicts(m1.state_dict(), m2.state_dict(), 0.3)
    model = fk.MLP((4, 3, 2))
    model.load_state_dict(mid)
    expected = 0.7 * m1.head.weight + 0.3 * m2.head.weight
    assert torch.allclose(model.head.weight, expected, atol=1e-6)
    bn = nn.BatchNorm1d(3)
    out = interpolate_state_dicts(bn.state_dict(), bn.state_dict(), 0.5)
    assert out["num_batches_tracked"].dtype == torch.int64


def test_interpolate_bad_input():
    a, b = _sd(0.0, 0.0), _sd(1.0, 1.0)
    with pytest.raises(TypeError, match="state dict"):
        interpolate_state_dicts([1, 2], b, 0.5)
    with pytest.raises(TypeError, match="must be a tensor"):
        interpolate_state_dicts({"w": 1.0}, {"w": 2.0}, 0.5)
    with pytest.raises(ValueError, match="different keys"):
        interpolate_state_dicts(a, {"w": b["w"]}, 0.5)
    with pytest.raises(ValueError, match="shape"):
        interpolate_state_dicts(a, {**b, "w": torch.zeros(3)}, 0.5)
    with pytest.raises(TypeError, match="alpha"):
        interpolate_state_dicts(a, b, "half")
    with pytest.raises(TypeError, match="alpha"):
        interpolate_state_dicts(a, b, True)
    with pytest.raises(ValueError, match="finite"):
        interpolate_state_dicts(a, b, float("nan"))
