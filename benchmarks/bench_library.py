"""Time forgetkit's hot paths and print a markdown table (also written to bench-results/library.md).

What is timed (each the minimum wall time over ``--repeats`` runs, after one warm-up):

- the per-sample diagonal Fisher of the lesson-05 MLP (64-256-256-10, trained briefly on digits)
  on N = 1000 examples: ``fisher_diagonal`` (torch.func: vmap over per-sample gradients; by default
  the Linear layers' squared gradients come from outer products of per-sample output gradients
  and inputs) against ``fisher_diagonal_loop`` (one backward pass per example), for the
  "empirical" and "sampled" variants. They must agree (rtol 1e-4; asserted), and the torch.func
  version must be at least 5x faster (``REQUIRED_SPEEDUP``): the script exits 1 when it is not. For scale, the same with ``outer_product=False`` (full per-sample gradients of
  every weight, squared and summed) is timed too.
- the "exact" Fisher (10 classes per example) with torch.func, N = 1000, for scale;
- one ``fk.fit`` of that MLP (300 SGD steps, batch 64), without and with an EWC penalty hook, on
  1 and on 2 CPU threads (the course uses 1: ``fk.pick_device``);
- the step rate of ``fk.fit_lm`` on the course's TinyLM, on 1 and 2 threads;
- ``import forgetkit`` on top of ``import torch``, in fresh processes: as it is (plots, widgets and
  the capstone load on first use) and with those three imported too (everything eager, as
  ``import forgetkit`` did before they were made lazy).

Usage (from the repository root)::

    python benchmarks/bench_library.py                 # the course's thread count, 3 repeats
    python benchmarks/bench_library.py --threads 2 --repeats 5
    python benchmarks/bench_library.py --import-only      # just the import times
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing forgetkit

import forgetkit as fk  # noqa: E402
from forgetkit import regularizers as R  # noqa: E402

RESULTS_DIR = ROOT / "bench-results"
NUM_FISHER_EXAMPLES = 1000
REQUIRED_SPEEDUP = 5.0


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """Minimum wall-clock seconds of ``fn()`` over ``repeats`` runs, after one warm-up run."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def lesson_mlp(seed: int = 0) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """The lesson's MLP after a short training on plain digits, and 1000 training examples."""
    fk.seed_everything(seed)
    task = fk.permuted_digits(1, seed=seed)[0]
    model = fk.MLP((64, 256, 256, 10))
    fk.fit(model, task.X_train, task.y_train, num_steps=200, lr=0.1, seed=seed, progress=False)
    return model, task.X_train[:NUM_FISHER_EXAMPLES], task.y_train[:NUM_FISHER_EXAMPLES]


def bench_fisher(repeats: int) -> tuple[list[list[str]], list[float]]:
    """Rows for the Fisher comparison and the speed-ups (loop time / torch.func time)."""
    model, X, y = lesson_mlp()
    rows, speedups = [], []
    for variant in ("empirical", "sampled"):
        fast = R.fisher_diagonal(model, X, y, variant=variant, seed=0)
        full = R.fisher_diagonal(model, X, y, variant=variant, seed=0, outer_product=False)
        slow = R.fisher_diagonal_loop(model, X, y, variant=variant, seed=0)
        for name in fast:
            for label, other in (("loop", slow), ("full-gradient", full)):
                assert torch.allclose(fast[name], other[name], rtol=1e-4, atol=1e-9), (
                    f"torch.func and {label} Fishers differ on {name} ({variant}): expected equal values (rtol 1e-4)")
        t_fast = best_time(lambda v=variant: R.fisher_diagonal(model, X, y, variant=v, seed=0), repeats)
        t_full = best_time(lambda v=variant: R.fisher_diagonal(model, X, y, variant=v, seed=0, outer_product=False),
                           repeats)
        t_slow = best_time(lambda v=variant: R.fisher_diagonal_loop(model, X, y, variant=v, seed=0), repeats)
        speedups.append(t_slow / t_fast)
        n = len(X)
        rows.append([f"Fisher ({variant}), N={n}: torch.func vmap (default)", f"{t_fast * 1e3:.0f} ms",
                     f"{n / t_fast:,.0f} examples/s", f"{t_slow / t_fast:.1f}x faster than the loop; values equal"])
        rows.append([f"Fisher ({variant}), N={n}: torch.func vmap, outer_product=False", f"{t_full * 1e3:.0f} ms",
                     f"{n / t_full:,.0f} examples/s", f"{t_slow / t_full:.1f}x faster than the loop; values equal"])
        rows.append([f"Fisher ({variant}), N={n}: Python loop", f"{t_slow * 1e3:.0f} ms",
                     f"{n / t_slow:,.0f} examples/s", "reference"])
    t_exact = best_time(lambda: R.fisher_diagonal(model, X, variant="exact"), repeats)
    rows.append([f"Fisher (exact, 10 classes), N={len(X)}: torch.func vmap", f"{t_exact * 1e3:.0f} ms",
                 f"{len(X) / t_exact:,.0f} examples/s", "10 gradients per example"])
    return rows, speedups


def with_threads(num_threads: int, fn: Callable[[], object]) -> Callable[[], object]:
    """``fn`` run with ``num_threads`` CPU threads (the previous count is restored afterwards)."""
    def run() -> object:
        previous = torch.get_num_threads()
        torch.set_num_threads(num_threads)
        try:
            return fn()
        finally:
            torch.set_num_threads(previous)
    return run


