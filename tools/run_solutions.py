"""Execute solution notebooks in place, so that they render with outputs, then regenerate lessons/.

Each notebook runs top to bottom in a fresh ``python3`` kernel with its own folder as the working
directory (as nbval does), 120 s per cell at most. Execution timing metadata is not stored, widget
state is not stored, and the notebook-level metadata is left as it was, so a rerun only changes
what the cells printed. A notebook that fails is reported and left untouched on disk.

Usage (from the repository root)::

    python tools/run_solutions.py                             # every solutions/*.ipynb
    python tools/run_solutions.py solutions/03_gradient_interference.ipynb
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import make_lessons  # this script's folder, tools/, is on sys.path when run as a script
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from nbformat import NotebookNode

KERNEL_NAME = "python3"
CELL_TIMEOUT_S = 120
RAISES_MARKER = "NBVAL_RAISES_EXCEPTION"
RAISES_TAG = "raises-exception"


def _expects_error(cell: NotebookNode) -> bool:
    """True if nbval expects the cell to raise (``# NBVAL_RAISES_EXCEPTION`` comment)."""
    return any(
        line.strip().startswith("#") and line.strip().lstrip("#").strip() == RAISES_MARKER
        for line in cell.source.splitlines()
    )


def execute_notebook(path: Path, timeout: int = CELL_TIMEOUT_S) -> NotebookNode:
    """Run the notebook at ``path`` in a fresh kernel and return the executed copy.

    Cells marked ``# NBVAL_RAISES_EXCEPTION`` may raise, as under nbval; any other error raises
    ``CellExecutionError`` (``CellTimeoutError`` past ``timeout`` seconds in one cell). The file
    itself is not written.
    """
    nb = nbformat.read(path, as_version=4)
    original_metadata = copy.deepcopy(nb.metadata)
    tagged = []  # cells given a temporary "raises-exception" tag, so nbclient lets them fail
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if cell.cell_type == "code" and _expects_error(cell) and RAISES_TAG not in tags:
            cell.metadata["tags"] = [*tags, RAISES_TAG]
            tagged.append(cell)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name=KERNEL_NAME,
        resources={"metadata": {"path": str(path.resolve().parent)}},
        record_timing=False,
        store_widget_state=True,  # needed by nbclient for Output widgets; dropped with the metadata below
    )
    client.execute()
    for cell in tagged:
        cell.metadata["tags"].remove(RAISES_TAG)
        if not cell.metadata["tags"]:
            del cell.metadata["tags"]
    for cell in nb.cells:
        make_lessons.strip_timing_metadata(cell)
    nb.metadata = original_metadata  # nbclient rewrites language_info (Python patch version...)
    return nb


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (1 if any notebook failed)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "notebooks", nargs="*", type=Path, help="default: every solutions/*.ipynb, in order"
    )
    parser.add_argument("--timeout", type=int, default=CELL_TIMEOUT_S, help="seconds per cell")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(make_lessons.SOLUTIONS_DIR.glob("*.ipynb"))
    failed = []
    for path in paths:
        start = time.perf_counter()
        try:
            nb = execute_notebook(path, timeout=args.timeout)
        except (CellExecutionError, CellTimeoutError, DeadKernelError) as error:
            failed.append(path)
            print(f"FAIL {path} ({time.perf_counter() - start:.1f} s)\n{error}", file=sys.stderr)
            continue
        path.write_bytes(make_lessons.notebook_text(nb).encode("utf-8"))
        print(f"ok   {path} ({time.perf_counter() - start:.1f} s)")
    status = make_lessons.main([])
    if failed:
        print(f"{len(failed)} notebook(s) failed: {', '.join(map(str, failed))}", file=sys.stderr)
    return 1 if failed or status else 0


if __name__ == "__main__":
    sys.exit(main())
