"""Tests for forgetkit.regularizers: penalties on hand-made weights, the Fisher against hand
formulas and the slow loop, the stability limit on a pure quadratic, and bad input."""

import math
import warnings

import pytest
import torch
import torch.nn as nn

import forgetkit as fk
from forgetkit import regularizers as R


def tiny_linear(w=((1.0, 2.0),), b=(3.0,)) -> nn.Linear:
    model = nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor(w))
        model.bias.copy_(torch.tensor(b))
    return model


def small_mlp(seed: int = 0) -> fk.MLP:
    torch.manual_seed(seed)
    return fk.MLP((5, 7, 3))


def close_dicts(a: dict, b: dict, rtol=1e-5, atol=1e-8) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], rtol=rtol, atol=atol) for k in a)


# ------------------------------------------------------------------------------------------
# Penalties
# ------------------------------------------------------------------------------------------


def test_l2_penalty_by_hand():
    model = tiny_linear()
    # lam/2 * (1 + 4 + 9)
    assert R.l2_penalty(model, 0.5).item() == pytest.approx(0.25 * 14)


def test_l2_anchor_penalty_value_and_gradient():
    model = tiny_linear()
    anchor = {"weight": torch.tensor([[0.0, 2.0]]), "bias": torch.tensor([1.0])}
    penalty = R.l2_anchor_penalty(model, anchor, 2.0)
    assert penalty.item() == pytest.approx(1.0 * (1.0 + 0.0 + 4.0))
    penalty.backward()
    # d/dtheta lam/2 (theta - a)^2 = lam (theta - a)
    assert torch.allclose(model.weight.grad, torch.tensor([[2.0, 0.0]]))
    assert torch.allclose(model.bias.grad, torch.tensor([4.0]))


def test_penalty_is_zero_at_the_anchor():
    model = small_mlp()
    anchor = R.snapshot(model)
    assert R.l2_anchor_penalty(model, anchor, 3.0).item() == 0.0
    fisher = {k: torch.rand_like(v) for k, v in anchor.items()}
    assert R.ewc_penalty(model, fisher, anchor, 5.0).item() == 0.0


def test_snapshot_is_a_detached_copy_of_trainable_parameters():
    model = small_mlp()
    model.head.bias.requires_grad_(False)
    snap = R.snapshot(model)
    assert "head.bias" not in snap and "head.weight" in snap
    with torch.no_grad():
        model.head.weight.add_(1.0)
    assert not torch.equal(snap["head.weight"], model.head.weight)
    assert not snap["head.weight"].requires_grad


def test_ewc_penalty_by_hand():
    model = tiny_linear()
    anchor = {"weight": torch.tensor([[0.0, 0.0]]), "bias": torch.tensor([3.0])}
    fisher = {"weight": torch.tensor([[2.0, 0.5]]), "bias": torch.tensor([100.0])}
    # lam/2 * (2 * 1 + 0.5 * 4 + 100 * 0) = lam/2 * 4
    assert R.ewc_penalty(model, fisher, anchor, 3.0).item() == pytest.approx(6.0)


def test_l2_sp_shared_to_start_new_head_to_zero():
    model = small_mlp()
    start = {k: v for k, v in R.snapshot(model).items() if k.startswith("body")}
    with torch.no_grad():
        model.body[0].weight.add_(1.0)  # moved 1 from the start, 7 * 5 entries
    head_sq = sum((p ** 2).sum().item() for p in model.head.parameters())
    got = R.l2_sp_penalty(model, start, lam=2.0, lam_new=0.5).item()
    assert got == pytest.approx(1.0 * 35 + 0.25 * head_sq, rel=1e-5)
    # no new weights: just the distance to the start
    full_start = R.snapshot(model)
    assert R.l2_sp_penalty(model, full_start, lam=2.0, lam_new=0.5).item() == 0.0


