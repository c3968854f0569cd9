"""What each waveform metric of ``vaelib eval`` costs: ``metrics.score_many`` of 1 original + 3 stages, 10.24 s.

    python benchmarks/bench_metrics.py                # 1 and 2 threads, before vs after
    python benchmarks/bench_metrics.py --threads 2 --rounds 3 --repeats 10 --stacked --json out.json

"before" is the per-signal implementation ``score_many`` had until this file was added (librosa's STFT for LSD,
torch's complex ``abs`` and filter bank for the log-mel, LSD's per-bin term computed three times, the original's
mrSTFT logs once per stage, inner products by BLAS), reproduced below as ``Before`` so both run on the same
signals; "after" is today's :mod:`vaelib.metrics` (``_Batch`` per signal). ``--stacked`` adds the stages'
analyses as one batch of rows (slower on CPU: why score_many does not stack them).

With more than one thread each side runs in its own child process (``--rounds`` per side, sides alternating, so
both see the same machine load): BLAS calls of one side leave OpenBLAS threads spinning that would slow the
other. With one thread the sides are interleaved in one process per round (no spinning threads; the closest
comparison). A child sets
``torch.set_num_threads`` and ``OMP/OPENBLAS/MKL_NUM_THREADS`` to the thread count (on a 2-core machine what
``vaelib eval`` gets by default for 2), times every component on its own, interleaved within each repeat, and the
parent prints the median wall ms. Analyses are for all four signals, pairwise rows for all three pairs; the last
rows are the whole ``score_many`` call.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import time

import numpy as np

SR = 16000
N = 163840  # 10.24 s: one VAE window
STAGES = 3


def _signals():
    """A speech-band-ish original and three 'stages': low-passed, noisier, gain-changed with added noise."""
    from scipy.signal import butter, sosfiltfilt

    rng = np.random.default_rng(0)
    ref = sosfiltfilt(butter(2, [80, 6000], btype="band", fs=SR, output="sos"), rng.standard_normal(N))
    ref *= np.repeat(0.2 + rng.random(N // 1600 + 1), 1600)[:N] * 0.1
    ests = {"mel_projection": sosfiltfilt(butter(6, 7000, fs=SR, output="sos"), ref),
            "vae": ref + 0.01 * rng.standard_normal(N),
            "restored": 0.8 * ref + 0.003 * rng.standard_normal(N)}
    return ref, ests


class Before:
    """The per-signal analyses ``score_many`` used before batching (``vaelib.metrics._Analysis`` then)."""

    def __init__(self, x, cfg):
        self.x, self.sr, self.cfg = x, SR, cfg

    @functools.cached_property
    def welch(self):
        from vaelib import metrics as M

        return M._welch(self.x, self.sr, 1024, "constant")

    @functools.cached_property
    def lsd_mag(self):
        from vaelib import metrics as M

        n_fft, hop = M._lsd_defaults(self.sr, None, None)
        return M._lsd_mag(self.x, n_fft, hop, "constant")  # librosa.stft

    @functools.cached_property
    def mrstft_mags(self):
        import torch

        from vaelib import metrics as M

        t = torch.from_numpy(np.ascontiguousarray(self.x))
        mags = []
        for n_fft, hop, win in M._check_resolutions(M.MRSTFT_RESOLUTIONS, self.x.shape[0]):
            window = torch.hann_window(win, periodic=True, dtype=torch.float64)
            spec = torch.stft(t, n_fft=n_fft, hop_length=hop, win_length=win, window=window, center=True,
                              pad_mode="reflect", return_complex=True)
            mags.append(torch.sqrt(torch.clamp(spec.real**2 + spec.imag**2, min=1e-7)).numpy())
        return mags

    @functools.cached_property
    def logmel(self):
        from vaelib.audio import wav_to_mel

        return wav_to_mel(self.x, self.cfg)

    @functools.cached_property
    def head(self):
        from vaelib import metrics as M

        return np.abs(np.fft.rfft(self.x[:M._SEED_N]))


# the old _score_pair, in its parts (same code, split so each part can be timed)
def _before_seed(a, b, out):
    from vaelib import metrics as M

    out.update(snr_db=M.snr_db(a.x, b.x), correlation=M.correlation(a.x, b.x), si_sdr=M.si_sdr(a.x, b.x))


def _before_lsd(a, b, out):
    from vaelib import metrics as M

    t, e, sr = a.lsd_mag, b.lsd_mag, SR
    freqs = np.fft.rfftfreq(M._lsd_defaults(sr, None, None)[0], d=1.0 / sr)
    out["lsd"] = M._lsd_from_spec(t, e, freqs, sr, None, 1e-12)
    out["lsd_lf"] = M._lsd_from_spec(t, e, freqs, sr, (0.0, M.HIGH_BAND_HZ), 1e-12)
    out["lsd_hf"] = M._lsd_from_spec(t, e, freqs, sr, (M.HIGH_BAND_HZ, sr / 2 + 1), 1e-12)


def _before_mrstft(a, b, out):
    from vaelib import metrics as M

    parts = M._mrstft_from_mags(a.mrstft_mags, b.mrstft_mags, return_parts=True)
    out.update(mrstft=parts["mrstft"], mrstft_sc=parts["sc"], mrstft_mag=parts["mag"])


def _before_welch(a, b, out):
    from vaelib import metrics as M

    f, po = a.welch
    _, pr = b.welch
    for name, v in M._ber_from_psd(f, po, pr, SR, M.BANDS).items():
        out[f"ber_{name}"] = v
    high = M.BANDS["high"]
    mh = M._band_mask(f, *high, SR / 2, "Welch bins")
    out["hf_flatness"] = M._flatness(pr[mh], 1e-12)
    out["hf_flatness_ref"] = M._flatness(po[mh], 1e-12)
    out["added_hf_flatness"] = M._added_flatness_from_psd(f, po, pr, SR, high, 1e-12)


def _before_mel(a, b, out):
    from vaelib import metrics as M

    for name, v in M.mel_band_error_db_logmel(a.logmel, b.logmel, cfg=a.cfg, bands=M.BANDS).items():
        out[f"mel_err_db_{name}"] = v


def _before_claims(a, b, out):
    from vaelib import metrics as M

    for name, v in M._retention_from_spectra(a.head, b.head, min(N, M._SEED_N), SR).items():
        out[f"claims_ret_{name}"] = v


BEFORE_PAIRWISE = {"seed (snr, correlation, si_sdr)": _before_seed, "lsd, lsd_lf, lsd_hf": _before_lsd,
                   "mrstft (sc, mag)": _before_mrstft, "Welch: ber, flatness": _before_welch,
                   "mel_err_db": _before_mel, "claims_ret": _before_claims}


def before_score_many(ref, ests, cfg):
    a = Before(ref, cfg)
    out = {}
    for name, est in ests.items():
        b, row = Before(est, cfg), {}
        for fn in BEFORE_PAIRWISE.values():
            fn(a, b, row)
        out[name] = row
    return out


ANALYSES = {  # label -> (Before attribute, _Batch attribute)
    "LSD STFT (n_fft 743, hop 160)": ("lsd_mag", "lsd_power"),
    "mrSTFT, 3 resolutions": ("mrstft_mags", "mrstft_mags"),
    "mrSTFT logs (of the magnitudes above)": (None, "mrstft_logs"),  # before: in the pairwise mrstft maths
    "log-mel (wav_to_mel)": ("logmel", "logmel"),
    "Welch PSD (nperseg 1024)": ("welch", "welch"),
    "first 8192 samples' rfft": ("head", "head"),
}


def _after_pairwise():
    from vaelib import metrics as M

    return {"seed (snr, correlation, si_sdr)": lambda a, b, o: M._rows_seed(a, b, o, True),
            "lsd, lsd_lf, lsd_hf": M._rows_lsd, "mrstft (sc, mag)": M._rows_mrstft,
            "Welch: ber, flatness": M._rows_welch, "mel_err_db": M._rows_mel, "claims_ret": M._rows_claims}


def _times(fns: dict, repeats: int) -> dict:
    """Wall seconds of each callable per repeat, the callables interleaved within every repeat."""
    times = {k: [] for k in fns}
    for f in fns.values():
        f()  # warm-up
    for _ in range(repeats):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    return times


def _components(side: str, ref, ests, cfg) -> dict:
    """label -> callable, for one side ("before", "after" or "stacked")."""
    from vaelib import metrics as M

    signals = (ref, *ests.values())
    fns = {}
    if side == "before":
        for label, (attr, _) in ANALYSES.items():
            if attr is not None:
                fns[label] = (lambda attr=attr: [getattr(Before(x, cfg), attr) for x in signals])
        a_old, b_old = Before(ref, cfg), [Before(x, cfg) for x in ests.values()]
        for obj in (a_old, *b_old):
            for attr, _ in ANALYSES.values():
                getattr(obj, attr or "head")
        for label, fn in BEFORE_PAIRWISE.items():
            fns[label] = (lambda fn=fn: [fn(a_old, b, {}) for b in b_old])
        fns["whole score_many call"] = lambda: before_score_many(ref, ests, cfg)
    elif side == "after":
        for label, (_, attr) in ANALYSES.items():
            if attr == "mrstft_logs":  # the logs alone, of magnitudes computed beforehand
                objs = [M._Batch(x[None], SR, cfg) for x in signals]
                for o in objs:
                    _ = o.mrstft_mags

                def f(objs=objs):
                    for o in objs:
                        o.__dict__.pop("mrstft_logs", None)
                        _ = o.mrstft_logs
                fns[label] = f
            else:
                fns[label] = (lambda attr=attr: [getattr(M._Batch(x[None], SR, cfg), attr) for x in signals])
        a_new, b_new = M._Batch(ref[None], SR, cfg), [M._Batch(x[None], SR, cfg) for x in ests.values()]
        for obj in (a_new, *b_new):
            for _, attr in ANALYSES.values():
                getattr(obj, attr)
        for label, fn in _after_pairwise().items():
            fns[label] = (lambda fn=fn: [fn(a_new, b, [{}]) for b in b_new])
        fns["whole score_many call"] = lambda: M.score_many(ref, ests, sr=SR, cfg=cfg)
    else:  # stacked: the original alone, the three stages as one batch of rows
        stack = np.stack(list(ests.values()))
        for label, (_, attr) in ANALYSES.items():
            if attr == "mrstft_logs":
                continue
            fns[label] = (lambda attr=attr: (getattr(M._Batch(ref[None], SR, cfg), attr),
                                             getattr(M._Batch(stack, SR, cfg), attr)))
    return fns


def measure(threads: int, repeats: int, sides: list[str]) -> dict:
    """Seconds per repeat of every component of ``sides``, interleaved, in this process."""
    import torch

    torch.set_num_threads(threads)
    from vaelib import metrics as M
    from vaelib.audio import MelConfig

    cfg = MelConfig()
    ref, ests = _signals()
    fns = {f"{side}|{label}": f for side in sides for label, f in _components(side, ref, ests, cfg).items()}
    res = {"threads": threads, "load": [os.getloadavg()[0], None]}
    res["times"] = _times(fns, repeats)
    res["load"][1] = os.getloadavg()[0]
    # after the timing: the before code's BLAS calls must not run beside the timed code
    got, want = M.score_many(ref, ests, sr=SR, cfg=cfg), before_score_many(ref, ests, cfg)
    res["max_rel_diff"] = max(abs(got[s][k] - v) / max(abs(v), 1e-300)
                              for s in ests for k, v in want[s].items() if v == v)
    return res


def combine(children: list[dict]) -> dict:
    """Median ms per (side, component) over all children of one thread count."""
    times: dict = {}
    for c in children:
        for key, v in c["times"].items():
            times.setdefault(tuple(key.split("|")), []).extend(v)
    ms = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
    labels = [*ANALYSES, *BEFORE_PAIRWISE, "whole score_many call"]
    rows = [{"component": label, "before_ms": ms.get(("before", label)), "after_ms": ms.get(("after", label)),
             "stacked_ms": ms.get(("stacked", label))} for label in labels]
    return {"threads": children[0]["threads"], "repeats": len(times[("after", "whole score_many call")]),
            "load": [min(c["load"][0] for c in children), max(c["load"][1] for c in children)],
            "max_rel_diff": max(c.get("max_rel_diff", 0.0) for c in children), "rows": rows}


def _table(res: dict) -> str:
    lines = [f"threads {res['threads']}, {res['how']}, median of {res['repeats']}, "
             f"load {res['load'][0]:.2f}-{res['load'][1]:.2f}, outputs equal to {res['max_rel_diff']:.1e} relative",
             f"{'component (1 ref + 3 stages, 10.24 s)':42s} {'before ms':>10s} {'after ms':>10s} "
             f"{'after/before':>13s}" + (f" {'stacked ms':>11s}" if res["rows"][0].get("stacked_ms") else "")]
    for r in res["rows"]:
        b, a = r["before_ms"], r["after_ms"]
        ratio = f"{a / b:13.2f}" if b and a else f"{'(in pairwise)':>13s}"
        st = f" {r['stacked_ms']:11.1f}" if r.get("stacked_ms") else ""
        if b is None and a is None:
            continue
        lines.append(f"{r['component']:42s} {b if b is not None else float('nan'):10.1f} {a:10.1f} {ratio}{st}")
    whole = res["rows"][-1]
    lines.append(f"{'per stage (whole call / 3)':42s} {whole['before_ms'] / STAGES:10.1f} "
                 f"{whole['after_ms'] / STAGES:10.1f}")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=8, help="repeats per child process")
    ap.add_argument("--rounds", type=int, default=2, help="child processes per side, alternating sides")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--stacked", action="store_true", help="also time the stages' analyses stacked as rows")
    ap.add_argument("--separate", choices=("auto", "yes", "no"), default="auto",
                    help="one child process per side (auto: with more than one thread, where BLAS threads spin)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.threads[0], args.repeats, args.child.split(","))))
        return
    results = []
    sides = ["before", "after"] + ["stacked"] * args.stacked
    for t in args.threads:
        env = dict(os.environ, OMP_NUM_THREADS=str(t), OPENBLAS_NUM_THREADS=str(t), MKL_NUM_THREADS=str(t))
        children = []
        separate = args.separate == "yes" or (args.separate == "auto" and t > 1)
        groups = [[side] for side in sides] if separate else [sides]
        for _ in range(args.rounds):
            for group in groups:
                cmd = [sys.executable, __file__, "--child", ",".join(group), "--threads", str(t), "--repeats",
                       str(args.repeats)]
                out = subprocess.run(cmd, env=env, check=True, stdout=subprocess.PIPE, text=True).stdout
                children.append(json.loads(out.strip().splitlines()[-1]))
        results.append(combine(children))
        results[-1]["how"] = "one process per side" if separate else "sides interleaved in one process"
        print(_table(results[-1]), end="\n\n", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
