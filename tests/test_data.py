"""Digits task streams: shapes, ranges, permutations, class splits, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import forgetkit as fk
from forgetkit.data import Task, batches, check_xy, load_digits_split, permute_pixels

NUM_DIGITS = 1797


def test_load_digits_split_shapes_ranges_and_fixed_split() -> None:
    X_train, y_train, X_test, y_test = load_digits_split()
    num_test = round(0.3 * NUM_DIGITS)
    assert X_train.shape == (NUM_DIGITS - num_test, 64) and X_test.shape == (num_test, 64)
    assert y_train.shape == (NUM_DIGITS - num_test,) and y_test.shape == (num_test,)
    assert X_train.dtype == torch.float32 and y_train.dtype == torch.int64
    assert float(X_train.min()) == 0.0 and float(X_train.max()) == 1.0
    assert set(y_train.tolist()) == set(range(10)) == set(y_test.tolist())
    torch.manual_seed(123)  # the split does not follow the global seed
    again = load_digits_split()
    assert torch.equal(again[0], X_train) and torch.equal(again[3], y_test)
    X_train[0] = 5.0  # a returned tensor is a copy: changing it leaves the next call alone
    assert float(load_digits_split()[0].max()) == 1.0
    assert load_digits_split(0.5)[2].shape == (round(0.5 * NUM_DIGITS), 64)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1, float("nan")])
def test_load_digits_split_bad_fraction(fraction) -> None:
    with pytest.raises(ValueError, match=r"test_fraction must be a finite number in \(0, 1\)"):
        load_digits_split(fraction)
    with pytest.raises(TypeError, match="test_fraction"):
        load_digits_split("0.3")


def test_task_repr_names_sizes_not_tensors() -> None:
    text = repr(fk.digits_task())
    assert text == "Task('digits', train (1258, 64), test (539, 64), classes 0-9)"
    assert "classes [5, 7]" in repr(fk.split_digits(((5, 7),))[0])


def test_digits_task_holds_all_ten_classes() -> None:
    task = fk.digits_task("plain")
    assert isinstance(task, Task) and task.name == "plain"
    assert task.classes == list(range(10))
    with pytest.raises(AttributeError, match="cannot assign"):
        task.name = "changed"  # tasks are frozen


def test_permuted_digits_task0_identity_and_tasks_differ() -> None:
    tasks = fk.permuted_digits(3, seed=0)
    base = fk.digits_task()
    assert [t.name for t in tasks] == ["task 0", "task 1", "task 2"]
    assert torch.equal(tasks[0].X_train, base.X_train) and torch.equal(tasks[0].X_test, base.X_test)
    for t in tasks[1:]:
        assert torch.equal(t.y_train, base.y_train) and torch.equal(t.y_test, base.y_test)  # same labels
        assert not torch.equal(t.X_train, base.X_train)
        # the same pixels, reordered: every image keeps its multiset of intensities
        assert torch.equal(t.X_train.sort(dim=1).values, base.X_train.sort(dim=1).values)
    assert not torch.equal(tasks[1].X_train, tasks[2].X_train)


def test_permuted_digits_follows_the_seed() -> None:
    a, b, c = fk.permuted_digits(2, seed=1), fk.permuted_digits(2, seed=1), fk.permuted_digits(2, seed=2)
    assert torch.equal(a[1].X_train, b[1].X_train)
    assert not torch.equal(a[1].X_train, c[1].X_train)
    shuffled = fk.permuted_digits(1, seed=1, first_identity=False)[0]
    assert not torch.equal(shuffled.X_train, fk.digits_task().X_train)


@pytest.mark.parametrize("num_tasks, error", [(0, ValueError), (-1, ValueError), (1.5, TypeError), ("2", TypeError)])
def test_permuted_digits_bad_num_tasks(num_tasks, error) -> None:
    with pytest.raises(error, match="num_tasks must be a positive int"):
        fk.permuted_digits(num_tasks)


def test_permute_pixels_reorders_columns() -> None:
    task = fk.digits_task()
    perm = torch.arange(63, -1, -1)
    flipped = permute_pixels(task, perm, name="flipped")
    assert flipped.name == "flipped"
    assert torch.equal(flipped.X_test, task.X_test.flip(1))
    assert permute_pixels(task, perm).name == "digits-permuted"


@pytest.mark.parametrize("perm", [torch.arange(63), torch.zeros(64, dtype=torch.int64),
                                  torch.arange(1, 65), torch.arange(64).view(8, 8)])
def test_permute_pixels_rejects_non_permutations(perm: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="each of 0..63 once"):
        permute_pixels(fk.digits_task(), perm)


@pytest.mark.parametrize("perm", [list(range(64)), torch.arange(64.0), torch.ones(64, dtype=torch.bool)])
def test_permute_pixels_rejects_wrong_types(perm) -> None:
    with pytest.raises(TypeError, match="permutation must be an integer torch tensor"):
        permute_pixels(fk.digits_task(), perm)


def test_permute_pixels_accepts_any_integer_dtype() -> None:
    task = fk.digits_task()
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(0))
    assert torch.equal(permute_pixels(task, perm.int()).X_train, permute_pixels(task, perm).X_train)


def test_split_digits_keeps_labels_by_default() -> None:
    first, second = fk.split_digits()
    assert first.classes == [0, 1, 2, 3, 4] and second.classes == [5, 6, 7, 8, 9]
    assert set(first.y_test.tolist()) == {0, 1, 2, 3, 4}
    assert first.name == "digits 0,1,2,3,4"
    X_train, y_train, _, _ = load_digits_split()
    assert len(first.y_train) + len(second.y_train) == len(y_train)
    assert torch.equal(first.X_train, X_train[y_train < 5])


def test_split_digits_relabel_maps_each_group_to_0_k() -> None:
    (plain,) = fk.split_digits(((7, 3),))
    (relabelled,) = fk.split_digits(((7, 3),), relabel=True)
    assert relabelled.classes == [0, 1]
    # 7 -> 0 and 3 -> 1, in the order the group lists them
    assert torch.equal(relabelled.y_train, (plain.y_train == 3).long())
    assert torch.equal(relabelled.y_test, (plain.y_test == 3).long())
    assert torch.equal(relabelled.X_train, plain.X_train)
    tasks = fk.split_digits(((0, 1), (2, 3), (4, 5, 6)), relabel=True)
    assert [t.classes for t in tasks] == [[0, 1], [0, 1], [0, 1, 2]]


@pytest.mark.parametrize("groups, message", [
    ((), "at least one group"),
    (((0, 1), ()), "at least one class"),
    (((0, 10),), r"every class must be an int in \[0, 9\], got 10"),
    (((-1, 2),), r"every class must be an int in \[0, 9\], got -1"),
    (((0, 1), (1, 2)), "class 1 appears in more than one group"),
    (((3, 3),), "class 3 appears in more than one group"),
])
def test_split_digits_bad_groups(groups, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fk.split_digits(groups)


def test_split_digits_type_errors() -> None:
    with pytest.raises(TypeError, match="class_groups must hold groups of classes"):
        fk.split_digits((0, 1))
    with pytest.raises(TypeError, match="every class must be an int"):
        fk.split_digits(((1.5,),))
    with pytest.raises(TypeError, match="every class must be an int"):
        fk.split_digits(((True, 2),))
    assert fk.split_digits(((np.int64(0), 1),))[0].classes == [0, 1]


def test_task_subset() -> None:
    task = fk.digits_task()
    small = task.subset(50, seed=0)
    assert small.X_train.shape == (50, 64) and small.y_train.shape == (50,)
    assert torch.equal(small.X_test, task.X_test) and small.name == task.name
    # every chosen example is a row of the original training set, with its own label, none twice
    matches = (small.X_train[:, None, :] == task.X_train[None, :, :]).all(-1)  # (50, N)
    rows = matches.float().argmax(1)
    assert matches.any(1).all() and torch.equal(task.y_train[rows], small.y_train)
    assert len(set(rows.tolist())) == 50
    assert torch.equal(task.subset(50, seed=0).X_train, small.X_train)
    assert not torch.equal(task.subset(50, seed=1).X_train, small.X_train)
    assert torch.equal(task.subset(len(task.y_train)).y_train, task.y_train)  # all of them, in order


@pytest.mark.parametrize("num_train, error", [(0, ValueError), (-3, ValueError), (10**6, ValueError),
                                              (2.5, TypeError), ("10", TypeError), (True, TypeError)])
def test_task_subset_bad_size(num_train, error) -> None:
    task = fk.digits_task()
    with pytest.raises(error, match=rf"num_train must be an int in \[1, {len(task.y_train)}\]"):
        task.subset(num_train)


def test_task_to_moves_every_tensor() -> None:
    task = fk.split_digits(((0, 1),))[0]
    same = task.to("cpu")
    assert torch.equal(same.X_train, task.X_train) and same.name == task.name
    moved = task.to(torch.device("meta"))  # a device every machine has, no GPU needed
    assert all(t.device.type == "meta" for t in (moved.X_train, moved.y_train, moved.X_test, moved.y_test))
    assert moved.X_train.shape == task.X_train.shape


def test_batches_cover_each_example_once_per_epoch() -> None:
    X, y = torch.arange(10.0)[:, None], torch.arange(10)
    stream = batches(X, y, 4, torch.Generator().manual_seed(0))
    epoch = [next(stream) for _ in range(3)]
    assert [len(b[1]) for b in epoch] == [4, 4, 2]
    assert sorted(torch.cat([b[1] for b in epoch]).tolist()) == list(range(10))
    assert all(torch.equal(xb[:, 0].long(), yb) for xb, yb in epoch)  # rows stay paired
    assert len(next(stream)[1]) == 4  # endless: a new epoch starts


@pytest.mark.parametrize("batch_size, error", [(0, ValueError), (-1, ValueError), (2.0, TypeError)])
def test_batches_bad_batch_size(batch_size, error) -> None:
    with pytest.raises(error, match="batch_size must be a positive int"):
        next(batches(torch.zeros(3, 2), torch.zeros(3, dtype=torch.int64), batch_size, torch.Generator()))


def test_check_xy_bad_input() -> None:
    check_xy(torch.zeros(3, 2), torch.zeros(3, dtype=torch.int64))
    with pytest.raises(TypeError, match="X and y must be torch tensors, got list"):
        check_xy([[0.0]], torch.zeros(1))
    with pytest.raises(ValueError, match="X is empty"):
        check_xy(torch.zeros(0, 4), torch.zeros(0))
    with pytest.raises(ValueError, match=r"y must have shape \(3,\)"):
        check_xy(torch.zeros(3, 2), torch.zeros(2))
    with pytest.raises(ValueError, match=r"y must have shape \(3,\)"):
        check_xy(torch.zeros(3, 2), torch.zeros(3, 1))


def test_fast_digits_reader_matches_scikit_learn():
    import numpy as np
    from sklearn.datasets import load_digits

    from forgetkit.data import _read_digits

    pixels, labels = _read_digits()
    reference = load_digits()
    assert np.array_equal(pixels, reference.data) and np.array_equal(labels, reference.target)
