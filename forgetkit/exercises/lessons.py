"""The course's exercise checks, one per exercise, in lesson order (hidden cases are built on the fly).

Every exercise ends with a line such as::

    count_trainable = fk.exercises.check_count_trainable(count_trainable)

which tests the learner's function with ``check_function`` and returns it, or forgetkit's
reference implementation when it is not done or wrong.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from ..interference import agem_project
from ..interpolation import evaluate_along_line, wise_ft, wise_ft_sweep
from ..languages import CharTokenizer, language_tokens
from ..metrics import perplexity
from ..models import MLP, TinyLM, TinyLMConfig
from ..peft import count_trainable, lora_linear
from ..regularizers import ewc_penalty
from ..replay import reservoir_sample
from ..representations import linear_cka
from .framework import Case, check_function, close


def check_count_trainable(fn: Callable[[nn.Module], int]) -> Callable[[nn.Module], int]:
    """Lesson 00: ``fn(model)`` = number of parameters (scalars) with requires_grad=True."""
    def case(sizes: tuple[int, ...], freeze_body: bool) -> Case:
        def make() -> tuple[tuple, dict]:
            model = MLP(sizes)
            if freeze_body:
                for p in model.body.parameters():
                    p.requires_grad_(False)
            return (model,), {}
        return make

    cases = [case((8, 4, 2), False), case((64, 128, 10), True), case((5, 7, 7, 3), True)]
    return check_function("count_trainable", fn, count_trainable, cases,
                          hint=["An optimizer can change exactly the parameters that PyTorch computes gradients for; "
                                "count their scalar entries, not the tensors.",
                                "sum p.numel() over model.parameters() where p.requires_grad is True."])


def check_perplexity(fn: Callable) -> Callable:
    """Lesson 01: ``fn(model, tokens)`` = exp(mean next-character loss over ``lm_windows``)."""
    def case(language: str, seed: int) -> Case:
        def make() -> tuple[tuple, dict]:
            torch.manual_seed(seed)
            config = TinyLMConfig(CharTokenizer().vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=16)
            model = TinyLM(config).eval()
            return (model, language_tokens(language, "test", 40, seed)), {}
        return make

    return check_function("perplexity", fn, perplexity, [case("french", 1), case("japanese", 2)],
                          hint=["Perplexity is e to the power of the mean next-character loss (nats); the model's forward "
                                "pass returns that loss when you give it inputs and targets.",
                                "x, y = fk.lm_windows(tokens, model.block_size); _, loss = model(x, y); "
                                "return math.exp(loss.item()) (run it under torch.no_grad())."])


def check_evaluate_along_line(fn: Callable) -> Callable:
    """Lesson 02: ``fn(model, sd_a, sd_b, alphas, eval_fns)`` = ``{name: array of fn(model) at each alpha}``
    on the line ``interpolate_state_dicts(sd_a, sd_b, alpha)``, with the model's weights restored."""
    def with_restore_flag(line_fn: Callable, model, sd_a, sd_b, alphas, eval_fns) -> dict[str, Any]:
        """What the line function returns, and whether the model holds its own weights afterwards."""
        before = {k: v.detach().clone() for k, v in model.state_dict().items()}
        out = line_fn(model, sd_a, sd_b, alphas, eval_fns)
        restored = all(torch.equal(before[k], v) for k, v in model.state_dict().items())
        return {"values": out, "model weights restored": restored}

    def case(sizes: tuple[int, ...], alphas: list[float], names: tuple[str, ...], seed: int) -> Case:
        def make() -> tuple[tuple, dict]:
            torch.manual_seed(seed)
            sd_a, sd_b = MLP(sizes).state_dict(), MLP(sizes).state_dict()
            model = MLP(sizes)  # starts at a third point, which must be there again afterwards
            X, y = torch.randn(20, sizes[0]), torch.randint(0, sizes[-1], (20,))
            fns = {"loss": lambda m: torch.nn.functional.cross_entropy(m(X), y).item(),
                   "first weight": lambda m: m.head.weight[0, 0].item(),
                   "accuracy": lambda m: (m(X).argmax(1) == y).float().mean().item()}
            return (model, sd_a, sd_b, alphas, {n: fns[n] for n in names}), {}
        return make

    cases = [case((4, 3, 2), [0.0, 0.5, 1.0], ("first weight",), 1),
             case((6, 5, 3), [0.0, 0.25, 0.5, 0.75, 1.0], ("loss", "accuracy"), 2),
             case((8, 4, 4, 3), [-0.5, 0.0, 1.0, 1.5], ("loss", "first weight"), 3)]
    return check_function("evaluate_along_line", fn, evaluate_along_line, cases, observe=with_restore_flag,
                          hint=["At each alpha, put the mixed weights into the model and evaluate every function; when you "
                                "are done, the model must hold its own weights again.",
                                "save original = copy.deepcopy(model.state_dict()); for each alpha: "
                                 "model.load_state_dict(fk.interpolate_state_dicts(sd_a, sd_b, alpha)) and append "
                                 "fn(model) for every name; return {name: np.array(values)}; finally "
                               "model.load_state_dict(original)."])


