"""forgetkit.replay: Algorithm R, the reservoir buffer (plain and per-task balanced), the replay mixer."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import forgetkit as fk
from forgetkit import replay


def inclusion_frequencies(n: int, capacity: int, trials: int) -> np.ndarray:
    counts = np.zeros(n)
    for t in range(trials):
        for item in replay.reservoir_sample(range(n), capacity, random.Random(t)):
            counts[item] += 1
    return counts / trials


def test_reservoir_sample_is_uniform() -> None:
    n, capacity, trials = 12, 4, 4000
    freq = inclusion_frequencies(n, capacity, trials)
    p = capacity / n
    sd = np.sqrt(p * (1 - p) / trials)
    assert np.abs(freq - p).max() < 5 * sd, f"inclusion frequencies {freq} should all be near {p}"


def test_reservoir_sample_capacity_and_short_streams() -> None:
    rng = random.Random(0)
    assert replay.reservoir_sample(range(3), 5, rng) == [0, 1, 2]
    sample = replay.reservoir_sample(iter(range(100)), 7, rng)
    assert len(sample) == 7 and len(set(sample)) == 7 and all(0 <= s < 100 for s in sample)
    assert replay.reservoir_sample([], 3, rng) == []


def test_reservoir_sample_bad_input() -> None:
    with pytest.raises(ValueError, match="capacity"):
        replay.reservoir_sample(range(3), 0, random.Random(0))
    with pytest.raises(TypeError, match="random.Random"):
        replay.reservoir_sample(range(3), 2, 0)


def test_reservoir_slot_by_hand() -> None:
    rng = random.Random(0)
    assert [replay.reservoir_slot(n, 3, rng) for n in (1, 2, 3)] == [0, 1, 2]
    slots = [replay.reservoir_slot(10, 3, random.Random(s)) for s in range(2000)]
    kept = [s for s in slots if s is not None]
    assert abs(len(kept) / 2000 - 0.3) < 0.05 and set(kept) == {0, 1, 2}


def data(n: int, label: int, dim: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    X = torch.arange(n * dim, dtype=torch.float32).reshape(n, dim)
    return X, torch.full((n,), label)


def test_buffer_capacity_invariant_and_contents() -> None:
    buffer = replay.ReservoirBuffer(10, seed=0)
    X, y = data(4, 1)
    buffer.add(X, y)
    assert len(buffer) == 4 and buffer.num_seen == 4
    stored_X, stored_y, tasks = buffer.tensors()
    assert torch.equal(stored_X, X) and torch.equal(stored_y, y) and tasks.tolist() == [0] * 4
    for k in range(5):
        buffer.add(*data(7, k), task=k)
        assert len(buffer) == min(10, buffer.num_seen)
    assert buffer.num_seen == 39


def test_buffer_is_a_uniform_sample_of_a_stream() -> None:
    n, capacity, trials = 20, 5, 1500
    counts = np.zeros(n)
    X = torch.arange(n, dtype=torch.float32).reshape(n, 1)
    for t in range(trials):
        buffer = replay.ReservoirBuffer(capacity, seed=t).add(X, torch.zeros(n, dtype=torch.int64))
        counts[buffer.tensors()[0].flatten().long().numpy()] += 1
    p = capacity / n
    assert np.abs(counts / trials - p).max() < 5 * np.sqrt(p * (1 - p) / trials)


def test_buffer_same_seed_same_contents() -> None:
    X, y = torch.randn(50, 2), torch.randint(0, 3, (50,))
    a = replay.ReservoirBuffer(8, seed=3).add(X, y)
    b = replay.ReservoirBuffer(8, seed=3).add(X, y)
    assert torch.equal(a.tensors()[0], b.tensors()[0])
    assert torch.equal(a.sample(5)[0], b.sample(5)[0])


def test_unbalanced_buffer_follows_the_stream_balanced_one_shares_equally() -> None:
    plain = replay.ReservoirBuffer(12, seed=0)
    balanced = replay.ReservoirBuffer(12, seed=0, per_task_balance=True)
    for buffer in (plain, balanced):
        buffer.add(*data(10, 0), task=0)
        buffer.add(*data(200, 1), task=1)  # a long second task
        buffer.add(*data(30, 2), task=2)
    plain_tasks = plain.tensors()[2]
    assert (plain_tasks == 1).sum() > 6, "a plain reservoir is dominated by the long task"
    balanced_tasks = balanced.tensors()[2]
    assert [(balanced_tasks == t).sum().item() for t in range(3)] == [4, 4, 4]
    assert len(balanced) == 12
    balanced.add(*data(5, 3), task=3)
    assert [(balanced.tensors()[2] == t).sum().item() for t in range(4)] == [3, 3, 3, 3]


def test_balanced_quota_gives_the_remainder_to_the_first_tasks() -> None:
    buffer = replay.ReservoirBuffer(10, seed=0, per_task_balance=True)
    for t in range(3):
        buffer.add(*data(20, t), task=t)
    assert [buffer.quota(t) for t in range(3)] == [4, 3, 3]
    assert len(buffer) == 10
    with pytest.raises(ValueError, match="has not been added"):
        buffer.quota(7)


def test_sample_shapes_and_replacement() -> None:
    buffer = replay.ReservoirBuffer(5, seed=0).add(*data(5, 2))
    X, y = buffer.sample(3)
    assert X.shape == (3, 3) and y.shape == (3,) and len(set(X[:, 0].tolist())) == 3
    X, y = buffer.sample(12)  # more than stored: with replacement
    assert X.shape == (12, 3)
    assert buffer.sample(0)[0].shape == (0, 3)
    with pytest.raises(ValueError, match="without replacement"):
        buffer.sample(6, replace=False)


def test_buffer_repr_says_what_it_holds() -> None:
    buffer = replay.ReservoirBuffer(4, seed=0, per_task_balance=True)
    assert repr(buffer) == "ReservoirBuffer(capacity=4, holding 0 of 0 offered, tasks [], per_task_balance=True)"
    buffer.add(torch.zeros(10, 3), torch.zeros(10, dtype=torch.int64), task=np.int64(2))
    assert repr(buffer) == "ReservoirBuffer(capacity=4, holding 4 of 10 offered, tasks [2], per_task_balance=True)"


def test_buffer_bad_input() -> None:
    with pytest.raises(ValueError, match="capacity"):
        replay.ReservoirBuffer(0)
    with pytest.raises(TypeError, match="per_task_balance"):
        replay.ReservoirBuffer(3, per_task_balance="yes")
    buffer = replay.ReservoirBuffer(3, seed=0)
    with pytest.raises(ValueError, match="empty"):
        buffer.sample(1)
    with pytest.raises(ValueError, match="y must have shape"):
        buffer.add(torch.zeros(3, 2), torch.zeros(2))
    with pytest.raises(TypeError, match="task"):
        buffer.add(torch.zeros(3, 2), torch.zeros(3), task="a")
    with pytest.raises(TypeError, match="task"):
        buffer.add(torch.zeros(3, 2), torch.zeros(3), task=True)
    buffer.add(torch.zeros(3, 2), torch.zeros(3))
    with pytest.raises(ValueError, match="do not match"):
        buffer.add(torch.zeros(3, 4), torch.zeros(3))
    with pytest.raises(ValueError, match="n must be"):
        buffer.sample(-1)


def test_replay_count_and_mixer() -> None:
    assert replay.replay_count(64, 0.0) == 0
    assert replay.replay_count(64, 0.2) == 16  # 16 / (64 + 16) = 0.2
    assert replay.replay_count(30, 0.5) == 30
    with pytest.raises(ValueError, match="ratio"):
        replay.replay_count(64, 1.0)
    with pytest.raises(ValueError, match="batch_size"):
        replay.replay_count(0, 0.5)
    buffer = replay.ReservoirBuffer(6, seed=0).add(*data(6, 4))
    extra = replay.replay_mixer(buffer, batch_size=12, ratio=0.25)
    X, y = extra()
    assert X.shape == (4, 3) and torch.all(y == 4)
    with pytest.raises(ValueError, match="empty"):
        replay.replay_mixer(replay.ReservoirBuffer(2), 8, 0.5)
    with pytest.raises(TypeError, match="ReservoirBuffer"):
        replay.replay_mixer([1, 2], 8, 0.5)


def test_mixer_plugs_into_fit_and_replays_old_examples() -> None:
    torch.manual_seed(0)
    model = fk.MLP((3, 4, 5))
    buffer = replay.ReservoirBuffer(4, seed=0).add(*data(4, 4))
    seen_batches = []

    def loss_fn(m, X, y):
        seen_batches.append(y.clone())
        return torch.nn.functional.cross_entropy(m(X), y)

    X_new, y_new = torch.rand(8, 3), torch.zeros(8, dtype=torch.int64)
    fk.fit(model, X_new, y_new, num_steps=3, batch_size=8, lr=0.1, loss_fn=loss_fn, progress=False,
           extra_batch=replay.replay_mixer(buffer, 8, 1 / 3))
    assert all(len(b) == 12 and (b == 4).sum() == 4 for b in seen_batches)


# --- the lesson 07 exercise check -------------------------------------------------------------------------


def test_check_reservoir(capsys) -> None:
    from forgetkit.exercises import check_reservoir

    def not_done(stream, capacity, rng):
        raise NotImplementedError

    def first_items(stream, capacity, rng):  # right size, but not random at all
        return list(stream)[:capacity]

    def off_by_one(stream, capacity, rng):  # accepts item n with probability capacity / (n - 1)
        sample = []
        for n, item in enumerate(stream, start=1):
            if len(sample) < capacity:
                sample.append(item)
            else:
                j = rng.randrange(n - 1)
                if j < capacity:
                    sample[j] = item
        return sample

    def keeps_too_many(stream, capacity, rng):
        return list(stream)

    def correct(stream, capacity, rng):
        sample = []
        for n, item in enumerate(stream, start=1):
            if n <= capacity:
                sample.append(item)
            elif rng.random() < capacity / n:
                sample[rng.randrange(capacity)] = item
        return sample

    assert check_reservoir(not_done) is replay.reservoir_sample
    assert "NOT DONE" in capsys.readouterr().out
    for wrong in (first_items, off_by_one, keeps_too_many):
        assert check_reservoir(wrong) is replay.reservoir_sample, wrong.__name__
        assert "WRONG" in capsys.readouterr().out
    assert check_reservoir(correct) is correct, "another correct Algorithm R (other random draws) must pass"
    assert "PASSED" in capsys.readouterr().out
    assert check_reservoir(replay.reservoir_sample) is replay.reservoir_sample