def test_penalties_work_as_the_extra_loss_hook():
    """One SGD step of fit with the penalty moves every weight by -lr * (task gradient + lam * (theta - anchor))."""
    model = small_mlp()
    anchor = {name: p.detach() + 0.5 for name, p in model.named_parameters()}  # theta - anchor = -0.5
    X, y = torch.rand(32, 5), torch.randint(0, 3, (32,), generator=torch.Generator().manual_seed(0))
    task_grads = torch.autograd.grad(torch.nn.functional.cross_entropy(model(X), y), list(model.parameters()))
    before = [p.detach().clone() for p in model.parameters()]
    fk.fit(model, X, y, num_steps=1, lr=0.1, batch_size=32, seed=0, progress=False,  # one batch: all of X
           extra_loss=lambda m: R.l2_anchor_penalty(m, anchor, 2.0))
    for p, p0, g in zip(model.parameters(), before, task_grads):
        assert torch.allclose(p.detach(), p0 - 0.1 * (g + 2.0 * (-0.5)), atol=1e-6)


def test_online_ewc_accumulates_and_moves_the_anchor():
    model = small_mlp()
    ewc = R.OnlineEWC(lam=2.0, gamma=0.5)
    assert ewc(model).item() == 0.0  # nothing to protect yet
    f1 = {k: torch.full_like(v, 1.0) for k, v in model.named_parameters()}
    f2 = {k: torch.full_like(v, 3.0) for k, v in model.named_parameters()}
    ewc.update(model, f1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ewc.update(model, f2)
    assert all(torch.allclose(ewc.fisher[k], torch.full_like(v, 0.5 * 1.0 + 3.0)) for k, v in f1.items())
    assert close_dicts(ewc.anchor, R.snapshot(model))  # the latest weights
    with torch.no_grad():
        for p in model.parameters():
            p.add_(2.0)
    n = sum(p.numel() for p in model.parameters())
    assert ewc(model).item() == pytest.approx(0.5 * 2.0 * 3.5 * 4.0 * n, rel=1e-5)


# ------------------------------------------------------------------------------------------
# The stability limit
# ------------------------------------------------------------------------------------------


def _stream_step(lr, momentum=0.0, optimizer="sgd", lam=10.0):
    """Fit a few steps under an OnlineEWC of strength lam with F = 1 everywhere: lr * lam * max F = 10 lr."""
    model = small_mlp()
    ewc = R.OnlineEWC(lam)
    ewc.update(model, {name: torch.ones_like(p) for name, p in model.named_parameters()})
    X, y = torch.rand(16, 5), torch.randint(0, 3, (16,), generator=torch.Generator().manual_seed(0))
    fk.fit(model, X, y, num_steps=5, lr=lr, momentum=momentum, optimizer=optimizer, seed=0, progress=False,
           extra_loss=ewc)


def test_online_ewc_warns_once_per_run_past_the_stability_limit():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # below the limit: not a word
        _stream_step(lr=0.1)  # lr * lam * max F = 1
        _stream_step(lr=0.3, momentum=0.9)  # 3, but heavy-ball momentum 0.9 is stable up to 2 * 1.9 = 3.8
        _stream_step(lr=0.3, optimizer="adam")  # the bound is SGD's
    with pytest.warns(RuntimeWarning) as record:
        _stream_step(lr=0.3)  # 3 > 2
    unstable = [w for w in record if "stability limit" in str(w.message)]
    assert len(unstable) == 1, "one warning per run, not one per step"
    message = str(unstable[0].message)
    assert "lr * lambda * max F = 3" in message and "below 6.67" in message  # the number and the largest safe lambda


def test_check_ewc_stability_returns_the_number():
    fisher = {"a": torch.tensor([0.1, 0.4])}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert R.check_ewc_stability(0.1, 10.0, fisher) == pytest.approx(0.4)
    with pytest.warns(RuntimeWarning, match=r"= 4 >= 2"):
        assert R.check_ewc_stability(1.0, 10.0, fisher) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="momentum"):
        R.check_ewc_stability(1.0, 10.0, fisher, momentum=1.0)


def test_stability_limit_value():
    fisher = {"a": torch.tensor([0.1, 0.4]), "b": torch.tensor([[0.2]])}
    assert R.ewc_stability_limit(0.1, 10.0, fisher) == pytest.approx(0.4)


