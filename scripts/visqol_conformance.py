"""Check the ViSQOL port (``visqol-python``) against Google's published conformance values.

Google's ViSQOL (github google/visqol, Apache-2.0) keeps the scores of its own test pairs in
``src/include/conformance.h`` (conformance version 333) and checks them in ``tests/conformance_test.cc`` with a
tolerance of 1e-4. The test audio lives in that repository's ``testdata/`` (TCDAudio14 excerpts and a speech
clip); vaelib does not redistribute it. Point this script at a checkout (or a copy of its ``testdata/``)::

    python scripts/visqol_conformance.py /path/to/visqol          # the folder that holds testdata/
    python scripts/visqol_conformance.py /path/to/visqol --markdown  # a table for docs/perceptual.md
    python scripts/visqol_conformance.py /path/to/visqol --noise-sweep  # audio mode vs added white noise

Each row runs the same pair, mode and mapper as the C++ test (audio mode: the bundled SVR; speech mode: the
lattice mapper, or the exponential fit with ``use_lattice_model=False``) through the file API, as the C++ test
reads files (stereo is averaged to mono there and here). Exit status 0 when every row is within ``--tol``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# (name, reference, degraded, mode, lattice, unscaled, published MOS-LQO) from google/visqol
# tests/conformance_test.cc + src/include/conformance.h (kVisqolConformanceNumber 333).
CS = "testdata/clean_speech/"
SUB = "testdata/conformance_testdata_subset/"
CASES = [
    ("SpeechCA01TranscodedLattice", CS + "CA01_01.wav", CS + "transcoded_CA01_01.wav", "speech", True, False,
     3.3129234313964844),
    ("SpeechCA01TranscodedExponential", CS + "CA01_01.wav", CS + "transcoded_CA01_01.wav", "speech", False, False,
     3.374505555111911),
    ("CA01PerfectScoreLattice", CS + "CA01_01.wav", CS + "CA01_01.wav", "speech", True, False, 4.505550384521484),
    ("UnscaledPerfectScoreExponential", CS + "CA01_01.wav", CS + "CA01_01.wav", "speech", False, True,
     4.015861169223797),
    ("StraussLp35", SUB + "strauss48_stereo.wav", SUB + "strauss48_stereo_lp35.wav", "audio", False, False,
     1.3888791489130758),
    ("SteelyLp7", SUB + "steely48_stereo.wav", SUB + "steely48_stereo_lp7.wav", "audio", False, False,
     2.2501683734385183),
    ("Sopr256aac", SUB + "sopr48_stereo.wav", SUB + "sopr48_stereo_256kbps_aac.wav", "audio", False, False,
     4.68228969737946),
    ("Ravel128opus", SUB + "ravel48_stereo.wav", SUB + "ravel48_stereo_128kbps_opus.wav", "audio", False, False,
     4.465141897255348),
    ("Moonlight128aac", SUB + "moonlight48_stereo.wav", SUB + "moonlight48_stereo_128kbps_aac.wav", "audio", False,
     False, 4.684292801646114),
    ("Harpsichord96mp3", SUB + "harpsichord48_stereo.wav", SUB + "harpsichord48_stereo_96kbps_mp3.wav", "audio",
     False, False, 4.22374532766003),
    ("Guitar64aac", SUB + "guitar48_stereo.wav", SUB + "guitar48_stereo_64kbps_aac.wav", "audio", False, False,
     4.349722308064298),
    ("Glock48aac", SUB + "glock48_stereo.wav", SUB + "glock48_stereo_48kbps_aac.wav", "audio", False, False,
     4.332452943882108),
    ("Contrabassoon24aac", SUB + "contrabassoon48_stereo.wav", SUB + "contrabassoon48_stereo_24kbps_aac.wav",
     "audio", False, False, 2.346868205375293),
    ("CastanetsIdentity", SUB + "castanets48_stereo.wav", SUB + "castanets48_stereo.wav", "audio", False, False,
     4.732101253042348),
    ("GuitarShortDegradedPatch", SUB + "guitar48_stereo.wav", "testdata/short_duration/5_second/"
     "guitar48_stereo_5_sec.wav", "audio", False, False, 4.314508583690198),
    ("GuitarShortReferencePatch", "testdata/short_duration/5_second/guitar48_stereo_5_sec.wav",
     SUB + "guitar48_stereo.wav", "audio", False, False, 4.550791119387646),
    ("DifferentAudiosLattice", SUB + "guitar48_stereo.wav", CS + "CA01_01.wav", "speech", True, False,
     1.4982070922851562),
    ("DifferentAudiosExponential", SUB + "guitar48_stereo.wav", CS + "CA01_01.wav", "speech", False, False,
     1.269675546824064),
    ("BadDegradedLattice", "testdata/alignment/reference.wav", "testdata/alignment/degraded.wav", "speech", True,
     False, 1.19293212890625),
    ("BadDegradedExponential", "testdata/alignment/reference.wav", "testdata/alignment/degraded.wav", "speech",
     False, False, 1.357521678867611),
]


def run_case(root: Path, case) -> float:
    from visqol import VisqolApi

    _, ref, deg, mode, lattice, unscaled, _ = case
    api = VisqolApi()
    if mode == "speech":
        api.create(mode="speech", use_lattice_model=lattice, use_unscaled_speech=unscaled)
    else:
        api.create(mode="audio")
    return float(api.measure(str(root / ref), str(root / deg)).moslqo)


def noise_sweep(root: Path, snrs=(30, 20, 10, 0, -10)) -> list[dict]:
    """Audio mode on conformance references (and the bundled demo speech) plus seeded white noise at each SNR:
    MOS-LQO and the mean of the per-band NSIM vector (FVNSIM) that the SVR maps to MOS."""
    import numpy as np
    import soundfile as sf
    from scipy.signal import resample_poly
    from visqol import VisqolApi

    import vaelib

    api = VisqolApi()
    api.create(mode="audio")
    refs = {name: root / SUB / f"{name}48_stereo.wav" for name in ("guitar", "castanets", "sopr", "glock")}
    refs["CA01_01 (speech)"] = root / CS / "CA01_01.wav"
    sources = {}
    for name, path in refs.items():
        x, sr = sf.read(path, always_2d=True)
        sources[name] = (x.mean(axis=1), sr)
    demo = next(f for f in vaelib.find_audio("demo", demo_split="eval") if "speech_en_us_f4" in str(f))
    sources["demo speech_en_us_f4 (16 kHz, resampled)"] = (resample_poly(vaelib.load_audio(demo), 3, 1), 48000)
    rows = []
    for name, (x, sr) in sources.items():
        for snr in (None, *snrs):
            if snr is None:
                y = x
            else:
                n = np.random.default_rng(0).standard_normal(x.size)
                y = x + n * np.sqrt(np.mean(x**2) / np.mean(n**2) / 10 ** (snr / 10))
            r = api.measure_from_arrays(x, y, sr)
            rows.append({"source": name, "snr_db": snr, "moslqo": float(r.moslqo),
                         "fvnsim_mean": float(np.mean(r.fvnsim))})
            print(f"{name:44s} SNR {'clean' if snr is None else f'{snr:+d} dB':>7s}  MOS-LQO {r.moslqo:.3f}  "
                  f"mean FVNSIM {np.mean(r.fvnsim):.4f}", flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path, help="folder that holds google/visqol's testdata/")
    ap.add_argument("--tol", type=float, default=1e-4, help="allowed |port - published| (the C++ test's is 1e-4)")
    ap.add_argument("--only", default="", help="comma-separated case names (default: all)")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    ap.add_argument("--noise-sweep", action="store_true",
                    help="instead: audio mode on conformance references + white noise at 30/20/10/0/-10 dB SNR")
    args = ap.parse_args(argv)
    if not (args.root / "testdata").is_dir():
        print(f"error: {args.root} has no testdata/ folder; pass the google/visqol checkout", file=sys.stderr)
        return 2
    if args.noise_sweep:
        noise_sweep(args.root)
        return 0
    import visqol

    only = {s for s in args.only.split(",") if s}
    rows, worst = [], 0.0
    for case in CASES:
        if only and case[0] not in only:
            continue
        t0 = time.perf_counter()
        got = run_case(args.root, case)
        dt = time.perf_counter() - t0
        diff = got - case[6]
        worst = max(worst, abs(diff))
        rows.append((case[0], case[3] + (" lattice" if case[4] else " exp" if case[3] == "speech" else " SVR"),
                     case[6], got, diff, dt))
        if not args.markdown:
            print(f"{case[0]:34s} {rows[-1][1]:14s} published {case[6]:.6f} port {got:.6f} diff {diff:+.2e} "
                  f"({dt:.1f} s)", flush=True)
    if args.markdown:
        print(f"| pair (conformance.h name) | mode / mapper | published (C++ v333) | visqol-python {visqol.__version__}"
              " | difference |")
        print("|---|---|---|---|---|")
        for name, mode, pub, got, diff, _ in rows:
            print(f"| {name} | {mode} | {pub:.4f} | {got:.4f} | {diff:+.1e} |")
    ok = worst <= args.tol
    print(f"{len(rows)} pairs, largest |difference| {worst:.2e}: {'within' if ok else 'OUTSIDE'} {args.tol:g}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
