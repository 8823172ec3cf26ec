"""Tests for forgetkit.interpolation: lines and planes in weight space."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

import forgetkit as fk
from forgetkit.interpolation import evaluate_along_line, evaluate_on_plane, interpolate_state_dicts


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


# ------------------------------------------------------------------------------------------
# evaluate_along_line / evaluate_on_plane
# ------------------------------------------------------------------------------------------

def _linear(weight: list[float]) -> dict[str, torch.Tensor]:
    return {"weight": torch.tensor([weight]), "bias": torch.zeros(1)}


def test_evaluate_along_line_values_and_restores_model():
    model = nn.Linear(2, 1)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fns = {"w0": lambda m: m.weight[0, 0].item(), "w1": lambda m: m.weight[0, 1],
           "grad off": lambda m: float(torch.is_grad_enabled()), "eval mode": lambda m: float(not m.training)}
    out = evaluate_along_line(model, _linear([0.0, 2.0]), _linear([4.0, 0.0]), [0.0, 0.25, 1.0, 1.5], fns)
    assert np.allclose(out["w0"], [0.0, 1.0, 4.0, 6.0])
    assert np.allclose(out["w1"], [2.0, 1.5, 0.0, -1.0])
    assert np.all(out["grad off"] == 0.0) and np.all(out["eval mode"] == 1.0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.training  # mode restored too
    out = evaluate_along_line(model, _linear([0.0, 0.0]), _linear([1.0, 1.0]), torch.linspace(0, 1, 3), {"w0": fns["w0"]})
    assert isinstance(out["w0"], np.ndarray) and out["w0"].shape == (3,)


def test_evaluate_along_line_restores_model_after_an_error():
    model = nn.Linear(2, 1)
    before = model.weight.detach().clone()

    def boom(m):
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError, match="boom"):
        evaluate_along_line(model, _linear([5.0, 5.0]), _linear([6.0, 6.0]), [0.5], {"x": boom})
    assert torch.equal(model.weight, before)


def test_evaluate_along_line_bad_input():
    model, a, b, fns = nn.Linear(2, 1), _linear([0.0, 0.0]), _linear([1.0, 1.0]), {"w": lambda m: 0.0}
    with pytest.raises(TypeError, match="model"):
        evaluate_along_line("model", a, b, [0.0], fns)
    with pytest.raises(ValueError, match="alphas"):
        evaluate_along_line(model, a, b, [], fns)
    with pytest.raises(ValueError, match="alphas"):
        evaluate_along_line(model, a, b, [[0.0, 1.0]], fns)
    with pytest.raises(ValueError, match="alphas"):
        evaluate_along_line(model, a, b, [0.0, float("inf")], fns)
    with pytest.raises(TypeError, match="alphas"):
        evaluate_along_line(model, a, b, ["x"], fns)
    with pytest.raises(TypeError, match="eval_fns"):
        evaluate_along_line(model, a, b, [0.0], {})
    with pytest.raises(TypeError, match="eval_fns"):
        evaluate_along_line(model, a, b, [0.0], {"w": 3})
    with pytest.raises(TypeError, match="must return a number"):
        evaluate_along_line(model, a, b, [0.0], {"w": lambda m: "high"})
    with pytest.raises(ValueError, match="different keys"):
        evaluate_along_line(model, {"weight": a["weight"]}, b, [0.0], fns)
    with pytest.raises(ValueError, match="shape"):
        evaluate_along_line(model, a, _linear([1.0, 1.0, 1.0]), [0.0], fns)


def test_evaluate_on_plane_coordinates_are_orthonormal_distances():
    model = nn.Linear(2, 1)
    origin, first, second = _linear([1.0, 1.0]), _linear([4.0, 5.0]), _linear([1.0 - 4.0, 1.0 + 3.0])
    fns = {"w0": lambda m: m.weight[0, 0].item(), "w1": lambda m: m.weight[0, 1].item()}
    plane = evaluate_on_plane(model, origin, first, second, fns, resolution=5, margin=0.0)
    # u = (3, 4) / 5 and v = (-4, 3) / 5 span the plane; first is at distance 5, second at 5 along v
    assert np.allclose(plane.points, [[0, 0], [5, 0], [0, 5]])
    assert np.allclose(plane.xs, np.linspace(0, 5, 5)) and np.allclose(plane.ys, np.linspace(0, 5, 5))
    X, Y = np.meshgrid(plane.xs, plane.ys)
    assert np.allclose(plane.values["w0"], 1 + 0.6 * X - 0.8 * Y, atol=1e-5)
    assert np.allclose(plane.values["w1"], 1 + 0.8 * X + 0.6 * Y, atol=1e-5)
    assert plane.values["w0"].shape == (5, 5)
    wider = evaluate_on_plane(model, origin, first, second, fns, resolution=3, margin=0.5)
    assert np.allclose(wider.xs, [-2.5, 2.5, 7.5])
    assert repr(wider) == "LossPlane(3 x 3 grid, x in [-2.5, 7.5], y in [-2.5, 7.5], values of ['w0', 'w1'])"


def test_evaluate_on_plane_on_a_real_model_keeps_integer_buffers_and_restores():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    sds = []
    for _ in range(3):
        sds.append({k: v.clone() for k, v in nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)).state_dict().items()})
    before = {k: v.clone() for k, v in net.state_dict().items()}
    X = torch.randn(8, 3)
    plane = evaluate_on_plane(net, *sds, {"out": lambda m: m(X).sum().item()}, resolution=4)
    assert plane.values["out"].shape == (4, 4) and np.isfinite(plane.values["out"]).all()
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_evaluate_on_plane_bad_input():
    model, fns = nn.Linear(2, 1), {"w": lambda m: 0.0}
    a, b, c = _linear([0.0, 0.0]), _linear([1.0, 0.0]), _linear([0.0, 1.0])
    with pytest.raises(ValueError, match="span a plane"):
        evaluate_on_plane(model, a, a, c, fns)
    with pytest.raises(ValueError, match="line through"):
        evaluate_on_plane(model, a, b, _linear([3.0, 0.0]), fns)
    with pytest.raises(ValueError, match="resolution"):
        evaluate_on_plane(model, a, b, c, fns, resolution=1)
    with pytest.raises(ValueError, match="margin"):
        evaluate_on_plane(model, a, b, c, fns, margin=-1.0)
    with pytest.raises(TypeError, match="sd_2"):
        evaluate_on_plane(model, a, b, [1.0], fns)
    with pytest.raises(TypeError, match="eval_fns"):
        evaluate_on_plane(model, a, b, c, None)


def test_plot_loss_plane_draws_two_valleys_and_three_points():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = ys = np.linspace(-1, 2, 9)
    X, Y = np.meshgrid(xs, ys)
    plane = fk.interpolation.LossPlane(xs, ys, {"A": 0.1 + X**2 + Y**2, "B": 0.1 + (X - 1) ** 2 + Y**2},
                                       np.array([[0.0, 0.0], [1.0, 0.0], [0.5, 1.0]]))
    ax = fk.plots.plot_loss_plane(plane, point_labels=("θ_A", "θ_B", "θ_J"))
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert [t.get_text() for t in ax.texts if t.get_text().startswith("θ")] == ["θ_A", "θ_B", "θ_J"]
    with pytest.raises(ValueError, match="two keys"):
        fk.plots.plot_loss_plane(plane, names=["A", "C"])
    with pytest.raises(ValueError, match="three labels"):
        fk.plots.plot_loss_plane(plane, point_labels=("a", "b"))
    with pytest.raises(ValueError, match="valley_factor"):
        fk.plots.plot_loss_plane(plane, valley_factor=1.0)
    plt.close("all")


def test_check_evaluate_along_line(capsys):
    from forgetkit.exercises import check_evaluate_along_line

    def not_done(model, sd_a, sd_b, alphas, eval_fns):
        raise NotImplementedError

    def forgets_to_restore(model, sd_a, sd_b, alphas, eval_fns):
        out = {name: [] for name in eval_fns}
        for alpha in alphas:
            model.load_state_dict(interpolate_state_dicts(sd_a, sd_b, alpha))
            for name, fn in eval_fns.items():
                out[name].append(fn(model))
        return out

    def correct(model, sd_a, sd_b, alphas, eval_fns):
        original = {k: v.clone() for k, v in model.state_dict().items()}
        out = forgets_to_restore(model, sd_a, sd_b, alphas, eval_fns)
        model.load_state_dict(original)
        return {k: np.array(v) for k, v in out.items()}

    assert check_evaluate_along_line(not_done) is evaluate_along_line
    assert "NOT DONE" in capsys.readouterr().out
    assert check_evaluate_along_line(forgets_to_restore) is evaluate_along_line
    assert "WRONG" in capsys.readouterr().out
    assert check_evaluate_along_line(correct) is correct
    assert "PASSED" in capsys.readouterr().out
