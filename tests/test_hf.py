"""forgetkit.hf: the course's measurements and mitigations on Hugging Face models, offline.

Every model here is a tiny GPT-2 (or the course's TinyLM) built from a config: nothing is
downloaded, and the network is blocked for the whole suite (conftest.py).
"""

from __future__ import annotations

import copy
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import forgetkit as fk
from forgetkit import hf

VOCAB = len(fk.ALPHABET)


def tiny(seed: int = 0, n_positions: int = 16, n_embd: int = 16, n_layer: int = 1) -> torch.nn.Module:
    """A GPT-2 small enough for a unit test (a few thousand parameters)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=VOCAB, n_positions=n_positions, n_embd=n_embd, n_layer=n_layer, n_head=2,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=None, eos_token_id=None)
    model = GPT2LMHeadModel(config)
    model.loss_type = "ForCausalLM"
    return model


@pytest.fixture(scope="module")
def texts() -> dict[str, torch.Tensor]:
    return {"old": fk.language_tokens("general", "test", 40, 0), "new": fk.language_tokens("clinical", "train", 80, 0),
            "new_test": fk.language_tokens("clinical", "test", 40, 0)}


def test_import_forgetkit_does_not_import_transformers():
    code = "import sys, forgetkit; assert 'transformers' not in sys.modules and 'peft' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert fk.hf is hf  # fk.hf imports it on first use


# ------------------------------------------------------------------------------------------
# Losses and the monitor
# ------------------------------------------------------------------------------------------


def test_text_loss_is_the_mean_next_token_cross_entropy(texts):
    model = tiny()
    x, y = fk.lm_windows(texts["old"], 16, 10)
    expected = F.cross_entropy(model(input_ids=x).logits.flatten(0, 1), y.flatten()).item()
    assert hf.text_loss(model, texts["old"], 16, max_windows=10, batch_size=3) == pytest.approx(expected, rel=1e-5)
    # HF's own loss on a window of 16 tokens (it shifts the labels: 15 predictions) is the same number
    window = texts["old"][:16].unsqueeze(0)
    assert model(input_ids=window, labels=window).loss.item() == pytest.approx(
        hf.text_loss(model, texts["old"][:17], 15, max_windows=1), rel=1e-5)
    with pytest.raises(TypeError, match="1-D int64"):
        hf.text_loss(model, texts["old"].float(), 16)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        hf.text_loss("gpt2", texts["old"], 16)


def test_monitor_with_trainer_records_both_losses_at_the_right_steps(texts):
    model = tiny()
    base_old, base_new = hf.text_loss(model, texts["old"], 16, 8), hf.text_loss(model, texts["new_test"], 16, 8)
    monitor = hf.ForgettingMonitor(texts["old"], texts["new_test"], every=2, block_size=16, max_windows=8)
    hf.finetune(model, texts["new"], num_steps=5, lr=1e-2, batch_size=4, block_size=16, monitor=monitor, seed=0,
                progress=False)
    assert monitor.steps == [0, 2, 4, 5]  # the start, every 2 steps, and the end
    assert all(len(values) == 4 for values in monitor.history.values())
    assert monitor.history["old"][0] == pytest.approx(base_old) and monitor.history["new"][0] == pytest.approx(base_new)
    assert monitor.history["old"][-1] == pytest.approx(hf.text_loss(model, texts["old"], 16, 8))
    assert monitor.history["new"][-1] < monitor.history["new"][0]  # it learned the new text
    np.testing.assert_allclose(monitor.perplexity("new"), np.exp(monitor.history["new"]))
    ax = monitor.plot(perplexity=True)
    assert ax.get_ylabel() == "perplexity" and len(ax.lines) == 2
    import matplotlib.pyplot as plt

    plt.close("all")


def test_monitor_in_a_plain_loop_and_its_errors(texts):
    model = tiny()
    monitor = hf.ForgettingMonitor(texts["old"], texts["new_test"], every=1, block_size=16, max_windows=4,
                                   texts={"self": texts["new"]})
    values = monitor.measure(model, 0)
    assert set(values) == {"old", "new", "self"} and monitor.steps == [0]
    with pytest.raises(ValueError, match="not after"):
        monitor.measure(model, 0)
    with pytest.raises(ValueError, match="non-negative int"):
        monitor.measure(model, -1)
    with pytest.raises(ValueError, match="unknown text"):
        monitor.perplexity("french")
    with pytest.raises(ValueError, match="'old' or 'new'"):
        hf.ForgettingMonitor(texts["old"], texts["new_test"], texts={"old": texts["new"]})
    with pytest.raises(ValueError, match="at least 17 tokens"):
        hf.ForgettingMonitor(texts["old"][:10], texts["new_test"], block_size=16)
    with pytest.raises(ValueError, match="positive int"):
        hf.ForgettingMonitor(texts["old"], texts["new_test"], every=0)
    with pytest.raises(ValueError, match="nothing recorded"):
        hf.ForgettingMonitor(texts["old"], texts["new_test"], block_size=16).plot()


def test_old_loss_at_interpolates_the_first_crossing_and_refuses_to_extrapolate():
    assert hf.old_loss_at([4.0, 3.0, 2.0], [1.0, 1.5, 2.5], 2.5) == pytest.approx(2.0)
    assert hf.old_loss_at([5.0, 4.0, 4.5, 3.0], [1.0, 1.4, 1.3, 2.2], 4.0) == pytest.approx(1.4)
    assert hf.old_loss_at([2.0, 1.0], [0.5, 3.0], 2.5) == 0.5
    with pytest.raises(ValueError, match="never reached"):
        hf.old_loss_at([4.0, 3.0], [1.0, 2.0], 2.0)
    with pytest.raises(ValueError, match="same length"):
        hf.old_loss_at([4.0, 3.0], [1.0], 3.5)


def test_check_old_loss_at_passes_the_reference_and_falls_back_otherwise(capsys):
    assert fk.exercises.check_old_loss_at(hf.old_loss_at) is hf.old_loss_at
    assert "PASSED" in capsys.readouterr().out

    def stub(new_losses, old_losses, new_target):
        raise NotImplementedError

    assert fk.exercises.check_old_loss_at(stub) is hf.old_loss_at
    assert "NOT DONE" in capsys.readouterr().out

    def np_interp(new_losses, old_losses, new_target):  # the classic mistake: np.interp needs increasing x
        return float(np.interp(new_target, new_losses[::-1], old_losses[::-1]))

    assert fk.exercises.check_old_loss_at(np_interp) is hf.old_loss_at
    assert "WRONG" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------
# LoRA: peft and forgetkit.peft agree
# ------------------------------------------------------------------------------------------

TARGETS = ["qkv", "proj", "mlp.0", "mlp.2"]  # every linear layer of a TinyLM block, in peft's suffix names


def course_lora(model: torch.nn.Module, r: int, lora_alpha: float) -> torch.nn.Module:
    """forgetkit's own LoRA on the same layers as ``TARGETS``."""
    return fk.apply_lora(model, r=r, lora_alpha=lora_alpha, target_modules=r"blocks\.\d+\.(attn\.(qkv|proj)|mlp\.[02])")


