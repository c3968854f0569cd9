"""Score the learned restorers and the simple baselines on the demo eval clips and on real recordings.

Mel domain only (no vocoder): every clip is normalised, run through the bundled tiny VAE once (whole clips, up
to 10.24 s windows), and each method's output log-mel is compared with the *input* log-mel:

* ``lsd_hf`` — :func:`vaelib.metrics.mel_lsd` over the mel bins centred at or above 4 kHz;
* ``l1``     — :func:`vaelib.metrics.mel_l1` over all bins.

Real recordings never seen in training: the Debian ``sound-theme-freedesktop`` event sounds
(``/usr/share/sounds/freedesktop/stereo/*.oga``; ``apt-get install --no-install-recommends
sound-theme-freedesktop``; the ``audio-channel-*`` ones are a human voice and are labelled speech, the rest
other). Writes a JSON file and prints a Markdown table per source::

    python scripts/eval_restorer.py --out /tmp/restorer_eval.json
    python scripts/eval_restorer.py --restorer runs/r1 --out /tmp/r1.json      # a restorer of your own too
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REAL_DIR = Path("/usr/share/sounds/freedesktop/stereo")

#: The methods compared: plain VAE, the seed's best setting from notebook 03 (frequency boost at its identity
#: neighbourhood is the least harmful), the simple baselines and the learned restorers.
METHODS = {
    "vae": ("none", {}),
    "seed_frequency": ("frequency", {"gain": 1.5}),
    "frequency_axis": ("frequency_axis", {"gain": 1.2}),
    "mel_shelf": ("mel_shelf", {"shelf_db": 1.0}),
    "mel_unsharp": ("mel_unsharp", {"amount": 0.3}),
    "learned": ("learned", {"strength": 1.0}),
    "learned (gate off)": ("learned", {"strength": 1.0, "gate": "off"}),
    "learned_cond (auto)": ("learned_cond", {"strength": 1.0}),
    "learned_cond (auto, gate off)": ("learned_cond", {"strength": 1.0, "gate": "off"}),
    "learned_cond (label)": ("learned_cond", {"strength": 1.0, "category": "label"}),
}

#: Issue 17's bar for the default restorer on real recordings: share of clips improved (LSD-HF), worst clip's
#: change of LSD-HF and of full-band mel L1, change of the mean LSD-HF (and on the demo eval clips, the means).
BAR = {"share_improved": 0.85, "worst_lsd_hf": 0.05, "worst_l1": 0.03, "mean_lsd_hf": -0.12,
       "demo_lsd_hf": -0.20, "demo_l1": -0.08}


def real_category(path: Path) -> int:
    """Type index of a real recording: freedesktop's ``audio-channel-*`` announcements are speech, its other
    sounds other; in another folder, the type by the one rule (``vaelib.categories.category_of``)."""
    from vaelib.categories import CATEGORIES, category_index

    if path.suffix == ".oga":
        return CATEGORIES.index("speech" if path.name.startswith("audio-channel") else "other")
    return category_index(path)


def distinct(files: list[Path]) -> list[Path]:
    """The files with distinct contents, real files before symlinks; prints what it drops.

    sound-theme-freedesktop ships 35 names for 27 recordings (``power-plug.oga`` → ``device-added.oga``, ...):
    scoring every name would count four recordings two to four times.
    """
    import hashlib

    seen, out = {}, []
    for f in sorted(files, key=lambda f: (f.is_symlink(), f.name)):
        digest = hashlib.sha256(f.read_bytes()).hexdigest()
        if digest in seen:
            print(f"note: {f.name} is the same audio as {seen[digest]}: scored once", file=sys.stderr)
            continue
        seen[digest] = f.name
        out.append(f)
    return sorted(out)


def summarise(rows: list[dict]) -> dict:
    """Per label: mean ``lsd_hf``/``lsd``/``l1``, the change of the means relative to the plain VAE (``vae`` label)
    and the per-clip distribution of the change (``lsd_hf_clips``, ``l1_clips``: :func:`vaelib.changes.change_summary`
    — median, share improved, worst clip)."""
    from vaelib.changes import change_summary

    labels = list(dict.fromkeys(r["label"] for r in rows))
    out = {}
    for lab in labels:
        sel = [r for r in rows if r["label"] == lab]
        out[lab] = {k: float(np.mean([r[k] for r in sel])) for k in ("lsd_hf", "lsd", "l1")}
        ber = np.array([r["ber_high"] for r in sel], dtype=float)
        out[lab]["ber_high_geomean"] = float(np.exp(np.mean(np.log(ber))))
        out[lab]["abs_ln_ber_high"] = float(np.mean(np.abs(np.log(ber))))
    base = out.get("vae")
    if base:
        per = {lab: {r["clip"]: r for r in rows if r["label"] == lab} for lab in labels}
        clips = list(per["vae"])
        for lab in labels:
            for k in ("lsd_hf", "l1", "lsd"):
                out[lab][f"{k}_change"] = out[lab][k] / base[k] - 1.0
                out[lab][f"{k}_clips"] = change_summary([per["vae"][c][k] for c in clips],
                                                        [per[lab][c][k] for c in clips], clips)
            lost = [c for c in clips if per["vae"][c]["ber_high"] < 0.9]  # where the VAE lost high-band energy
            out[lab]["lost_clips"] = len(lost)
            out[lab]["lost_ln_ber_high"] = (float(np.mean([np.log(per[lab][c]["ber_high"]) for c in lost]))
                                            if lost else float("nan"))
    return out


def criteria(summary: dict, label: str) -> dict:
    """Issue 17's checks for ``label`` on one real-recordings source: each ``(value, bar, met)``; plus the energy
    checks (mean |ln ratio| closer to 0 than the VAE's, energy given back where the VAE kept < 0.9, full-band mel
    LSD no worse than the VAE's)."""
    m, v = summary[label], summary["vae"]
    c, c1 = m["lsd_hf_clips"], m["l1_clips"]
    return {
        "share_improved": (c["share_improved"], BAR["share_improved"], c["share_improved"] >= BAR["share_improved"]),
        "worst_lsd_hf": (c["worst"], BAR["worst_lsd_hf"], c["worst"] <= BAR["worst_lsd_hf"]),
        "worst_l1": (c1["worst"], BAR["worst_l1"], c1["worst"] <= BAR["worst_l1"]),
        "mean_lsd_hf": (m["lsd_hf_change"], BAR["mean_lsd_hf"], m["lsd_hf_change"] <= BAR["mean_lsd_hf"]),
        "abs_ln_ber_high": (m["abs_ln_ber_high"], v["abs_ln_ber_high"], m["abs_ln_ber_high"] < v["abs_ln_ber_high"]),
        "lost_ln_ber_high": (m["lost_ln_ber_high"], v["lost_ln_ber_high"],
                             not m["lost_clips"] or m["lost_ln_ber_high"] > v["lost_ln_ber_high"]),
        "lsd_full": (m["lsd_change"], 0.0, m["lsd_change"] <= 0.0),
    }


def table(summary: dict) -> str:
    lines = ["| method | mel LSD ≥ 4 kHz | change of means | clips improved | median | worst clip | mel L1 | change | "
             "worst clip (L1) | 4–8 kHz energy ratio (geometric mean) | mean abs ln ratio | full-band LSD change |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for lab, m in summary.items():
        c, c1 = m.get("lsd_hf_clips") or {}, m.get("l1_clips") or {}
        worst = f"{c.get('worst_clip')} {100 * c.get('worst', 0):+.0f} %" if c.get("clips") else ""
        worst1 = f"{c1.get('worst_clip')} {100 * c1.get('worst', 0):+.0f} %" if c1.get("clips") else ""
        lines.append(f"| {lab} | {m['lsd_hf']:.4f} | {100 * m.get('lsd_hf_change', 0):+.1f} % | "
                     f"{c.get('improved', '')} of {c.get('clips', '')} | {100 * c.get('median', 0):+.1f} % | {worst} | "
                     f"{m['l1']:.4f} | {100 * m.get('l1_change', 0):+.1f} % | {worst1} | "
                     f"{m['ber_high_geomean']:.3f} | {m['abs_ln_ber_high']:.3f} | "
                     f"{100 * m.get('lsd_change', 0):+.1f} % |")
    return "\n".join(lines)


#: Frames per scored window (the pairs' first window: ``collect_pairs(max_frames=...)``, 10.24 s).
WINDOW_FRAMES = 1024
#: Restorer labels scored by ``--perceptual`` (besides the plain VAE and every ``--restorer``).
PERCEPTUAL_LABELS = ("learned",)


def perceptual_scores(pairs: list[dict], vae, methods: dict, labels, vocoder) -> list[dict]:
    """Seed step 4.2's perceptual check: the plain VAE and each mel restorer of ``labels`` vocoded with ``vocoder``
    (Griffin-Lim for the bundled model: seeded, the same initial phase for every output) and scored against the
    normalised input waveform of the same window by :func:`vaelib.study.perceptual.perceptual_rows` (ViSQOL audio
    mode for every clip; ViSQOL speech mode, STOI, ESTOI, PESQ-WB for speech clips). One row per (clip, label)."""
    from vaelib import enhance
    from vaelib.audio import load_audio
    from vaelib.categories import category_of
    from vaelib.pipeline import encode_decode, vocode
    from vaelib.study.perceptual import perceptual_rows

    cfg = vae.mel_config
    out = []
    for it in pairs:
        x = load_audio(it["path"], sr=cfg.sr)[: WINDOW_FRAMES * cfg.hop_length]
        enc = encode_decode(x, vae, decode=False)  # the same normalised, padded window the pair was made from
        mels = [it["dec"]] + [enhance.apply(methods[lab][0], it["dec"], methods[lab][1]) for lab in labels]
        waves = vocode(vocoder, [m[0, 0] for m in mels])
        stages = {lab: np.asarray(w, dtype=np.float64) for lab, w in zip(("vae", *labels), waves, strict=True)}
        ref = np.asarray(enc.wave, dtype=np.float64)
        n = min(len(ref), *(len(w) for w in stages.values()))
        rows = perceptual_rows([(it["name"], category_of(it["path"]), ref[:n], {k: w[:n] for k, w in stages.items()})],
                               sr=cfg.sr)
        out += rows.to_dict("records")
    return out


def perceptual_summary(rows: list[dict]) -> dict:
    """Per label and measure (higher is better): mean, and against the plain VAE per clip — median difference,
    clips improved (difference > 0), worst clip (lowest difference) — over the clips the measure applies to."""
    labels = list(dict.fromkeys(r["label"] for r in rows))
    base = {r["clip"]: r for r in rows if r["label"] == "vae"}
    out = {}
    for lab in labels:
        sel = {r["clip"]: r for r in rows if r["label"] == lab}
        out[lab] = {}
        for key in ("visqol", "visqol_speech", "stoi", "estoi", "pesq_wb"):
            clips = [c for c in sel if np.isfinite(sel[c][key]) and np.isfinite(base[c][key])]
            if not clips:
                continue
            d = np.array([sel[c][key] - base[c][key] for c in clips])
            k = int(np.argmin(d))
            out[lab][key] = {"mean": float(np.mean([sel[c][key] for c in clips])), "clips": len(clips),
                             "median_diff": float(np.median(d)), "improved": int((d > 0).sum()),
                             "worst_diff": float(d[k]), "worst_clip": clips[k]}
    return out


def perceptual_table(summary: dict) -> str:
    lines = ["| method | measure | mean | clips | median change vs VAE | clips improved | worst clip |",
             "|---|---|---|---|---|---|---|"]
    for lab, per in summary.items():
        for key, m in per.items():
            lines.append(f"| {lab} | {key} | {m['mean']:.3f} | {m['clips']} | {m['median_diff']:+.3f} | "
                         f"{m['improved']} of {m['clips']} | {m['worst_clip']} {m['worst_diff']:+.3f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="JSON file to write (refused if it exists)")
    ap.add_argument("--restorer", action="append", default=[], metavar="DIR",
                    help="also score this trained restorer folder (repeatable)")
    ap.add_argument("--real", type=Path, default=REAL_DIR, help="folder of real recordings (default: %(default)s)")
    ap.add_argument("--sets", type=Path, default=None,
                    help="a folder written by scripts/make_realtest.py: its test/ and selection/ sets are scored too")
    ap.add_argument("--parts", nargs="+", default=["selection", "test"], choices=["selection", "test"],
                    help="with --sets: score only these of its sets (choose on the selection set before the test set "
                         "is scored)")
    ap.add_argument("--no-demo", action="store_true", help="skip the demo eval clips")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--perceptual", action="store_true",
                    help="also vocode (Griffin-Lim) the plain VAE, `learned` and every --restorer and score them by "
                         "the perceptual measures (vaelib[perceptual]; ~1.5 s per clip and method)")
    args = ap.parse_args(argv)
    if args.out.exists():
        print(f"error: {args.out} exists; pass a new file", file=sys.stderr)
        return 2
    import torch

    from vaelib import restore
    from vaelib.audio import find_audio
    from vaelib.models import load_vae
    from vaelib.pipeline import score_variants

    torch.set_num_threads(args.threads)
    vae = load_vae("bundled", device="cpu")
    methods = dict(METHODS)
    own = [Path(folder).name for folder in args.restorer]  # the labels of the restorers of your own
    for folder in args.restorer:
        methods[Path(folder).name] = (restore.register(folder, f"restorer_{Path(folder).name}"), {})
    sources = {} if args.no_demo else {
        "demo_eval": restore.collect_pairs(find_audio("demo"), vae, WINDOW_FRAMES, progress=False)}
    if args.sets is not None:
        for part in args.parts:
            pairs = restore.collect_pairs(find_audio(args.sets / part), vae, WINDOW_FRAMES, progress=False)
            sources[f"real_{part}"] = [it for it in pairs if "#" not in it["name"] or it["name"].endswith("#0")]
    if args.real.is_dir() and args.sets is None:
        files = distinct(sorted(args.real.glob("*.oga")) or find_audio(args.real))
        pairs = restore.collect_pairs(files, vae, WINDOW_FRAMES, progress=False)
        for it in pairs:
            it["category"] = real_category(Path(it["path"]))
        sources["real_freedesktop" if args.real == REAL_DIR else f"real_{args.real.name}"] = pairs
    elif args.sets is None:
        print(f"warning: {args.real} missing: real recordings not scored "
              "(apt-get install --no-install-recommends sound-theme-freedesktop)", file=sys.stderr)
    result = {}
    if args.perceptual:
        from vaelib.models import load_vocoder
        from vaelib.study import perceptual_ready

        if not perceptual_ready():
            print("error: --perceptual needs the perceptual measures: pip install -e '.[perceptual]'", file=sys.stderr)
            return 2
        vocoder = load_vocoder("griffinlim")
        plabels = (*PERCEPTUAL_LABELS, *(Path(f).name for f in args.restorer))
    for name, pairs in sources.items():
        rows = score_variants(pairs, vae, methods)
        result[name] = {"clips": len({r["clip"] for r in rows}), "summary": summarise(rows), "per_clip": rows}
        print(f"\n### {name} ({result[name]['clips']} clips)\n")
        print(table(result[name]["summary"]))
        summ = result[name]["summary"]
        for lab in summ:
            if lab != "vae" and (lab.startswith("learned") or lab in own) and "lsd_hf_clips" in summ[lab]:
                crit = criteria(summ, lab)
                result[name].setdefault("criteria", {})[lab] = crit
                bad = [k for k, (_, _, ok) in crit.items() if not ok]
                print(f"- {lab}: " + ("meets every check" if not bad else "misses " + ", ".join(
                    f"{k} ({crit[k][0]:+.3f} vs {crit[k][1]:+.3f})" for k in bad)))
        if args.perceptual:
            prows = perceptual_scores(pairs, vae, methods, plabels, vocoder)
            prows = [{**r, "label": r.pop("stage")} for r in prows]
            result[name]["perceptual"] = {"summary": perceptual_summary(prows), "per_clip": prows}
            print(f"\n#### {name}: perceptual measures (Griffin-Lim; higher is better)\n")
            print(perceptual_table(result[name]["perceptual"]["summary"]))
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
