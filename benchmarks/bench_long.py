"""Long recordings through ``vaelib eval``: wall time, CPU time and peak RSS per file length.

Each length runs ``python -m vaelib eval`` on one synthetic file (the demo corpus looped, peak-normalised FLAC)
in its own subprocess; peak RSS is that subprocess's ``ru_maxrss`` (``resource.getrusage(RUSAGE_CHILDREN)`` in a
fresh wrapper process, so only that one child counts). Bundled tiny VAE + Griffin-Lim (32 iterations), CPU,
``OMP_NUM_THREADS=2``.

    python benchmarks/bench_long.py --minutes 1 5 20 30
    python benchmarks/bench_long.py seam          # seam error of the 10.24 s windows on 60 s (docs/eval.md)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_WRAP = r"""
import resource, subprocess, sys, time, json
t = time.perf_counter()
p = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.perf_counter() - t
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": p.returncode, "wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime,
                  "max_rss_mb": ru.ru_maxrss / 1024, "stderr": p.stderr[-400:], "stdout": p.stdout[-600:]}))
"""


def make_file(path: Path, minutes: float) -> Path:
    import numpy as np
    import soundfile as sf

    from vaelib.assets import demo_dir
    from vaelib.audio import load_audio

    clips = [load_audio(f) for f in sorted((demo_dir() / "train").glob("*.flac"))]
    n = int(minutes * 60 * 16000)
    with sf.SoundFile(str(path), "w", samplerate=16000, channels=1, subtype="PCM_16") as f:
        done, i = 0, 0
        while done < n:
            c = clips[i % len(clips)][: n - done]
            f.write(c * 0.9 / max(1e-6, float(np.abs(c).max())))
            done += c.size
            i += 1
    return path


def run_lengths(minutes, workdir: Path, gl_iters: int = 32) -> list[dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "HF_HUB_OFFLINE": "1"}
    rows = []
    for m in minutes:
        (workdir / "in").mkdir(parents=True, exist_ok=True)  # eval refuses --out in an input folder
        f = make_file(workdir / "in" / f"long_{m:g}min.flac", m)
        out = workdir / f"eval_{m:g}min"
        cmd = [sys.executable, "-m", "vaelib", "eval", "--audio", str(f), "--out", str(out), "--model", "bundled",
               "--vocoder", "griffinlim", "--device", "cpu", "--no-progress", "--keep-worst", "0",
               "--griffinlim-iters", str(gl_iters)]
        load0 = os.getloadavg()[0]
        res = json.loads(subprocess.run([sys.executable, "-c", _WRAP, *cmd], capture_output=True, text=True,
                                        env=env).stdout)
        res.update(minutes=m, audio_s=m * 60, griffinlim_iters=gl_iters, load_before=load0,
                   load_after=os.getloadavg()[0],
                   x_real_time=m * 60 / res["wall_s"])
        print(json.dumps({k: v for k, v in res.items() if k not in ("stderr", "stdout")}), flush=True)
        if res["rc"]:
            print(res["stderr"], file=sys.stderr)
        rows.append(res)
    return rows


def seam() -> dict:
    """Seam error of the windowed VAE on 60 s of the demo corpus (mels, no vocoder)."""
    import numpy as np
    import torch

    from vaelib import load_vae
    from vaelib.assets import demo_dir
    from vaelib.audio import load_audio, normalize, pad_to_multiple, wav_to_mel
    from vaelib.longaudio import Windowing, reconstruct_long

    torch.set_num_threads(2)
    vae = load_vae("bundled", device="cpu")
    files = sorted((demo_dir() / "train").glob("*.flac")) + sorted((demo_dir() / "eval").glob("*.flac"))
    x = np.concatenate([load_audio(f) for f in files])[:60 * 16000]
    mel = wav_to_mel(torch.from_numpy(pad_to_multiple(normalize(x)[0])))
    inp = mel[0, 0].numpy()
    t = time.perf_counter()
    whole = vae.decode(vae.encode(mel))[0, 0].numpy()
    t_whole = time.perf_counter() - t
    out = {"unchunked_s": t_whole}
    for win in (Windowing(), Windowing(1024, 256, 128), Windowing(1024, 64, 32)):
        t = time.perf_counter()
        ch = reconstruct_long(x, vae, None, windowing=win)["vae"].mel
        el = time.perf_counter() - t
        near = win.seam_mask(inp.shape[0])
        e = np.abs(ch - inp).mean(axis=1)
        d = np.abs(ch - whole).mean(axis=1)
        out[f"{win.window}/{win.overlap}/{win.fade}"] = {
            "seconds": el, "l1_vs_input": float(e.mean()), "l1_near_seams": float(e[near].mean()),
            "l1_away": float(e[~near].mean()), "seam_excess": float(e[near].mean() / e[~near].mean() - 1),
            "vs_unchunked_away": float(d[~near].mean()), "vs_unchunked_near": float(d[near].mean()),
            "max_frame_vs_unchunked": float(d.max())}
    out["unchunked_l1_vs_input"] = float(np.abs(whole - inp).mean())
    print(json.dumps(out, indent=1))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", nargs="?", default="lengths", choices=("lengths", "seam"))
    ap.add_argument("--minutes", type=float, nargs="+", default=[1, 5, 20, 30])
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--gl-iters", type=int, default=32, help="Griffin-Lim iterations (eval's default: 32)")
    args = ap.parse_args(argv)
    if args.what == "seam":
        seam()
        return
    work = Path(args.workdir or tempfile.mkdtemp(prefix="vaelib_long_"))
    work.mkdir(parents=True, exist_ok=True)
    run_lengths(args.minutes, work, args.gl_iters)


if __name__ == "__main__":
    main()
