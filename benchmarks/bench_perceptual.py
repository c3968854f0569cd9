"""Per-clip cost of the perceptual measures and CLAP embeddings, next to eval's own per-clip work.

    python benchmarks/bench_perceptual.py            # the 8 demo eval clips (4.5-8.8 s each)
    python benchmarks/bench_perceptual.py --eval     # also: `vaelib eval` on them with and without perceptual

For each clip: one round trip of eval's default work (bundled tiny VAE + Griffin-Lim 32 iterations, both
stages, the default metrics), then each perceptual kind on one (input, reconstruction) pair, after a warm-up
call that pays the imports and model loads (reported separately). Wall and CPU seconds are printed (on a
shared machine the wall time depends on the load, printed too); eval computes the perceptual measures once
per stage, i.e. twice per clip without enhancers.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np
import torch

KINDS = ("visqol", "visqol_speech", "stoi", "pesq", "dnsmos")


def _clock():
    return time.perf_counter(), time.process_time()


def _since(t):
    return {"wall_s": time.perf_counter() - t[0], "cpu_s": time.process_time() - t[1]}


def _median(rows, key, field):
    return float(np.median([r[key][field] for r in rows]))


def per_clip(n_clips: int | None = None) -> dict:
    from vaelib import load_vae, load_vocoder, metrics
    from vaelib.audio import find_audio, load_audio
    from vaelib.longaudio import reconstruct_long
    from vaelib.metrics import perceptual, perceptual_versions

    files = find_audio("demo", demo_split="eval")[:n_clips]
    vae, voc = load_vae("bundled", device="cpu"), load_vocoder("griffinlim", device="cpu")
    warm = {}
    x0 = load_audio(files[0])
    for kind in KINDS:
        t = _clock()
        perceptual(x0, x0, kinds=kind)
        warm[kind] = _since(t)
    rows = []
    for f in files:
        x = load_audio(f)
        row = {"clip": f.name, "seconds": x.size / 16000}
        t = _clock()
        rec = reconstruct_long(x, vae, voc)
        waves = {n: s.wave for n, s in rec.stages.items() if n != "input" and s.wave is not None}
        metrics.score_many(rec.wave, waves, sr=16000, cfg=vae.mel_config)
        for s in rec.stages.values():
            if s.mel is not None and s is not rec.stages.get("input"):
                metrics.score_mel(rec.input_mel, s.mel, cfg=vae.mel_config)
        row["eval_default"] = _since(t)
        est = waves["vae"]
        for kind in KINDS:
            t = _clock()
            perceptual(rec.wave, est, kinds=kind)
            row[kind] = _since(t)
        t = _clock()
        perceptual(rec.wave, est)
        row["all_perceptual"] = _since(t)
        rows.append(row)
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else
                              {a: round(b, 3) for a, b in v.items()} if isinstance(v, dict) else v)
                          for k, v in row.items()}), flush=True)
    keys = ["eval_default", *KINDS, "all_perceptual"]
    summary = {k: {"wall_s": _median(rows, k, "wall_s"), "cpu_s": _median(rows, k, "cpu_s")} for k in keys}
    default_cpu = summary["eval_default"]["cpu_s"]
    # eval scores 2 stages per clip (mel_projection, vae) without enhancers
    summary["eval_cpu_ratio_with_perceptual"] = (default_cpu + 2 * summary["all_perceptual"]["cpu_s"]) / default_cpu
    return {"warm_up": warm, "median_per_clip": summary, "clips": len(rows), "versions": perceptual_versions()}


def eval_runs() -> dict:
    from vaelib.evaluate import evaluate

    out = {}
    for spec in ("default", "default,perceptual"):
        with tempfile.TemporaryDirectory() as d:
            t = _clock()
            evaluate("demo", out=os.path.join(d, "ev"), model="bundled", vocoder="griffinlim", device="cpu",
                     progress=False, echo=lambda s: None, keep_worst=0, metrics=spec)
            out[spec] = _since(t)
    out["ratio_wall"] = out["default,perceptual"]["wall_s"] / out["default"]["wall_s"]
    out["ratio_cpu"] = out["default,perceptual"]["cpu_s"] / out["default"]["cpu_s"]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=None, help="first N demo eval clips (default: all 8)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--eval", action="store_true", help="also time `vaelib eval` with and without perceptual")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    res = {"load_avg": os.getloadavg(), "per_clip": per_clip(args.clips)}
    if args.eval:
        res["eval"] = eval_runs()
    res["load_avg_after"] = os.getloadavg()
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