def check_agem_project(fn: Callable[[Tensor, Tensor], Tensor]) -> Callable[[Tensor, Tensor], Tensor]:
    """Lesson 03: ``fn(g, g_ref)`` = g if g . g_ref >= 0, else g - (g . g_ref / g_ref . g_ref) g_ref."""
    def case(g: list[float] | None, g_ref: list[float] | None, size: int = 0, seed: int = 0) -> Case:
        def make() -> tuple[tuple, dict]:
            if g is not None:
                return (torch.tensor(g), torch.tensor(g_ref)), {}
            generator = torch.Generator().manual_seed(seed)
            a, b = torch.randn(size, generator=generator), torch.randn(size, generator=generator)
            return (a - 2 * (a @ b).abs() / (b @ b) * b, b), {}  # a conflicting pair
        return make

    cases = [case([1.0, 2.0], [3.0, 1.0]),        # agreeing: unchanged
             case([1.0, 0.0], [0.0, 1.0]),        # orthogonal: unchanged
             case([1.0, -1.0], [0.0, 2.0]),       # conflicting: projected to [1, 0]
             case([-2.0, -4.0], [1.0, 2.0]),      # exactly opposite: projected to zero
             case(None, None, size=50, seed=7),   # conflicting, in 50 dimensions
             case([0.5, -3.0, 2.0], [1.0, 1.0, 1.0])]  # 0.5 - 3 + 2 < 0: projected
    return check_function("agem_project", fn, agem_project, cases,
                          hint=["A-GEM leaves g alone unless it conflicts with the memory gradient (a negative dot "
                                "product); then it removes only the part of g that points against g_ref.",
                                "dot = g @ g_ref; if dot >= 0 return g unchanged; else return "
                                "g - dot / (g_ref @ g_ref) * g_ref (which is orthogonal to g_ref)."])


def check_linear_cka(fn: Callable[[Tensor, Tensor], float]) -> Callable[[Tensor, Tensor], float]:
    """Lesson 04: ``fn(X, Y)`` = linear CKA of activations X (N, D1), Y (N, D2) (Kornblith et al. 2019).

    Hidden cases: random activations compared with the reference, then the invariances a CKA must
    have: an orthogonal transform of one side, an isotropic scaling, and a shift of the columns.
    """
    def case(n: int, d1: int, d2: int, seed: int, transform: str = "") -> Case:
        def make() -> tuple[tuple, dict]:
            generator = torch.Generator().manual_seed(seed)
            X = torch.randn(n, d1, generator=generator)
            Y = X @ torch.randn(d1, d2, generator=generator) + 0.5 * torch.randn(n, d2, generator=generator)
            if transform == "orthogonal":  # Y = X Q with Q orthogonal: CKA must be 1
                Q, _ = torch.linalg.qr(torch.randn(d1, d1, generator=generator, dtype=torch.float64))
                Y = (X.double() @ Q).float()
            elif transform == "scale":  # Y = 3.7 X: CKA must be 1
                Y = 3.7 * X
            elif transform == "both":  # rotating and scaling Y must not change CKA(X, Y)
                Q, _ = torch.linalg.qr(torch.randn(d2, d2, generator=generator, dtype=torch.float64))
                Y = 0.2 * (Y.double() @ Q).float()
            elif transform == "shift":  # columns far from zero mean: centre them first
                X, Y = X + 5.0, Y - 3.0 * torch.arange(d2)
            return (X, Y), {}
        return make

    cases = [case(40, 5, 3, 1), case(200, 16, 16, 2), case(64, 8, 2, 3),
             case(50, 6, 6, 4, "orthogonal"), case(30, 4, 4, 5, "scale"), case(80, 10, 7, 6, "both"),
             case(60, 5, 5, 7, "shift")]
    return check_function("linear_cka", fn, linear_cka, cases,
                          hint=["CKA compares centred activations, and it must not change when either side is rotated or "
                                "scaled as a whole: the squared cross-covariance, normalised by each side's own.",
                                "centre every column (X = X - X.mean(0), same for Y), then return "
                               "||Y^T X||_F^2 / (||X^T X||_F * ||Y^T Y||_F) as a float. Cases 1-3 are random "
                               "activations; 4 checks that Y = X @ Q (Q orthogonal) gives 1; 5 that Y = 3.7 * X "
                               "gives 1; 6 that rotating and scaling Y changes nothing; 7 shifts the columns."])


