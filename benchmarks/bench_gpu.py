"""Clips per second of the batched eval engine (vaelib.engine.Engine) with AudioLDM2-size models, on a GPU.

    python benchmarks/bench_gpu.py                       # CUDA: fp32/TF32, bf16 and bf16 + torch.compile
    python benchmarks/bench_gpu.py --tiny                # the same code end to end on the CPU, tiny models (a check)
    python benchmarks/bench_gpu.py --modes bf16 --batch-sizes 32 64 128 --clips 512

Models: random-weight diffusers ``AutoencoderKL`` and transformers ``SpeechT5HifiGan`` with AudioLDM2's configs
(docs/reference.md §2; built by ``bench_roundtrip.real_size_models``, nothing downloaded), wrapped as vaelib wraps
the real ones. Input: ``--clips`` seeded random 10.24 s waveforms (one window each; speed does not depend on the
content). Each run is the engine's whole round trip without the metrics: front end, encode, decode, vocoder (the
``mel_projection`` and ``vae`` stages vocoded, as ``vaelib eval`` does), join.

Modes:

* ``fp32``: float32 weights, TF32 matmuls and convolutions allowed (``torch.backends.*.allow_tf32``);
* ``bf16``: bfloat16 weights (the front end stays float32; mels are cast at the model boundary);
* ``compile``: bf16 weights and ``torch.compile`` of the encoder, decoder and vocoder (the first batch compiles;
  timed after a warm-up).

Printed per (mode, batch size): clips/s (after one warm-up batch), peak GPU memory, the share of time in each part
(:data:`vaelib.engine.TIMED_PARTS`, a second run with CUDA synchronised before each reading) and the agreement of
the mode's output with fp32 on the first clips (max |diff| of the decoded log-mel in nat, relative L2 error of the
``vae`` waveform). ``--tiny`` makes the models small and the clip count low so that the whole script runs on a CPU
in about a minute: it checks the script, its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

MODES = ("fp32", "bf16", "compile")


def tiny_models(device):
    """Small random models of the same classes and layout (for ``--tiny``)."""
    from bench_roundtrip import random_models

    return random_models(device, vae_channels=(16, 32, 32), layers_per_block=1, norm_groups=8, voc_channels=32,
                         resblock_kernel_sizes=(3,), resblock_dilations=((1, 3),))


def build(mode, device, tiny):
    """``(vae, vocoder)`` for a mode: float32 or bf16 weights, compiled modules for ``compile``."""
    from bench_roundtrip import real_size_models

    vae, voc = (tiny_models if tiny else real_size_models)(device)
    if mode in ("bf16", "compile"):
        vae.model.to(torch.bfloat16)
        voc.model.to(torch.bfloat16)
    if mode == "compile":
        vae.model.encoder = torch.compile(vae.model.encoder)
        vae.model.decoder = torch.compile(vae.model.decoder)
        voc.model = torch.compile(voc.model)
    return vae, voc


def waves(n, seconds, seed=0):
    rng = np.random.default_rng(seed)
    return [(0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32) for _ in range(n)]


def run_once(vae, voc, xs, batch_size, time_parts=False):
    from vaelib.engine import Engine

    eng = Engine(vae, voc, batch_size=batch_size, vocode=["mel_projection", "vae"], time_cuda=time_parts)
    if vae.device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    recs = list(eng.run(xs))
    if vae.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t, eng, recs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="small models, few clips, CPU allowed: checks the script")
    ap.add_argument("--device", default="auto", help="auto (CUDA when present), cuda, cpu")
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    ap.add_argument("--batch-sizes", nargs="+", type=int, default=None, help="windows per model call")
    ap.add_argument("--clips", type=int, default=None, help="clips per timed run (default 256; --tiny 6)")
    ap.add_argument("--seconds", type=float, default=10.24, help="clip length (default 10.24 s: one window)")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    dev = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                       ("cpu" if args.device == "auto" else args.device))
    if dev.type != "cuda" and not args.tiny:
        ap.error("no CUDA device here: pass --tiny to run the script end to end on the CPU")
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    n = args.clips or (6 if args.tiny else 256)
    sizes = args.batch_sizes or ([2, 4] if args.tiny else [32, 64])
    xs = waves(n, args.seconds)
    head = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu", "torch": torch.__version__,
            "tiny": args.tiny, "clips": n, "clip_s": args.seconds, "threads": torch.get_num_threads()}
    print(json.dumps(head))
    results, ref = [], None
    for mode in args.modes:
        vae, voc = build(mode, dev, args.tiny)
        for b in sizes:
            if dev.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(dev)
            tc = time.perf_counter()
            run_once(vae, voc, xs[:b], b)  # warm-up: cudnn autotuning, torch.compile
            warm = time.perf_counter() - tc
            sec, _, recs = run_once(vae, voc, xs, b)
            peak = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else float("nan")
            _, eng, _ = run_once(vae, voc, xs[: min(n, 4 * b)], b, time_parts=True)
            tot = sum(eng.timings.values()) or 1.0
            row = {"mode": mode, "batch": b, "clips_per_s": n / sec, "x_real_time": n * args.seconds / sec,
                   "seconds": sec, "warmup_s": warm, "peak_gpu_gib": peak,
                   "share": {k: round(v / tot, 3) for k, v in eng.timings.items()}}
            first = {i: (recs[i]["vae"].mel, recs[i]["vae"].wave) for i in range(min(4, n))}
            if ref is None and mode == "fp32":
                ref = first
            if ref is not None:
                dm = max(float(np.abs(ref[i][0] - first[i][0]).max()) for i in first)
                dw = max(float(np.linalg.norm(ref[i][1] - first[i][1]) / (np.linalg.norm(ref[i][1]) + 1e-12))
                         for i in first)
                row["vs_fp32"] = {"dec_mel_max_abs_nat": dm, "vae_wave_rel_l2": dw}
            results.append(row)
            print(json.dumps(row))
        del vae, voc
    print("\n| mode | batch | clips/s | × real time | peak GPU GiB | share: encode / decode / vocode / join+rest |"
          " vs fp32: dec. mel max abs (nat), wave rel. L2 |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        s = r["share"]
        rest = 1 - s["encode"] - s["decode"] - s["vocode"]
        v = r.get("vs_fp32", {})
        print(f"| {r['mode']} | {r['batch']} | {r['clips_per_s']:.1f} | {r['x_real_time']:.0f} | "
              f"{r['peak_gpu_gib']:.1f} | {s['encode']:.2f} / {s['decode']:.2f} / {s['vocode']:.2f} / {rest:.2f} | "
              f"{v.get('dec_mel_max_abs_nat', float('nan')):.3g}, {v.get('vae_wave_rel_l2', float('nan')):.3g} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"head": head, "rows": results}, f, indent=1)


if __name__ == "__main__":
    main()
