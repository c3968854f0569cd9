"""The benchmark scripts that must run anywhere: bench_gpu.py's --help and its --tiny CPU path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def test_bench_gpu_help_and_tiny_cpu_run(tmp_path):
    """--help needs no GPU; --tiny runs the batched engine end to end on the CPU and reports every part."""
    env_py = [sys.executable, str(BENCH / "bench_gpu.py")]
    h = subprocess.run([*env_py, "--help"], capture_output=True, text=True, timeout=120)
    assert h.returncode == 0 and "--tiny" in h.stdout
    out = tmp_path / "gpu.json"
    p = subprocess.run([*env_py, "--tiny", "--device", "cpu", "--modes", "fp32", "bf16", "--batch-sizes", "2",
                        "--clips", "3", "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert [(r["mode"], r["batch"]) for r in rows] == [("fp32", 2), ("bf16", 2)]
    for r in rows:
        assert r["clips_per_s"] > 0 and abs(sum(r["share"].values()) - 1) < 0.01
    assert rows[0]["vs_fp32"]["dec_mel_max_abs_nat"] == 0.0  # fp32 against itself
    assert rows[1]["vs_fp32"]["dec_mel_max_abs_nat"] > 0.0  # bf16 weights really ran
    assert "| fp32 | 2 |" in p.stdout
    no_gpu = subprocess.run([*env_py, "--device", "cpu"], capture_output=True, text=True, timeout=120)
    assert no_gpu.returncode == 2 and "--tiny" in no_gpu.stderr