def check_lora_linear(fn: Callable) -> Callable:
    """Lesson 06: ``fn(x, weight, bias, A, B, lora_alpha)`` = x W^T + b + (lora_alpha / r) (x A^T) B^T,
    r = A.shape[0].

    Hidden cases use a non-zero B (a trained layer), an r other than lora_alpha, a 3-D input and no bias.
    """
    def case(lead: tuple[int, ...], d_in: int, d_out: int, r: int, lora_alpha: float, bias: bool, seed: int) -> Case:
        def make() -> tuple[tuple, dict]:
            generator = torch.Generator().manual_seed(seed)
            x = torch.randn(*lead, d_in, generator=generator)
            W, b = torch.randn(d_out, d_in, generator=generator), torch.randn(d_out, generator=generator)
            A, B = torch.randn(r, d_in, generator=generator), torch.randn(d_out, r, generator=generator)
            return (x, W, b if bias else None, A, B, lora_alpha), {}
        return make

    cases = [case((5,), 6, 4, 2, 4.0, True, 1),      # lora_alpha / r = 2
             case((3,), 8, 8, 3, 1.5, True, 2),      # lora_alpha / r = 0.5
             case((2, 7), 5, 3, 1, 1.0, False, 3),   # a batch of sequences, no bias
             case((4,), 10, 6, 5, 5.0, False, 4)]
    return check_function("lora_linear", fn, lora_linear, cases,
                          hint=["The output is the frozen layer's output plus a low-rank update: x goes through A (down "
                                "to r numbers), then B (back up), scaled by lora_alpha / r, with r the rows of A.",
                                "r = A.shape[0]; out = x @ weight.T + (lora_alpha / r) * (x @ A.T) @ B.T; add bias "
                                "when it is not None. Case 2 has lora_alpha != r, case 3 a 3-D x and bias None."])


def check_reservoir(fn: Callable) -> Callable:
    """Lesson 07: ``fn(stream, capacity, rng)`` = a uniform sample of min(capacity, n) items, in one pass.

    The sample is random, so the check is statistical: on hidden streams (iterators of distinct
    ints, read once) and thousands of seeded ``random.Random`` generators it checks the capacity
    invariant (exactly min(capacity, n) distinct items of the stream) and that every item's
    inclusion frequency is within 5 standard errors of capacity / n.
    """
    def statistics(sample_fn: Callable, n: int, capacity: int, trials: int, seed: int) -> dict[str, Any]:
        """Run ``sample_fn`` on ``trials`` fresh streams 0..n-1; check the invariant, count each item's inclusions."""
        counts = np.zeros(n)
        for t in range(trials):
            out = list(sample_fn(iter(range(n)), capacity, random.Random(seed * 1_000_003 + t)))
            if (len(out) != min(n, capacity) or len(set(out)) != len(out)
                    or not all(isinstance(i, int) and 0 <= i < n for i in out)):
                return {"invariant": False, "frequencies": None, "p": min(capacity, n) / n, "trials": trials,
                        "example": out}
            counts[out] += 1
        return {"invariant": True, "frequencies": counts / trials, "p": min(capacity, n) / n, "trials": trials}

    def compare(expected: dict, got: dict) -> bool:
        if not got["invariant"]:
            return False
        p, trials = expected["p"], expected["trials"]
        tolerance = 5 * math.sqrt(max(p * (1 - p), 1e-12) / trials) + 1e-9
        return bool(np.abs(got["frequencies"] - p).max() <= tolerance)

    def case(n: int, capacity: int, trials: int, seed: int) -> Case:
        return lambda: ((n, capacity, trials, seed), {})

    cases = [case(4, 6, 3, 1),          # a stream shorter than the capacity: keep everything
             case(1, 1, 3, 2),
             case(10, 3, 3000, 3),      # p = 0.3
             case(25, 5, 1500, 4),      # p = 0.2
             case(12, 11, 1500, 5)]     # p = 11/12: almost everything is kept
    return check_function("reservoir_sample", fn, reservoir_sample, cases, observe=statistics, compare=compare,
                          hint=["Each item seen so far must end up in the sample with the same probability, capacity / n: "
                                "fill the sample first, then let a new item replace a random slot with the right chance.",
                                "for the n-th item (n = 1, 2, ...): if the sample holds fewer than capacity items, "
                                 "append it; else j = rng.randrange(n) and, if j < capacity, sample[j] = item. "
                               "Read the stream once (it is an iterator) and return the list."])


