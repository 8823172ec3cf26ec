"""``forgetkit-bench``: the capstone comparison from the command line.

Fine-tunes the general model on the clinical register with every chosen method, under several
seeds, and writes three files into ``--out``:

- ``leaderboard.md``: forgetting, learning, trainable parameters and seconds, mean +- std per
  method and strength (markdown, the same table as lesson 09);
- ``frontier.png``: the stability-plasticity frontier (forgetting against learning);
- ``results.json``: every row, to reload with ``forgetkit.capstone.Results.from_json``.

Examples::

    python -m forgetkit.bench --seeds 5 --out bench-out
    python -m forgetkit.bench --seeds 3 --methods naive,ewc,replay --steps 60 --out bench-out
    python -m forgetkit.bench --methods ewc,lora --strengths ewc=100,300,1000 --strengths lora=1,2,4 --out bench-out

By default every seed gets its own pre-trained base model (trained once, then cached: the first
run takes longer); ``--base-seed N`` shares one base model across seeds.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from .capstone import METHODS, Results, Settings, parse_methods, run_comparison


def _number(convert: type, low: float, strict: bool, what: str):
    """An argparse ``type``: ``convert(text)``, which must be finite and >= ``low`` (> when ``strict``)."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not math.isfinite(value) or value < low or (strict and value == low):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
        return value
    return parse


_positive_int = _number(int, 1, False, "a positive whole number (at least 1)")
_non_negative_int = _number(int, 0, False, "a whole number >= 0")
_positive_float = _number(float, 0.0, True, "a finite number > 0")


def build_parser() -> argparse.ArgumentParser:
    methods = ", ".join(f"{m.name} ({m.knob}: {', '.join(f'{s:g}' for s in m.strengths)})" if m.knob != "-"
                        else m.name for m in METHODS.values())
    parser = argparse.ArgumentParser(
        prog="forgetkit-bench", description=__doc__.split("\n\n")[0].split("``: ", 1)[-1],
        epilog=f"methods (strength knob: default sweep): {methods}",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=_positive_int, default=3, help="how many seeds (default 3)")
    parser.add_argument("--first-seed", type=_non_negative_int, default=None,
                        help="the first seed; the others follow it (default: $FORGETKIT_SEED or 0)")
    parser.add_argument("--methods", default="all",
                        help="comma-separated method names, or 'all' (default)")
    parser.add_argument("--strengths", action="append", default=[], metavar="METHOD=V1,V2",
                        help="strengths to sweep for one method instead of its default sweep (repeatable)")
    parser.add_argument("--steps", type=_positive_int, default=Settings.steps,
                        help=f"fine-tuning steps per run (default {Settings.steps})")
    parser.add_argument("--lr", type=_positive_float, default=Settings.lr,
                        help=f"learning rate (default {Settings.lr:g})")
    parser.add_argument("--batch-size", type=_positive_int, default=Settings.batch_size,
                        help=f"windows per batch (default {Settings.batch_size})")
    parser.add_argument("--base-seed", type=_non_negative_int, default=None,
                        help="share one base model pre-trained with this seed (default: one per seed)")
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    parser.add_argument("--out", type=Path, required=True, help="folder for leaderboard.md, frontier.png and results.json")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def parse_plan(parser: argparse.ArgumentParser, methods: str, strengths: list[str]) -> dict[str, tuple[float, ...]]:
    """``{method: strengths}`` from ``--methods`` and ``--strengths``; ``parser.error`` on bad input."""
    names = list(METHODS) if methods.strip() == "all" else [n.strip() for n in methods.split(",") if n.strip()]
    if not names:
        parser.error("--methods is empty: give comma-separated names or 'all'")
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        parser.error(f"unknown method(s) {', '.join(unknown)}: choose from {', '.join(METHODS)}")
    plan = {n: METHODS[n].strengths for n in dict.fromkeys(names)}
    for item in strengths:
        name, sep, values = item.partition("=")
        name = name.strip()
        if not sep or name not in METHODS:
            parser.error(f"--strengths {item!r}: expected METHOD=V1,V2 with METHOD one of {', '.join(METHODS)}")
        if name not in plan:
            parser.error(f"--strengths {item!r}: {name} is not among --methods")
        try:
            plan[name] = tuple(float(v) for v in values.split(",") if v.strip())
        except ValueError:
            parser.error(f"--strengths {item!r}: the strengths must be numbers")
        if not plan[name]:
            parser.error(f"--strengths {item!r}: give at least one number")
    try:
        return parse_methods(plan)
    except (TypeError, ValueError) as err:
        parser.error(str(err))


def write_outputs(results: Results, out: Path) -> tuple[Path, Path, Path]:
    """Write ``leaderboard.md``, ``frontier.png`` and ``results.json`` into ``out`` (created if needed);
    return the three paths."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from .plots import plot_method_frontier

    out.mkdir(parents=True, exist_ok=True)
    table, picture, rows = out / "leaderboard.md", out / "frontier.png", out / "results.json"
    table.write_text("# forgetkit-bench: general -> clinical\n\n" + results.to_markdown(), encoding="utf-8")
    rows.write_text(results.to_json(), encoding="utf-8")
    fig, ax = plt.subplots(figsize=(9, 5.5))
    plot_method_frontier(results, ax=ax)
    fig.tight_layout()
    fig.savefig(picture, dpi=120)
    plt.close(fig)
    return table, picture, rows


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``forgetkit-bench`` / ``python -m forgetkit.bench``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    plan = parse_plan(parser, args.methods, args.strengths)
    try:
        settings = Settings(steps=args.steps, lr=args.lr, batch_size=args.batch_size)
    except ValueError as err:
        parser.error(str(err))
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} exists and is not a folder")
    from .device import pick_device
    from .seeding import get_seed

    try:
        device = pick_device(args.device)
    except (TypeError, ValueError) as err:
        parser.error(f"--device: {err}")
    first = get_seed(args.first_seed)
    seeds = [first + k for k in range(args.seeds)]
    results = run_comparison(plan, seeds, settings, base_seed=args.base_seed, device=device,
                             progress=False if args.no_progress else None)
    table, picture, rows = write_outputs(results, args.out)
    print(results.to_markdown())
    print(f"wrote {table}, {picture} and {rows}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
