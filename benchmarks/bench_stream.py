"""Latency, real-time factor and quality of the block-wise API (:class:`vaelib.stream.Streamer`) on CPU.

    python benchmarks/bench_stream.py                 # 60 s of the demo corpus in 0.1 s blocks, bundled + GL
    python benchmarks/bench_stream.py --extra 20/40/8/8/16/4/8   # also these LowLatency settings
    python benchmarks/bench_stream.py --device cuda   # where a GPU is present

One row per setting: the two training-length windowings (19.2 s / 4.8 s latency, output == the offline round
trip) and the low-latency presets (:data:`vaelib.stream.LOW_LATENCY_PRESETS`; ``"low"``, 0.40 s, is the
recommended one). Columns:

* ``latency_s``: the stated algorithmic latency (:attr:`Streamer.latency_s`);
* ``rtf``: compute seconds / audio seconds on ``--threads`` torch threads (default 1), warm-up excluded;
* ``longest_call_s``: the longest single ``process`` call (what a live stream must absorb at once);
* quality relative to the offline round trip of the same audio
  (:func:`vaelib.longaudio.reconstruct_long`, ``normalise=False``, training-length windows): high-band mel LSD
  (:func:`vaelib.metrics.mel_lsd`, 4–8 kHz) and mel L1 (:func:`vaelib.metrics.mel_l1`), each against the
  *input* log-mel, as the ratio streamed / offline (1.05 = 5 % worse), in two domains: ``mel`` = the decoded
  stage mel before the vocoder (the VAE's own output), ``wave`` = the log-mel of the vocoded waveform.

Audio: the demo eval clips then the train clips, concatenated and cut to ``--seconds``, peak 0.5.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch


def _parse(spec: str):
    from vaelib.stream import LowLatency

    names = ("chunk", "context", "lookahead", "fade", "voc_context", "voc_lookahead", "voc_fade")
    vals = [int(v) for v in spec.split("/")]
    if len(vals) != len(names):
        raise SystemExit(f"--extra takes {'/'.join(names)} in frames (got {spec!r})")
    return LowLatency(**dict(zip(names, vals, strict=True)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--block", type=float, default=0.1, help="block length in seconds")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--gl-iters", type=int, default=32, help="Griffin-Lim iterations (offline and streamed)")
    ap.add_argument("--extra", nargs="*", default=[], metavar="C/X/L/F/VX/VL/VF",
                    help="more LowLatency settings, frames: chunk/context/lookahead/fade/voc_context/"
                         "voc_lookahead/voc_fade")
    ap.add_argument("--only-low", action="store_true", help="skip the training-length rows")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from vaelib import load_vae, load_vocoder
    from vaelib.assets import demo_dir
    from vaelib.audio import load_audio, wav_to_mel
    from vaelib.longaudio import Windowing, reconstruct_long
    from vaelib.metrics import mel_l1, mel_lsd
    from vaelib.stream import LOW_LATENCY_PRESETS, Streamer

    vae = load_vae("bundled", device=args.device)
    voc = load_vocoder("griffinlim", device=args.device, n_iter=args.gl_iters)
    cfg = vae.mel_config
    files = sorted((demo_dir() / "eval").glob("*.flac")) + sorted((demo_dir() / "train").glob("*.flac"))
    x = np.concatenate([load_audio(f) for f in files])[: int(args.seconds * 16000)]
    x = (x * (0.5 / np.abs(x).max())).astype(np.float32)
    blk = int(args.block * 16000)
    off = reconstruct_long(x, vae, voc, normalise=False)
    ref = off["input"].mel
    n_frames = x.size // cfg.hop_length

    def quality(mel):
        mel = mel[:n_frames]
        return mel_lsd(ref[:n_frames], mel, band=(4000, 8001), cfg=cfg), mel_l1(ref[:n_frames], mel)

    def wave_mel(w):
        return wav_to_mel(np.ascontiguousarray(w[:x.size], dtype=np.float32), cfg)[0, 0].numpy()

    base = {"mel": quality(off["vae"].mel), "wave": quality(wave_mel(off["vae"].wave))}
    res = {"audio_s": x.size / 16000, "block_s": args.block, "device": args.device, "threads": args.threads,
           "gl_iters": args.gl_iters,
           "load_start": os.getloadavg()[0], "offline": {f"{d}_{m}": v for d, (lsd, l1) in base.items()
                                                        for m, v in (("lsd_high", lsd), ("l1", l1))},
           "rows": []}
    settings = [] if args.only_low else [("1024/128/64 (training length)", {"windowing": Windowing()}),
                                         ("256/32/16", {"windowing": Windowing(256, 32, 16)})]
    settings += [(f"low_latency={k!r} ({v.describe()})", {"low_latency": v}) for k, v in LOW_LATENCY_PRESETS.items()]
    settings += [(f"LowLatency({ll.describe()})", {"low_latency": ll}) for ll in map(_parse, args.extra)]
    for name, kw in settings:
        s = Streamer(vae, voc, **kw)
        s.process(x[:32000])  # warm-up run on a throw-away stream
        s.flush()
        s = Streamer(vae, voc, keep_mel=True, **kw)
        worst, out = 0.0, []
        t0 = time.perf_counter()
        for i in range(0, x.size, blk):
            t = time.perf_counter()
            out.append(s.process(x[i:i + blk]))
            worst = max(worst, time.perf_counter() - t)
        out.append(s.flush())
        el = time.perf_counter() - t0
        y = np.concatenate(out)
        row = {"setting": name, "latency_s": s.latency_s, "compute_s": el, "rtf": el / (x.size / 16000),
               "longest_call_s": worst, "samples_out": int(y.size), "load": os.getloadavg()[0]}
        for dom, got in (("mel", quality(s.mel)), ("wave", quality(wave_mel(y)))):
            row[f"{dom}_lsd_high_ratio"] = got[0] / base[dom][0]
            row[f"{dom}_l1_ratio"] = got[1] / base[dom][1]
        res["rows"].append(row)
        print(json.dumps(row), flush=True)
    print("\n| setting | latency s | RTF | longest call s | mel: LSD-high ratio | mel: L1 ratio "
          "| wave: LSD-high ratio | wave: L1 ratio |\n|---|---|---|---|---|---|---|---|")
    for r in res["rows"]:
        print(f"| {r['setting']} | {r['latency_s']:.2f} | {r['rtf']:.3f} | {r['longest_call_s']:.3f} "
              f"| {r['mel_lsd_high_ratio']:.3f} | {r['mel_l1_ratio']:.3f} | {r['wave_lsd_high_ratio']:.3f} "
              f"| {r['wave_l1_ratio']:.3f} |")
    print("offline (absolute):", json.dumps(res["offline"]))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
