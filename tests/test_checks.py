"""Tests for forgetkit.checks: the one positive-int check every module uses."""

import pytest

from forgetkit.checks import check_positive_int


def test_positive_ints_pass_through():
    assert check_positive_int("batch_size", 1) == 1
    assert check_positive_int("batch_size", 64) == 64
    assert check_positive_int("chunk_size", None, allow_none=True) is None


@pytest.mark.parametrize("value", [0, -3, 2.0, "8", True, False, None])
def test_everything_else_is_refused_with_the_name(value):
    with pytest.raises(ValueError, match=r"batch_size must be a positive int, got "):
        check_positive_int("batch_size", value)


def test_allow_none_says_so_in_the_message():
    with pytest.raises(ValueError, match=r"max_windows must be a positive int or None, got 0"):
        check_positive_int("max_windows", 0, allow_none=True)
