"""The cached base LM: atomic writes, safe loads, rebuilds of bad files, fresh copies.

Every test uses its own cache folder and a tiny training recipe (5 steps), so nothing here
pre-trains for real.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

import forgetkit as fk
from forgetkit import pretrained
from forgetkit.models import TinyLM

torch.set_num_threads(1)  # as fk.pick_device() does

TINY_RECIPE = dict(num_sentences=50, num_steps=5, lr=1e-2, batch_size=16)
TINY_CONFIG = fk.TinyLMConfig(vocab_size=len(fk.ALPHABET), block_size=16, n_layer=1, n_head=2, n_embd=16)


@pytest.fixture(autouse=True)
def tiny_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv(pretrained.CACHE_ENV_VAR, str(tmp_path))
    monkeypatch.delenv("FORGETKIT_SEED", raising=False)
    monkeypatch.setattr(pretrained, "BASE_TRAINING", dict(TINY_RECIPE))
    monkeypatch.setattr(pretrained, "BASE_CONFIG", TINY_CONFIG)
    return tmp_path


@pytest.fixture
def train_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Counts calls of ``train_base_lm`` (still training for real, with the tiny recipe)."""
    calls: list[tuple] = []
    real = pretrained.train_base_lm

    def counting(language, seed=None, progress=None):
        calls.append((language, seed))
        return real(language, seed, progress)

    monkeypatch.setattr(pretrained, "train_base_lm", counting)
    return calls


def _model_with(state: dict) -> TinyLM:
    model = TinyLM(pretrained.BASE_CONFIG)
    model.load_state_dict(state)
    return model


