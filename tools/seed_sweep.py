"""Run solution notebooks under many seeds and thread counts; tabulate every claim's margin.

Every assertion a lesson makes is an ``fk.claim(statement, value, op, bound)`` call, which prints
``CLAIM PASS | statement | value op bound | margin m``. This script runs each notebook in a fresh
kernel once per (seed, threads) pair, with ``FORGETKIT_SEED``, ``FORGETKIT_THREADS`` and
``FORGETKIT_CLAIMS=record`` (a failed claim is printed, not raised, so the claims after it are
still measured), reads those lines, and writes

- ``bench-results/seed-sweep.json``: every run (seconds, claims, unexpected errors);
- ``bench-results/seed-sweep.md``: per notebook and claim, the runs, the failures, the worst
  margin, the mean and standard deviation of the margin and z = mean / std (how many standard
  deviations of the seed spread the typical run lies from the bound); then every failed run.

Thread counts stand in for other CPUs: they change the order of floating-point reductions, as
another CPU's vector instructions do. ``--isa avx2`` (or ``default``) goes one step further and
makes PyTorch, MKL and oneDNN use only that instruction set (``ATEN_CPU_CAPABILITY``,
``MKL_ENABLE_INSTRUCTIONS``, ``ONEDNN_MAX_CPU_ISA``), as an older or another vendor's CPU would.
Each (threads, isa) pair gets its own model cache, so the cached base language models are
pre-trained under it too.

A later run reuses the recorded runs of notebooks whose source has not changed since (``--fresh``
reruns everything), so a sweep can be stopped and resumed, and only edited notebooks rerun.

Usage (from the repository root, with the course's environment)::

    python tools/seed_sweep.py                                  # every solution, seeds 0-19, threads 1,2
    python tools/seed_sweep.py solutions/03_gradient_interference.ipynb --seeds 0-4 --threads 1
    python tools/seed_sweep.py --jobs 2 --update-readme         # and copy the table into benchmarks/README.md
    python tools/seed_sweep.py --seeds 0-4 --threads 1 --isa avx2 --out bench-results/avx2.json

The sweep is a benchmark, not a test: the test suite runs every notebook at seed 0 only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from forgetkit.claims import parse_claim_line  # noqa: E402  (the repository root is now importable)

RESULTS_DIR = ROOT / "bench-results"
README = ROOT / "benchmarks" / "README.md"
README_BEGIN, README_END = "<!-- seed-sweep:begin -->", "<!-- seed-sweep:end -->"
KERNEL_NAME = "python3"
CELL_TIMEOUT_S = 300
# Kernels start one at a time: with --jobs 2, two jupyter clients starting kernels at the same
# moment from two threads sometimes stalled for minutes before either ran a cell.
KERNEL_START = threading.Lock()
# Environment that restricts PyTorch (ATen), MKL and oneDNN to one instruction set.
ISA_ENV = {
    "native": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "default": {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ONEDNN_MAX_CPU_ISA": "SSE41"},
}


def parse_int_list(text: str) -> list[int]:
    """``"0-3,7"`` -> ``[0, 1, 2, 3, 7]``."""
    values: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            low, high = (int(x) for x in part.split("-", 1))
            values.extend(range(low, high + 1))
        elif part:
            values.append(int(part))
    if not values or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"expected distinct integers like 0-19 or 1,2, got {text!r}")
    return values


def source_hash(path: Path) -> str:
    """A hash of the notebook's code cells: outputs and prose do not change what a run measures."""
    nb = nbformat.read(path, as_version=4)
    code = "\n\0".join(cell.source for cell in nb.cells if cell.cell_type == "code")
    return hashlib.sha256(code.encode()).hexdigest()[:16]


def cell_text(cell) -> str:
    """Everything a code cell printed (stream outputs), as one string."""
    return "".join(out.get("text", "") for out in cell.get("outputs", []) if out.get("output_type") == "stream")


def run_notebook(path: Path, seed: int, threads: int, cache_root: Path, timeout: int = CELL_TIMEOUT_S,
                 isa: str = "native") -> dict:
    """Execute one notebook under one seed, thread count and instruction set; return the run's record."""
    nb = nbformat.read(path, as_version=4)
    env = {**os.environ, "FORGETKIT_SEED": str(seed), "FORGETKIT_THREADS": str(threads),
           "FORGETKIT_CLAIMS": "record", "FORGETKIT_PROGRESS": "0",
           "FORGETKIT_CACHE": str(cache_root / (f"threads-{threads}" + ("" if isa == "native" else f"-{isa}"))),
           "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           # idle OpenMP threads sleep instead of spinning: with several kernels on few cores, spinning
           # threads starve each other (a 2-thread run can take 10x longer); the numbers do not change
           "OMP_WAIT_POLICY": "PASSIVE", **ISA_ENV[isa]}
    client = NotebookClient(nb, timeout=timeout, kernel_name=KERNEL_NAME, allow_errors=True,
                            resources={"metadata": {"path": str(path.resolve().parent)}})
    start = time.perf_counter()
    fatal = ""
    try:
        with KERNEL_START:
            client.km = client.create_kernel_manager()
            client.start_new_kernel(env=env)
            client.start_new_kernel_client()
        client.execute()  # runs every cell in the kernel started above, then shuts it down
    except Exception as error:  # a dead kernel or a timeout: record it, keep what ran
        fatal = f"{type(error).__name__}: {str(error).strip().splitlines()[-1] if str(error).strip() else ''}"
    seconds = time.perf_counter() - start
    claims, errors, seen = [], [], {}
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for line in cell_text(cell).splitlines():
            parsed = parse_claim_line(line)
            if parsed is None:
                continue
            key = parsed["statement"]
            seen[key] = seen.get(key, 0) + 1
            if seen[key] > 1:  # the same words twice in one run (a loop): number the repeats
                parsed["statement"] = f"{key} (#{seen[key]})"
            claims.append({**parsed, "cell": index})
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error" and not _expects_error(cell):
                errors.append({"cell": index, "error": f"{out.get('ename')}: {out.get('evalue', '')[:300]}"})
    if fatal:
        errors.append({"cell": None, "error": fatal})
    return {"notebook": str(path.relative_to(ROOT)), "seed": seed, "threads": threads, "isa": isa,
            "seconds": round(seconds, 2), "claims": claims, "errors": errors}