def bench_fit(repeats: int, thread_counts: tuple[int, ...], num_steps: int = 300) -> list[list[str]]:
    """Rows for one fit() of the lesson's MLP, plain and with an EWC penalty, per thread count."""
    model, X, y = lesson_mlp()
    fisher, anchor = R.fisher_diagonal(model, X[:100], variant="sampled", seed=0), R.snapshot(model)
    task = fk.permuted_digits(2, seed=0)[1]
    rows = []
    for threads in thread_counts:
        for label, hook in (("fit: MLP, SGD", None),
                            ("fit: MLP, SGD + EWC penalty", lambda m: R.ewc_penalty(m, fisher, anchor, 1.0))):
            def run(hook=hook) -> None:
                trained = fk.MLP((64, 256, 256, 10))
                trained.load_state_dict(model.state_dict())
                fk.fit(trained, task.X_train, task.y_train, num_steps=num_steps, lr=0.05, batch_size=64,
                       seed=0, extra_loss=hook, progress=False)
            seconds = best_time(with_threads(threads, run), repeats)
            rows.append([f"{label} ({num_steps} steps, batch 64)", f"{seconds * 1e3:.0f} ms",
                         f"{num_steps / seconds:,.0f} steps/s", f"{threads} thread{'s' if threads > 1 else ''}"])
    return rows


def bench_fit_lm(repeats: int, thread_counts: tuple[int, ...], num_steps: int = 50) -> list[list[str]]:
    """Rows for the step rate of fit_lm on the course's TinyLM (base-model size), per thread count."""
    from forgetkit.pretrained import BASE_CONFIG

    tokens = fk.language_tokens("french", "train", 500, seed=0)

    def run() -> None:
        torch.manual_seed(0)
        model = fk.TinyLM(BASE_CONFIG)
        fk.fit_lm(model, tokens, num_steps=num_steps, batch_size=16, seed=0, progress=False)

    config = ", ".join(f"{k}={v}" for k, v in vars(BASE_CONFIG).items() if k != "vocab_size")
    rows = []
    for threads in thread_counts:
        seconds = best_time(with_threads(threads, run), repeats)
        rows.append([f"fit_lm: TinyLM ({config}), batch 16", f"{seconds * 1e3:.0f} ms / {num_steps} steps",
                     f"{num_steps / seconds:,.0f} steps/s", f"{threads} thread{'s' if threads > 1 else ''}"])
    return rows


IMPORT_SNIPPET = "import time, torch; start = time.perf_counter(); import forgetkit{more}; print(time.perf_counter() - start)"
EAGER = ", forgetkit.plots, forgetkit.widgets, forgetkit.capstone"  # what import forgetkit loaded before PEP 562


def import_seconds(more: str = "", repeats: int = 5) -> float:
    """Minimum over fresh processes of the seconds ``import forgetkit`` (plus ``more``) takes after ``import torch``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    times = []
    for _ in range(repeats + 1):  # the first run warms the file cache
        done = subprocess.run([sys.executable, "-c", IMPORT_SNIPPET.format(more=more)], capture_output=True,
                              text=True, env=env, cwd=ROOT, check=True)
        times.append(float(done.stdout.strip().splitlines()[-1]))
    return min(times[1:])


def bench_import(repeats: int) -> list[list[str]]:
    """Rows for ``import forgetkit`` on top of torch: lazy (as shipped) and everything eager (as before)."""
    lazy, eager = import_seconds("", repeats), import_seconds(EAGER, repeats)
    return [["import forgetkit (plots, widgets, capstone on first use)", f"{lazy * 1e3:.0f} ms", "",
             f"after import torch; {eager / lazy:.1f}x faster than eager"],
            ["import forgetkit + plots, widgets, capstone (eager, as before)", f"{eager * 1e3:.0f} ms", "",
             "after import torch"]]


def markdown_table(rows: list[list[str]], header: str) -> str:
    lines = [header, "", "| what | time | rate | note |", "|---|---:|---:|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns 1 when the torch.func Fisher misses the 5x requirement."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per row; the minimum is kept")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (default: the course's, $FORGETKIT_THREADS or 1)")
    parser.add_argument("--import-only", action="store_true", help="only time import forgetkit")
    args = parser.parse_args(argv)
    fk.pick_device("cpu", num_threads=args.threads)  # the course's thread policy ($FORGETKIT_THREADS, else 1)
    if args.import_only:
        print(markdown_table(bench_import(max(args.repeats, 5)), "import forgetkit, min over fresh processes"), end="")
        return 0

    fisher_rows, speedups = bench_fisher(args.repeats)
    thread_counts = (1, 2)  # the course runs on 1 thread (fk.pick_device); is a second one worth it?
    rows = (fisher_rows + bench_fit(args.repeats, thread_counts) + bench_fit_lm(args.repeats, thread_counts)
            + bench_import(max(args.repeats, 5)))
    header = (f"forgetkit library benchmark: torch {torch.__version__}, {fk.describe_device(torch.device('cpu'))} "
              f"(Fisher rows), min of {args.repeats} runs after a warm-up")
    slowest = min(speedups)
    verdict = (f"torch.func Fisher vs Python loop at N={NUM_FISHER_EXAMPLES}: {slowest:.1f}x at worst "
               f"(required: >= {REQUIRED_SPEEDUP:.0f}x) -> {'ok' if slowest >= REQUIRED_SPEEDUP else 'BELOW REQUIREMENT'}")
    table = markdown_table(rows, header) + "\n" + verdict + "\n"
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "library.md").write_text(table, encoding="utf-8")
    print(table, end="")
    return 0 if slowest >= REQUIRED_SPEEDUP else 1


if __name__ == "__main__":
    sys.exit(main())