def forbid_training(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("train_base_lm was called, but the model should have come from the cache")

    monkeypatch.setattr(pretrained, "train_base_lm", fail)


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_cache_dir_from_env_or_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert pretrained.cache_dir() == tmp_path and fk.cache_dir() == tmp_path
    monkeypatch.delenv(pretrained.CACHE_ENV_VAR)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert pretrained.cache_dir() == tmp_path / "home" / ".cache" / "forgetkit"


def test_cache_path_names_language_seed_and_recipe(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = pretrained.cache_path("french", 3)
    assert path.parent == tmp_path and path.name.startswith("tinylm-french-seed3-") and path.suffix == ".pt"
    assert pretrained.cache_path("french", 3) == path
    assert pretrained.cache_path("french", 4) != path and pretrained.cache_path("japanese", 3) != path
    monkeypatch.setattr(pretrained, "BASE_TRAINING", dict(TINY_RECIPE, num_steps=6))
    assert pretrained.cache_path("french", 3) != path  # another recipe, another file


def test_first_call_trains_and_writes_the_file_atomically(tiny_cache: Path, train_calls: list) -> None:
    model = fk.pretrained_lm("french", seed=0, progress=False)
    assert train_calls == [("french", 0)]
    assert isinstance(model, TinyLM) and not model.training
    assert next(model.parameters()).device == torch.device("cpu")
    assert files(tiny_cache) == [pretrained.cache_path("french", 0).name]  # no leftover .tmp file
    payload = torch.load(pretrained.cache_path("french", 0), weights_only=True)
    recipe = json.loads(payload["recipe"])
    assert recipe["training"] == TINY_RECIPE and recipe["model"] == dataclasses.asdict(TINY_CONFIG) and recipe["language"] == "french"
    assert model.config == TINY_CONFIG
    assert same_weights(model, _model_with(payload["state_dict"]))


def test_second_call_loads_without_training(monkeypatch: pytest.MonkeyPatch) -> None:
    first = fk.pretrained_lm("japanese", seed=1, progress=False)
    forbid_training(monkeypatch)
    second = fk.pretrained_lm("japanese", seed=1, progress=False)
    assert same_weights(first, second) and not second.training


def test_training_is_deterministic() -> None:
    a = pretrained.train_base_lm("french", seed=2, progress=False)
    b = pretrained.train_base_lm("french", seed=2, progress=False)
    assert same_weights(a, b)
    c = pretrained.train_base_lm("french", seed=3, progress=False)
    assert not same_weights(a, c)


def test_seed_comes_from_the_env_var(monkeypatch: pytest.MonkeyPatch, tiny_cache: Path) -> None:
    monkeypatch.setenv("FORGETKIT_SEED", "5")
    fk.pretrained_lm("french", progress=False)
    assert files(tiny_cache) == [pretrained.cache_path("french", 5).name]


def _write_and_check_rebuilt(monkeypatch: pytest.MonkeyPatch, tiny_cache: Path, train_calls: list,
                             content: bytes) -> None:
    reference = fk.pretrained_lm("french", seed=0, progress=False)
    path = pretrained.cache_path("french", 0)
    path.write_bytes(content)
    rebuilt = fk.pretrained_lm("french", seed=0, progress=False)  # no crash: rebuilt
    assert len(train_calls) == 2 and same_weights(rebuilt, reference)
    assert files(tiny_cache) == [path.name]
    forbid_training(monkeypatch)  # the rebuilt file is good again
    assert same_weights(fk.pretrained_lm("french", seed=0, progress=False), reference)


def test_garbage_file_is_rebuilt(monkeypatch: pytest.MonkeyPatch, tiny_cache: Path, train_calls: list) -> None:
    _write_and_check_rebuilt(monkeypatch, tiny_cache, train_calls, b"\x00not a torch file\xff" * 10)


def test_truncated_file_is_rebuilt(train_calls: list) -> None:
    fk.pretrained_lm("french", seed=0, progress=False)
    whole = pretrained.cache_path("french", 0).read_bytes()
    train_calls.clear()
    path = pretrained.cache_path("french", 0)
    path.write_bytes(whole[: len(whole) // 2])
    rebuilt = fk.pretrained_lm("french", seed=0, progress=False)
    assert len(train_calls) == 1 and len(path.read_bytes()) == len(whole)
    assert same_weights(rebuilt, _model_with(torch.load(path, weights_only=True)["state_dict"]))


def test_empty_file_is_rebuilt(monkeypatch: pytest.MonkeyPatch, tiny_cache: Path, train_calls: list) -> None:
    _write_and_check_rebuilt(monkeypatch, tiny_cache, train_calls, b"")


def test_stale_recipe_is_rebuilt(tiny_cache: Path, train_calls: list) -> None:
    model = fk.pretrained_lm("french", seed=0, progress=False)
    path = pretrained.cache_path("french", 0)
    stale = dict(pretrained._recipe("french", 0), training=dict(TINY_RECIPE, num_steps=999))
    torch.save({"recipe": json.dumps(stale, sort_keys=True), "state_dict": model.state_dict()}, path)
    fk.pretrained_lm("french", seed=0, progress=False)
    assert len(train_calls) == 2
    assert json.loads(torch.load(path, weights_only=True)["recipe"])["training"] == TINY_RECIPE


def test_wrong_payload_is_rebuilt(tiny_cache: Path, train_calls: list) -> None:
    path = pretrained.cache_path("french", 0)
    tiny_cache.mkdir(exist_ok=True)
    torch.save({"recipe": json.dumps(pretrained._recipe("french", 0), sort_keys=True),
                "state_dict": {"nonsense": torch.zeros(2)}}, path)
    assert isinstance(fk.pretrained_lm("french", seed=0, progress=False), TinyLM)
    assert len(train_calls) == 1


def test_returned_models_are_independent_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    first = fk.pretrained_lm("french", seed=0, progress=False)
    original = {k: v.clone() for k, v in first.state_dict().items()}
    forbid_training(monkeypatch)
    second = fk.pretrained_lm("french", seed=0, progress=False)
    with torch.no_grad():
        for p in first.parameters():
            p.add_(1.0)
    assert same_weights(second, _model_with(original))  # changing one copy leaves the others alone
    third = fk.pretrained_lm("french", seed=0, progress=False)
    assert same_weights(third, second) and third is not second


def test_cache_is_loaded_with_weights_only(monkeypatch: pytest.MonkeyPatch) -> None:
    fk.pretrained_lm("french", seed=0, progress=False)
    seen = []
    real_load = torch.load

    def spy(*args, **kwargs):
        seen.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    fk.pretrained_lm("french", seed=0, progress=False)
    assert seen and all(kwargs.get("weights_only") is True for kwargs in seen)


def test_a_failed_write_leaves_no_file(monkeypatch: pytest.MonkeyPatch, tiny_cache: Path) -> None:
    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.warns(UserWarning, match="could not cache the base model"):
        model = fk.pretrained_lm("french", seed=0, progress=False)  # the lesson still gets its model
    assert isinstance(model, fk.TinyLM)
    assert files(tiny_cache) == []  # neither a half-written file nor a .tmp


def test_cache_files_are_readable_by_everyone(tiny_cache: Path) -> None:
    fk.pretrained_lm("french", seed=0, progress=False)
    (path,) = files(tiny_cache)
    assert (tiny_cache / path).stat().st_mode & 0o777 == 0o644, "a shared cache must be readable by other users"


@pytest.mark.parametrize("language", ["klingon", "French", 3])
def test_unknown_language(monkeypatch: pytest.MonkeyPatch, language) -> None:
    forbid_training(monkeypatch)
    with pytest.raises(ValueError, match="unknown language .*: expected one of"):
        fk.pretrained_lm(language)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_bad_device_fails_before_training(monkeypatch: pytest.MonkeyPatch) -> None:
    forbid_training(monkeypatch)
    with pytest.raises(ValueError, match="no CUDA GPU is available"):
        fk.pretrained_lm("french", seed=0, device="cuda")
    with pytest.raises(TypeError, match="device must be a str or torch.device"):
        fk.pretrained_lm("french", seed=0, device=0)


def test_explicit_cpu_device() -> None:
    model = fk.pretrained_lm("french", seed=0, device="cpu", progress=False)
    assert next(model.parameters()).device == torch.device("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_device() -> None:
    model = fk.pretrained_lm("french", seed=0, device="cuda", progress=False)
    assert next(model.parameters()).device.type == "cuda"