def check_interpolation_sweep(fn: Callable) -> Callable:
    """Lesson 08: ``fn(model, sd_base, sd_finetuned, alphas, eval_fns)`` = ``fk.wise_ft_sweep``: every eval
    function at each WiSE-FT mixture, their mean, the best alpha, and the model left at that alpha."""
    def with_final_weights(sweep_fn: Callable, model, sd_base, sd_finetuned, alphas, eval_fns) -> dict[str, Any]:
        """What the sweep returns, and whether the model is left holding the best alpha's mixture."""
        out = sweep_fn(model, sd_base, sd_finetuned, alphas, eval_fns)
        if not isinstance(out, dict) or "best_alpha" not in out:
            return {"result": out}
        best = wise_ft(sd_base, sd_finetuned, float(out["best_alpha"]))
        at_best = all(torch.allclose(best[k], v, atol=1e-6) for k, v in model.state_dict().items())
        return {"result": out, "model left at the best alpha": at_best}

    def case(sizes: tuple[int, ...], alphas: list[float], seed: int) -> Case:
        def make() -> tuple[tuple, dict]:
            torch.manual_seed(seed)
            sd_base, sd_finetuned, model = MLP(sizes).state_dict(), MLP(sizes).state_dict(), MLP(sizes)
            X, y = torch.randn(30, sizes[0]), torch.randint(0, sizes[-1], (30,))
            X2, y2 = torch.randn(30, sizes[0]), torch.randint(0, sizes[-1], (30,))
            fns = {"old": lambda m: (m(X).argmax(1) == y).float().mean().item(),
                   "new": lambda m: -torch.nn.functional.cross_entropy(m(X2), y2).item()}
            return (model, sd_base, sd_finetuned, alphas, fns), {}
        return make

    cases = [case((4, 3, 2), [0.0, 0.5, 1.0], 1),
             case((6, 8, 3), [0.0, 0.2, 0.4, 0.6, 0.8, 1.0], 2),
             case((5, 4, 4, 3), [1.0, 0.25, 0.0], 3)]
    return check_function("interpolation_sweep", fn, wise_ft_sweep, cases, observe=with_final_weights,
                          hint=["For each alpha, evaluate the mixture of base and fine-tuned weights on every function, keep "
                                "the alpha with the best mean, and leave the model at that mixture.",
                                "for each alpha: model.load_state_dict(fk.wise_ft(sd_base, sd_finetuned, alpha)) "
                                 "and record every eval function; mean = the average over the functions at each alpha; "
                                 "best_alpha = alphas[argmax(mean)] (the first on a tie); load the best mixture into "
                               "the model before returning {name: array, 'mean': array, 'best_alpha': float}."])


def check_recipe(fn: Callable, results, targets=None) -> Callable:
    """Lesson 09: ``fn(results, targets)`` returns a recipe ``{"method", "strength", "steps"}`` that
    meets BOTH targets on the mean over the comparison's seeds.

    The recipe is evaluated for real: read from ``results`` (a ``forgetkit.capstone.Results``) when
    it was part of the comparison, else fine-tuned now under the same seeds. The verdict names the
    target it missed. Falls back to ``forgetkit.capstone.reference_recipe``.
    """
    from ..capstone import (  # loaded on first use, as fk.capstone is
        Targets,
        evaluate_recipe,
        reference_recipe,
    )

    targets = targets or Targets()

    def evaluated(choose: Callable, results, targets) -> dict:
        recipe = choose(results, targets)
        return {"recipe": recipe, "entry": evaluate_recipe(recipe, results)}

    def meets_both(expected: dict, got: dict) -> bool:
        return not targets.failures(got["entry"]["forgetting_mean"], got["entry"]["learning_mean"])

    def explain(expected: dict, got: dict) -> str:
        entry = got["entry"]
        missed = targets.failures(entry["forgetting_mean"], entry["learning_mean"])
        return (f"your recipe {got['recipe']} gives forgetting {100 * entry['forgetting_mean']:.1f}% "
                f"+- {100 * entry['forgetting_std']:.1f}, learning {100 * entry['learning_mean']:.1f}% "
                f"+- {100 * entry['learning_std']:.1f} (mean +- std over {entry['n']} seeds)"
                + ("".join(f"\n  {m}" for m in missed) if missed else ": it meets both targets"))

    return check_function("choose_recipe", fn, reference_recipe, [lambda: ((results, targets), {})],
                          observe=evaluated, compare=meets_both, explain=explain,
                          hint=["Both targets must hold at once: at most so much forgetting AND at least so much learning; "
                                "leave some room on both, since another seed moves the numbers.",
                                "a recipe is a dict such as {'method': 'ewc', 'strength': 300.0, 'steps': 12}; use "
                               "the dashboard or loop over results.summary() to find an entry with forgetting_mean "
                               "<= targets.max_forgetting and learning_mean >= targets.min_learning."])