def test_peft_lora_equals_forgetkit_lora_from_the_same_weights():
    torch.manual_seed(0)
    base = fk.TinyLM(fk.TinyLMConfig(VOCAB, block_size=8, n_layer=2, n_head=2, n_embd=16))
    ours = course_lora(copy.deepcopy(base), r=4, lora_alpha=8.0)
    theirs = hf.apply_lora(copy.deepcopy(base), r=4, lora_alpha=8.0, target_modules=TARGETS)
    layers = dict(theirs.base_model.model.named_modules())
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, module in ours.named_modules():
            if isinstance(module, fk.LoRALinear):
                module.B.copy_(torch.randn(module.B.shape, generator=generator))  # a trained, non-zero update
                peft_layer = layers[name]
                peft_layer.lora_A["default"].weight.copy_(module.A)
                peft_layer.lora_B["default"].weight.copy_(module.B)
                assert peft_layer.scaling["default"] == module.scaling == 2.0  # lora_alpha / r
    assert fk.count_trainable(ours) == sum(p.numel() for p in theirs.parameters() if p.requires_grad)
    idx = torch.randint(0, VOCAB, (3, 8), generator=generator)
    logits_ours, logits_theirs = ours(idx)[0], theirs(idx)[0]
    assert not torch.allclose(logits_ours, base(idx)[0], atol=1e-3)  # the update does something
    torch.testing.assert_close(logits_theirs, logits_ours, rtol=1e-5, atol=1e-5)

    merged_ours, merged_theirs = fk.merge_lora(ours), theirs.merge_and_unload()
    weights_theirs = merged_theirs.state_dict()
    for name, module in merged_ours.named_modules():
        if isinstance(module, fk.LoRALinear):
            torch.testing.assert_close(weights_theirs[f"{name}.weight"], module.base.weight, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(merged_theirs(idx)[0], merged_ours(idx)[0], rtol=1e-5, atol=1e-5)


def test_apply_lora_on_gpt2_conv1d_starts_unchanged_and_merges_exactly():
    model = tiny(n_layer=2)
    idx = torch.randint(0, VOCAB, (2, 16), generator=torch.Generator().manual_seed(0))
    before = model(input_ids=idx).logits.detach()
    peft_model = hf.apply_lora(copy.deepcopy(model), r=2, lora_alpha=4)
    torch.testing.assert_close(peft_model(input_ids=idx).logits, before)  # B = 0: the same model
    d = 16  # every Conv1D of a GPT-2 block is adapted: c_attn (d -> 3d), attn c_proj, c_fc (d -> 4d), mlp c_proj
    per_block = 2 * ((d + 3 * d) + (d + d) + (d + 4 * d) + (4 * d + d))
    assert sum(p.numel() for p in peft_model.parameters() if p.requires_grad) == 2 * per_block
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1, generator=torch.Generator().manual_seed(len(name)))
    adapted = peft_model(input_ids=idx).logits.detach()
    assert not torch.allclose(adapted, before, atol=1e-3)
    merged = hf.wise_ft(model, peft_model, 1.0)  # a peft model is merged before mixing
    model.load_state_dict(merged)
    torch.testing.assert_close(model(input_ids=idx).logits, adapted, rtol=1e-4, atol=1e-5)


