"""Real-time factor of the block-wise API (:class:`vaelib.stream.Streamer`) on CPU.

    python benchmarks/bench_stream.py                 # 60 s of the demo corpus in 0.1 s blocks, bundled + GL
    python benchmarks/bench_stream.py --device cuda   # where a GPU is present

RTF = compute seconds / audio seconds (< 1: faster than real time). Also prints the stated algorithmic latency and
the longest single ``process`` call (the compute a live stream must absorb at a window boundary).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--block", type=float, default=0.1, help="block length in seconds")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    from vaelib import load_vae, load_vocoder
    from vaelib.assets import demo_dir
    from vaelib.audio import load_audio
    from vaelib.longaudio import Windowing
    from vaelib.stream import Streamer

    vae = load_vae("bundled", device=args.device)
    voc = load_vocoder("griffinlim", device=args.device)
    files = sorted((demo_dir() / "train").glob("*.flac"))
    x = np.concatenate([load_audio(f) for f in files] * 3)[: int(args.seconds * 16000)]
    x = x * (0.5 / np.abs(x).max())
    blk = int(args.block * 16000)
    res = {"audio_s": x.size / 16000, "block_s": args.block, "device": args.device, "load": os.getloadavg()[0]}
    for name, win in (("1024/128/64 (training length)", Windowing()), ("256/32/16", Windowing(256, 32, 16))):
        s = Streamer(vae, voc, windowing=win)
        s.process(x[:16000])  # warm-up run on a throw-away stream
        s = Streamer(vae, voc, windowing=win)
        worst, n_out = 0.0, 0
        t0 = time.perf_counter()
        for i in range(0, x.size, blk):
            t = time.perf_counter()
            n_out += s.process(x[i:i + blk]).size
            worst = max(worst, time.perf_counter() - t)
        n_out += s.flush().size
        el = time.perf_counter() - t0
        res[name] = {"compute_s": el, "rtf": el / (x.size / 16000), "latency_s": s.latency_s,
                     "longest_call_s": worst, "samples_out": n_out}
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
