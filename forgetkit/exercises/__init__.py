"""Exercise checks: test a learner's function on hidden cases, then hand back something that works.

Every exercise in the course ends with a line such as::

    count_trainable = fk.exercises.check_count_trainable(count_trainable)

The check runs the learner's function and forgetkit's reference implementation on the same
hidden cases and prints PASSED, NOT DONE or WRONG (with a hint); unless it passed, it returns the
reference implementation, so the rest of the lesson still runs. ``fk.exercises.summary()`` lists
every verdict of the kernel.

- ``framework``: ``check_function`` (one verdict path for every check), ``Verdicts``, ``close``;
- ``lessons``: the course's checks, one per exercise, in lesson order.
"""

from .framework import VERDICTS, Verdicts, check_function, close, summary
from .lessons import (
    check_agem_project,
    check_count_trainable,
    check_evaluate_along_line,
    check_ewc_penalty,
    check_interpolation_sweep,
    check_linear_cka,
    check_lora_linear,
    check_old_loss_at,
    check_perplexity,
    check_recipe,
    check_reservoir,
)

__all__ = [
    "VERDICTS", "Verdicts", "check_agem_project", "check_count_trainable", "check_evaluate_along_line",
    "check_ewc_penalty", "check_function", "check_interpolation_sweep", "check_linear_cka", "check_lora_linear",
    "check_old_loss_at", "check_perplexity",
    "check_recipe", "check_reservoir", "close", "summary",
]
