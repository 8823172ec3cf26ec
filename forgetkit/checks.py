"""Argument checks shared by forgetkit's modules, so every one words its errors the same way."""

from __future__ import annotations


def check_positive_int(name: str, value: object, allow_none: bool = False) -> int | None:
    """Return ``value`` if it is an int >= 1 (or None when ``allow_none``); else raise ValueError.

    ``True``/``False`` are rejected although Python counts them as ints: ``batch_size=True`` is a
    mistake, not a batch of one.
    """
    if allow_none and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int{' or None' if allow_none else ''}, got {value!r}")
    return value