def _expects_error(cell) -> bool:
    return any(line.strip().lstrip("#").strip() == "NBVAL_RAISES_EXCEPTION"
               for line in cell.source.splitlines() if line.strip().startswith("#"))


def summarise(runs: list[dict]) -> dict[str, list[dict]]:
    """Per notebook, one entry per claim: runs, failures, worst margin, mean/std of the margin, z."""
    table: dict[str, dict[str, dict]] = {}
    for run in runs:
        claims = table.setdefault(run["notebook"], {})
        for c in run["claims"]:
            entry = claims.setdefault(c["statement"], {"statement": c["statement"], "op": c["op"], "margins": [],
                                                       "values": [], "bounds": set(), "failed": []})
            entry["margins"].append(c["margin"])
            entry["values"].append(c["value"])
            entry["bounds"].add(c["bound"])
            if not c["passed"]:
                entry["failed"].append((run["seed"], run["threads"]))
    out = {}
    for notebook, claims in sorted(table.items()):
        rows = []
        for entry in claims.values():
            margins = entry["margins"]
            finite = [m for m in margins if math.isfinite(m)]  # a ratio over zero can print inf or nan
            mean = statistics.fmean(finite) if finite else math.nan
            std = statistics.stdev(finite) if len(finite) > 1 else 0.0
            worst = min(margins, key=lambda m: -math.inf if math.isnan(m) else m)
            rows.append({"statement": entry["statement"], "runs": len(margins), "failures": len(entry["failed"]),
                         "failed_runs": entry["failed"], "worst_margin": worst, "mean_margin": mean, "std_margin": std,
                         "z": math.inf if std == 0 else mean / std, "op": entry["op"],
                         "bound": sorted(entry["bounds"])[0] if len(entry["bounds"]) == 1 else None,
                         "value_mean": statistics.fmean(v for v in entry["values"] if math.isfinite(v))
                         if any(math.isfinite(v) for v in entry["values"]) else math.nan})
        out[notebook] = rows
    return out