@pytest.mark.parametrize("limit, diverges", [(1.9, False), (2.1, True)])
def test_sgd_on_the_penalty_diverges_past_two(limit, diverges):
    model = tiny_linear()
    anchor = {k: torch.zeros_like(v) for k, v in R.snapshot(model).items()}
    fisher = {k: torch.ones_like(v) for k, v in anchor.items()}
    lr = 0.1
    lam = limit / lr
    assert R.ewc_stability_limit(lr, lam, fisher) == pytest.approx(limit)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(200):
        opt.zero_grad()
        R.ewc_penalty(model, fisher, anchor, lam).backward()
        opt.step()
    size = max(p.abs().max().item() for p in model.parameters())
    assert (size > 1e3) == diverges


# ------------------------------------------------------------------------------------------
# The Fisher
# ------------------------------------------------------------------------------------------


def zero_softmax(num_classes: int = 4, dim: int = 3) -> nn.Linear:
    model = nn.Linear(dim, num_classes)
    nn.init.zeros_(model.weight)
    nn.init.zeros_(model.bias)
    return model


def test_exact_fisher_by_hand_uniform_prediction():
    # zero weights -> p = 1/C; d log p_c / d W[k] = (1[c=k] - p_k) x, so
    # sum_c p_c (1[c=k] - p_k)^2 x_j^2 = p (1 - p) x_j^2, averaged over examples.
    C = 4
    model = zero_softmax(C)
    X = torch.tensor([[1.0, 2.0, 0.0], [3.0, 0.0, 1.0]])
    fisher = R.fisher_diagonal(model, X, variant="exact")
    p = 1.0 / C
    expected_w = p * (1 - p) * (X ** 2).mean(0).expand(C, 3)
    assert torch.allclose(fisher["weight"], expected_w)
    assert torch.allclose(fisher["bias"], torch.full((C,), p * (1 - p)))


def test_empirical_fisher_by_hand():
    C = 4
    model = zero_softmax(C)
    X = torch.tensor([[1.0, 2.0, 0.0], [3.0, 0.0, 1.0]])
    y = torch.tensor([0, 2])
    fisher = R.fisher_diagonal(model, X, y, variant="empirical")
    p = 1.0 / C
    expected_b = torch.zeros(C)
    expected_w = torch.zeros(C, 3)
    for x, label in zip(X, y):
        g = -torch.full((C,), p)
        g[label] += 1.0
        expected_b += g ** 2 / 2
        expected_w += torch.outer(g ** 2, x ** 2) / 2
    assert torch.allclose(fisher["bias"], expected_b)
    assert torch.allclose(fisher["weight"], expected_w)


@pytest.mark.parametrize("variant", ["exact", "sampled", "empirical"])
def test_vmap_fisher_matches_the_loop(variant):
    model = small_mlp()
    X, y = torch.rand(23, 5), torch.randint(0, 3, (23,))
    fast = R.fisher_diagonal(model, X, y, variant=variant, chunk_size=5, seed=3)
    slow = R.fisher_diagonal_loop(model, X, y, variant=variant, seed=3)
    assert close_dicts(fast, slow, rtol=1e-4, atol=1e-10)
    assert all(fast[k].shape == p.shape for k, p in model.named_parameters())


class MixedNet(nn.Module):
    """Layers the outer-product shortcut may use (first, head) and layers it must not: one
    applied twice (twice), one over a sequence of positions (per_position), one whose weight is
    shared (tied_a/tied_b), a frozen bias (head), a LoRA layer and a LayerNorm."""

    def __init__(self):
        super().__init__()
        self.first = nn.Linear(6, 8)
        self.twice = nn.Linear(8, 8)
        self.per_position = nn.Linear(2, 3)
        self.tied_a, self.tied_b = nn.Linear(8, 8, bias=False), nn.Linear(8, 8, bias=False)
        self.tied_b.weight = self.tied_a.weight
        self.norm = nn.LayerNorm(8)
        self.lora = fk.LoRALinear(nn.Linear(8, 8), r=2)
        self.head = nn.Linear(8, 4)
        self.head.bias.requires_grad_(False)

    def forward(self, x):  # x: (B, 6)
        h = torch.tanh(self.first(x))
        h = torch.tanh(self.twice(torch.tanh(self.twice(h))))
        h = h + self.per_position(x.view(len(x), 3, 2)).sum(1).repeat(1, 3)[:, :8] * 0.1
        h = torch.tanh(self.tied_b(torch.tanh(self.tied_a(h))))
        return self.head(self.lora(self.norm(h)))


