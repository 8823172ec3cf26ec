"""Tests for forgetkit.representations: layer groups, weight drift, linear CKA, restoring layers, attention stats."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from forgetkit import representations as R
from forgetkit.languages import CharTokenizer
from forgetkit.models import MLP, TinyLM, TinyLMConfig


def tiny_lm(seed: int = 0, n_layer: int = 2) -> TinyLM:
    torch.manual_seed(seed)
    return TinyLM(TinyLMConfig(
        CharTokenizer().vocab_size, block_size=8, n_layer=n_layer, n_head=2, n_embd=8
    )).eval()


def windows(seed: int = 0, B: int = 4, T: int = 8) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(CharTokenizer().vocab_size, (B, T), generator=g)


# -- layer groups ------------------------------------------------------------------------------


def test_group_of_names():
    assert R.group_of("token_embedding.weight") == "embeddings"
    assert R.group_of("position_embedding.weight") == "embeddings"
    assert R.group_of("blocks.0.attn.qkv.weight") == "block 0"
    assert R.group_of("blocks.12.mlp.0.bias") == "block 12"
    assert R.group_of("ln_f.weight") == "head"
    assert R.group_of("lm_head.bias") == "head"


@pytest.mark.parametrize("name", ["body.0.weight", "blocks.x.weight", "head.weight", ""])
def test_group_of_rejects_foreign_names(name):
    with pytest.raises(ValueError, match="TinyLM parameter"):
        R.group_of(name)


def test_group_of_rejects_non_str():
    with pytest.raises(TypeError, match="name must be a str"):
        R.group_of(3)


def test_layer_groups_bottom_to_top():
    model = tiny_lm(n_layer=3)
    expected = ["embeddings", "block 0", "block 1", "block 2", "head"]
    assert R.layer_groups(model) == expected
    assert R.layer_groups(model.state_dict()) == expected


def test_layer_groups_orders_blocks_numerically():
    model = TinyLM(TinyLMConfig(CharTokenizer().vocab_size, block_size=4, n_layer=11, n_head=1, n_embd=4))
    assert R.layer_groups(model)[1:-1] == [f"block {i}" for i in range(11)]


def test_layer_groups_rejects_other_models():
    with pytest.raises(ValueError, match="TinyLM parameter"):
        R.layer_groups(MLP((4, 3, 2)))
    with pytest.raises(TypeError, match="state dict"):
        R.layer_groups([1, 2])


# -- weight drift ------------------------------------------------------------------------------


def test_weight_drift_zero_for_identical_models():
    model = tiny_lm()
    drift = R.weight_drift(model, copy.deepcopy(model))
    assert list(drift) == ["embeddings", "block 0", "block 1", "head"]
    assert all(v == 0.0 for v in drift.values())


def test_weight_drift_hand_made_change():
    before = tiny_lm()
    after = copy.deepcopy(before)
    with torch.no_grad():
        for p in after.blocks[1].parameters():
            p.mul_(1.5)  # every weight of block 1 grows by half: relative change 0.5 exactly
        after.lm_head.weight.add_(1.0)  # only part of the head changes
    drift = R.weight_drift(before.state_dict(), after)
    assert drift["block 1"] == pytest.approx(0.5, rel=1e-6)  # float32 rounding of 1.5 * w
    assert drift["embeddings"] == 0.0 and drift["block 0"] == 0.0
    head_norm = math.sqrt(
        sum(
            float((p.detach().double() ** 2).sum())
            for p in (
                before.ln_f.weight,
                before.ln_f.bias,
                before.lm_head.weight,
                before.lm_head.bias,
            )
        )
    )
    expected = math.sqrt(before.lm_head.weight.numel()) / head_norm
    assert drift["head"] == pytest.approx(expected, rel=1e-6)


def test_weight_drift_rejects_mismatched_models():
    with pytest.raises(ValueError, match="same parameter names"):
        R.weight_drift(tiny_lm(n_layer=2), tiny_lm(n_layer=3))
    wide = TinyLM(TinyLMConfig(CharTokenizer().vocab_size, block_size=8, n_layer=2, n_head=2, n_embd=16))
    with pytest.raises(ValueError, match="shape"):
        R.weight_drift(tiny_lm(n_layer=2), wide)
    with pytest.raises(TypeError, match="before"):
        R.weight_drift("model", tiny_lm())


# -- linear CKA --------------------------------------------------------------------------------


def test_linear_cka_identity_and_invariances():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(50, 6, generator=g, dtype=torch.float64)
    Q, _ = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=torch.float64))
    assert R.linear_cka(X, X) == pytest.approx(1.0, abs=1e-12)
    assert R.linear_cka(X, X @ Q) == pytest.approx(1.0, abs=1e-10)  # orthogonal transform
    assert R.linear_cka(X, 7.5 * X) == pytest.approx(1.0, abs=1e-12)  # isotropic scaling
    assert R.linear_cka(X, X + 3.0) == pytest.approx(
        1.0, abs=1e-12
    )  # centred: a shift does not matter
    Y = torch.randn(50, 4, generator=g, dtype=torch.float64)
    assert R.linear_cka(X, Y) == pytest.approx(R.linear_cka(Y, X), abs=1e-12)  # symmetric
    assert R.linear_cka(X @ Q, 2.0 * Y) == pytest.approx(R.linear_cka(X, Y), abs=1e-10)


def test_linear_cka_matches_hsic_form_by_hand():
    g = torch.Generator().manual_seed(1)
    X, Y = torch.randn(20, 5, generator=g).double(), torch.randn(20, 3, generator=g).double()
    n = X.shape[0]
    H = torch.eye(n, dtype=torch.float64) - torch.full((n, n), 1.0 / n, dtype=torch.float64)

    def hsic(K, L):
        return torch.trace(K @ H @ L @ H) / (n - 1) ** 2

    K, L = X @ X.T, Y @ Y.T
    expected = float(hsic(K, L) / torch.sqrt(hsic(K, K) * hsic(L, L)))
    assert R.linear_cka(X, Y) == pytest.approx(expected, rel=1e-10)
    assert 0.0 <= R.linear_cka(X, Y) <= 1.0


def test_linear_cka_hand_made_value():
    # X = [[1,0],[-1,0],[0,1],[0,-1]] (already centred, X^T X = 2 I); Y = first column only.
    X = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    Y = X[:, :1]
    # ||Y^T X||^2 = 4, ||X^T X|| = sqrt(8), ||Y^T Y|| = 2  ->  CKA = 4 / (2 sqrt(8)) = 1 / sqrt(2)
    assert R.linear_cka(X, Y) == pytest.approx(1 / math.sqrt(2), rel=1e-12)


def test_linear_cka_accepts_numpy_and_ints():
    X = np.arange(12, dtype=np.float32).reshape(6, 2) ** 2
    assert R.linear_cka(X, X) == pytest.approx(1.0)
    assert R.linear_cka(torch.arange(6).view(6, 1), torch.arange(6).view(6, 1)) == pytest.approx(
        1.0
    )


@pytest.mark.parametrize(
    "X, Y, error, match",
    [
        ([[1.0, 2.0]], torch.ones(1, 2), TypeError, "numpy array"),
        (torch.ones(5), torch.ones(5, 2), ValueError, r"shape \(N, D\)"),
        (torch.randn(5, 2), torch.randn(4, 2), ValueError, "same N"),
        (torch.randn(1, 2), torch.randn(1, 2), ValueError, "at least 2 rows"),
        (torch.ones(5, 2), torch.randn(5, 2), ValueError, "constant"),
        (torch.tensor([[float("nan")], [1.0]]), torch.randn(2, 1), ValueError, "NaN"),
        (torch.ones(3, 2, dtype=torch.bool), torch.randn(3, 2), TypeError, "real numbers"),
    ],
)
def test_linear_cka_bad_input(X, Y, error, match):
    with pytest.raises(error, match=match):
        R.linear_cka(X, Y)


# -- representation drift ----------------------------------------------------------------------


def test_residual_states_shapes():
    model, idx = tiny_lm(), windows()
    states = R.residual_states(model, idx)
    assert list(states) == ["embeddings", "block 0", "block 1"]
    assert all(s.shape == (4 * 8, 8) for s in states.values())


def test_representation_drift_zero_for_same_model_and_grows_where_changed():
    before, idx = tiny_lm(), windows()
    same = R.representation_drift(before, copy.deepcopy(before), idx)
    assert all(abs(v) < 1e-9 for v in same.values())
    after = copy.deepcopy(before)
    with torch.no_grad():
        for p in after.blocks[1].parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(3)))
    drift = R.representation_drift(before, after, idx)
    assert (
        abs(drift["embeddings"]) < 1e-9 and abs(drift["block 0"]) < 1e-9
    )  # below the change: untouched
    assert drift["block 1"] > 0.01


def test_representation_drift_accepts_a_custom_cka_and_checks_inputs():
    before, idx = tiny_lm(), windows()
    drift = R.representation_drift(before, before, idx, cka=lambda X, Y: 0.25)
    assert all(v == 0.75 for v in drift.values())
    with pytest.raises(TypeError, match="cka"):
        R.representation_drift(before, before, idx, cka=0.5)
    with pytest.raises(TypeError, match="TinyLM"):
        R.representation_drift(MLP((4, 2)), before, idx)
    with pytest.raises(ValueError, match="same number of blocks"):
        R.representation_drift(before, tiny_lm(n_layer=3), idx)
    with pytest.raises(TypeError, match="idx"):
        R.representation_drift(before, before, [[1, 2]])


# -- restoring layers --------------------------------------------------------------------------


def test_restore_layers_copies_only_chosen_groups():
    before = tiny_lm(0)
    reference = copy.deepcopy(before.state_dict())
    after = tiny_lm(1)  # different weights everywhere
    changed = copy.deepcopy(after.state_dict())
    out = R.restore_layers(after, reference, ["embeddings", "block 1"])
    assert out is after
    for name, tensor in after.state_dict().items():
        source = reference if R.group_of(name) in ("embeddings", "block 1") else changed
        assert torch.equal(tensor, source[name]), name
    drift = R.weight_drift(reference, after)
    assert drift["embeddings"] == 0.0 and drift["block 1"] == 0.0 and drift["block 0"] > 0


def test_restore_everything_gives_back_the_reference_outputs():
    before, idx = tiny_lm(0), windows()
    after = tiny_lm(1)
    R.restore_layers(after, before, R.layer_groups(before))  # a model works as reference too
    assert torch.equal(after(idx)[0], before(idx)[0])


def test_restore_layers_bad_input():
    model, reference = tiny_lm(), tiny_lm().state_dict()
    with pytest.raises(ValueError, match="unknown layer group"):
        R.restore_layers(model, reference, ["block 7"])
    with pytest.raises(TypeError, match="single str"):
        R.restore_layers(model, reference, "head")
    with pytest.raises(ValueError, match="same parameter names"):
        R.restore_layers(model, tiny_lm(n_layer=3).state_dict(), ["head"])
    with pytest.raises(TypeError, match="reference"):
        R.restore_layers(model, None, ["head"])
    with pytest.raises(TypeError, match="model"):
        R.restore_layers("model", reference, ["head"])


# -- attention statistics ----------------------------------------------------------------------


def uniform_attention_lm() -> TinyLM:
    """A TinyLM whose queries and keys are zero, so every head attends uniformly to positions <= t."""
    model = tiny_lm()
    with torch.no_grad():
        for block in model.blocks:
            C = block.attn.proj.in_features
            block.attn.qkv.weight[: 2 * C].zero_()
            block.attn.qkv.bias[: 2 * C].zero_()
    return model


def test_attention_stats_of_uniform_attention_by_hand():
    model, idx = uniform_attention_lm(), windows()
    T = idx.shape[1]
    entropy = R.attention_entropy(model, idx)
    distance = R.attention_distance(model, idx)
    assert entropy.shape == distance.shape == (2, 2)
    # query t attends uniformly to t + 1 positions: entropy log(t + 1), mean distance t / 2
    expected_entropy = sum(math.log(t + 1) for t in range(T)) / T
    expected_distance = sum(t / 2 for t in range(T)) / T
    assert torch.allclose(entropy, torch.full((2, 2), expected_entropy), atol=1e-5)
    assert torch.allclose(distance, torch.full((2, 2), expected_distance), atol=1e-5)


def test_attention_stats_of_look_at_yourself_attention():
    torch.manual_seed(0)
    model = TinyLM(TinyLMConfig(CharTokenizer().vocab_size, block_size=8, n_layer=2, n_head=1, n_embd=8)).eval()
    idx = windows()
    with torch.no_grad():  # huge positional self-similarity: each query attends only to itself
        model.token_embedding.weight.zero_()
        model.position_embedding.weight.copy_(torch.eye(8) * 50)
        for block in model.blocks:
            block.ln1 = torch.nn.Identity()
            C = block.attn.proj.in_features
            block.attn.qkv.weight[: 2 * C].copy_(torch.cat([torch.eye(C), torch.eye(C)]))
            block.attn.qkv.bias.zero_()
            for p in list(block.mlp.parameters()) + list(block.attn.proj.parameters()):
                p.zero_()
    entropy = R.attention_entropy(model, idx)
    distance = R.attention_distance(model, idx)
    assert entropy.shape == (2, 1)
    assert torch.all(entropy < 1e-3) and torch.all(distance < 1e-3)


def test_attention_stats_bad_input():
    with pytest.raises(TypeError, match="TinyLM"):
        R.attention_entropy(MLP((4, 2)), windows())
    with pytest.raises(TypeError, match="idx"):
        R.attention_distance(tiny_lm(), "abc")
    with pytest.raises(ValueError, match="block_size"):
        R.attention_entropy(tiny_lm(), windows(T=9))


# -- the lesson's exercise check and plots -----------------------------------------------------


def test_check_linear_cka_verdicts(capsys):
    from forgetkit import exercises

    assert exercises.check_linear_cka(R.linear_cka) is R.linear_cka
    assert "PASSED" in capsys.readouterr().out

    def stub(X, Y):
        raise NotImplementedError

    assert exercises.check_linear_cka(stub) is R.linear_cka
    assert "NOT DONE" in capsys.readouterr().out

    def uncentred(X, Y):  # forgets to centre: wrong on shifted columns
        X, Y = X.double(), Y.double()
        return float((Y.T @ X).pow(2).sum() / ((X.T @ X).norm() * (Y.T @ Y).norm()))

    assert exercises.check_linear_cka(uncentred) is R.linear_cka
    assert "WRONG" in capsys.readouterr().out

    def not_normalised(X, Y):  # HSIC without the normalisation: not scale invariant
        X, Y = X - X.mean(0), Y - Y.mean(0)
        return float((Y.T @ X).pow(2).sum()) / X.shape[0] ** 2

    assert exercises.check_linear_cka(not_normalised) is R.linear_cka
    assert "WRONG" in capsys.readouterr().out

    def kernel_form(X, Y):  # the N x N kernel (HSIC) form is also right
        n = X.shape[0]
        H = torch.eye(n) - 1.0 / n
        K, L = H @ X @ X.T @ H, H @ Y @ Y.T @ H
        return (K * L).sum() / (K.norm() * L.norm())

    assert exercises.check_linear_cka(kernel_form) is kernel_form
    assert "PASSED" in capsys.readouterr().out


def test_plot_per_layer_and_attention():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from forgetkit import plots

    ax = plots.plot_per_layer({"a": {"embeddings": 0.1, "block 0": 0.3}, "b": {"embeddings": 0.2, "block 0": 0.1}})
    assert len(ax.patches) == 4 and ax.get_title()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["embeddings", "block 0"]
    with pytest.raises(ValueError, match="same layers"):
        plots.plot_per_layer({"a": {"x": 1.0}, "b": {"y": 1.0}})
    with pytest.raises(ValueError, match="non-empty"):
        plots.plot_per_layer({})
    with pytest.raises(ValueError, match="colour"):
        plots.plot_per_layer({"a": {"x": 1.0}, "b": {"x": 2.0}}, colors=["red"])
    ax = plots.plot_attention(torch.tril(torch.ones(3, 3)) / torch.arange(1, 4).view(3, 1), text="a b")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "_", "b"]
    with pytest.raises(ValueError, match="square"):
        plots.plot_attention(np.ones((2, 3)))
    with pytest.raises(ValueError, match="T = 3"):
        plots.plot_attention(np.eye(3), text="ab")
    plt.close("all")
