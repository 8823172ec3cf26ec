"""Time every lesson and solution notebook and measure its kernel's peak memory.

Each notebook runs top to bottom in a fresh ``python3`` kernel (nbclient), with its own folder as
the working directory, exactly once, one after the other. "seconds" is wall time from before the
kernel starts until it has shut down. "peak MB" is the largest summed RSS of the kernel process
and all its children, sampled every 50 ms. Notebooks are not modified.

Budgets (benchmarks/README.md): at most 30 s and 1024 MB per notebook; median at most 15 s over the full set.
Prints a markdown table, writes it to bench-results/notebooks.md, and exits 1 if any notebook
fails or breaks a budget.

Usage (from the repository root)::

    python benchmarks/bench_notebooks.py                      # lessons/ and solutions/
    python benchmarks/bench_notebooks.py --only 05            # names containing "05"
    python benchmarks/bench_notebooks.py lessons/00_welcome.ipynb --json
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat
import psutil
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIRS = ("lessons", "solutions")
RESULTS_DIR = ROOT / "bench-results"
KERNEL_NAME = "python3"
BUDGET_SECONDS = 30.0
BUDGET_MB = 1024.0
BUDGET_MEDIAN_SECONDS = 15.0
POLL_INTERVAL_S = 0.05
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class Result:
    """One notebook's measurements."""

    notebook: str  # path relative to the repository root
    seconds: float  # wall time, kernel start and shutdown included
    peak_mb: float  # max over samples of the summed RSS of the kernel process tree
    ok: bool  # every cell ran without an unexpected error
    error: str = ""  # first line of the error when not ok

    @property
    def over_budget(self) -> list[str]:
        """The budgets this notebook breaks, e.g. ``["time", "memory"]``."""
        over = []
        if self.seconds > BUDGET_SECONDS:
            over.append("time")
        if self.peak_mb > BUDGET_MB:
            over.append("memory")
        return over