def test_outer_product_layers_only_where_the_identity_holds():
    model = MixedNet()
    trainable = fk.trainable_parameters(model)
    chosen = R._outer_product_layers(model, torch.rand(1, 6), trainable)
    assert set(chosen) == {"first", "head"}  # not lora.base: LoRA freezes it


@pytest.mark.parametrize("variant", ["exact", "empirical"])
def test_outer_product_fisher_equals_full_per_sample_gradients(variant):
    torch.manual_seed(0)
    model = MixedNet()
    with torch.no_grad():
        model.lora.B.normal_()  # LoRA starts at B = 0; make its path matter
    X, y = torch.rand(19, 6), torch.randint(0, 4, (19,))
    shortcut = R.fisher_diagonal(model, X, y, variant=variant, chunk_size=4)
    full = R.fisher_diagonal(model, X, y, variant=variant, chunk_size=4, outer_product=False)
    slow = R.fisher_diagonal_loop(model, X, y, variant=variant)
    assert close_dicts(shortcut, full, rtol=1e-4, atol=1e-10)
    assert close_dicts(shortcut, slow, rtol=1e-4, atol=1e-10)
    assert "head.bias" not in shortcut and "head.weight" in shortcut
    assert all(f.abs().sum() > 0 for f in shortcut.values())


def test_automatic_chunk_size_gives_the_same_fisher():
    model = MixedNet()
    X = torch.rand(21, 6)
    for outer_product in (True, False):
        auto = R.fisher_diagonal(model, X, outer_product=outer_product)  # chunk_size=None
        assert close_dicts(auto, R.fisher_diagonal(model, X, chunk_size=3, outer_product=outer_product),
                           rtol=1e-4, atol=1e-10)


def test_outer_product_on_a_bare_linear_model():
    torch.manual_seed(0)
    model = nn.Linear(3, 4)  # the model itself is the layer: parameter names "weight", "bias"
    X = torch.rand(7, 3)
    assert set(R._outer_product_layers(model, X[:1], fk.trainable_parameters(model))) == {""}
    assert close_dicts(R.fisher_diagonal(model, X), R.fisher_diagonal(model, X, outer_product=False), rtol=1e-5)


def test_sampled_fisher_follows_the_seed():
    model = small_mlp()
    X = torch.rand(40, 5)
    a = R.fisher_diagonal(model, X, variant="sampled", seed=1)
    b = R.fisher_diagonal(model, X, variant="sampled", seed=1)
    c = R.fisher_diagonal(model, X, variant="sampled", seed=2)
    assert close_dicts(a, b) and not close_dicts(a, c)


def test_sampled_equals_empirical_when_the_model_is_certain():
    model = zero_softmax(3)
    with torch.no_grad():
        model.bias.copy_(torch.tensor([0.0, 50.0, 0.0]))  # p(class 1) = 1 for every input
    X = torch.rand(10, 3)
    sampled = R.fisher_diagonal(model, X, variant="sampled", seed=0)
    empirical = R.fisher_diagonal(model, X, torch.ones(10, dtype=torch.int64), variant="empirical")
    assert close_dicts(sampled, empirical)


def test_fisher_in_eval_mode_and_mode_restored():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 3))
    X = torch.rand(16, 4)
    model.train()
    a = R.fisher_diagonal(model, X)
    b = R.fisher_diagonal(model, X)
    assert close_dicts(a, b)  # dropout off: deterministic
    assert model.training
    assert close_dicts(a, R.fisher_diagonal_loop(model, X), rtol=1e-4, atol=1e-10)


