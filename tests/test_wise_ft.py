"""forgetkit.interpolation.wise_ft and wise_ft_sweep (WiSE-FT, Wortsman et al. 2022), and the lesson 08 check."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import forgetkit as fk
from forgetkit.interpolation import wise_ft, wise_ft_sweep


def two_models() -> tuple[fk.MLP, fk.MLP]:
    torch.manual_seed(0)
    return fk.MLP((3, 4, 2)), fk.MLP((3, 4, 2))


def test_wise_ft_formula_on_hand_made_state_dicts() -> None:
    base = {"w": torch.tensor([0.0, 2.0]), "steps": torch.tensor(7)}
    finetuned = {"w": torch.tensor([4.0, -2.0]), "steps": torch.tensor(9)}
    mixed = wise_ft(base, finetuned, 0.25)
    assert torch.allclose(mixed["w"], torch.tensor([1.0, 1.0]))  # 0.75 * base + 0.25 * fine-tuned
    assert mixed["steps"].item() == 7  # integer buffers come from the base
    assert torch.equal(wise_ft(base, finetuned, 0.0)["w"], base["w"])
    assert torch.equal(wise_ft(base, finetuned, 1.0)["w"], finetuned["w"])


def test_wise_ft_accepts_models_and_checks_alpha() -> None:
    a, b = two_models()
    mixed = wise_ft(a, b, 0.5)
    assert torch.allclose(mixed["head.bias"], (a.head.bias + b.head.bias) / 2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        wise_ft(a, b, 1.5)
    with pytest.raises(TypeError, match="alpha"):
        wise_ft(a, b, "half")
    with pytest.raises(ValueError, match="different keys"):
        wise_ft(a, fk.MLP((3, 4, 4, 2)), 0.5)


def test_wise_ft_sweep_picks_the_best_alpha_and_leaves_it_loaded() -> None:
    a, b = two_models()
    model = fk.MLP((3, 4, 2))
    target = wise_ft(a, b, 0.75)["head.bias"]
    # a score that peaks at alpha = 0.75, and a constant one
    fns = {"close": lambda m: -float((m.head.bias - target).abs().sum()), "flat": lambda m: 1.0}
    out = wise_ft_sweep(model, a.state_dict(), b.state_dict(), [0.0, 0.25, 0.5, 0.75, 1.0], fns)
    assert out["best_alpha"] == 0.75
    assert np.allclose(out["mean"], (out["close"] + out["flat"]) / 2)
    assert out["flat"].shape == (5,)
    assert torch.allclose(model.head.bias, target)


def test_wise_ft_sweep_accepts_models_like_wise_ft() -> None:
    a, b = two_models()
    fns = {"bias": lambda m: float(m.head.bias.sum())}
    from_models = wise_ft_sweep(fk.MLP((3, 4, 2)), a, b, [0.0, 0.5, 1.0], fns)
    from_states = wise_ft_sweep(fk.MLP((3, 4, 2)), a.state_dict(), b.state_dict(), [0.0, 0.5, 1.0], fns)
    assert np.allclose(from_models["bias"], from_states["bias"]) and from_models["best_alpha"] == from_states["best_alpha"]
    # sweeping the base model itself: its weights are read once, before the sweep moves them
    expected = wise_ft(a, b, from_models["best_alpha"])
    wise_ft_sweep(a, a, b, [0.0, 0.5, 1.0], fns)
    assert all(torch.allclose(a.state_dict()[k], v) for k, v in expected.items())


def test_wise_ft_sweep_bad_input() -> None:
    a, b = two_models()
    fns = {"x": lambda m: 0.0}
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        wise_ft_sweep(a, a.state_dict(), b.state_dict(), [0.0, 2.0], fns)
    with pytest.raises(ValueError, match="non-empty"):
        wise_ft_sweep(a, a.state_dict(), b.state_dict(), [], fns)
    with pytest.raises(ValueError, match="names"):
        wise_ft_sweep(a, a.state_dict(), b.state_dict(), [0.5], {"mean": lambda m: 0.0})
    with pytest.raises(TypeError, match="eval_fns"):
        wise_ft_sweep(a, a.state_dict(), b.state_dict(), [0.5], {})


def test_check_interpolation_sweep(capsys) -> None:
    from forgetkit.exercises import check_interpolation_sweep

    def not_done(model, sd_base, sd_finetuned, alphas, eval_fns):
        raise NotImplementedError

    def forgets_to_load_the_best(model, sd_base, sd_finetuned, alphas, eval_fns):
        values = fk.evaluate_along_line(model, sd_base, sd_finetuned, alphas, eval_fns)
        mean = np.mean([values[n] for n in eval_fns], axis=0)
        return {**values, "mean": mean, "best_alpha": float(alphas[int(np.argmax(mean))])}

    def correct(model, sd_base, sd_finetuned, alphas, eval_fns):
        values = {name: [] for name in eval_fns}
        for alpha in alphas:
            model.load_state_dict(fk.wise_ft(sd_base, sd_finetuned, alpha))
            for name, fn in eval_fns.items():
                values[name].append(fn(model))
        values = {name: np.array(v) for name, v in values.items()}
        mean = sum(values.values()) / len(values)
        best = float(alphas[int(np.argmax(mean))])
        model.load_state_dict(fk.wise_ft(sd_base, sd_finetuned, best))
        return {**values, "mean": mean, "best_alpha": best}

    assert check_interpolation_sweep(not_done) is wise_ft_sweep
    assert "NOT DONE" in capsys.readouterr().out
    assert check_interpolation_sweep(forgets_to_load_the_best) is wise_ft_sweep
    assert "WRONG" in capsys.readouterr().out
    assert check_interpolation_sweep(correct) is correct
    assert "PASSED" in capsys.readouterr().out
