"""Wall and CPU time of ``vaelib report`` (the bundled default), warm kernels vs cold kernels, in one run.

    python benchmarks/bench_report.py                 # cold, warm, cold, warm (2 rounds)
    python benchmarks/bench_report.py --rounds 1 --out /tmp/bench_report

Each run is ``python -m vaelib report --out <folder> --no-progress`` in a subprocess (``--cold-kernels`` for the
cold ones), alternating so that a machine that gets busier or quieter during the run affects both alike. Printed
per run: wall seconds, CPU seconds of the whole process tree (user + system, ``RUSAGE_CHILDREN``), and each
notebook's papermill duration (kernel start included) with its setup cell (imports, models, clips); then the
warm/cold ratios of the medians. The metrics of the last warm and cold runs are compared: they must be equal.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _durations(run: Path) -> dict[str, tuple[float, float]]:
    """``{notebook: (papermill duration, setup-cell duration)}``; the setup cell is the one calling study.setup."""
    out = {}
    for nb in sorted(run.glob("*.ipynb")):
        doc = json.loads(nb.read_text(encoding="utf-8"))
        setup = next((c["metadata"].get("papermill", {}).get("duration") or 0.0 for c in doc["cells"]
                      if c["cell_type"] == "code" and "study.setup(" in "".join(c["source"])), 0.0)
        out[nb.stem] = (float(doc["metadata"]["papermill"]["duration"]), float(setup))
    return out


def _metrics(run: Path) -> dict:
    return {p.parent.name: json.loads(p.read_text(encoding="utf-8")).get("summary")
            for p in sorted(run.glob("*/metrics.json"))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=2, help="cold+warm pairs (default 2)")
    ap.add_argument("--out", type=Path, default=None, help="parent folder of the run folders (default: a temp dir)")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error("--rounds must be >= 1")
    root = args.out or Path(tempfile.mkdtemp(prefix="bench_report_"))
    root.mkdir(parents=True, exist_ok=True)
    times: dict[str, list[tuple[float, float]]] = {"cold": [], "warm": []}
    last = {}
    for r in range(args.rounds):
        for kind in ("cold", "warm"):
            run = root / f"{kind}{r}"
            cmd = [sys.executable, "-m", "vaelib", "report", "--out", str(run), "--no-progress"]
            cmd += ["--cold-kernels"] if kind == "cold" else []
            c0, t0 = _cpu(), time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            wall, cpu = time.perf_counter() - t0, _cpu() - c0
            if proc.returncode:
                print(proc.stderr[-2000:], file=sys.stderr)
                return proc.returncode
            times[kind].append((wall, cpu))
            last[kind] = run
            nbs = "  ".join(f"{k[:2]} {d:.1f}/{s:.1f}" for k, (d, s) in _durations(run).items())
            print(f"{kind}  wall {wall:6.1f} s  cpu {cpu:6.1f} s   notebook/setup s: {nbs}", flush=True)
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in times.items()}
    print(f"median wall: cold {med['cold'][0]:.1f} s, warm {med['warm'][0]:.1f} s "
          f"(warm/cold {med['warm'][0] / med['cold'][0]:.2f}); "
          f"CPU: cold {med['cold'][1]:.1f} s, warm {med['warm'][1]:.1f} s "
          f"(warm/cold {med['warm'][1] / med['cold'][1]:.2f})")
    same = _metrics(last["cold"]) == _metrics(last["warm"])
    print(f"metrics.json summaries equal (cold vs warm): {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
