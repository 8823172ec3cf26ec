"""tools/seed_sweep.py: the parts that decide what the sweep's table says (no notebook is run here)."""

from __future__ import annotations

import argparse
import importlib.util
import math
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("seed_sweep", ROOT / "tools" / "seed_sweep.py")
seed_sweep = importlib.util.module_from_spec(spec)
spec.loader.exec_module(seed_sweep)


def test_seed_lists() -> None:
    assert seed_sweep.parse_int_list("0-3,7") == [0, 1, 2, 3, 7]
    assert seed_sweep.parse_int_list("2") == [2]
    for bad in ("", "1,1", "0-2,2"):
        with pytest.raises(argparse.ArgumentTypeError):
            seed_sweep.parse_int_list(bad)


def test_source_hash_follows_code_not_outputs_or_prose(tmp_path: Path) -> None:
    def write(code: str, prose: str, output: str) -> Path:
        cell = nbformat.v4.new_code_cell(code, outputs=[nbformat.v4.new_output("stream", text=output)])
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(prose), cell])
        path = tmp_path / f"{abs(hash((code, prose, output)))}.ipynb"
        nbformat.write(nb, path)
        return path

    base = seed_sweep.source_hash(write("x = 1", "old prose", "1"))
    assert seed_sweep.source_hash(write("x = 1", "new prose", "2")) == base
    assert seed_sweep.source_hash(write("x = 2", "old prose", "1")) != base


def run(seed: int, threads: int, margins: list[float]) -> dict:
    claims = [{"statement": f"claim {k}", "op": ">", "bound": 0.0, "value": m, "margin": m, "passed": m > 0,
               "cell": 1} for k, m in enumerate(margins)]
    return {"notebook": "solutions/xx.ipynb", "seed": seed, "threads": threads, "isa": "native",
            "seconds": 1.0, "claims": claims, "errors": []}


def test_summary_counts_failures_and_the_worst_margin() -> None:
    runs = [run(0, 1, [0.5, 0.1]), run(1, 1, [0.7, -0.2]), run(0, 2, [0.6, 0.3])]
    rows = {r["statement"]: r for r in seed_sweep.summarise(runs)["solutions/xx.ipynb"]}
    solid, shaky = rows["claim 0"], rows["claim 1"]
    assert solid["runs"] == 3 and solid["failures"] == 0 and solid["worst_margin"] == pytest.approx(0.5)
    assert solid["z"] == pytest.approx(0.6 / 0.1)
    assert shaky["failures"] == 1 and shaky["failed_runs"] == [(1, 1)]
    assert shaky["worst_margin"] == pytest.approx(-0.2)


def test_a_nan_margin_is_the_worst_and_the_table_reports_failures() -> None:
    runs = [run(0, 1, [0.5]), run(1, 1, [math.nan])]
    row = seed_sweep.summarise(runs)["solutions/xx.ipynb"][0]
    assert math.isnan(row["worst_margin"]) and row["failures"] == 1
    table = seed_sweep.markdown(runs, [0, 1], [1])
    assert "1 failed claim check" in table and "claim 0" in table