def test_fisher_skips_frozen_parameters():
    model = small_mlp()
    for p in model.body.parameters():
        p.requires_grad_(False)
    fisher = R.fisher_diagonal(model, torch.rand(6, 5))
    assert set(fisher) == {"head.weight", "head.bias"}


def test_batched_shortcut_batch_one_is_the_empirical_fisher():
    model = small_mlp()
    X, y = torch.rand(12, 5), torch.randint(0, 3, (12,))
    shortcut = R.batched_fisher_shortcut(model, X, y, batch_size=1)
    empirical = R.fisher_diagonal(model, X, y, variant="empirical")
    assert close_dicts(shortcut, empirical, rtol=1e-4, atol=1e-10)


def test_batched_shortcut_whole_batch_is_the_squared_mean_gradient():
    model = small_mlp()
    X, y = torch.rand(12, 5), torch.randint(0, 3, (12,))
    loss = nn.functional.cross_entropy(model(X), y)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    shortcut = R.batched_fisher_shortcut(model, X, y, batch_size=12)
    for (name, _), g in zip(model.named_parameters(), grads):
        assert torch.allclose(shortcut[name], g ** 2, atol=1e-9)


def test_batched_shortcut_is_much_smaller_than_the_per_sample_fisher():
    torch.manual_seed(0)
    model = small_mlp()
    X, y = torch.rand(256, 5), torch.randint(0, 3, (256,))  # random labels: gradients disagree
    per_sample = sum(f.sum().item() for f in R.fisher_diagonal(model, X, y, variant="empirical").values())
    batched = sum(f.sum().item() for f in R.batched_fisher_shortcut(model, X, y, batch_size=64).values())
    assert batched < per_sample / 5


# ------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lam, error", [(-1.0, ValueError), (float("nan"), ValueError),
                                        (float("inf"), ValueError), ("1", TypeError), (True, TypeError)])
def test_bad_lambda(lam, error):
    model = tiny_linear()
    anchor = R.snapshot(model)
    with pytest.raises(error, match="lam"):
        R.l2_anchor_penalty(model, anchor, lam)
    with pytest.raises(error, match="lam"):
        R.ewc_penalty(model, anchor, anchor, lam)
    with pytest.raises(error, match="lam"):
        R.OnlineEWC(lam)


def test_bad_anchor_and_fisher():
    model = tiny_linear()
    with pytest.raises(ValueError, match="shape"):
        R.l2_anchor_penalty(model, {"weight": torch.zeros(2, 1)}, 1.0)
    with pytest.raises(ValueError, match="not a parameter"):
        R.l2_anchor_penalty(model, {"nonsense": torch.zeros(1)}, 1.0)
    with pytest.raises(TypeError, match="dict"):
        R.l2_anchor_penalty(model, [torch.zeros(1, 2)], 1.0)
    with pytest.raises(TypeError, match="tensor"):
        R.l2_anchor_penalty(model, {"bias": [0.0]}, 1.0)
    anchor = R.snapshot(model)
    with pytest.raises(ValueError, match="same parameters"):
        R.ewc_penalty(model, {"bias": torch.ones(1)}, anchor, 1.0)
    with pytest.raises(ValueError, match="shape"):
        R.ewc_penalty(model, {"weight": torch.ones(2), "bias": torch.ones(1)}, anchor, 1.0)
    with pytest.raises(TypeError, match="Module"):
        R.l2_penalty("model", 1.0)
    with pytest.raises(ValueError, match="lam_new"):
        R.l2_sp_penalty(model, anchor, 1.0, lam_new=-2.0)


def test_bad_online_ewc():
    with pytest.raises(ValueError, match="gamma"):
        R.OnlineEWC(1.0, gamma=1.5)
    with pytest.raises(ValueError, match="gamma"):
        R.OnlineEWC(1.0, gamma=-0.1)
    model = tiny_linear()
    ewc = R.OnlineEWC(1.0)
    with pytest.raises(ValueError, match="shape"):
        ewc.update(model, {"weight": torch.ones(3)})
    ewc.update(model, {"bias": torch.ones(1)})
    with pytest.raises(ValueError, match="same parameters"):
        ewc.update(model, {"weight": torch.ones(1, 2)})


