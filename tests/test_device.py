"""Device choice and the CPU thread count."""

from __future__ import annotations

import pytest
import torch

import forgetkit as fk
from forgetkit.device import THREADS_ENV_VAR, cpu_threads, describe_device, pick_device

NO_ACCELERATOR = not torch.cuda.is_available() and not (
    getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available())


@pytest.fixture(autouse=True)
def _restore_threads(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(THREADS_ENV_VAR, raising=False)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.skipif(not NO_ACCELERATOR, reason="this machine has an accelerator")
def test_pick_device_is_the_cpu_without_a_gpu() -> None:
    assert pick_device() == torch.device("cpu")
    assert fk.pick_device is pick_device


def test_explicit_cpu_in_any_spelling() -> None:
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cuda_without_a_gpu_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="no CUDA GPU is available"):
        pick_device("cuda")
    with pytest.raises(ValueError, match="no CUDA GPU is available"):
        describe_device(torch.device("cuda"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_is_picked_when_there_is_a_gpu() -> None:
    assert pick_device().type == "cuda"
    assert describe_device(torch.device("cuda")).startswith("cuda (")


def test_unknown_device_name_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown device 'gpu0'"):
        pick_device("gpu0")


@pytest.mark.parametrize("device", [0, 1.5, ["cpu"]])
def test_device_of_the_wrong_type(device) -> None:
    with pytest.raises(TypeError, match="device must be a str or torch.device"):
        pick_device(device)


def test_thread_count_default_env_and_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    pick_device("cpu")
    assert torch.get_num_threads() == 1
    monkeypatch.setenv(THREADS_ENV_VAR, "2")
    pick_device("cpu")
    assert torch.get_num_threads() == 2
    pick_device("cpu", num_threads=1)  # the argument wins over the environment
    assert torch.get_num_threads() == 1
    assert cpu_threads() == 2 and cpu_threads(3) == 3
    monkeypatch.setenv(THREADS_ENV_VAR, " ")
    assert cpu_threads() == 1


@pytest.mark.parametrize("raw", ["two", "1.5"])
def test_bad_threads_env_value(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv(THREADS_ENV_VAR, raw)
    with pytest.raises(ValueError, match="FORGETKIT_THREADS must be a positive integer"):
        pick_device("cpu")


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-2, ValueError), (1.5, TypeError), (True, TypeError)])
def test_bad_thread_count(monkeypatch: pytest.MonkeyPatch, bad, error) -> None:
    with pytest.raises(error, match="num_threads must be a positive int"):
        cpu_threads(bad)
    monkeypatch.setenv(THREADS_ENV_VAR, "0")
    with pytest.raises(ValueError, match="num_threads must be a positive int"):
        cpu_threads()


def test_describe_device_on_the_cpu() -> None:
    torch.set_num_threads(1)
    assert describe_device(torch.device("cpu")) == "cpu (1 thread)"
    torch.set_num_threads(2)
    assert describe_device("cpu") == "cpu (2 threads)"