def test_apply_lora_rejects_bad_input():
    with pytest.raises(ValueError, match="positive int"):
        hf.apply_lora(tiny(), r=0)
    with pytest.raises(ValueError, match="lora_alpha"):
        hf.apply_lora(tiny(), r=2, lora_alpha=-1)
    with pytest.raises(TypeError, match="target_modules"):
        hf.apply_lora(tiny(), r=2, target_modules=5)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        hf.apply_lora("gpt2")


# ------------------------------------------------------------------------------------------
# Replay, distillation, WiSE-FT
# ------------------------------------------------------------------------------------------


def test_replay_mixing_ratio_is_exact():
    assert hf.replay_windows(8, 0.25) == 2 and hf.replay_windows(16, 0.0) == 0 and hf.replay_windows(20, 0.05) == 1
    with pytest.raises(ValueError, match="whole number of windows.*0.25 or 0.375"):
        hf.replay_windows(8, 0.3)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        hf.replay_windows(8, 1.0)
    new_tokens = torch.randint(0, 10, (500,))  # new text uses ids 0-9, old text ids 10-28
    old_tokens = torch.randint(10, VOCAB, (500,))
    generator = torch.Generator().manual_seed(0)
    collator = hf.ReplayCollator(old_tokens, 0.25, seed=0)
    for _ in range(20):
        x_new, _ = fk.lm_batch(new_tokens, 8, 12, generator)
        mixed = hf.mix_replay(x_new, old_tokens, 0.25, generator)
        is_old = (mixed >= 10).all(dim=1)
        assert mixed.shape == (8, 12) and int(is_old.sum()) == 2 and bool(((mixed < 10).all(dim=1) | is_old).all())
        batch = collator([{"input_ids": row, "labels": row} for row in x_new])
        assert int((batch["input_ids"] >= 10).all(dim=1).sum()) == 2
        assert torch.equal(batch["labels"], batch["input_ids"])
    with pytest.raises(TypeError, match=r"\(B, L\)"):
        hf.mix_replay(x_new[0], old_tokens, 0.25, generator)


def test_finetune_with_replay_runs_and_rejects_bad_settings(texts):
    model = tiny()
    hf.finetune(model, texts["new"], num_steps=2, lr=1e-3, batch_size=4, block_size=16, replay_tokens=texts["old"],
                replay_ratio=0.5, seed=0, progress=False)
    with pytest.raises(ValueError, match="whole number"):
        hf.finetune(model, texts["new"], num_steps=2, lr=1e-3, batch_size=4, block_size=16,
                    replay_tokens=texts["old"], replay_ratio=0.3)
    with pytest.raises(ValueError, match="needs replay_tokens"):
        hf.finetune(model, texts["new"], num_steps=2, lr=1e-3, replay_ratio=0.25)
    with pytest.raises(ValueError, match="warmup_steps"):
        hf.finetune(model, texts["new"], num_steps=2, lr=1e-3, warmup_steps=3)
    with pytest.raises(ValueError, match="lr"):
        hf.finetune(model, texts["new"], num_steps=2, lr=0)
    with pytest.raises(TypeError, match="ForgettingMonitor"):
        hf.finetune(model, texts["new"], num_steps=2, lr=1e-3, monitor=print)


