"""Seeding: one seed (argument, else $FORGETKIT_SEED, else 0) makes every run repeat exactly."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import forgetkit as fk
from forgetkit.seeding import DEFAULT_SEED, SEED_ENV_VAR, get_seed, make_generator, seed_everything

torch.set_num_threads(1)  # as fk.pick_device() does: tiny models train far faster on one thread


@pytest.fixture(autouse=True)
def _no_seed_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SEED_ENV_VAR, raising=False)


def test_get_seed_argument_env_and_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert get_seed() == DEFAULT_SEED == 0
    assert get_seed(7) == 7
    assert get_seed(np.int64(9)) == 9 and type(get_seed(np.int64(9))) is int
    monkeypatch.setenv(SEED_ENV_VAR, " 42 ")
    assert get_seed() == 42
    assert get_seed(3) == 3  # an explicit seed wins over the environment
    monkeypatch.setenv(SEED_ENV_VAR, "")
    assert get_seed() == DEFAULT_SEED


@pytest.mark.parametrize("raw", ["abc", "1.5", "0x10", "seven"])
def test_bad_env_value_is_a_value_error(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv(SEED_ENV_VAR, raw)
    with pytest.raises(ValueError, match="FORGETKIT_SEED must be an integer"):
        get_seed()
    with pytest.raises(ValueError, match="FORGETKIT_SEED must be an integer"):
        seed_everything()


def test_env_value_out_of_range(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SEED_ENV_VAR, "-1")
    with pytest.raises(ValueError, match=r"seed must be an int in \[0, 4294967295\]"):
        get_seed()


@pytest.mark.parametrize("seed", [1.0, "3", True, [1]])
def test_seed_of_the_wrong_type(seed) -> None:
    with pytest.raises(TypeError, match="seed must be an int"):
        get_seed(seed)


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_seed_out_of_range(seed: int) -> None:
    with pytest.raises(ValueError, match=r"seed must be an int in \[0, 4294967295\]"):
        get_seed(seed)
    assert get_seed(2**32 - 1) == 2**32 - 1


def _draw() -> tuple[float, float, list[float]]:
    return random.random(), float(np.random.rand()), torch.rand(3).tolist()


def test_seed_everything_same_seed_same_numbers() -> None:
    assert seed_everything(5) == 5
    first = _draw()
    seed_everything(5)
    assert _draw() == first
    seed_everything(6)
    assert _draw() != first


def test_seed_everything_reads_the_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    seed_everything(11)
    expected = _draw()
    monkeypatch.setenv(SEED_ENV_VAR, "11")
    assert seed_everything() == 11
    assert _draw() == expected


def test_make_generator_ignores_global_state() -> None:
    torch.manual_seed(0)
    a = torch.rand(4, generator=make_generator(3))
    torch.rand(100)  # consume global randomness: the generator must not care
    b = torch.rand(4, generator=make_generator(3))
    assert torch.equal(a, b)
    assert not torch.equal(a, torch.rand(4, generator=make_generator(4)))
    assert isinstance(make_generator(), torch.Generator)


def test_two_fits_from_the_same_seed_give_identical_weights() -> None:
    X = torch.rand(40, 6, generator=make_generator(1))
    y = (X[:, 0] > X[:, 1]).long()

    def run(seed: int) -> dict[str, torch.Tensor]:
        seed_everything(seed)
        model = fk.MLP((6, 8, 2))
        fk.fit(model, X, y, num_steps=15, lr=0.2, batch_size=8, seed=seed, progress=False)
        return model.state_dict()

    a, b, c = run(2), run(2), run(3)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