def test_bad_stability_limit():
    with pytest.raises(ValueError, match="non-empty"):
        R.ewc_stability_limit(0.1, 1.0, {})
    with pytest.raises(ValueError, match="lr"):
        R.ewc_stability_limit(-0.1, 1.0, {"a": torch.ones(1)})
    with pytest.raises(ValueError, match="non-finite"):
        R.ewc_stability_limit(0.1, 1.0, {"a": torch.tensor([float("nan")])})


@pytest.mark.parametrize("fn", [R.fisher_diagonal, R.fisher_diagonal_loop])
def test_bad_fisher_input(fn):
    model = small_mlp()
    with pytest.raises(ValueError, match="non-empty"):
        fn(model, torch.zeros(0, 5))
    with pytest.raises(ValueError, match="variant"):
        fn(model, torch.rand(3, 5), variant="true")
    with pytest.raises(ValueError, match="labels"):
        fn(model, torch.rand(3, 5), variant="empirical")
    with pytest.raises(ValueError, match=r"\(3,\)"):
        fn(model, torch.rand(3, 5), torch.zeros(4, dtype=torch.int64), variant="empirical")
    with pytest.raises(TypeError, match="tensor"):
        fn(model, [[0.0] * 5])
    with pytest.raises(TypeError, match="Module"):
        fn(lambda x: x, torch.rand(3, 5))
    fk.freeze(model)
    with pytest.raises(ValueError, match="no trainable"):
        fn(model, torch.rand(3, 5))


def test_bad_chunk_and_batch_size():
    model = small_mlp()
    X, y = torch.rand(4, 5), torch.randint(0, 3, (4,))
    with pytest.raises(ValueError, match="chunk_size"):
        R.fisher_diagonal(model, X, chunk_size=0)
    with pytest.raises(TypeError, match="chunk_size"):
        R.fisher_diagonal(model, X, chunk_size=2.5)
    with pytest.raises(TypeError, match="outer_product"):
        R.fisher_diagonal(model, X, outer_product="yes")
    with pytest.raises(ValueError, match="batch_size"):
        R.batched_fisher_shortcut(model, X, y, batch_size=0)
    with pytest.raises(ValueError, match="non-empty"):
        R.batched_fisher_shortcut(model, X[:0], y[:0])


def test_returned_fisher_is_finite_and_nonnegative():
    model = small_mlp()
    fisher = R.fisher_diagonal(model, torch.rand(9, 5), variant="exact")
    assert all(torch.isfinite(f).all() and (f >= 0).all() for f in fisher.values())
    assert math.isfinite(R.ewc_stability_limit(0.1, 1.0, fisher))


# ------------------------------------------------------------------------------------------
# The lesson's exercise check
# ------------------------------------------------------------------------------------------


def test_check_ewc_penalty_verdicts(capsys):
    def written_from_the_formula(model, fisher, anchor, lam):  # a learner's own, independent of forgetkit's
        params = dict(model.named_parameters())
        return lam / 2 * sum((fisher[n] * (params[n] - anchor[n]).pow(2)).sum() for n in fisher)

    assert fk.exercises.check_ewc_penalty(written_from_the_formula) is written_from_the_formula
    assert "PASSED" in capsys.readouterr().out

    def not_done(model, fisher, anchor, lam):
        raise NotImplementedError

    assert fk.exercises.check_ewc_penalty(not_done) is R.ewc_penalty
    assert "NOT DONE" in capsys.readouterr().out

    def no_half(model, fisher, anchor, lam):  # forgets the 1/2
        return 2 * R.ewc_penalty(model, fisher, anchor, lam)

    def as_float(model, fisher, anchor, lam):  # .item() cuts the gradient
        return R.ewc_penalty(model, fisher, anchor, lam).item()

    def all_params(model, fisher, anchor, lam):  # assumes fisher names every parameter
        params = dict(model.named_parameters())
        return 0.5 * lam * sum((fisher[n] * (params[n] - anchor[n]) ** 2).sum() for n in params)

    for wrong in (no_half, as_float, all_params):
        assert fk.exercises.check_ewc_penalty(wrong) is R.ewc_penalty
        assert "WRONG" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------