def markdown(runs: list[dict], seeds: list[int], threads: list[int], isa: str = "native") -> str:
    """The sweep as markdown: a header line, one table per notebook, then the failed runs."""
    summary = summarise(runs)
    n_claims = sum(len(rows) for rows in summary.values())
    failed_runs = [r for r in runs if r["errors"] or any(not c["passed"] for c in r["claims"])]
    n_failures = sum(row["failures"] for rows in summary.values() for row in rows)
    thin = sorted(((row["z"], nb, row) for nb, rows in summary.items() for row in rows),
                  key=lambda t: (math.inf if math.isnan(t[0]) else t[0], t[1]))[:3]
    where = "" if isa == "native" else f" (instruction set: {isa})"
    lines = [f"Seeds {_ranges(seeds)} x threads {','.join(map(str, threads))}{where}: {len(runs)} notebook runs, "
             f"{n_claims} claims, {n_failures} failed claim checks, {len(failed_runs)} runs with a failure or error.",
             "",
             "Columns: runs; failures; worst margin (the smallest distance on the passing side of the bound, "
             "in the claim's own units); mean and std of the margin over the runs; z = mean / std "
             "(the typical run's distance from the bound in standard deviations of the seed spread; "
             "inf when every run gave the same number).", ""]
    for notebook, rows in summary.items():
        seconds = [r["seconds"] for r in runs if r["notebook"] == notebook]
        lines += [f"### {notebook}", "",
                  f"{len(seconds)} runs, {min(seconds):.1f}-{max(seconds):.1f} s each (sweep machine, "
                  "several kernels at once).", "",
                  "| claim | bound | runs | failures | worst margin | mean +- std | z |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        for row in rows:
            bound = "varies" if row["bound"] is None else f"{row['op']} {row['bound']:.4g}"
            z = "inf" if math.isinf(row["z"]) else f"{row['z']:.1f}"
            lines.append(f"| {row['statement']} | {bound} | {row['runs']} | {row['failures']} | "
                         f"{row['worst_margin']:+.4g} | {row['mean_margin']:+.3g} +- {row['std_margin']:.2g} | {z} |")
        lines.append("")
    lines += ["### Thinnest claims (lowest z)", ""]
    for z, notebook, row in thin:
        lines.append(f"- {notebook}: {row['statement']} (z = {z:.1f}, worst margin {row['worst_margin']:+.4g})")
    lines += ["", "### Runs with a failed claim or an error", ""]
    if not failed_runs:
        lines.append("None.")
    for r in failed_runs:
        what = [f"claim '{c['statement']}' ({c['value']:.4g} {c['op']} {c['bound']:.4g})"
                for c in r["claims"] if not c["passed"]]
        what += [f"cell {e['cell']}: {e['error']}" for e in r["errors"]]
        lines.append(f"- {r['notebook']} seed {r['seed']} threads {r['threads']}: " + "; ".join(what))
    return "\n".join(lines) + "\n"


def _ranges(values: list[int]) -> str:
    values = sorted(values)
    if values == list(range(values[0], values[-1] + 1)) and len(values) > 2:
        return f"{values[0]}-{values[-1]}"
    return ",".join(map(str, values))


def update_readme(table: str, readme: Path = README) -> None:
    """Replace the text between the seed-sweep markers of benchmarks/README.md with ``table``."""
    text = readme.read_text()
    if README_BEGIN not in text or README_END not in text:
        raise SystemExit(f"{readme} has no {README_BEGIN} ... {README_END} section to update")
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    readme.write_text(f"{head}{README_BEGIN}\n{table}{README_END}{tail}")


def _load(path: Path) -> list[dict]:
    try:
        return json.loads(path.read_text())["runs"]
    except (OSError, ValueError, KeyError):
        return []


def _save(path: Path, runs: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as f:
        json.dump({"runs": runs}, f, indent=1)
    os.replace(f.name, path)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns 1 if any claim failed or any run had an error."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every solutions/*.ipynb")
    parser.add_argument("--seeds", type=parse_int_list, default=list(range(20)), help="e.g. 0-19 (default) or 0,3,5")
    parser.add_argument("--threads", type=parse_int_list, default=[1, 2], help="e.g. 1,2 (default)")
    parser.add_argument("--isa", default="native", choices=sorted(ISA_ENV),
                        help="instruction set PyTorch may use (default: all this CPU has)")
    parser.add_argument("--jobs", type=int, default=1, help="kernels at once (default 1: one at a time)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "seed-sweep.json")
    parser.add_argument("--cache", type=Path, default=RESULTS_DIR / "seed-sweep-cache",
                        help="model caches, one folder per thread count")
    parser.add_argument("--fresh", action="store_true", help="rerun runs recorded for an unchanged notebook too")
    parser.add_argument("--update-readme", action="store_true",
                        help="copy the table into benchmarks/README.md (do it after a full sweep)")
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.notebooks] or sorted((ROOT / "solutions").glob("*.ipynb"))
    hashes = {str(p.relative_to(ROOT)): source_hash(p) for p in paths}
    done = {} if args.fresh else {(r["notebook"], r["seed"], r["threads"], r.get("isa", "native")): r
                                  for r in _load(args.out) if hashes.get(r["notebook"]) == r.get("source")}
    kept = [r for r in _load(args.out) if r["notebook"] not in hashes]  # other notebooks' runs stay
    jobs = [(p, s, t) for p in paths for t in args.threads for s in args.seeds
            if (str(p.relative_to(ROOT)), s, t, args.isa) not in done]
    runs = list(done.values())
    lock = threading.Lock()
    print(f"{len(jobs)} runs to do ({len(done)} reused), {args.jobs} at a time", flush=True)
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {pool.submit(run_notebook, p, s, t, args.cache.resolve(), isa=args.isa): (p, s, t)
                   for p, s, t in jobs}
        for k, future in enumerate(as_completed(futures), start=1):
            p, s, t = futures[future]
            record = {**future.result(), "source": hashes[str(p.relative_to(ROOT))]}
            bad = [c["statement"] for c in record["claims"] if not c["passed"]] + [e["error"] for e in record["errors"]]
            print(f"[{k}/{len(jobs)}] {p.name} seed {s} threads {t}: {len(record['claims'])} claims, "
                  f"{record['seconds']:.0f} s" + (f"  FAILED: {bad}" if bad else ""), flush=True)
            with lock:
                runs.append(record)
                _save(args.out, kept + runs)
    selected = [r for r in runs if r["seed"] in args.seeds and r["threads"] in args.threads
                and r.get("isa", "native") == args.isa]
    selected.sort(key=lambda r: (r["notebook"], r["threads"], r["seed"]))
    table = markdown(selected, args.seeds, args.threads, args.isa)
    args.out.with_suffix(".md").write_text(table)
    print(table)
    if args.update_readme:
        update_readme(table)
    return 1 if any(r["errors"] or any(not c["passed"] for c in r["claims"]) for r in selected) else 0


if __name__ == "__main__":
    sys.exit(main())
