"""``vaelib eval`` throughput on CPU vs the report path, where the time goes, and the seed's step-2 pattern.

    python benchmarks/bench_eval.py throughput     # demo eval clips: eval (workers 0 / 1 / 2) vs the report path
    python benchmarks/bench_eval.py steady         # steady-state x real time: batch 1 vs 8 windows per call
    python benchmarks/bench_eval.py breakdown      # per-stage seconds of eval's per-clip work
    python benchmarks/bench_eval.py step2          # seed's step-2 pattern vs ours, same outputs (ratio)

Bundled tiny VAE + Griffin-Lim (32 iterations), CPU, 2 torch threads (``--threads``). Wall and CPU seconds are
both printed: on a shared machine wall time depends on the load (printed too).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time

import torch

SEED_PRESETS = ("seed_frequency", "seed_noise", "seed_contrast", "seed_hybrid")
#: docs/reference.md §6: FLOPs of the real-size models on one 10.24 s clip (TFLOP).
FLOPS_T = {"encode": 0.31, "decode": 0.64, "hifigan": 1.03}


def _clock():
    return time.perf_counter(), time.process_time()


def _since(t):
    return {"wall_s": time.perf_counter() - t[0], "cpu_s": time.process_time() - t[1]}


def _models():
    from vaelib import load_vae, load_vocoder

    return load_vae("bundled", device="cpu"), load_vocoder("griffinlim", device="cpu")


def _demo():
    from vaelib.audio import find_audio, load_audio

    files = find_audio("demo")
    return files, [load_audio(f) for f in files]


def throughput() -> dict:
    from vaelib import metrics
    from vaelib.pipeline import reconstruct

    files, waves = _demo()
    audio_s = sum(w.size for w in waves) / 16000
    out = {"clips": len(files), "audio_s": audio_s, "load_before": os.getloadavg()[0]}
    vae, voc = _models()
    reconstruct(waves[0], vae, voc)  # warm-up (first-call costs)
    metrics.score(waves[0], waves[0])
    # the report path: notebook 01's per-clip work (reconstruct, then score_stages' full scoring of each stage)
    t = _clock()
    for w in waves:
        rec = reconstruct(w, vae, voc)
        for s in ("mel_projection", "vae"):
            metrics.score(rec.wave, rec[s].wave)
            metrics.score_mel(rec.input_mel, rec[s].mel)
    out["report_path"] = _since(t)
    keys = ["report_path"]
    for workers in (0, 1, 2):
        k = f"eval_workers{workers}"
        out[k] = _eval_run("demo", workers)
        keys.append(k)
    for k in keys:
        r = out[k]
        r["clips_per_s"] = len(files) / r["wall_s"]
        r["x_real_time"] = audio_s / r["wall_s"]
        r["x_real_time_per_cpu_s"] = audio_s / r["cpu_s"]
    # steady state: the same clips 4 times over (32 files, 215 s of audio) minus the 8-clip run = the rate once
    # the models are loaded (a corpus of thousands of clips runs at this rate)
    with tempfile.TemporaryDirectory() as d:
        for i in range(4):
            for f in files:  # copies: eval resolves symlinks, and a symlinked corpus is one copy
                shutil.copy(f, os.path.join(d, f"{i}_{os.path.basename(f)}"))
        for workers in (0, 1, 2):
            big = _eval_run(d, workers)
            small = out[f"eval_workers{workers}"]
            small["steady_x_real_time"] = 3 * audio_s / (big["wall_s"] - small["wall_s"])
            small["steady_x_real_time_per_cpu_s"] = 3 * audio_s / (big["cpu_s"] - small["cpu_s"])
            small["x32_wall_s"] = big["wall_s"]
    out["load_after"] = os.getloadavg()[0]
    print(json.dumps(out, indent=1))
    return out


def _eval_run(audio, workers: int, batch_size: int = 8) -> dict:
    from vaelib.evaluate import evaluate

    with tempfile.TemporaryDirectory() as d:
        t = _clock()
        evaluate(audio, out=os.path.join(d, "run"), model="bundled", vocoder="griffinlim", device="cpu",
                 workers=workers, batch_size=batch_size, keep_worst=0, progress=False, echo=lambda s: None)
        return _since(t)


def steady(batch_sizes=(1, 8), workers=(0, 2), small=2, big=8) -> dict:
    """Steady-state × real time of ``evaluate()`` as the issue measures it: the slope between a corpus of the demo
    eval clips ``small`` times over (2: 107 s of audio) and ``big`` times over (8: 429 s), so that model loading
    and first-call warm-ups cancel; per batch size (windows per model call; 1 = one window at a time) and worker
    count, all in one process, one run after the other."""
    files, waves = _demo()
    audio_s = sum(w.size for w in waves) / 16000
    out = {"audio_s_small": small * audio_s, "audio_s_big": big * audio_s, "threads": torch.get_num_threads(),
           "load_before": os.getloadavg()[0]}
    _eval_run("demo", 0)  # warm-up: imports, first calls
    with tempfile.TemporaryDirectory() as ds, tempfile.TemporaryDirectory() as db:
        for d, k in ((ds, small), (db, big)):
            for i in range(k):
                for f in files:  # copies: eval resolves symlinks, and a symlinked corpus is one copy
                    shutil.copy(f, os.path.join(d, f"{i}_{os.path.basename(f)}"))
        for b in batch_sizes:
            for w in workers:
                t_small, t_big = _eval_run(ds, w, b), _eval_run(db, w, b)
                slope = (big - small) * audio_s / (t_big["wall_s"] - t_small["wall_s"])
                cpu = (big - small) * audio_s / (t_big["cpu_s"] - t_small["cpu_s"])
                out[f"batch{b}_workers{w}"] = {"small_wall_s": t_small["wall_s"], "big_wall_s": t_big["wall_s"],
                                              "steady_x_real_time": slope, "steady_x_real_time_per_cpu_s": cpu}
                print(f"batch {b} workers {w}: {slope:.1f}x real time (steady state), small {t_small['wall_s']:.1f} s,"
                      f" big {t_big['wall_s']:.1f} s", flush=True)
    out["load_after"] = os.getloadavg()[0]
    print(json.dumps(out, indent=1))
    return out


def breakdown() -> dict:
    """Seconds per part of eval's per-clip work, summed over the demo eval clips."""
    from vaelib import metrics
    from vaelib.audio import load_audio, normalize, pad_to_multiple, wav_to_mel
    from vaelib.pipeline import vocode

    files, waves = _demo()
    vae, voc = _models()
    parts = dict.fromkeys(("decode_audio", "front_end", "vae_encode", "vae_decode", "griffin_lim_2_stages",
                           "metrics_waveform_2_stages", "metrics_mel_2_stages"), 0.0)
    vocode(voc, wav_to_mel(waves[0])[0:1])  # warm-up
    for f in files:
        t = time.perf_counter()
        w = load_audio(f)
        parts["decode_audio"] += time.perf_counter() - t
        t = time.perf_counter()
        x = pad_to_multiple(normalize(w)[0])
        mel = wav_to_mel(torch.from_numpy(x))
        parts["front_end"] += time.perf_counter() - t
        t = time.perf_counter()
        z = vae.encode(mel)
        parts["vae_encode"] += time.perf_counter() - t
        t = time.perf_counter()
        dec = vae.decode(z)
        parts["vae_decode"] += time.perf_counter() - t
        t = time.perf_counter()
        out = vocode(voc, torch.cat([mel, dec]))
        parts["griffin_lim_2_stages"] += time.perf_counter() - t
        t = time.perf_counter()
        for o in out:
            metrics.score(x, o)
        parts["metrics_waveform_2_stages"] += time.perf_counter() - t
        t = time.perf_counter()
        for m in (mel, dec):
            metrics.score_mel(mel[0, 0], m[0, 0])
        parts["metrics_mel_2_stages"] += time.perf_counter() - t
    audio_s = sum(w.size for w in waves) / 16000
    total = sum(parts.values())
    res = {"audio_s": audio_s, "total_s": total, "x_real_time": audio_s / total, "load": os.getloadavg()[0],
           "parts_s": parts, "share": {k: v / total for k, v in parts.items()}}
    print(json.dumps(res, indent=1))
    return res