def test_kl_to_base_is_zero_at_the_base_and_positive_after_a_step(texts):
    model = tiny()
    base = hf.frozen_copy(model)
    x, y = fk.lm_batch(texts["new"], 4, 16, torch.Generator().manual_seed(0))
    assert hf.kl_to_base(model, base, x).item() == pytest.approx(0.0, abs=1e-7)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    hf.lm_loss(model, x, y).backward()
    optimizer.step()
    optimizer.zero_grad()
    kl = hf.kl_to_base(model, base, x)
    assert kl.item() > 1e-4
    kl.backward()  # the gradient reaches the model, never the frozen base
    assert all(p.grad is not None for p in model.parameters())
    assert all(p.grad is None and not p.requires_grad for p in base.parameters())
    assert hf.kl_to_base(model, base, x, temperature=2.0).item() > 0
    with pytest.raises(ValueError, match="temperature"):
        hf.kl_to_base(model, base, x, temperature=0)
    with pytest.raises(TypeError, match=r"\(B, T\)"):
        hf.kl_to_base(model, base, x.float())


def test_wise_ft_endpoints_are_the_two_models(texts):
    base, finetuned = tiny(), tiny()
    hf.finetune(finetuned, texts["new"], num_steps=2, lr=1e-2, batch_size=4, block_size=16, seed=0, progress=False)
    sd_base, sd_ft = base.state_dict(), finetuned.state_dict()
    at_0, at_1, at_half = (hf.wise_ft(base, finetuned, alpha) for alpha in (0.0, 1.0, 0.5))
    for key in sd_base:
        assert torch.equal(at_0[key], sd_base[key]) and torch.equal(at_1[key], sd_ft[key])
        if sd_base[key].is_floating_point():
            torch.testing.assert_close(at_half[key], (sd_base[key] + sd_ft[key]) / 2)
    assert hf.wise_ft(sd_base, sd_ft, 1.0).keys() == sd_base.keys()  # state dicts work too
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        hf.wise_ft(base, finetuned, 1.5)
    with pytest.raises(ValueError, match="different keys"):
        hf.wise_ft(base, tiny(n_layer=2), 0.5)


# ------------------------------------------------------------------------------------------
# Self-generated text, loading models, the offline stand-in
# ------------------------------------------------------------------------------------------


def test_self_generated_tokens_are_reproducible_and_start_each_sample(texts):
    model = tiny()
    tokenizer = fk.CharTokenizer()
    a = hf.self_generated_tokens(model, tokenizer, num_samples=5, length=10, seed=3, batch_size=2)
    torch.manual_seed(123)  # other randomness in between changes nothing
    b = hf.self_generated_tokens(model, tokenizer, num_samples=5, length=10, seed=3, batch_size=2)
    assert a.shape == (5 * 11,) and a.dtype == torch.int64 and torch.equal(a, b)
    assert (a.view(5, 11)[:, 0] == tokenizer.stoi["\n"]).all()
    assert not torch.equal(a, hf.self_generated_tokens(model, tokenizer, num_samples=5, length=10, seed=4,
                                                       batch_size=2))
    with pytest.raises(ValueError, match="context of 16"):
        hf.self_generated_tokens(model, tokenizer, num_samples=2, length=16)
    with pytest.raises(ValueError, match="positive int"):
        hf.self_generated_tokens(model, tokenizer, num_samples=0)


def test_wants_real_model(monkeypatch):
    monkeypatch.delenv(hf.REAL_MODEL_ENV_VAR, raising=False)
    assert hf.wants_real_model("cpu") is False and hf.wants_real_model("cpu", use_real=True) is True
    monkeypatch.setenv(hf.REAL_MODEL_ENV_VAR, "1")
    assert hf.wants_real_model("cpu") is True and hf.wants_real_model("cpu", use_real=False) is False
    monkeypatch.setenv(hf.REAL_MODEL_ENV_VAR, "maybe")
    with pytest.raises(ValueError, match="1 or 0"):
        hf.wants_real_model("cpu")
    with pytest.raises(TypeError, match="True, False or None"):
        hf.wants_real_model("cpu", use_real="yes")


