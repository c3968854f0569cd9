"""Fit the bundled adaptive rules (``vaelib/assets/adaptive/<method>.json`` + ``MODEL_CARD.md``).

For the bundled tiny VAE: every demo *train* clip is scored at every value of
:data:`vaelib.study.adaptive.GRIDS` (mel LSD-HF against its input log-mel), its oracle value is the grid value
with the lowest score, and :func:`vaelib.study.adaptive.fit_rules` fits one ridge rule per method (features of
the latent / decoded log-mel → oracle value; seeded K-fold choice of the penalty). The card adds a check on the
demo *eval* clips, which the fit never saw: plain VAE, the fixed setting tuned on train, and the rule.

    python scripts/fit_adaptive.py --out vaelib/assets/adaptive --seed 0

Deterministic for a seed at a given thread count (2 threads for the bundled files).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch


def _eval_check(rules, vae, seed, max_clips=None):
    from vaelib.audio import find_audio, load_audio
    from vaelib.study import adaptive as A
    from vaelib.study.session import Clip

    clips = [Clip(p.stem, p, load_audio(p, duration=10.24)) for p in find_audio("demo", "eval")[:max_clips]]
    items = A.prepare(clips, vae)
    scores = A.score_grid(items, vae, multiscale={}, seed=seed)
    feats = A.clip_features(items)
    out = {}
    for method, rule in rules.items():
        single = scores[(scores["method"] == method) & (scores["family"] == "single")]
        piv = single.pivot_table(index="clip", columns="value", values="mel_lsd_hf", aggfunc="first")
        neutral = A._neutral(method)
        cols = list(rule.feature_names)
        pred = rule.predict_features(feats.loc[[it["name"] for it in items], cols].to_numpy())
        main = rule.param
        got = A.evaluate(items, vae, [(i, method, {main: float(p)}) for i, p in enumerate(pred)], seed=seed)
        rule_v = np.array([g["mel_lsd_hf"] for g in got])
        names = [it["name"] for it in items]
        fixed_v = piv.loc[names, rule.meta["fixed"]].to_numpy()
        out[method] = {"vae": float(piv.loc[names, neutral].mean()), "fixed_train": float(fixed_v.mean()),
                       "rule": float(rule_v.mean()), "oracle": float(piv.loc[names].min(axis=1).mean()),
                       "share_rule_better_than_fixed": float((rule_v < fixed_v - 1e-12).mean()),
                       "predicted": {n: round(float(p), 4) for n, p in zip(names, pred, strict=True)}}
    return out


def _card(rules, check, seed) -> str:
    from vaelib.adaptive import FEATURES

    n_train = next(iter(rules.values())).meta["n_clips"]
    n_eval = len(next(iter(check.values()))["predicted"])
    lines = ["# Bundled adaptive rules (vaelib `adaptive_<method>`)", "",
             "Ridge regressions of each method's per-clip oracle setting (lowest high-band mel LSD on the clip's own",
             "input log-mel) on three statistics of what the enhancer receives: the scaled latent (latent-stage",
             "methods: " + ", ".join(FEATURES["latent"]) + ") or the plain VAE's decoded log-mel (mel-stage: "
             + ", ".join(FEATURES["mel"][:1]) + ",", ", ".join(FEATURES["mel"][1:])
             + "). Formulas: `vaelib/adaptive.py`; regenerate with",
             f"`python scripts/fit_adaptive.py --out vaelib/assets/adaptive --seed {seed}` (2 threads).", "",
             "- **fitted for**: the bundled tiny VAE (`vaelib/assets/tiny_vae`), not AudioLDM2; on another VAE the",
             "  rule still runs (its features are generic) but was not fitted for it — refit with",
             "  `vaelib.study.adaptive.fit_rules` on clips you do not score.",
             f"- **training clips**: the {n_train} demo *train* clips (first 10.24 s); never the eval clips.",
             "- **prediction**: clamped to the fitting grid's range; `weight` blends it with the identity.",
             "",
             "| method | param | fixed (train) | alpha | intercept | standardised weights | oracle targets (train) |",
             "|---|---|---|---|---|---|---|"]
    for m, r in rules.items():
        vals, counts = np.unique(np.round(r.meta["targets"], 6), return_counts=True)
        targets = ", ".join(f"{v:g}×{c}" for v, c in zip(vals, counts, strict=True))
        w = ", ".join(f"{n} {c:+.4f}" for n, c in zip(r.feature_names, r.coef, strict=True))
        lines.append(f"| {m} | {r.param} | {r.meta['fixed']:g} | {r.alpha:g} | {r.intercept:.4f} | {w} | {targets} |")
    lines += ["", "## Check on the demo eval clips (never used to fit)", "",
              f"Mean high-band mel LSD over the {n_eval} eval clips (lower is better); \"fixed (train)\" is the grid",
              "value with the lowest mean on the train clips; the oracle needs the original and is the bound.", "",
              "| method | plain VAE | fixed (train) | rule | oracle | rule better than fixed on |",
              "|---|---|---|---|---|---|"]
    for m, c in check.items():
        lines.append(f"| {m} | {c['vae']:.4f} | {c['fixed_train']:.4f} | {c['rule']:.4f} | {c['oracle']:.4f} | "
                     f"{c['share_rule_better_than_fixed']:.0%} |")
    lines += ["", "Notebook 05 (`notebooks/05_adaptive.ipynb`) repeats the comparison leave-one-clip-out on the clips",
              "it is given, next to multi-scale settings."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for <method>.json and MODEL_CARD.md")
    ap.add_argument("--seed", type=int, default=0, help="seed of the cross-validation folds")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--methods", default="", help="comma-separated subset of the grids' methods (default: all)")
    ap.add_argument("--max-clips", type=int, default=None, help="use at most this many train clips (tests)")
    ap.add_argument("--max-eval-clips", type=int, default=None, help="check on at most this many eval clips (tests)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    import vaelib
    from vaelib.audio import find_audio, load_audio
    from vaelib.study import adaptive as A
    from vaelib.study.session import Clip

    vae = vaelib.load_vae("bundled")
    grids = A.GRIDS if not args.methods else {m: A.GRIDS[m] for m in args.methods.split(",")}
    files = find_audio("demo", "train")[: args.max_clips]
    clips = [Clip(p.stem, p, load_audio(p, duration=10.24)) for p in files]
    items = A.prepare(clips, vae)
    scores = A.score_grid(items, vae, grids=grids, multiscale={}, seed=args.seed)
    feats = A.clip_features(items)
    rules = A.fit_rules(scores, feats, seed=args.seed,
                        meta={"model": "bundled tiny VAE", "split": "demo train", "threads": args.threads})
    check = _eval_check(rules, vae, args.seed, args.max_eval_clips)
    args.out.mkdir(parents=True, exist_ok=True)
    for m, r in rules.items():
        d = r.to_json()
        d["meta"]["eval_check"] = check[m]
        (args.out / f"{m}.json").write_text(json.dumps(d, indent=1) + "\n", encoding="utf-8")
    (args.out / "MODEL_CARD.md").write_text(_card(rules, check, args.seed), encoding="utf-8")
    for m, c in check.items():
        print(f"{m}: eval mean mel LSD-HF vae {c['vae']:.4f} fixed(train) {c['fixed_train']:.4f} "
              f"rule {c['rule']:.4f} oracle {c['oracle']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