class PeakRssSampler(threading.Thread):
    """Background thread that records the peak summed RSS of a kernel process and its children.

    It waits for ``client.km`` to have a running kernel, then samples every ``interval`` seconds
    until :meth:`stop` is called.
    """

    def __init__(self, client: NotebookClient, interval: float = POLL_INTERVAL_S) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.interval = interval
        self.peak_bytes = 0
        self._stop_event = threading.Event()

    def _kernel_pid(self) -> int | None:
        provisioner = getattr(getattr(self.client, "km", None), "provisioner", None)
        pid = getattr(provisioner, "pid", None)
        if pid is None:
            pid = getattr(getattr(provisioner, "process", None), "pid", None)
        return pid

    def _tree_rss(self, process: psutil.Process) -> int:
        total = 0
        for proc in [process, *process.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except psutil.Error:  # a child exited between listing and reading
                pass
        return total

    def run(self) -> None:
        """Sample until stopped."""
        process = None
        while not self._stop_event.is_set():
            try:
                if process is None:
                    pid = self._kernel_pid()
                    process = psutil.Process(pid) if pid is not None else None
                if process is not None:
                    self.peak_bytes = max(self.peak_bytes, self._tree_rss(process))
            except psutil.Error:  # kernel not started yet or already gone
                process = None
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        """Stop sampling and wait for the thread to finish."""
        self._stop_event.set()
        self.join()


def allow_expected_errors(nb: nbformat.NotebookNode) -> None:
    """Tag ``# NBVAL_RAISES_EXCEPTION`` cells so that nbclient, like nbval, lets them raise."""
    for cell in nb.cells:
        marked = any(
            line.strip().startswith("#")
            and line.strip().lstrip("#").strip() == "NBVAL_RAISES_EXCEPTION"
            for line in cell.source.splitlines()
        )
        tags = cell.metadata.get("tags", [])
        if cell.cell_type == "code" and marked and "raises-exception" not in tags:
            cell.metadata["tags"] = [*tags, "raises-exception"]


def bench_notebook(path: Path, cell_timeout: int) -> Result:
    """Run one notebook in a fresh kernel and measure it (the file is not written)."""
    nb = nbformat.read(path, as_version=4)
    allow_expected_errors(nb)
    client = NotebookClient(
        nb,
        timeout=cell_timeout,
        kernel_name=KERNEL_NAME,
        resources={"metadata": {"path": str(path.parent)}},
        record_timing=False,
        shutdown_kernel="immediate",
    )
    sampler = PeakRssSampler(client)
    sampler.start()
    start = time.perf_counter()
    error = ""
    try:
        client.execute()
    except Exception as exc:  # any failure is reported in the table, not raised
        lines = ANSI_ESCAPE.sub("", str(exc)).strip().splitlines()
        error = f"{type(exc).__name__}: {lines[-1] if lines else ''}"
    seconds = time.perf_counter() - start
    sampler.stop()
    try:
        name = str(path.relative_to(ROOT))
    except ValueError:
        name = str(path)
    return Result(name, seconds, sampler.peak_bytes / 2**20, ok=not error, error=error)


def find_notebooks(paths: list[Path], only: str | None) -> list[Path]:
    """The notebooks to run: ``paths`` or every lessons/ and solutions/ notebook, filtered."""
    if not paths:
        paths = [nb for folder in NOTEBOOK_DIRS for nb in sorted((ROOT / folder).glob("*.ipynb"))]
    paths = [path.resolve() for path in paths]
    if only:
        paths = [path for path in paths if only in str(path)]
    return paths


def markdown_table(results: list[Result], check_median: bool) -> str:
    """Format the results as a markdown table with totals and a budget summary."""
    rows = [
        "| notebook | seconds | peak MB | status | budget |",
        "|---|---:|---:|---|---|",
    ]
    for r in results:
        budget = "OVER: " + ", ".join(r.over_budget) if r.over_budget else "ok"
        status = "ok" if r.ok else f"FAIL ({r.error})".replace("|", "\\|")
        rows.append(f"| {r.notebook} | {r.seconds:.1f} | {r.peak_mb:.0f} | {status} | {budget} |")
    if not results:
        return "\n".join([*rows, "", "No notebooks found."]) + "\n"
    seconds = [r.seconds for r in results]
    median = statistics.median(seconds)
    failed = sum(not r.ok for r in results)
    over = sum(bool(r.over_budget) for r in results)
    rows.append(
        f"| **total ({len(results)})** | {sum(seconds):.1f} | "
        f"{max(r.peak_mb for r in results):.0f} (max) | {failed} failed | {over} over |"
    )
    median_note = ""
    if check_median and median > BUDGET_MEDIAN_SECONDS:
        median_note = f" - OVER the {BUDGET_MEDIAN_SECONDS:.0f} s median budget"
    rows += [
        "",
        f"Median: {median:.1f} s{median_note}. "
        f"Budgets: {BUDGET_SECONDS:.0f} s and {BUDGET_MB:.0f} MB per notebook "
        f"(kernel start included), median {BUDGET_MEDIAN_SECONDS:.0f} s.",
    ]
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (1 on any failure or broken budget)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: lessons/ and solutions/")
    parser.add_argument("--only", metavar="PATTERN", help="run notebooks whose path contains it")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--timeout", type=int, default=120, help="seconds per cell (default 120)")
    args = parser.parse_args(argv)

    paths = find_notebooks(args.notebooks, args.only)
    results = []
    for path in paths:
        result = bench_notebook(path, args.timeout)
        results.append(result)
        print(
            f"{result.notebook}: {result.seconds:.1f} s, {result.peak_mb:.0f} MB", file=sys.stderr
        )

    # The median budget is for the whole course, so only check it on a full run.
    check_median = not args.notebooks and not args.only
    table = markdown_table(results, check_median)
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "notebooks.md").write_text(table, encoding="utf-8")
    median = statistics.median(r.seconds for r in results) if results else 0.0
    median_over = check_median and median > BUDGET_MEDIAN_SECONDS
    if args.json:
        records = [{**asdict(r), "over_budget": r.over_budget} for r in results]
        print(json.dumps({"results": records, "median_seconds": median}, indent=1))
    else:
        print(table, end="")
    bad = any(not r.ok or r.over_budget for r in results) or median_over
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
