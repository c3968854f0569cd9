"""Notebook 05: fixed best setting vs. adaptive vs. multi-scale vs. per-clip oracle, cross-validated over clips.

For every method of :data:`GRIDS` (the seed's ``frequency``, the baselines ``frequency_axis``, ``mel_shelf``,
``mel_unsharp`` and the ``learned`` restorer's strength) each clip is scored at every grid value in the mel domain
(the decoded — and for mel-stage methods enhanced — log-mel against the input log-mel; no vocoder):
:func:`score_grid`. :func:`compare` then judges four ways of choosing the setting of a clip ``i`` that was *not*
used to choose it (leave-one-clip-out):

* **fixed**: the grid value with the lowest mean ``metric`` over the other clips (one setting for every clip);
* **adaptive**: an :class:`vaelib.adaptive.AdaptiveRule` fitted on the other clips (features of their latent /
  decoded log-mel → their oracle value), applied to clip ``i``'s own features;
* **multi-scale**: the setting of :data:`MULTISCALE_GRIDS` (one coefficient per pyramid level,
  :mod:`vaelib.multiscale`) with the lowest mean over the other clips;
* **oracle**: clip ``i``'s own best grid value — needs the original, so no user can run it; the bound;

plus, when the VAE is the bundled one, **adaptive (bundled)**: the registered ``adaptive_<method>`` (fitted on the
demo *train* clips, never on the clips scored here). :func:`summary_table` gives per method and approach the mean,
median, share of clips better than fixed, worst clip and the share of the fixed → oracle gap closed::

    gap closed = (mean_fixed - mean_approach) / (mean_fixed - mean_oracle)      (×100 %)

and :func:`verdict` writes the sentences from that table.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import torch

from .. import adaptive as _adaptive
from .. import enhance as _enhance
from .. import metrics as _metrics

__all__ = ["GRIDS", "MULTISCALE_GRIDS", "level_grid", "grids_for", "APPROACHES", "prepare", "score_grid",
           "clip_features", "oracle_values", "compare", "fit_rules", "summary_table", "gap_closed", "verdict",
           "summary_numbers", "evaluate"]

#: Single-scale grids of each method's main parameter (each holds the identity value: the plain VAE row).
GRIDS: dict[str, tuple[float, ...]] = {
    "frequency": (0.95, 0.98, 0.99, 1.0, 1.01, 1.02, 1.05),
    "frequency_axis": (0.9, 0.95, 0.98, 1.0, 1.02, 1.05),
    "mel_shelf": (-2.0, -1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 2.0, 3.0),
    "mel_unsharp": (0.0, 0.05, 0.1, 0.25, 0.5),
    "learned": (0.0, 0.25, 0.5, 0.75, 1.0),
}


def level_grid(enhancer: str, alone, together) -> tuple[dict, ...]:
    """Settings of a ``multiscale_`` enhancer: the identity, each level alone at every value of ``alone`` (the
    other levels at identity), and every level together at each value of ``together``."""
    params = _enhance.get(enhancer).params
    neutral = {p.name: p.neutral for p in params}
    out = [dict(neutral)]
    for p in params:
        out += [{**neutral, p.name: v} for v in alone]
    out += [{p.name: v for p in params} for v in together]
    return tuple(out)


#: Multi-scale grids: the single-scale method -> (its ``multiscale_`` enhancer, settings): per-level values swept
#: one level at a time, and all levels together (:func:`level_grid`).
MULTISCALE_GRIDS: dict[str, tuple[str, tuple[dict, ...]]] = {
    "frequency": ("multiscale_frequency", level_grid("multiscale_frequency", (0.98, 1.02), (0.99, 1.01))),
    "frequency_axis": ("multiscale_frequency_axis",
                       level_grid("multiscale_frequency_axis", (0.95, 1.05), (0.98, 1.02))),
    "mel_unsharp": ("multiscale_mel_unsharp", level_grid("multiscale_mel_unsharp", (0.05, 0.1, 0.25), (0.05, 0.1))),
}

def grids_for(methods, bundled: bool = True) -> tuple[dict, dict]:
    """``(grids, multiscale)`` of the named methods (a comma-separated string or a list; subsets of :data:`GRIDS`
    and :data:`MULTISCALE_GRIDS`). ``bundled=False`` drops ``learned``: the bundled restorer was trained for the
    bundled tiny VAE only."""
    names = [m.strip() for m in methods.split(",")] if isinstance(methods, str) else list(methods)
    names = [m for m in names if m]
    unknown = [m for m in names if m not in GRIDS]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; accepted: {', '.join(GRIDS)}")
    names = [m for m in names if bundled or m != "learned"]
    return {m: GRIDS[m] for m in names}, {m: MULTISCALE_GRIDS[m] for m in names if m in MULTISCALE_GRIDS}


#: Approaches in table order.
APPROACHES = ("VAE only", "fixed", "adaptive", "adaptive (bundled)", "multi-scale", "oracle")


def _label(method: str, params: dict) -> str:
    ps = ", ".join(f"{k}={v:g}" for k, v in params.items())
    return f"{method}({ps})" if ps else method


def prepare(clips, vae, cache=None) -> list[dict]:
    """Encode and decode each clip once (normalised and padded as :func:`vaelib.pipeline.reconstruct` does; or
    served by ``cache``, a :class:`vaelib.pipeline.RoundTripCache`: ``Session.cache``).

    Returns ``[{"name", "mel", "z", "dec"}]``: input log-mel ``(1, 1, T, M)``, scaled latent, plain decode.
    """
    from ..pipeline import encode_decode

    out = []
    for c in clips:
        enc = encode_decode(c.wave, vae, cache=cache)
        out.append({"name": c.name, "mel": enc.mel.float().cpu(), "z": enc.latent,
                    "dec": enc.decoded["vae"].float().cpu()})
    return out


def _score(ref, est, cfg) -> dict:
    return {"mel_lsd_hf": _metrics.mel_lsd(ref, est, band=(_metrics.HIGH_BAND_HZ, cfg.sr / 2 + 1), cfg=cfg),
            "mel_l1": _metrics.mel_l1(ref, est)}


def _is_identity(method: str, params: dict) -> bool:
    return all(float(params.get(p.name, p.default)) == p.neutral for p in _enhance.get(method).params)


def evaluate(items: list[dict], vae, specs, batch_size: int = 8, seed: int = 0) -> list[dict]:
    """Score ``specs`` = ``[(item index, method, params)]``: latent-stage ones decoded in batches, mel-stage ones
    applied to the item's plain decode; a setting at the identity is the plain decode itself. Returns one dict
    per spec: ``mel_lsd_hf``, ``mel_l1``."""
    cfg = vae.mel_config
    out: list[dict | None] = [None] * len(specs)
    latent = [(j, s) for j, s in enumerate(specs)
              if _enhance.get(s[1]).stage == "latent" and not _is_identity(s[1], s[2])]
    for j, (i, method, params) in enumerate(specs):
        if _is_identity(method, params):  # the plain decode itself (no second decode of the same latent)
            out[j] = _score(items[i]["mel"], items[i]["dec"], cfg)
        elif _enhance.get(method).stage == "mel":
            est = _enhance.apply(method, items[i]["dec"], {**params, **_adaptive.held_fixed(method)}, seed=seed)
            out[j] = _score(items[i]["mel"], est, cfg)
    by_len: dict[int, list] = {}  # latents of equal length decode together, batch_size at a time
    for j, (i, method, params) in latent:
        by_len.setdefault(items[i]["z"].shape[2], []).append((j, i, method, params))
    for group in by_len.values():
        for k in range(0, len(group), batch_size):
            chunk = group[k:k + batch_size]
            zs = torch.cat([_enhance.apply(m, items[i]["z"], p, seed=seed) for _, i, m, p in chunk])
            dec = vae.decode(zs).float().cpu()
            for (j, i, _, _), d in zip(chunk, dec, strict=True):
                out[j] = _score(items[i]["mel"], d[None], cfg)
    return out  # type: ignore[return-value]


def score_grid(items: list[dict], vae, grids: dict | None = None, multiscale: dict | None = None,
               batch_size: int = 8, seed: int = 0) -> pd.DataFrame:
    """Every clip at every setting of ``grids`` (default :data:`GRIDS`) and ``multiscale`` (default
    :data:`MULTISCALE_GRIDS`; ``{}`` for none).

    Returns
    -------
    pandas.DataFrame
        One row per (clip, setting): ``clip``, ``method`` (the single-scale method), ``family`` (``single`` or
        ``multiscale``), ``enhancer`` (the registered name used), ``label``, ``value`` (the single-scale value;
        NaN for multi-scale), ``params`` (JSON), ``mel_lsd_hf``, ``mel_l1``.
    """
    grids = GRIDS if grids is None else grids
    multiscale = MULTISCALE_GRIDS if multiscale is None else multiscale
    specs, meta = [], []
    for i, it in enumerate(items):
        for method, values in grids.items():
            main = _enhance.get(method).main_param
            for v in values:
                p = _enhance.validate_params(method, {main: v})
                specs.append((i, method, p))
                meta.append((it["name"], method, "single", method, _label(method, {main: v}), float(v), p))
        for method, (ms, settings) in multiscale.items():
            for setting in settings:
                p = _enhance.validate_params(ms, setting)
                specs.append((i, ms, p))
                meta.append((it["name"], method, "multiscale", ms, _label(ms, p), math.nan, p))
    scores = evaluate(items, vae, specs, batch_size=batch_size, seed=seed)
    rows = [{"clip": c, "method": m, "family": fam, "enhancer": e, "label": lab, "value": v,
             "params": json.dumps(p, sort_keys=True), **s}
            for (c, m, fam, e, lab, v, p), s in zip(meta, scores, strict=True)]
    return pd.DataFrame(rows)


def clip_features(items: list[dict]) -> pd.DataFrame:
    """Per clip (index ``clip``): the latent features of its latent and the mel features of its plain decode
    (:func:`vaelib.adaptive.features`) — what an adaptive rule sees."""
    rows = []
    for it in items:
        lat = _adaptive.features(it["z"], "latent")[0]
        mel = _adaptive.features(it["dec"], "mel")[0]
        rows.append({"clip": it["name"], **dict(zip(_adaptive.FEATURES["latent"], lat, strict=True)),
                     **dict(zip(_adaptive.FEATURES["mel"], mel, strict=True))})
    return pd.DataFrame(rows).set_index("clip")


def oracle_values(scores: pd.DataFrame, method: str, metric: str = "mel_lsd_hf") -> pd.Series:
    """Per clip, the single-scale grid value of ``method`` with the lowest ``metric`` (first one on ties)."""
    s = scores[(scores["method"] == method) & (scores["family"] == "single")]
    return s.loc[s.groupby("clip", sort=False)[metric].idxmin()].set_index("clip")["value"]


def _neutral(method: str) -> float:
    return float(_enhance.get(method).params[0].neutral)


def compare(scores: pd.DataFrame, feats: pd.DataFrame, items: list[dict], vae, *, metric: str = "mel_lsd_hf",
            seed: int = 0, bundled: bool = False, batch_size: int = 8) -> pd.DataFrame:
    """Leave-one-clip-out comparison of the approaches of :data:`APPROACHES` (module docstring).

    Parameters
    ----------
    scores : pandas.DataFrame
        :func:`score_grid` of ``items``.
    feats : pandas.DataFrame
        :func:`clip_features` of ``items``.
    items : list of dict
        :func:`prepare` output (to apply the predicted settings exactly).
    vae : vaelib.models.LatentVAE
    metric : str
        What "best" means (lower is better): ``mel_lsd_hf`` (default) or ``mel_l1``.
    seed : int
        Seeds the rules' cross-validation folds (:func:`vaelib.adaptive.fit_rule`).
    bundled : bool
        Also score the registered ``adaptive_<method>`` rules (only meaningful for the VAE they were fitted for).

    Returns
    -------
    pandas.DataFrame
        One row per (method, approach, clip): ``method``, ``approach``, ``clip``, ``setting`` (label of what was
        applied), ``identity`` (that setting is the plain VAE), ``mel_lsd_hf``, ``mel_l1``.
    """
    clips = [it["name"] for it in items]
    if len(clips) < 2:  # leave-one-clip-out needs a second clip to fit on: an empty table (the verdict says why)
        return pd.DataFrame(columns=["method", "approach", "clip", "setting", "identity", "mel_lsd_hf", "mel_l1"])
    index = {n: i for i, n in enumerate(clips)}
    rows, pending = [], []  # pending: (row dict, spec) scored in one batch at the end
    for method in dict.fromkeys(scores["method"]):
        single = scores[(scores["method"] == method) & (scores["family"] == "single")]
        if single.empty:
            continue
        piv = single.pivot_table(index="clip", columns="value", values=metric, aggfunc="first").loc[clips]
        piv_all = {k: single.pivot_table(index="clip", columns="value", values=k, aggfunc="first").loc[clips]
                   for k in ("mel_lsd_hf", "mel_l1")}
        oracle = piv.idxmin(axis=1)
        main = _enhance.get(method).main_param
        neutral = _neutral(method)
        stage = _enhance.get(method).stage
        ms = scores[(scores["method"] == method) & (scores["family"] == "multiscale")]
        ms_identity = {lab: _is_identity(e, json.loads(p)) for lab, e, p in
                       ms[["label", "enhancer", "params"]].drop_duplicates("label").itertuples(index=False)}
        ms_piv = ms.pivot_table(index="clip", columns="label", values=metric, aggfunc="first").loc[clips] \
            if len(ms) else None
        ms_all = {k: ms.pivot_table(index="clip", columns="label", values=k, aggfunc="first").loc[clips]
                  for k in ("mel_lsd_hf", "mel_l1")} if len(ms) else None
        values = np.asarray(piv.columns, dtype=float)
        lo, hi = float(values.min()), float(values.max())
        for c in clips:
            others = [o for o in clips if o != c]

            chosen = {"VAE only": neutral} if neutral in piv.columns else {}
            chosen.update({"fixed": float(piv.loc[others].mean().idxmin()), "oracle": float(oracle.loc[c])})
            for approach, v in chosen.items():
                rows.append({"method": method, "approach": approach, "clip": c,
                             "setting": _label(method, {main: v}) if v != neutral else "VAE only",
                             "identity": v == neutral, **{k: float(piv_all[k].loc[c, v]) for k in piv_all}})
            cols = list(feats.columns.intersection(_adaptive.FEATURES[stage]))
            rule = _adaptive.fit_rule(method, feats.loc[others, cols].to_numpy(), oracle.loc[others].to_numpy(),
                                      lo=lo, hi=hi, seed=seed)
            p = float(rule.predict_features(feats.loc[[c], cols].to_numpy())[0])
            pending.append(({"method": method, "approach": "adaptive", "clip": c, "setting": _label(method, {main: p}),
                             "identity": p == neutral}, (index[c], method, {main: p})))
            if bundled and f"adaptive_{method}" in _adaptive.ADAPTIVE:
                br = _adaptive.ADAPTIVE[f"adaptive_{method}"]
                pb = float(br.predict_features(feats.loc[[c], cols].to_numpy())[0])
                pending.append(({"method": method, "approach": "adaptive (bundled)", "clip": c,
                                 "setting": _label(method, {main: pb}), "identity": pb == neutral},
                                (index[c], method, {main: pb})))
            if ms_piv is not None:
                lab = ms_piv.loc[others].mean().idxmin()
                rows.append({"method": method, "approach": "multi-scale", "clip": c, "setting": lab,
                             "identity": ms_identity[lab], **{k: float(ms_all[k].loc[c, lab]) for k in ms_all}})
    if pending:
        for (row, _), s in zip(pending, evaluate(items, vae, [sp for _, sp in pending], batch_size, seed),
                               strict=True):
            rows.append({**row, **s})
    df = pd.DataFrame(rows)
    order = {a: k for k, a in enumerate(APPROACHES)}
    df["_o"] = df["approach"].map(order)
    df["_m"] = df["method"].map({m: k for k, m in enumerate(dict.fromkeys(scores["method"]))})
    return df.sort_values(["_m", "_o"], kind="stable").drop(columns=["_o", "_m"]).reset_index(drop=True)


def gap_closed(fixed: float, approach: float, oracle: float) -> float:
    """``(fixed - approach) / (fixed - oracle)``; NaN when the gap is zero (the fixed setting is the oracle)."""
    gap = fixed - oracle
    if not (math.isfinite(gap) and gap > 1e-12 * max(abs(fixed), 1.0)):
        return math.nan
    return (fixed - approach) / gap


def summary_table(per_clip: pd.DataFrame, metric: str = "mel_lsd_hf") -> pd.DataFrame:
    """Per (method, approach): mean / median of ``metric`` and mean ``mel_l1`` over the held-out clips, change of
    the mean vs. the plain VAE (%), share of clips strictly better than ``fixed``, the worst clip's change vs.
    ``fixed`` (largest ``approach - fixed``) and its name, the share of clips whose setting is the identity (the
    plain VAE), and the share of the fixed → oracle gap closed (%)."""
    rows = []
    if per_clip.empty:
        return pd.DataFrame(columns=["method", "approach", "n_clips"]).set_index(["method", "approach"])
    for method, g in per_clip.groupby("method", sort=False):
        by = {a: d.set_index("clip") for a, d in g.groupby("approach", sort=False)}
        fixed, oracle = by["fixed"][metric], by["oracle"][metric]
        base = by["VAE only"][metric].mean() if "VAE only" in by else math.nan
        for approach, d in by.items():
            v = d[metric]
            diff = (v - fixed.loc[v.index]).astype(float)
            worst = diff.idxmax()
            rows.append({"method": method, "approach": approach, "n_clips": len(v), f"mean {metric}": v.mean(),
                         f"median {metric}": v.median(), "mean mel_l1": d["mel_l1"].mean(),
                         "change vs VAE %": 100 * (v.mean() / base - 1) if base else math.nan,
                         "share better than fixed": float((diff < -1e-12).mean()),
                         "share at identity": float(d["identity"].astype(bool).mean()),
                         "worst clip vs fixed": float(diff.loc[worst]), "worst clip": worst,
                         "gap closed %": 100 * gap_closed(fixed.mean(), v.mean(), oracle.mean())
                         if approach != "VAE only" else math.nan})
    return pd.DataFrame(rows).set_index(["method", "approach"])


def _pct(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.0f} %"


def verdict(table: pd.DataFrame, metric: str = "mel_lsd_hf") -> list[str]:
    """Sentences computed from :func:`summary_table`: per method, how much of the gap between the best fixed
    setting and the per-clip oracle adaptive and multi-scale close; then the overall answer (the largest share
    closed of a gap of at least 1 % of the fixed mean, or that nothing helps)."""
    col = f"mean {metric}"
    out, helped = [], []
    if table.empty:
        return ["No held-out comparison: leave-one-clip-out needs at least 2 clips (run with more clips)."]
    for method in dict.fromkeys(table.index.get_level_values(0)):
        t = table.loc[method]
        fixed, oracle = float(t.loc["fixed", col]), float(t.loc["oracle", col])
        n = int(t.loc["fixed", "n_clips"])
        if not math.isfinite(gap_closed(fixed, fixed - 1.0, oracle)):
            out.append(f"{method}: the best fixed setting is already the per-clip oracle on all {n} held-out clips "
                       f"(mean {metric} {fixed:.4f}); there is no gap for adaptive or multi-scale to close.")
            continue
        parts, small_gap = [], fixed - oracle < 0.01 * fixed
        for approach in ("adaptive", "adaptive (bundled)", "multi-scale"):
            if approach in t.index:
                g = float(t.loc[approach, "gap closed %"])
                ident = float(t.loc[approach, "share at identity"])
                note = f", the plain VAE on {ident:.0%} of clips" if ident >= 0.5 else ""
                parts.append(f"{approach} closes {_pct(g)} (mean {float(t.loc[approach, col]):.4f}, better than "
                             f"fixed on {t.loc[approach, 'share better than fixed']:.0%} of clips, worst clip "
                             f"{float(t.loc[approach, 'worst clip vs fixed']):+.4f}{note})")
                if g > 0 and not small_gap:
                    helped.append((g, method, approach))
        small = (f" The gap is only {fixed - oracle:.4f} ({(fixed - oracle) / fixed:.1%} of the fixed mean): its "
                 "percentages are of a difference too small to matter.") if small_gap else ""
        out.append(f"{method}: of the gap between the best fixed setting ({fixed:.4f}) and the per-clip oracle "
                   f"({oracle:.4f}) in mean {metric} over {n} held-out clips, " + "; ".join(parts) + "." + small)
    if helped:
        g, method, approach = max(helped)
        out.append(f"Best: {approach} {method} closes {g:.0f} % of its gap; held-out clips only "
                   "(leave-one-clip-out; the bundled rules were fitted on other clips), never fitted and scored on "
                   "the same clip.")
    else:
        out.append("Neither adaptive nor multi-scale setting beats the best fixed setting on the held-out clips "
                   "for any method (numbers above).")
    return out


def summary_numbers(table: pd.DataFrame, metric: str = "mel_lsd_hf") -> dict:
    """Flat numbers for ``metrics.json``: ``<method>_<approach>_<metric>`` means and ``<method>_<approach>_gap``
    (share of the fixed → oracle gap closed, 0–1, NaN when there is no gap). Approach keys: ``vae``, ``fixed``,
    ``adaptive``, ``adaptive_bundled``, ``multiscale``, ``oracle``; plus ``n_clips``."""
    keys = {"VAE only": "vae", "fixed": "fixed", "adaptive": "adaptive", "adaptive (bundled)": "adaptive_bundled",
            "multi-scale": "multiscale", "oracle": "oracle"}
    out = {"n_clips": int(table["n_clips"].max()) if len(table) else 0}
    for (method, approach), r in table.iterrows():
        k = f"{method}_{keys[approach]}"
        out[f"{k}_{metric}"] = float(r[f"mean {metric}"])
        if approach in ("adaptive", "adaptive (bundled)", "multi-scale"):
            g = r["gap closed %"]
            out[f"{k}_gap"] = float(g) / 100 if math.isfinite(g) else math.nan
            out[f"{k}_share_better"] = float(r["share better than fixed"])
    return out


def fit_rules(scores: pd.DataFrame, feats: pd.DataFrame, *, metric: str = "mel_lsd_hf", seed: int = 0,
              meta: dict | None = None) -> dict:
    """``{method: AdaptiveRule}`` fitted on *all* clips of ``scores`` (:func:`score_grid` of training clips only):
    features of :func:`clip_features` → per-clip oracle value (:func:`oracle_values`), clamp range = the grid's.

    Each rule's ``meta`` records the training clips, their targets and features, and ``fixed``: the grid value with
    the lowest mean ``metric`` over the same clips (what a fixed setting tuned on them would be).
    """
    rules = {}
    for method in dict.fromkeys(scores.loc[scores["family"] == "single", "method"]):
        single = scores[(scores["method"] == method) & (scores["family"] == "single")]
        y = oracle_values(scores, method, metric)
        stage = _enhance.get(method).stage
        cols = list(_adaptive.FEATURES[stage])
        x = feats.loc[y.index, cols]
        fixed = float(single.groupby("value")[metric].mean().idxmin())
        info = {**(meta or {}), "metric": metric, "clips": list(y.index), "targets": [float(v) for v in y],
                "features": x.round(6).to_numpy().tolist(), "fixed": fixed,
                "grid": sorted(float(v) for v in single["value"].unique())}
        rules[method] = _adaptive.fit_rule(method, x.to_numpy(), y.to_numpy(), lo=float(single["value"].min()),
                                           hi=float(single["value"].max()), seed=seed, meta=info)
    return rules
