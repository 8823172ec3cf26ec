"""Tests for forgetkit.interference: flat gradients, cosines, A-GEM and PCGrad."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import forgetkit as fk
from forgetkit.interference import (
    agem_grad_edit,
    agem_project,
    flat_grad,
    get_flat_grad,
    gradient_cosine,
    memory_grad_edit,
    pcgrad,
    pcgrad_grad_edit,
    predicted_loss_change,
    set_flat_grad,
    task_gradient,
)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return fk.MLP((4, 3, 2))


def _data(n: int = 10, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=g), torch.randint(0, 2, (n,), generator=g)


def test_flat_grad_matches_backward_and_leaves_grad_alone():
    model, (X, y) = _model(), _data()
    g = flat_grad(model, F.cross_entropy(model(X), y))
    assert g.shape == (fk.count_trainable(model),) == (4 * 3 + 3 + 3 * 2 + 2,)
    assert all(p.grad is None for p in model.parameters())
    F.cross_entropy(model(X), y).backward()
    assert torch.allclose(g, get_flat_grad(model))
    assert torch.allclose(task_gradient(model, X, y), g)


def test_flat_grad_skips_frozen_and_zero_fills_unused_parameters():
    model, (X, y) = _model(), _data()
    model.head.bias.requires_grad_(False)
    g = flat_grad(model, F.cross_entropy(model(X), y))
    assert g.shape == (fk.count_trainable(model),) == (4 * 3 + 3 + 3 * 2,)
    g_unused = flat_grad(model, model.head(torch.ones(1, 3)).sum())  # body unused
    assert torch.equal(g_unused[:15], torch.zeros(15)) and torch.allclose(g_unused[15:], torch.ones(6))


def test_task_gradient_works_under_no_grad():
    model, (X, y) = _model(), _data()
    with torch.no_grad():
        g = task_gradient(model, X, y)
    assert g.norm() > 0


def test_set_flat_grad_round_trip():
    model = _model()
    g = torch.arange(fk.count_trainable(model), dtype=torch.float32)
    set_flat_grad(model, g)
    assert torch.equal(get_flat_grad(model), g)
    assert torch.equal(model.body[0].weight.grad, torch.arange(12.0).view(3, 4))
    g.zero_()  # the model keeps its own copy
    assert get_flat_grad(model).sum() > 0


def test_get_flat_grad_zero_when_no_grad_yet():
    model = _model()
    assert torch.equal(get_flat_grad(model), torch.zeros(fk.count_trainable(model)))


def test_gradient_cosine_and_predicted_change():
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0])
    assert gradient_cosine(a, b) == pytest.approx(2**-0.5)
    assert gradient_cosine(a, -a) == pytest.approx(-1.0)
    assert predicted_loss_change(torch.tensor([1.0, 2.0]), torch.tensor([3.0, -1.0]), 0.1) == pytest.approx(-0.1)
    assert predicted_loss_change(a, -a, 0.5) == pytest.approx(0.5)  # conflicting step raises the loss


def test_predicted_change_matches_a_real_small_step():
    model, (XA, yA) = _model(), _data(30, 1)
    XB, yB = _data(30, 2)
    lr = 1e-3
    g_a, g_b = task_gradient(model, XA, yA), task_gradient(model, XB, yB)
    before = F.cross_entropy(model(XA), yA).item()
    with torch.no_grad():
        offset = 0
        for p in model.parameters():
            p -= lr * g_b[offset: offset + p.numel()].view_as(p)
            offset += p.numel()
    measured = F.cross_entropy(model(XA), yA).item() - before
    assert measured == pytest.approx(predicted_loss_change(g_a, g_b, lr), rel=0.05, abs=1e-7)


def test_agem_project_hand_made_cases():
    assert torch.equal(agem_project(torch.tensor([1.0, 2.0]), torch.tensor([3.0, 1.0])), torch.tensor([1.0, 2.0]))
    assert torch.equal(agem_project(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])), torch.tensor([1.0, 0.0]))
    assert torch.allclose(agem_project(torch.tensor([1.0, -1.0]), torch.tensor([0.0, 2.0])), torch.tensor([1.0, 0.0]))
    assert torch.allclose(agem_project(torch.tensor([-2.0, -4.0]), torch.tensor([1.0, 2.0])), torch.zeros(2))
    generator = torch.Generator().manual_seed(0)
    g, ref = torch.randn(100, generator=generator), torch.randn(100, generator=generator)
    g = g - 2 * (g @ ref).abs() / (ref @ ref) * ref  # a conflicting pair: g . ref < 0
    out = agem_project(g, ref)
    assert abs(float(out @ ref)) < 1e-4 * float(g.norm() * ref.norm()) and (out - g).norm() > 0
    # the projection removes exactly the component along ref: what is left of g is unchanged
    along = (g @ ref) / (ref @ ref) * ref
    assert torch.allclose(out, g - along, atol=1e-6)


def test_pcgrad_two_tasks():
    g1, g2 = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])  # conflict: dot = -1
    projected = pcgrad([g1, g2], reduction="none")
    assert torch.allclose(projected[0], torch.tensor([0.5, 0.5]))   # g1 - (-1 / 2) g2
    assert torch.allclose(projected[1], torch.tensor([0.0, 1.0]))   # g2 - (-1 / 1) g1
    assert float(projected[0] @ g2) == pytest.approx(0.0) and float(projected[1] @ g1) == pytest.approx(0.0)
    assert torch.allclose(pcgrad([g1, g2]), torch.tensor([0.5, 1.5]))
    assert torch.allclose(pcgrad(torch.stack([g1, g2]), reduction="mean"), torch.tensor([0.25, 0.75]))
    agree = [torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0])]
    assert torch.allclose(pcgrad(agree), agree[0] + agree[1])  # no conflict: plain sum


def test_pcgrad_many_tasks_is_deterministic_given_seed():
    grads = [torch.randn(20, generator=torch.Generator().manual_seed(k)) for k in range(5)]
    a, b = pcgrad(grads, seed=3, reduction="none"), pcgrad(grads, seed=3, reduction="none")
    assert torch.equal(a, b) and a.shape == (5, 20)
    assert torch.equal(pcgrad([grads[0]]), grads[0])


def test_agem_grad_edit_projects_against_memory_gradient():
    model, (X, y) = _model(), _data(10, 1)
    mem_X, mem_y = _data(8, 5)
    F.cross_entropy(model(X), y).backward()
    g = get_flat_grad(model)
    g_ref = task_gradient(model, mem_X, mem_y)
    agem_grad_edit(mem_X, mem_y, batch_size=8, seed=0)(model)  # batch_size >= memory: the whole memory
    assert torch.allclose(get_flat_grad(model), agem_project(g, g_ref), atol=1e-6)
    assert float(get_flat_grad(model) @ g_ref) >= -1e-6


def test_pcgrad_and_memory_grad_edit():
    model, (X, y) = _model(), _data(10, 1)
    mem_X, mem_y = _data(8, 5)
    F.cross_entropy(model(X), y).backward()
    g, g_ref = get_flat_grad(model), task_gradient(model, mem_X, mem_y)
    pcgrad_grad_edit(mem_X, mem_y, batch_size=100, seed=0)(model)
    assert torch.allclose(get_flat_grad(model), pcgrad([g, g_ref]), atol=1e-6)
    seen = []
    memory_grad_edit(mem_X, mem_y, lambda g, r: seen.append(len(r)) or g, batch_size=3, seed=0)(model)
    assert seen == [fk.count_trainable(model)]


def test_agem_grad_edit_inside_fit_never_steps_against_the_memory():
    model = _model()
    X, y = _data(40, 1)
    mem_X, mem_y = X[:10], 1 - y[:10]  # the memory wants the opposite labels: its gradient conflicts
    edit = agem_grad_edit(mem_X, mem_y, batch_size=10, seed=0)  # the whole memory every step
    conflicts, dots = [], []

    def checked(m: nn.Module) -> None:
        g_ref = task_gradient(m, mem_X, mem_y)
        conflicts.append(float(get_flat_grad(m) @ g_ref) < 0)
        edit(m)
        g = get_flat_grad(m)
        dots.append(float(g @ g_ref) / float(g.norm() * g_ref.norm() + 1e-12))

    fk.fit(model, X, y, num_steps=8, lr=0.1, batch_size=8, seed=0, progress=False, grad_edit=checked)
    assert sum(conflicts) >= 2, "the test needs steps where the new batch conflicts with the memory"
    assert all(d >= -1e-5 for d in dots), f"A-GEM stepped against the memory gradient: cosines {dots}"


def test_bad_input():
    model, (X, y) = _model(), _data()
    with pytest.raises(TypeError, match="Module"):
        flat_grad("model", torch.tensor(1.0))
    with pytest.raises(ValueError, match="scalar"):
        flat_grad(model, model(X))
    with pytest.raises(ValueError, match="does not depend"):
        flat_grad(model, torch.tensor(1.0))
    frozen = fk.freeze(_model())
    with pytest.raises(ValueError, match="no trainable"):
        get_flat_grad(frozen)
    with pytest.raises(ValueError, match="shape"):
        task_gradient(model, X, y[:3])
    with pytest.raises(ValueError, match="entries"):
        set_flat_grad(model, torch.zeros(3))
    with pytest.raises(TypeError, match="tensor"):
        gradient_cosine([1.0, 0.0], torch.ones(2))
    with pytest.raises(ValueError, match="flat"):
        gradient_cosine(torch.ones(2, 2), torch.ones(4))
    with pytest.raises(ValueError, match="entries"):
        gradient_cosine(torch.ones(2), torch.ones(3))
    with pytest.raises(ValueError, match="zero"):
        gradient_cosine(torch.zeros(2), torch.ones(2))
    with pytest.raises(TypeError, match="floating"):
        agem_project(torch.tensor([1, 2]), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="lr"):
        predicted_loss_change(torch.ones(2), torch.ones(2), -0.1)
    with pytest.raises(TypeError, match="lr"):
        predicted_loss_change(torch.ones(2), torch.ones(2), True)
    with pytest.raises(ValueError, match="at least one"):
        pcgrad([])
    with pytest.raises(ValueError, match="reduction"):
        pcgrad([torch.ones(2)], reduction="max")
    with pytest.raises(ValueError, match="entries"):
        pcgrad([torch.ones(2), torch.ones(3)])
    with pytest.raises(ValueError, match="T, P"):
        pcgrad(torch.ones(3))
    with pytest.raises(ValueError, match="batch_size"):
        agem_grad_edit(X, y, batch_size=0)
    with pytest.raises(TypeError, match="combine"):
        memory_grad_edit(X, y, combine="project")


def test_check_agem_project(capsys):
    from forgetkit.exercises import check_agem_project

    def not_done(g, g_ref):
        raise NotImplementedError

    def always_projects(g, g_ref):
        return g - (g @ g_ref) / (g_ref @ g_ref) * g_ref

    def correct(g, g_ref):
        dot = g @ g_ref
        return g if dot >= 0 else g - dot / (g_ref @ g_ref) * g_ref

    assert check_agem_project(not_done) is agem_project
    assert "NOT DONE" in capsys.readouterr().out
    assert check_agem_project(always_projects) is agem_project
    assert "WRONG" in capsys.readouterr().out
    assert check_agem_project(correct) is correct
    assert "PASSED" in capsys.readouterr().out