# Distillation to the base model (LwF)
# ------------------------------------------------------------------------------------------


def tiny_lm(seed: int = 0) -> fk.TinyLM:
    torch.manual_seed(seed)
    return fk.TinyLM(fk.TinyLMConfig(vocab_size=11, block_size=6, n_layer=1, n_head=2, n_embd=8))


def test_distillation_loss_by_hand():
    logits, base = torch.tensor([[0.0, 0.0]]), torch.tensor([[math.log(3.0), 0.0]])  # p = (1/2, 1/2), q = (3/4, 1/4)
    kl = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert R.distillation_loss(logits, base, temperature=1.0).item() == pytest.approx(kl, rel=1e-6)
    # temperature T divides the logits and multiplies by T^2
    q2 = torch.softmax(base / 2.0, dim=-1)[0]
    kl2 = float((q2 * (q2 / 0.5).log()).sum())
    assert R.distillation_loss(logits, base, temperature=2.0).item() == pytest.approx(4.0 * kl2, rel=1e-6)
    # rows are averaged, whatever the leading dimensions: (2, 1, 2) = two rows
    two = R.distillation_loss(torch.zeros(2, 1, 2), torch.stack([base, torch.zeros(1, 2)]), temperature=1.0)
    assert two.item() == pytest.approx(kl / 2, rel=1e-6)
    # classes keep only those outputs: the third unit is ignored
    wide, wide_base = torch.tensor([[0.0, 0.0, 5.0]]), torch.tensor([[math.log(3.0), 0.0, -5.0]])
    assert R.distillation_loss(wide, wide_base, 1.0, classes=[0, 1]).item() == pytest.approx(kl, rel=1e-6)


def test_distillation_penalty_is_zero_at_the_base_and_positive_after_a_step():
    model = small_mlp()
    penalty = fk.Distillation(model, lam=2.0)
    x = torch.randn(16, 5)
    assert penalty(model, x).item() == pytest.approx(0.0, abs=1e-7)
    assert "lam=2" in repr(penalty) and "temperature=2" in repr(penalty)
    fk.fit(model, x, torch.randint(0, 3, (16,)), num_steps=3, lr=0.5, seed=0, progress=False)
    after = penalty(model, x)
    assert after.item() > 0
    # lam scales it linearly; the frozen copy did not move
    assert R.distillation_penalty(model, penalty.base, x, 1.0).item() == pytest.approx(after.item() / 2, rel=1e-5)
    assert all(not p.requires_grad for p in penalty.base.parameters()) and not penalty.base.training


def test_distillation_gradient_flows_only_into_the_model():
    model, base = small_mlp(0), small_mlp(1)
    base.train()
    x = torch.randn(8, 5)
    R.distillation_penalty(model, base, x, 1.0).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    assert all(p.grad is None for p in base.parameters())
    assert base.training  # its mode is restored after the eval-mode pass
    # the gradient matches autograd through the plain formula
    model.zero_grad()
    logits = model(x)
    with torch.no_grad():
        q = torch.softmax(base(x) / 2.0, dim=-1)
    by_hand = 4.0 * (q * (q.log() - torch.log_softmax(logits / 2.0, dim=-1))).sum(-1).mean()
    grads = torch.autograd.grad(by_hand, list(model.parameters()))
    model.zero_grad()
    R.distillation_penalty(model, base, x, 1.0).backward()
    for g, p in zip(grads, model.parameters()):
        assert torch.allclose(g, p.grad, atol=1e-6)


def test_distillation_on_a_language_model_and_the_batch_penalty_hook():
    lm = tiny_lm()
    penalty = fk.Distillation(lm, lam=1.0, temperature=1.0)
    x = torch.randint(0, 11, (3, 6))
    assert penalty(lm, x).item() == pytest.approx(0.0, abs=1e-7)  # logits (3, 6, 11): 18 rows
    tokens = torch.randint(0, 11, (200,))
    seen = []

    def spy(model, X):
        seen.append(X.shape)
        return penalty(model, X)

    history = fk.fit_lm(lm, tokens, num_steps=4, batch_size=5, lr=1e-2, seed=0, progress=False, batch_penalty=spy)
    assert seen == [torch.Size([5, 6])] * 4 and len(history.losses) == 4
    assert penalty(lm, x).item() > 0