def step2() -> dict:
    """The seed's step 2 vs ours for the same outputs (baseline VAE round trip + 4 enhanced variants, vocoded).

    Seed pattern (its scripts): per method, the whole chain again — encode the clip, enhance, decode, vocode —
    and the baseline re-decoded and re-vocoded beside it. Ours (:func:`vaelib.pipeline.reconstruct`): encode once,
    decode the baseline and every variant in one batch, vocode them in one batch.
    """
    from vaelib import enhance
    from vaelib.audio import normalize, pad_to_multiple, wav_to_mel
    from vaelib.pipeline import reconstruct, vocode

    _, waves = _demo()
    vae, voc = _models()
    reconstruct(waves[0], vae, voc)
    t = _clock()
    for w in waves:
        for p in SEED_PRESETS:
            method, params = enhance.PRESETS[p]
            mel = wav_to_mel(torch.from_numpy(pad_to_multiple(normalize(w)[0])))
            z = vae.encode(mel)
            vocode(voc, vae.decode(enhance.apply(method, z, params, seed=0)))
            vocode(voc, vae.decode(vae.encode(mel)))  # the baseline, re-encoded and re-decoded per method
    seed = _since(t)
    t = _clock()
    for w in waves:
        rec = reconstruct(w, vae, None, enhancers=list(SEED_PRESETS), vocode=False)
        vocode(voc, torch.stack([torch.from_numpy(rec[s].mel)[None] for s in ("vae", *SEED_PRESETS)]))
    ours = _since(t)
    m = len(SEED_PRESETS)
    f = FLOPS_T
    flops_seed = m * (2 * f["encode"] + 2 * f["decode"] + 2 * f["hifigan"])
    flops_ours = f["encode"] + (1 + m) * f["decode"] + (1 + m) * f["hifigan"]
    res = {"methods": m, "clips": len(waves), "seed_pattern": seed, "ours": ours,
           "measured_ratio_wall": seed["wall_s"] / ours["wall_s"], "measured_ratio_cpu": seed["cpu_s"] / ours["cpu_s"],
           "audioldm2_flops_T_seed": flops_seed, "audioldm2_flops_T_ours": flops_ours,
           "audioldm2_flop_ratio": flops_seed / flops_ours, "load": os.getloadavg()[0]}
    print(json.dumps(res, indent=1))
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("throughput", "steady", "breakdown", "step2"))
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    {"throughput": throughput, "steady": steady, "breakdown": breakdown, "step2": step2}[args.what]()


if __name__ == "__main__":
    main()
