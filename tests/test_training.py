"""The one training loop and its hooks; fit/evaluate for classifiers and LMs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import forgetkit as fk
from forgetkit.training import (
    History,
    classification_loss,
    evaluate,
    evaluate_lm,
    fit,
    fit_lm,
    lm_loss,
    make_optimizer,
    model_device,
    progress_enabled,
    train,
)

torch.set_num_threads(1)  # as fk.pick_device() does


def blobs(n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two well separated Gaussian blobs in 2-D, labels 0 and 1."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    X = torch.randn(n, 2, generator=g) * 0.3 + (2.0 * y[:, None] - 1.0) * torch.tensor([2.0, 1.0])
    return X, y


def linear(seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(2, 2)


def fixed_batch(X: torch.Tensor, y: torch.Tensor):
    return lambda: (X, y)


def test_fit_loss_decreases_on_a_separable_problem() -> None:
    X, y = blobs()
    torch.manual_seed(0)
    model = fk.MLP((2, 16, 2))
    before = evaluate(model, X, y)
    history = fit(model, X, y, num_steps=60, lr=0.3, batch_size=16, seed=0, progress=False)
    after = evaluate(model, X, y)
    assert isinstance(history, History) and len(history.losses) == 60
    assert repr(history) == f"History(60 steps, last loss {history.losses[-1]:.4g})"
    assert after["loss"] < 0.25 * before["loss"]
    assert after["accuracy"] == 1.0
    assert sum(history.losses[-10:]) < 0.25 * sum(history.losses[:10])


def test_extra_loss_adds_its_gradient() -> None:
    X, y = blobs(8)
    grads = {}

    def capture(tag):
        def edit(model):
            grads[tag] = model.weight.grad.clone()
        return edit

    train(linear(), fixed_batch(X, y), classification_loss, num_steps=1, lr=0.1, grad_edit=capture("plain"),
          progress=False)
    model = linear()
    w0 = model.weight.detach().clone()
    history = train(model, fixed_batch(X, y), classification_loss, num_steps=1, lr=0.1,
                    extra_loss=lambda m: 1.5 * (m.weight ** 2).sum(), grad_edit=capture("penalised"), progress=False)
    # d/dW of 1.5 ||W||^2 is 3 W, evaluated at the weights before the step
    assert torch.allclose(grads["penalised"] - grads["plain"], 3.0 * w0, atol=1e-6)
    plain_loss = classification_loss(linear(), X, y).item()
    assert history.losses[0] == pytest.approx(plain_loss + 1.5 * float((w0 ** 2).sum()), rel=1e-6)


def test_grad_edit_sees_grads_before_the_step_and_can_stop_it() -> None:
    X, y = blobs(8)
    model = linear()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    seen = []

    def zero_grads(m):
        assert all(p.grad is not None for p in m.parameters())
        seen.append(torch.equal(m.weight, start["weight"]))  # no step has happened yet
        for p in m.parameters():
            p.grad.zero_()

    history = train(model, fixed_batch(X, y), classification_loss, num_steps=3, lr=0.5, grad_edit=zero_grads,
                    progress=False)
    assert seen == [True, True, True]
    assert all(torch.equal(v, start[k]) for k, v in model.state_dict().items())
    assert len(set(history.losses)) == 1  # the same batch on unchanged weights: the same loss


def test_extra_batch_is_concatenated() -> None:
    X, y = blobs(6)
    X_extra, y_extra = torch.full((3, 2), 7.0), torch.tensor([1, 0, 1])
    seen = []

    def loss_fn(model, Xb, yb):
        seen.append((Xb.clone(), yb.clone()))
        return classification_loss(model, Xb, yb)

    train(linear(), fixed_batch(X, y), loss_fn, num_steps=2, lr=0.1, extra_batch=lambda: (X_extra, y_extra),
          progress=False)
    assert len(seen) == 2
    Xb, yb = seen[0]
    assert Xb.shape == (9, 2) and torch.equal(Xb, torch.cat([X, X_extra])) and torch.equal(yb, torch.cat([y, y_extra]))


def test_batch_penalty_sees_the_steps_inputs_and_adds_its_gradient() -> None:
    X, y = blobs(6)
    X_extra, y_extra = torch.full((3, 2), 7.0), torch.tensor([1, 0, 1])
    seen = []

    def penalty(model, Xb):
        seen.append(Xb.clone())
        return 0.5 * model(Xb).pow(2).sum()

    a, b = linear(), linear()
    history = train(a, fixed_batch(X, y), classification_loss, num_steps=1, lr=0.1, batch_penalty=penalty,
                    extra_batch=lambda: (X_extra, y_extra), progress=False)
    assert len(seen) == 1 and torch.equal(seen[0], torch.cat([X, X_extra]))  # the rows the loss sees
    both = torch.cat([X, X_extra])
    by_hand = classification_loss(b, both, torch.cat([y, y_extra])) + 0.5 * b(both).pow(2).sum()
    assert history.losses[0] == pytest.approx(by_hand.item(), rel=1e-6)
    by_hand.backward()
    with torch.no_grad():
        for p in b.parameters():
            p -= 0.1 * p.grad
    assert all(torch.allclose(p, q, atol=1e-6) for p, q in zip(a.parameters(), b.parameters()))
    with pytest.raises(TypeError, match=r"batch_penalty must be a function \(model, X\)"):
        train(linear(), fixed_batch(X, y), classification_loss, num_steps=1, lr=0.1, batch_penalty=1.0)


def test_eval_fn_runs_at_steps_0_k_2k_in_eval_mode() -> None:
    X, y = blobs(16)
    model = nn.Sequential(nn.Linear(2, 4), nn.Dropout(0.5), nn.Linear(4, 2))
    modes = []

    def eval_fn(m):
        modes.append((m.training, torch.is_grad_enabled()))
        return {"loss": evaluate(m, X, y)["loss"], "accuracy": torch.tensor(0.5)}

    history = train(model, fixed_batch(X, y), classification_loss, num_steps=7, lr=0.1, eval_fn=eval_fn,
                    eval_every=3, progress=False)
    assert history.eval_steps == [0, 3, 6]
    assert modes == [(False, False)] * 3
    assert model.training  # back in training mode afterwards
    assert history.series("accuracy") == [0.5, 0.5, 0.5] and isinstance(history.evals[0]["accuracy"], float)
    assert len(history.series("loss")) == 3
    assert train(model, fixed_batch(X, y), classification_loss, num_steps=3, lr=0.1, eval_fn=eval_fn,
                 progress=False).evals == []  # eval_every=0: no evaluation
    zero = train(model, fixed_batch(X, y), classification_loss, num_steps=0, lr=0.1, eval_fn=eval_fn, eval_every=2,
                 progress=False)
    assert zero.losses == [] and zero.eval_steps == [0]


def test_divergence_is_a_floating_point_error() -> None:
    X, y = blobs(32)

    def squared_error(model, Xb, yb):  # curvature ~ |X|^2, so lr = 100 overshoots and blows up
        return ((model(Xb)[:, 0] - yb.float()) ** 2).mean()

    with pytest.raises(FloatingPointError, match=r"loss became (inf|nan) at step \d+: the run diverged"):
        train(linear(), fixed_batch(X, y), squared_error, num_steps=500, lr=100.0, progress=False)
    with pytest.raises(FloatingPointError, match="loss became nan at step 1"):
        train(linear(), fixed_batch(X, y), classification_loss, num_steps=3, lr=0.1,
              extra_loss=lambda m: torch.tensor(float("nan")), progress=False)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(num_steps=-1), ValueError, "num_steps must be a non-negative int"),
    (dict(num_steps=2.5), TypeError, "num_steps must be a non-negative int"),
    (dict(num_steps=True), TypeError, "num_steps must be a non-negative int"),
    (dict(lr=0.0), ValueError, "lr must be a finite number > 0"),
    (dict(lr=-0.1), ValueError, "lr must be a finite number > 0"),
    (dict(lr=float("nan")), ValueError, "lr must be a finite number > 0"),
    (dict(lr=float("inf")), ValueError, "lr must be a finite number > 0"),
    (dict(lr="0.1"), TypeError, "lr must be a finite number"),
    (dict(momentum=-0.5), ValueError, "momentum must be a finite number >= 0"),
    (dict(weight_decay=float("nan")), ValueError, "weight_decay must be a finite number >= 0"),
    (dict(optimizer="rmsprop"), ValueError, "optimizer must be one of 'sgd', 'adam', 'adamw'"),
    (dict(eval_every=-1), ValueError, "eval_every must be a non-negative int"),
    (dict(eval_every=True), TypeError, "eval_every must be a non-negative int"),
    (dict(on_step="print"), TypeError, r"on_step must be a function \(step, model\)"),
])
def test_train_bad_hyperparameters(kwargs: dict, error: type, message: str) -> None:
    X, y = blobs(8)
    args = dict(num_steps=2, lr=0.1, progress=False) | kwargs
    with pytest.raises(error, match=message):
        train(linear(), fixed_batch(X, y), classification_loss, **args)


def test_train_bad_model_and_frozen_model() -> None:
    X, y = blobs(8)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        train(lambda x: x, fixed_batch(X, y), classification_loss, num_steps=1, lr=0.1)
    model = linear().requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        train(model, fixed_batch(X, y), classification_loss, num_steps=1, lr=0.1)


def test_make_optimizer_by_name_and_an_optimizer_instance() -> None:
    params = list(linear().parameters())
    sgd = make_optimizer(params, "sgd", 0.1, momentum=0.9, weight_decay=1e-4)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == 0.9
    assert isinstance(make_optimizer(params, "adam", 1e-3), torch.optim.Adam)
    assert isinstance(make_optimizer(params, "adamw", 1e-3), torch.optim.AdamW)
    params[0].requires_grad_(False)
    assert len(make_optimizer(params, "sgd", 0.1).param_groups[0]["params"]) == 1  # frozen ones left out
    X, y = blobs(8)
    model = linear()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # a given optimizer is used as is (lr 0: nothing moves)
    w0 = model.weight.detach().clone()
    train(model, fixed_batch(X, y), classification_loss, num_steps=2, lr=123.0, optimizer=opt, progress=False)
    assert torch.equal(model.weight, w0)


def test_fit_is_deterministic_and_checks_its_data() -> None:
    X, y = blobs(32)

    def run(seed):
        torch.manual_seed(0)
        model = fk.MLP((2, 4, 2))
        fit(model, X, y, num_steps=5, lr=0.1, batch_size=8, seed=seed, progress=False)
        return model.head.weight.detach().clone()

    assert torch.equal(run(1), run(1)) and not torch.equal(run(1), run(2))
    with pytest.raises(ValueError, match=r"y must have shape \(32,\)"):
        fit(fk.MLP((2, 2)), X, y[:5], num_steps=1)
    with pytest.raises(ValueError, match="X is empty"):
        fit(fk.MLP((2, 2)), X[:0], y[:0], num_steps=1)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        fit(fk.MLP((2, 2)), X, y, num_steps=1, batch_size=0, progress=False)
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 3\)"):
        fit(fk.MLP((3, 2)), X, y, num_steps=1, progress=False)


def test_fit_seed_none_draws_from_the_global_generator() -> None:
    X, y = blobs(32)

    def batch_order(seed):
        seen = []
        fit(fk.MLP((2, 2)), X, y, num_steps=3, lr=0.1, batch_size=8, seed=seed, progress=False,
            loss_fn=lambda m, Xb, yb: seen.append(Xb.clone()) or classification_loss(m, Xb, yb))
        return torch.cat(seen)

    fk.seed_everything(0)
    first, second = batch_order(None), batch_order(None)
    assert not torch.equal(first, second), "two runs in a row must not repeat the batch order"
    fk.seed_everything(0)
    assert torch.equal(batch_order(None), first), "seed_everything makes the sequence reproducible"
    assert torch.equal(batch_order(1), batch_order(1))  # an explicit seed fixes it, whatever came before


def test_fit_and_evaluate_say_how_to_fix_the_data() -> None:
    X, y = blobs(8)
    model = fk.MLP((2, 2))
    with pytest.raises(TypeError, match=r"X holds torch.float64 .* X\.float\(\)"):
        fit(model, X.double(), y, num_steps=1, progress=False)
    with pytest.raises(TypeError, match=r"X holds torch.int64 .* X\.float\(\)"):
        fit(model, X.long(), y, num_steps=1, progress=False)
    with pytest.raises(TypeError, match=r"y must hold class indices as int64 .* y\.long\(\)"):
        fit(model, X, y.float(), num_steps=1, progress=False)
    with pytest.raises(TypeError, match=r"y\.long\(\)"):
        evaluate(model, X, y.float())
    with pytest.raises(TypeError, match=r"X\.float\(\)"):
        fk.accuracy(model, X.double(), y)
    # a custom loss may take float targets (regression)
    fit(nn.Linear(2, 1), X, y.float(), num_steps=1, progress=False,
        loss_fn=lambda m, Xb, yb: ((m(Xb)[:, 0] - yb) ** 2).mean())


def test_language_models_and_classifiers_are_not_mixed_up() -> None:
    X, y = blobs(8)
    tokens = fk.language_tokens("french", num_sentences=10, seed=0)
    lm = fk.TinyLM(fk.TinyLMConfig(29, block_size=8, n_layer=1, n_head=1, n_embd=8))
    with pytest.raises(TypeError, match=r"expected a language model such as fk.TinyLM.*fk\.fit\(model, X, y\)"):
        fit_lm(fk.MLP((2, 2)), tokens, num_steps=1)
    with pytest.raises(TypeError, match=r"expected a language model such as fk.TinyLM.*fk\.evaluate\(model, X, y\)"):
        evaluate_lm(fk.MLP((2, 2)), tokens)
    with pytest.raises(TypeError, match=r"TinyLM is a language model: train it with fk\.fit_lm"):
        fit(lm, X, y, num_steps=1)
    with pytest.raises(TypeError, match="TinyLM is a language model"):
        evaluate(lm, X, y)


def test_on_step_sees_every_step_after_the_update() -> None:
    X, y = blobs(8)
    model = linear()
    calls = []

    def on_step(step, m):
        calls.append((step, m.training, m.weight.detach().clone()))

    train(model, fixed_batch(X, y), classification_loss, num_steps=3, lr=0.5, on_step=on_step, progress=False)
    assert [step for step, _, _ in calls] == [1, 2, 3] and all(training for _, training, _ in calls)
    assert torch.equal(calls[-1][2], model.weight)  # called after the optimizer step
    assert not torch.equal(calls[0][2], calls[1][2])


def test_evaluate_on_a_hand_made_model() -> None:
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))
    X = torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0, 1, 1, 1])  # predictions 0, 1, 0, 1: three right
    expected_loss = sum(math.log(1 + math.exp(-m)) for m in (2.0, 3.0, -1.0, 1.0)) / 4
    result = evaluate(model, X, y)
    assert result == pytest.approx({"loss": expected_loss, "accuracy": 0.75})
    assert evaluate(model, X, y, batch_size=3) == pytest.approx(result)  # batching changes nothing
    assert fk.accuracy(model, X, y) == 0.75
    model.train()
    evaluate(model, X, y)
    assert model.training
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        evaluate(model, X, y, batch_size=0)
    with pytest.raises(TypeError, match="X and y must be torch tensors"):
        evaluate(model, X.tolist(), y)


def test_losses_and_helpers() -> None:
    X, y = blobs(8)
    model = linear()
    assert torch.equal(classification_loss(model, X, y), F.cross_entropy(model(X), y))
    assert model_device(model) == torch.device("cpu") and model_device(nn.ReLU()) == torch.device("cpu")


def test_progress_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FORGETKIT_PROGRESS", raising=False)
    assert progress_enabled(None) and not progress_enabled(False) and progress_enabled(True)
    for off in ("0", "false", "No", " off "):
        monkeypatch.setenv("FORGETKIT_PROGRESS", off)
        assert not progress_enabled(None)
    monkeypatch.setenv("FORGETKIT_PROGRESS", "1")
    assert progress_enabled(None) and not progress_enabled(False)


def test_fit_lm_and_evaluate_lm_on_a_tiny_model() -> None:
    tokens = fk.language_tokens("japanese", num_sentences=60, seed=0)
    torch.manual_seed(0)
    model = fk.TinyLM(fk.TinyLMConfig(29, block_size=16, n_layer=1, n_head=2, n_embd=16))
    before = evaluate_lm(model, tokens)
    assert before == pytest.approx(math.log(29), abs=0.5)  # an untrained model is close to uniform
    history = fit_lm(model, tokens, num_steps=40, lr=1e-2, batch_size=16, seed=0, progress=False)
    after = evaluate_lm(model, tokens)
    assert len(history.losses) == 40 and after < before - 0.5
    x, y = fk.lm_windows(tokens, 16, 256)
    assert after == pytest.approx(lm_loss(model.eval(), x, y).item(), rel=1e-5)
    assert evaluate_lm(model, tokens, max_windows=2) != after


def test_fit_lm_bad_tokens() -> None:
    model = fk.TinyLM(fk.TinyLMConfig(29, block_size=8, n_layer=1, n_head=1, n_embd=8))
    with pytest.raises(TypeError, match="tokens must be a 1-D int64 tensor"):
        fit_lm(model, torch.zeros(50), num_steps=1)
    with pytest.raises(ValueError, match="need more than block_size"):
        fit_lm(model, torch.zeros(5, dtype=torch.int64), num_steps=1)
    with pytest.raises(ValueError, match="need more than block_size=8 tokens"):
        evaluate_lm(model, torch.zeros(8, dtype=torch.int64))
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        fit_lm(model, torch.zeros(50, dtype=torch.int64), num_steps=1, lr=-1.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fit_and_evaluate_move_cpu_data_to_the_models_gpu() -> None:
    X, y = blobs(32)
    model = fk.MLP((2, 8, 2)).to("cuda")
    fit(model, X, y, num_steps=3, lr=0.1, progress=False)
    assert model_device(model).type == "cuda" and 0.0 <= evaluate(model, X, y)["accuracy"] <= 1.0
    lm = fk.TinyLM(fk.TinyLMConfig(29, block_size=8, n_layer=1, n_head=1, n_embd=8)).to("cuda")
    tokens = fk.language_tokens("french", num_sentences=20, seed=0)
    fit_lm(lm, tokens, num_steps=2, progress=False)
    assert math.isfinite(evaluate_lm(lm, tokens))


def test_eval_mode_restores_the_mode_even_when_the_block_raises():
    from forgetkit.training import eval_mode

    model = fk.MLP((4, 3, 2))
    model.train()
    with eval_mode(model):
        assert not model.training
    assert model.training
    try:
        with eval_mode(model):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert model.training
    model.eval()
    with eval_mode(model):
        pass
    assert not model.training
