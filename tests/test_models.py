"""The MLP and the tiny transformer LM: shapes, causality, attention maps, sampling, bad config."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import forgetkit as fk
from forgetkit.models import MLP, TinyLM, TinyLMConfig

torch.set_num_threads(1)  # as fk.pick_device() does


def tiny_lm(seed: int = 0, **overrides) -> TinyLM:
    torch.manual_seed(seed)
    config = dict(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8) | overrides
    return TinyLM(TinyLMConfig(**config)).eval()


def test_mlp_shapes_and_structure() -> None:
    model = MLP((5, 7, 6, 3))
    x = torch.randn(4, 5)
    assert model(x).shape == (4, 3) and model.features(x).shape == (4, 6)
    assert torch.equal(model(x), model.head(model.features(x)))
    assert model.sizes == (5, 7, 6, 3) and len(model.body) == 4  # two Linear + ReLU pairs
    assert MLP((5, 3))(x).shape == (4, 3)  # no hidden layer: the head alone
    assert MLP()(torch.randn(2, 64)).shape == (2, 10)


@pytest.mark.parametrize("sizes, error", [((64,), ValueError), ((), ValueError), (64, ValueError),
                                          ((64, 0, 10), ValueError), ((64, -3, 10), ValueError),
                                          ((64, 2.5, 10), TypeError), ((64, True, 10), TypeError)])
def test_mlp_bad_sizes(sizes, error) -> None:
    with pytest.raises(error, match="sizes"):
        MLP(sizes)


@pytest.mark.parametrize("shape", [(4, 6), (5,), (2, 3, 5)])
def test_mlp_bad_input_shape(shape) -> None:
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 5\)"):
        MLP((5, 3))(torch.randn(*shape))


def test_tiny_lm_shapes_and_loss() -> None:
    model = tiny_lm()
    idx = torch.randint(0, 11, (3, 8), generator=torch.Generator().manual_seed(0))
    targets = torch.roll(idx, -1, dims=1)
    logits, loss = model(idx, targets)
    assert logits.shape == (3, 8, 11) and loss.shape == ()
    assert torch.allclose(loss, F.cross_entropy(logits.reshape(-1, 11), targets.reshape(-1)))
    logits_short, none = model(idx[:, :5])
    assert none is None and logits_short.shape == (3, 5, 11)
    states = model.hidden_states(idx)
    assert len(states) == 3 and all(s.shape == (3, 8, 8) for s in states)
    assert model.config == TinyLMConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8)
    assert "n_embd=8" in repr(model.config)


def test_causal_masking() -> None:
    model = tiny_lm()
    idx = torch.randint(0, 11, (2, 8), generator=torch.Generator().manual_seed(1))
    changed = idx.clone()
    changed[:, 5] = (changed[:, 5] + 1) % 11
    before, after = model(idx)[0], model(changed)[0]
    assert torch.equal(before[:, :5], after[:, :5])  # the past cannot see the future
    assert not torch.allclose(before[:, 5:], after[:, 5:])
    # a prefix gives the same logits as the full sequence at those positions
    assert torch.allclose(model(idx[:, :3])[0], before[:, :3], atol=1e-6)


def test_attention_maps_rows_sum_to_one_and_are_lower_triangular() -> None:
    model = tiny_lm(n_layer=3)
    idx = torch.randint(0, 11, (2, 6), generator=torch.Generator().manual_seed(2))
    maps = model.attention_maps(idx)
    assert len(maps) == 3 and all(m.shape == (2, 2, 6, 6) for m in maps)
    upper = torch.triu(torch.ones(6, 6, dtype=torch.bool), diagonal=1)
    for m in maps:
        assert torch.allclose(m.sum(-1), torch.ones(2, 2, 6))
        assert torch.all(m[..., upper] == 0) and torch.all(m >= 0)
        assert torch.allclose(m[..., 0, 0], torch.ones(2, 2))  # the first position sees only itself
    assert all(block.attn.last_attention is None for block in model.blocks)  # nothing kept around


def test_generate_length_and_determinism() -> None:
    model = tiny_lm()
    model.train()
    start = torch.zeros(2, 3, dtype=torch.int64)
    out = model.generate(start, 12, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 15) and out.dtype == torch.int64
    assert torch.equal(out[:, :3], start) and int(out.max()) < 11 and int(out.min()) >= 0
    again = model.generate(start, 12, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    other = model.generate(start, 12, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(out, other)
    assert model.training  # the mode it had before is restored
    assert torch.equal(model.generate(start, 0), start)
    # greedy-like sampling at a tiny temperature follows the argmax
    cold = model.generate(start[:1], 1, temperature=1e-4, generator=torch.Generator().manual_seed(0))
    assert int(cold[0, -1]) == int(model.eval()(start[:1])[0][0, -1].argmax())


def test_generate_beyond_block_size_crops_the_context() -> None:
    model = tiny_lm()
    out = model.generate(torch.zeros(1, 8, dtype=torch.int64), 5, generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 13)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(max_new_tokens=-1), ValueError, "max_new_tokens must be a non-negative int"),
    (dict(max_new_tokens=2.0), TypeError, "max_new_tokens must be a non-negative int"),
    (dict(max_new_tokens=True), TypeError, "max_new_tokens must be a non-negative int"),
    (dict(max_new_tokens=2, temperature=0.0), ValueError, "temperature must be a finite number > 0"),
    (dict(max_new_tokens=2, temperature=-1.0), ValueError, "temperature must be a finite number > 0"),
    (dict(max_new_tokens=2, temperature=float("nan")), ValueError, "temperature must be a finite number > 0"),
    (dict(max_new_tokens=2, temperature="hot"), TypeError, "temperature"),
])
def test_generate_bad_input(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        tiny_lm().generate(torch.zeros(1, 2, dtype=torch.int64), **kwargs)


def test_generate_runs_in_eval_mode_and_restores_the_mode() -> None:
    model = tiny_lm()
    modes = []
    model.blocks[0].register_forward_hook(lambda module, args, out: modes.append(module.training))
    model.train()
    model.generate(torch.zeros(1, 2, dtype=torch.int64), 3, generator=torch.Generator().manual_seed(0))
    assert modes == [False] * 3 and model.training


@pytest.mark.parametrize("idx, message", [
    (torch.zeros(1, 4), r"idx must be an int64 tensor of shape \(B, T\)"),
    (torch.zeros(4, dtype=torch.int64), r"idx must be an int64 tensor of shape \(B, T\)"),
    (torch.zeros(1, 9, dtype=torch.int64), "sequence length 9 exceeds block_size 8"),
])
def test_tiny_lm_bad_input(idx: torch.Tensor, message: str) -> None:
    model = tiny_lm()
    with pytest.raises(ValueError, match=message):
        model(idx)
    with pytest.raises(ValueError, match=message):
        model.attention_maps(idx)


@pytest.mark.parametrize("overrides, error, message", [
    (dict(vocab_size=0), ValueError, "vocab_size must be a positive int"),
    (dict(block_size=-1), ValueError, "block_size must be a positive int"),
    (dict(n_layer=1.5), TypeError, "n_layer must be a positive int"),
    (dict(n_head=0), ValueError, "n_head must be a positive int"),
    (dict(n_embd=10, n_head=4), ValueError, "must be divisible by n_head"),
])
def test_tiny_lm_bad_config(overrides: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        tiny_lm(**overrides)
    with pytest.raises(TypeError, match="config must be a forgetkit TinyLMConfig"):
        TinyLM(29)


def test_models_are_exported() -> None:
    assert fk.MLP is MLP and fk.TinyLM is TinyLM and fk.TinyLMConfig is TinyLMConfig