def check_ewc_penalty(fn: Callable) -> Callable:
    """Lesson 05: ``fn(model, fisher, anchor, lam)`` = lam/2 * sum_i F_i (theta_i - anchor_i)^2,
    a scalar tensor that gradients flow through (Kirkpatrick et al., 2017)."""
    def case(sizes: tuple[int, ...], lam: float, seed: int, partial: bool) -> Case:
        def make() -> tuple[tuple, dict]:
            g = torch.Generator().manual_seed(seed)
            torch.manual_seed(seed)
            model = MLP(sizes)
            names = [n for n, _ in model.named_parameters()]
            if partial:  # a Fisher/anchor that covers only some parameters (e.g. a frozen body)
                names = [n for n in names if n.startswith("head")]
            params = dict(model.named_parameters())
            fisher = {n: torch.rand(params[n].shape, generator=g) for n in names}
            anchor = {n: params[n].detach() + 0.3 * torch.randn(params[n].shape, generator=g) for n in names}
            return (model, fisher, anchor, lam), {}
        return make

    def compare(expected: Any, got: Any) -> bool:
        return isinstance(got, Tensor) and got.requires_grad and close(expected, got.reshape(()))

    cases = [case((4, 3, 2), 1.0, 0, False), case((6, 5, 3), 7.5, 1, False), case((5, 4, 3), 0.2, 2, True)]
    return check_function("ewc_penalty", fn, ewc_penalty, cases, compare=compare,
                          hint=["Each weight is pulled back to its anchor with a spring whose stiffness is its Fisher "
                                "importance; sum the springs' energy, scaled by lam / 2, and keep it differentiable.",
                                "params = dict(model.named_parameters()); sum over the names in fisher of "
                               "(fisher[n] * (params[n] - anchor[n]) ** 2).sum(), times lam / 2. Loop over the "
                               "fisher's names (not all parameters) and keep a tensor: no .item(), no torch.no_grad()."])


def check_old_loss_at(fn: Callable) -> Callable:
    """Lesson 11: ``fn(new_losses, old_losses, new_target)``: the old-text loss where the
    trajectory's new-text loss first reaches ``new_target``, interpolated linearly
    (reference: ``forgetkit.hf.old_loss_at``)."""
    from ..hf import old_loss_at  # imports transformers: only when lesson 11 asks

    def case(new: list[float], old: list[float], target: float) -> Case:
        return lambda: ((new, old, target), {})

    cases = [case([4.0, 3.0, 2.0], [1.0, 1.5, 2.5], 2.5),            # halfway through the second segment
             case([4.0, 2.0, 1.0], [1.0, 2.0, 3.0], 3.0),            # inside the first segment
             case([4.0, 3.0, 3.5, 2.0], [1.0, 1.2, 1.1, 2.0], 3.0),  # exactly at a checkpoint, then a bump
             case([5.0, 4.0, 4.5, 3.0, 2.5], [1.0, 1.4, 1.3, 2.2, 2.6], 3.4),  # after a bump: the first crossing
             case([2.0, 1.5], [0.9, 1.4], 2.5)]                      # already below the target at step 0
    return check_function("old_loss_at", fn, old_loss_at, cases,
                          hint=["Find where, during training, the new-text loss first reaches the target, and read the "
                                "old-text loss at that moment (between two checkpoints: a straight line).",
                                "walk the checkpoints in training order and stop at the FIRST one whose new-text "
                               "loss is at or below the target; the answer lies on the straight segment between "
                               "that checkpoint and the one before it (if the very first checkpoint is already "
                               "there, take its old loss). np.interp will not do: it needs increasing x, and a "
                               "trajectory's new loss can bump up again."])
