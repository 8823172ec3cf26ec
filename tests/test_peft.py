"""forgetkit.peft: freezing by name, linear probe, LP-FT, adapters, LoRA (with merge), exact counts."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

import forgetkit as fk
from forgetkit import peft


def small_mlp(seed: int = 0) -> fk.MLP:
    torch.manual_seed(seed)
    return fk.MLP((6, 5, 4, 3))  # body.0: 6->5 (35), body.2: 5->4 (24), head: 4->3 (15) = 74


def small_lm(seed: int = 0) -> fk.TinyLM:
    torch.manual_seed(seed)
    return fk.TinyLM(fk.TinyLMConfig(vocab_size=7, block_size=8, n_layer=2, n_head=2, n_embd=8))


# --- counting and freezing ----------------------------------------------------------------------


def test_counts_on_a_hand_made_model() -> None:
    model = small_mlp()
    assert peft.count_trainable(model) == 74 and peft.count_frozen(model) == 0
    peft.freeze(model)
    assert peft.count_trainable(model) == 0 and peft.count_frozen(model) == 74


def test_freeze_and_unfreeze_by_pattern() -> None:
    model = small_mlp()
    peft.freeze(model, r"body\..*")
    assert list(peft.trainable_parameters(model)) == ["head.weight", "head.bias"]
    assert peft.count_trainable(model) == 15 and peft.count_frozen(model) == 59
    peft.unfreeze(model, r"body\.2\.weight")
    assert list(peft.trainable_parameters(model)) == ["body.2.weight", "head.weight", "head.bias"]
    assert peft.trainable_parameters(model)["head.bias"] is model.head.bias  # the parameters themselves
    assert peft.freeze(model) is model and peft.count_trainable(model) == 0
    assert peft.trainable_parameters(model) == {}
    with pytest.raises(ValueError, match="no trainable parameters"):
        peft.trainable_parameters(model, required=True)


def test_pattern_must_match_a_whole_name() -> None:
    model = small_mlp()
    with pytest.raises(ValueError, match="matches no parameter"):
        peft.freeze(model, "body")  # a prefix is not a full match
    with pytest.raises(ValueError, match="not a valid regular expression"):
        peft.freeze(model, "body[")
    with pytest.raises(TypeError, match="pattern must be"):
        peft.unfreeze(model, 3)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        peft.freeze("model")


def test_linear_probe_trains_only_the_head() -> None:
    model = peft.linear_probe(small_mlp())
    assert list(peft.trainable_parameters(model)) == ["head.weight", "head.bias"]
    lm = peft.linear_probe(small_lm(), head="lm_head")
    assert list(peft.trainable_parameters(lm)) == ["lm_head.weight", "lm_head.bias"]
    with pytest.raises(ValueError, match="not a submodule"):
        peft.linear_probe(small_mlp(), head="classifier")


def test_lp_ft_probes_then_fine_tunes_everything() -> None:
    model = small_mlp()
    X, y = torch.rand(20, 6), torch.randint(0, 3, (20,))
    body_before = copy.deepcopy(model.body.state_dict())
    changed_during_probe = {}

    def watch(m: nn.Module) -> dict[str, float]:
        changed_during_probe[len(changed_during_probe)] = not torch.equal(m.body[0].weight, body_before["0.weight"])
        return {}

    probe, finetune = peft.lp_ft(model, X, y, probe_steps=5, finetune_steps=5, probe_lr=0.1, lr=0.1,
                                 progress=False, seed=0, eval_fn=watch, eval_every=5)
    assert len(probe.losses) == 5 and len(finetune.losses) == 5
    assert changed_during_probe[1] is False, "the body must stay frozen during the probe"
    assert not torch.equal(model.body[0].weight, body_before["0.weight"]), "the body must train afterwards"
    assert peft.count_frozen(model) == 0
    with pytest.raises(ValueError, match="probe_steps"):
        peft.lp_ft(model, X, y, probe_steps=-1, finetune_steps=1, probe_lr=0.1, lr=0.1)


# --- adapters ---------------------------------------------------------------------------------------


def test_adapter_starts_as_identity_and_counts() -> None:
    adapter = peft.Adapter(dim=6, bottleneck=2)
    h = torch.randn(3, 4, 6)
    assert torch.equal(adapter(h), h)
    assert peft.count_trainable(adapter) == 2 * 6 * 2 + 2 + 6
    with pytest.raises(ValueError, match="bottleneck"):
        peft.Adapter(6, 0)


def test_add_adapters_to_the_mlp_keeps_outputs_and_trains_only_adapters() -> None:
    model = small_mlp()
    x = torch.rand(4, 6)
    before = model(x)
    peft.add_adapters(model, bottleneck=2)
    assert torch.allclose(model(x), before)
    # adapters after body.0 (dim 5) and body.2 (dim 4): (2*5*2+2+5) + (2*4*2+2+4) = 27 + 22
    assert peft.count_trainable(model) == 49 and peft.count_frozen(model) == 74
    assert isinstance(model.body[0][1], peft.Adapter) and isinstance(model.body[2][1], peft.Adapter)
    peft.unfreeze(model, r"head\..*")
    assert peft.count_trainable(model) == 49 + 15


def test_add_adapters_to_the_tiny_lm() -> None:
    lm = small_lm()
    idx = torch.randint(0, 7, (2, 5))
    before = lm(idx)[0]
    peft.add_adapters(lm, bottleneck=3)
    assert torch.allclose(lm(idx)[0], before)
    per_adapter = 2 * 8 * 3 + 3 + 8
    assert peft.count_trainable(lm) == 2 * 2 * per_adapter  # two blocks, two adapters each
    with pytest.raises(ValueError, match="selects no nn.Linear"):
        peft.add_adapters(small_lm(), 2, target_modules=r"blocks\.9\..*")


# --- LoRA ---------------------------------------------------------------------------------------------


def test_lora_linear_formula_on_hand_made_matrices() -> None:
    base = nn.Linear(2, 2)
    with torch.no_grad():
        base.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        base.bias.copy_(torch.tensor([0.5, -0.5]))
    layer = peft.LoRALinear(base, r=1, lora_alpha=2.0)
    with torch.no_grad():
        layer.A.copy_(torch.tensor([[1.0, 1.0]]))
        layer.B.copy_(torch.tensor([[1.0], [0.0]]))
    x = torch.tensor([[1.0, 2.0]])
    # W x + b = [1.5, 1.5]; (lora_alpha / r) B A x = 2 * [3, 0] = [6, 0]
    assert torch.allclose(layer(x), torch.tensor([[7.5, 1.5]]))
    assert torch.allclose(layer.delta_weight(), torch.tensor([[2.0, 2.0], [0.0, 0.0]]))


def test_lora_starts_equal_to_base_and_only_a_b_train() -> None:
    base = nn.Linear(6, 4)
    layer = peft.LoRALinear(base, r=3, lora_alpha=6)
    x = torch.randn(5, 6)
    assert torch.equal(layer(x), base(x))
    assert layer.scaling == 2.0 and layer.r == 3 and layer.lora_alpha == 6.0  # peft's names and scaling
    assert peft.count_trainable(layer) == 3 * (6 + 4)
    assert peft.count_frozen(layer) == 6 * 4 + 4
    layer(x).sum().backward()
    assert base.weight.grad is None and layer.B.grad is not None


def test_merge_and_unmerge_keep_outputs() -> None:
    torch.manual_seed(0)
    layer = peft.LoRALinear(nn.Linear(6, 4), r=2, lora_alpha=4)
    with torch.no_grad():
        layer.B.normal_()
    x = torch.randn(3, 7, 6)  # extra leading dimensions work
    assert "r=2, lora_alpha=4, merged=False" in repr(layer)
    weight_before = layer.base.weight.clone()
    out = layer(x)
    layer.merge()
    assert torch.allclose(layer(x), out, atol=1e-6)
    assert not torch.equal(layer.base.weight, weight_before)
    assert layer.merged and "merged=True" in repr(layer)
    with pytest.raises(RuntimeError, match="already merged"):
        layer.merge()
    layer.unmerge()
    assert torch.allclose(layer.base.weight, weight_before, atol=1e-6)
    with pytest.raises(RuntimeError, match="not merged"):
        layer.unmerge()


def test_lora_bad_input() -> None:
    with pytest.raises(TypeError, match="nn.Linear"):
        peft.LoRALinear(nn.Conv1d(2, 2, 1), r=1)
    with pytest.raises(ValueError, match="r must be a positive int"):
        peft.LoRALinear(nn.Linear(4, 4), r=0)
    with pytest.raises(TypeError, match="r must be a positive int"):
        peft.LoRALinear(nn.Linear(4, 4), r=True)
    with pytest.raises(ValueError, match="lora_alpha must be a finite number > 0"):
        peft.LoRALinear(nn.Linear(4, 4), r=1, lora_alpha=float("nan"))
    with pytest.raises(TypeError, match="lora_alpha"):
        peft.apply_lora(small_mlp(), r=1, lora_alpha="8")


def test_apply_lora_on_the_mlp_exact_counts_and_merge() -> None:
    model = small_mlp()
    x = torch.rand(4, 6)
    before = model(x)
    peft.apply_lora(model, r=2, lora_alpha=2)
    assert torch.allclose(model(x), before)
    # body.0: 2 * (6 + 5) = 22, body.2: 2 * (5 + 4) = 18; everything else frozen
    assert peft.count_trainable(model) == 40 and peft.count_frozen(model) == 74
    assert [type(m).__name__ for m in peft.lora_layers(model)] == ["LoRALinear", "LoRALinear"]
    with torch.no_grad():
        for layer in peft.lora_layers(model):
            layer.B.normal_()
    out = model(x)
    peft.merge_lora(model)
    assert torch.allclose(model(x), out, atol=1e-6)
    peft.unmerge_lora(model)
    assert torch.allclose(model(x), out, atol=1e-6)


def test_apply_lora_by_pattern_on_any_model() -> None:
    lm = small_lm()
    peft.apply_lora(lm, r=1, target_modules=r".*attn\.qkv")
    assert len(peft.lora_layers(lm)) == 2
    assert peft.count_trainable(lm) == 2 * 1 * (8 + 24)
    net = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 2))
    peft.apply_lora(net, r=1, target_modules=r"2", freeze_rest=False)
    assert isinstance(net[2], peft.LoRALinear) and isinstance(net[0], nn.Linear)
    assert peft.count_trainable(net) == 12 + 5
    with pytest.raises(ValueError, match="no default target"):
        peft.apply_lora(nn.Sequential(nn.Linear(2, 2)), r=1)
    with pytest.raises(ValueError, match="selects no nn.Linear"):
        peft.apply_lora(small_mlp(), r=1, target_modules="nothing")
    with pytest.raises(TypeError, match="target_modules must be a regular expression"):
        peft.apply_lora(small_mlp(), r=1, target_modules=3)


def test_target_modules_as_a_list_of_names_as_in_peft() -> None:
    lm = small_lm()
    peft.apply_lora(lm, r=1, target_modules=["qkv", "proj"])  # every layer whose name ends with .qkv or .proj
    wrapped = [n for n, m in lm.named_modules() if isinstance(m, peft.LoRALinear)]
    assert wrapped == ["blocks.0.attn.qkv", "blocks.0.attn.proj", "blocks.1.attn.qkv", "blocks.1.attn.proj"]
    model = small_mlp()
    peft.apply_lora(model, r=1, target_modules=["body.2"])  # a full name works too
    assert [n for n, m in model.named_modules() if isinstance(m, peft.LoRALinear)] == ["body.2"]


def test_apply_lora_twice_refuses_instead_of_nesting() -> None:
    model = peft.apply_lora(small_mlp(), r=2)
    with pytest.raises(ValueError, match="already have LoRA"):
        peft.apply_lora(model, r=2)
    with pytest.raises(ValueError, match="already have LoRA"):
        peft.apply_lora(model, r=2, target_modules=r".*")
    assert not any(isinstance(m.base, peft.LoRALinear) for m in peft.lora_layers(model))
    peft.apply_lora(model, r=2, target_modules=r"head", freeze_rest=False)  # another layer is fine
    assert len(peft.lora_layers(model)) == 3


def test_a_merged_state_dict_loads_into_a_fresh_lora_model() -> None:
    trained = peft.apply_lora(small_mlp(), r=2, lora_alpha=4)
    with torch.no_grad():
        for layer in peft.lora_layers(trained):
            layer.B.normal_()
    x = torch.rand(5, 6)
    expected = trained(x)
    peft.merge_lora(trained)
    state = trained.state_dict()
    assert state["body.0.merged"].item() is True
    fresh = peft.apply_lora(small_mlp(seed=1), r=2, lora_alpha=4)
    fresh.load_state_dict(state)
    assert all(layer.merged for layer in peft.lora_layers(fresh))
    assert torch.allclose(fresh(x), expected, atol=1e-6), "the update must be applied once, not twice"
    peft.unmerge_lora(fresh)
    assert torch.allclose(fresh(x), expected, atol=1e-6)
    with pytest.raises(ValueError, match="no LoRALinear"):
        peft.merge_lora(small_mlp())


def test_lora_layers_follow_the_model_device_and_dtype() -> None:
    base = nn.Linear(3, 2).double()
    layer = peft.LoRALinear(base, r=1)
    assert layer.A.dtype == torch.float64 and layer.B.dtype == torch.float64
    assert layer.A.device == base.weight.device


def test_lora_function_accepts_no_bias() -> None:
    torch.manual_seed(0)
    x, W, A, B = torch.randn(2, 3), torch.randn(4, 3), torch.randn(2, 3), torch.randn(4, 2)
    expected = x @ W.T + 1.5 * (x @ A.T) @ B.T
    assert torch.allclose(peft.lora_linear(x, W, None, A, B, lora_alpha=3.0), expected, atol=1e-6)


# --- the lesson 06 exercise check -----------------------------------------------------------------------


def test_check_lora_linear(capsys) -> None:
    from forgetkit.exercises import check_lora_linear

    def not_done(x, weight, bias, A, B, lora_alpha):
        raise NotImplementedError

    def forgets_the_scaling(x, weight, bias, A, B, lora_alpha):
        out = x @ weight.T + (x @ A.T) @ B.T
        return out if bias is None else out + bias

    def correct(x, weight, bias, A, B, lora_alpha):
        out = x @ weight.T + lora_alpha / A.shape[0] * (x @ A.T) @ B.T
        return out if bias is None else out + bias

    assert check_lora_linear(not_done) is peft.lora_linear
    assert "NOT DONE" in capsys.readouterr().out
    assert check_lora_linear(forgets_the_scaling) is peft.lora_linear
    assert "WRONG" in capsys.readouterr().out
    assert check_lora_linear(correct) is correct
    assert "PASSED" in capsys.readouterr().out
