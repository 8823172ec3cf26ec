"""forgetkit-bench (``python -m forgetkit.bench``): help, a tiny end-to-end run, clear errors for bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest
from test_capstone import tiny_base  # tests/ is on sys.path (pytest's rootdir-relative import)

from forgetkit import bench
from forgetkit.capstone import Results, scenario


def test_help_runs_as_a_module():
    done = subprocess.run([sys.executable, "-m", "forgetkit.bench", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    for word in ("--seeds", "--methods", "--steps", "--out", "replay", "lora", "distill"):
        assert word in done.stdout


def test_tiny_run_writes_both_files(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(scenario, "pretrained_lm", tiny_base)
    out = tmp_path / "bench-out"
    code = bench.main(["--seeds", "2", "--methods", "naive,wise-ft,head-only,distill", "--strengths", "wise-ft=0.5",
                       "--strengths", "distill=1",
                       "--steps", "3", "--batch-size", "2", "--out", str(out), "--no-progress"])
    assert code == 0
    table = (out / "leaderboard.md").read_text()
    assert "| naive |" in table and "| wise-ft | alpha = 0.5 |" in table and "| head-only |" in table
    assert "| distill | lambda = 1 |" in table
    assert "2 seed(s)" in table
    assert (out / "frontier.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = Results.from_json((out / "results.json").read_text())
    assert again.seeds == [0, 1] and len(again.rows) == 4 * 2 * 3 and again.to_markdown() == table.split("\n\n", 1)[1]
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--methods", "naive,magic"], "unknown method"),
    (["--methods", ","], "--methods is empty"),
    (["--steps", "-5"], "--steps"),
    (["--steps", "0"], "--steps"),
    (["--seeds", "0"], "--seeds"),
    (["--seeds", "two"], "--seeds"),
    (["--lr", "0"], "--lr"),
    (["--lr", "nan"], "--lr"),
    (["--strengths", "lora=2.5", "--methods", "lora"], "whole number"),
    (["--strengths", "ewc=abc", "--methods", "ewc"], "must be numbers"),
    (["--strengths", "ewc=10", "--methods", "lora"], "not among --methods"),
    (["--strengths", "replay"], "METHOD=V1,V2"),
    (["--strengths", "replay=1.0"], "replay strength"),
    (["--strengths", "distill=-1", "--methods", "distill"], "distill strength"),
])
def test_bad_input_is_a_clear_usage_error(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as info:
        bench.main([*args, "--out", str(tmp_path / "x")])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_out_must_be_given_and_be_a_folder(tmp_path, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--seeds", "1"])
    assert "--out" in capsys.readouterr().err
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(SystemExit):
        bench.main(["--out", str(a_file)])
    assert "not a folder" in capsys.readouterr().err