def test_distillation_keeps_the_model_closer_to_the_base():
    torch.manual_seed(0)
    X, y = torch.randn(64, 5), torch.randint(0, 3, (64,))
    drift = {}
    for lam in (0.0, 5.0):
        model = small_mlp()
        penalty = fk.Distillation(model, lam)
        fk.fit(model, X, y, num_steps=30, lr=0.3, seed=0, progress=False, batch_penalty=penalty)
        drift[lam] = R.distillation_penalty(model, penalty.base, X, 1.0).item()
    assert drift[5.0] < drift[0.0]


class Words(nn.Module):
    def forward(self, x):
        return "not logits"


@pytest.mark.parametrize("call, error, message", [
    (lambda m, b, x: R.distillation_penalty(m, b, x, -1.0), ValueError, "lam"),
    (lambda m, b, x: R.distillation_penalty(m, b, x, "1"), TypeError, "lam"),
    (lambda m, b, x: R.distillation_penalty(m, b, x, 1.0, temperature=0), ValueError, "temperature"),
    (lambda m, b, x: R.distillation_penalty(m, b, x, 1.0, temperature=True), TypeError, "temperature"),
    (lambda m, b, x: R.distillation_penalty(m, b, x.tolist(), 1.0), TypeError, "x"),
    (lambda m, b, x: R.distillation_penalty("model", b, x, 1.0), TypeError, "model"),
    (lambda m, b, x: R.distillation_penalty(m, None, x, 1.0), TypeError, "base"),
    (lambda m, b, x: R.distillation_penalty(m, m, x, 1.0), ValueError, "frozen copy"),
    (lambda m, b, x: R.distillation_penalty(m, b, x, 1.0, classes=[0]), ValueError, "two distinct"),
    (lambda m, b, x: R.distillation_penalty(m, b, x, 1.0, classes=[0, 0]), ValueError, "two distinct"),
    (lambda m, b, x: R.distillation_penalty(m, b, x, 1.0, classes=[0, 3]), ValueError, "3 outputs"),
    (lambda m, b, x: R.distillation_penalty(m, b, x, 1.0, classes=[0, -1]), ValueError, "classes"),
    (lambda m, b, x: R.distillation_penalty(m, b, x, 1.0, classes="01"), TypeError, "classes"),
    (lambda m, b, x: R.distillation_penalty(m, nn.Linear(5, 4), x, 1.0), ValueError, "same shape"),
    (lambda m, b, x: R.distillation_loss(torch.zeros(3), torch.zeros(3)), ValueError, "same shape"),
    (lambda m, b, x: R.distillation_loss(torch.zeros(2, 3), [0.0]), TypeError, "base_logits"),
    (lambda m, b, x: R.distillation_penalty(m, lambda x: "no logits", x, 1.0), TypeError, "base"),
    (lambda m, b, x: R.distillation_penalty(m, Words(), x, 1.0), TypeError, "must return logits"),
    (lambda m, b, x: fk.Distillation(m, -1.0), ValueError, "lam"),
    (lambda m, b, x: fk.Distillation(m, 1.0, temperature=-2), ValueError, "temperature"),
    (lambda m, b, x: fk.Distillation("model", 1.0), TypeError, "base"),
    (lambda m, b, x: fk.Distillation(m, 1.0, classes=[1.5, 2]), TypeError, "classes"),
    (lambda m, b, x: fk.fit(m, x, torch.zeros(4, dtype=torch.long), num_steps=1, batch_penalty=3), TypeError,
     "batch_penalty"),
])
def test_distillation_bad_input(call, error, message):
    model, base = small_mlp(0), small_mlp(1)
    with pytest.raises(error, match=message):
        call(model, base, torch.randn(4, 5))