@pytest.mark.parametrize("offline", ["1", ""])
def test_real_model_without_network_fails_with_one_clear_message(monkeypatch, tmp_path, offline):
    monkeypatch.setenv("HF_HUB_OFFLINE", offline)
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache: nothing to load locally
    with pytest.raises(hf.RealModelUnavailable, match="'gpt2'") as info:
        hf.load_real_model("gpt2")
    message = str(info.value)
    assert "\n" not in message and len(message) < 400 and info.value.__cause__ is None
    assert info.value.__suppress_context__  # no hub traceback chained underneath
    with pytest.raises(TypeError, match="model id or folder"):
        hf.load_real_model("")


@pytest.fixture
def small_fallback(monkeypatch):
    """The stand-in with a 3-step pre-training, so tests of its cache take a second."""
    monkeypatch.setitem(hf.FALLBACK_TRAINING, "num_steps", 3)
    monkeypatch.setitem(hf.FALLBACK_TRAINING, "warmup_steps", 1)
    monkeypatch.setitem(hf.FALLBACK_TRAINING, "num_sentences", 50)


def test_offline_fallback_is_taken_with_one_clear_line(monkeypatch, tmp_path, capsys, small_fallback):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv(hf.REAL_MODEL_ENV_VAR, raising=False)
    loaded = hf.load_causal_lm("gpt2", "cpu", use_real=True, seed=0)
    lines = capsys.readouterr().out.strip().splitlines()
    assert not loaded.is_real and isinstance(loaded.tokenizer, fk.CharTokenizer)
    assert len(lines) == 1 and lines[0].startswith("Could not load gpt2:") and "offline stand-in" in lines[0]
    assert lines[0] == loaded.message
    not_asked = hf.load_causal_lm("gpt2", "cpu", seed=0)  # on a CPU the real model is opt-in
    assert not not_asked.is_real and not_asked.message.startswith("Not loading gpt2 on the CPU unless asked")
    texts = hf.lesson_texts(not_asked, seed=0)
    assert set(texts) == {"old", "new_train", "new_test"} and all(t.dtype == torch.int64 for t in texts.values())


def test_stand_in_is_cached_atomically_and_rebuilt_when_corrupt(small_fallback):
    path = hf.fallback_cache_path(0)
    first = hf.pretrained_tiny_gpt2(0)
    assert path.exists() and not list(path.parent.glob("*.tmp"))
    payload = torch.load(path, weights_only=True)
    assert set(payload) == {"recipe", "state_dict"}
    again = hf.pretrained_tiny_gpt2(0)
    for key, value in first.state_dict().items():
        assert torch.equal(value, again.state_dict()[key])
    path.write_bytes(b"not a checkpoint")
    rebuilt = hf.pretrained_tiny_gpt2(0)  # a corrupt file is trained again, never a crash
    torch.testing.assert_close(rebuilt.state_dict(), first.state_dict())
    assert path.stat().st_size > 1000
    assert sum(p.numel() for p in first.parameters()) > 100_000  # the real stand-in's size


def test_local_model_folder_loads_as_a_real_model(tmp_path):
    """The real-model path, offline: a GPT-2 and a character tokenizer saved to a folder."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {ch: i for i, ch in enumerate(fk.ALPHABET[1:])} | {"<|endoftext|>": VOCAB - 1}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<|endoftext|>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|endoftext|>",
                                        eos_token="<|endoftext|>", unk_token="<|endoftext|>")
    model = tiny(n_positions=32)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded = hf.load_causal_lm(str(tmp_path), "cpu", use_real=True, verbose=False)
    assert loaded.is_real and loaded.message.startswith("Loaded the real model")
    assert torch.equal(hf.encode(loaded.tokenizer, "la ma"), torch.tensor([vocab[c] for c in "la ma"]))
    assert hf.decode(loaded.tokenizer, hf.encode(loaded.tokenizer, "la ma")).replace(" ", "") == "lama"
    samples = hf.self_generated_tokens(loaded.model, loaded.tokenizer, num_samples=2, length=8, seed=0)
    assert samples.shape == (18,) and int(samples[0]) == VOCAB - 1  # started from the end-of-text token
    assert math.isfinite(hf.text_loss(loaded.model, samples, 8))
