"""Notebook 04's comparison: plain VAE / best seed setting / simple baselines / learned restorers, mel domain.

Everything the notebook shows about the restorers is computed here: :func:`compare_restorers` scores every
candidate on (input, decoded) pairs (:func:`pairs_from_clips`) with :func:`vaelib.pipeline.score_variants`;
:func:`summary_numbers` flattens it for ``metrics.json``; :func:`verdict` writes the sentences; :func:`extremes`
and :func:`variant_mels` pick and build the best/worst clip figures.
"""

from __future__ import annotations

import numpy as np

from ..categories import category_index
from ..enhance import PRESETS as _SEED_PRESETS
from ..pipeline import encode_decode, score_variants

__all__ = ["SEED_CANDIDATES", "BASELINE_GRIDS", "pairs_from_clips", "compare_restorers", "extremes", "variant_mels",
           "per_clip_changes", "summary_numbers", "verdict", "energy_given_back", "LOST_BELOW"]

#: Seed-report enhancers tried for "best seed setting": the seed report's four settings (notebook 03 sweeps them).
SEED_CANDIDATES = {name: _SEED_PRESETS[name] for name in ("seed_frequency", "seed_noise", "seed_contrast",
                                                          "seed_hybrid")}
#: Settings tried for each simple baseline; the table reports each one at its best setting *on the clips being
#: scored* (an oracle choice: an upper bound for the baseline, so the learned restorers get no unfair edge).
BASELINE_GRIDS = {
    "frequency_axis": ("gain", (0.95, 1.1)),
    "mel_shelf": ("shelf_db", (-2.0, -1.0, -0.5, 0.5, 1.0, 2.0, 4.0)),
    "mel_unsharp": ("amount", (0.1, 0.25, 0.5, 1.0)),
}


def pairs_from_clips(clips, vae, cache=None) -> list[dict]:
    """(input, decoded) pairs of already loaded clips (``.name``, ``.path``, ``.wave``; e.g. ``study`` clips).

    Each clip is normalised and padded as :func:`vaelib.pipeline.reconstruct` does, encoded once and decoded once
    (or served by ``cache``, a :class:`vaelib.pipeline.RoundTripCache`: ``Session.cache``).
    """
    out = []
    for c in clips:
        enc = encode_decode(c.wave, vae, cache=cache)
        out.append({"name": c.name, "path": str(c.path), "category": category_index(c.path), **enc.pair(),
                    "wave": enc.wave})
    return out


def _label(method, params) -> str:
    ps = ", ".join(f"{k}={v:g}" for k, v in params.items())
    return f"{method}({ps})" if ps else method


def compare_restorers(items: list[dict], vae, restorers=("learned", "learned_cond"), select: str = "lsd_hf") -> dict:
    """The comparison of notebook 04 on (input, decoded) pairs, mel domain, against the input log-mel.

    Rows: the plain VAE; the best seed-report setting (:data:`SEED_CANDIDATES`); each simple baseline at its best
    setting of :data:`BASELINE_GRIDS`; each learned restorer at strength 1 (``learned_cond`` twice: type inferred
    from the mel, ``auto``, and given by the clip's label). "Best" = lowest mean ``select`` (mel LSD-HF).

    Returns
    -------
    dict
        ``rows`` (per clip × candidate, :func:`score_variants`), ``table`` (one row per method: ``lsd_hf``, ``l1``,
        ``lsd`` and their change vs. the plain VAE), ``per_type`` (LSD-HF change per audio type), ``chosen``
        (the label picked for each group), ``groups`` (table row → candidate label), ``mels`` (clip →
        learned label → output log-mel, for :func:`variant_mels`).
    """
    import pandas as pd

    cands = {"vae": ("none", {})}
    groups = {"seed": [], **{b: [] for b in BASELINE_GRIDS}}
    for label, spec in SEED_CANDIDATES.items():
        cands[label] = spec
        groups["seed"].append(label)
    for method, (pname, values) in BASELINE_GRIDS.items():
        for v in values:
            label = _label(method, {pname: v})
            cands[label] = (method, {pname: v})
            groups[method].append(label)
    learned_rows = []
    for name in restorers:
        if name == "learned_cond":
            cands["learned_cond(auto)"] = ("learned_cond", {"strength": 1.0})
            cands["learned_cond(label)"] = ("learned_cond", {"strength": 1.0, "category": "label"})
            learned_rows += ["learned_cond(auto)", "learned_cond(label)"]
        else:
            cands[name] = (name, {"strength": 1.0})
            learned_rows.append(name)
    mels = {}
    rows = score_variants(items, vae, cands, keep=learned_rows, outputs=mels)
    df = pd.DataFrame(rows)
    mean = df.groupby("label", sort=False)[["lsd_hf", "lsd", "l1"]].mean()
    chosen = {g: min(labels, key=lambda lab: mean.loc[lab, select]) for g, labels in groups.items()}
    order = {"plain VAE": "vae", f"best seed setting: {chosen['seed']}": chosen["seed"]}
    for b in BASELINE_GRIDS:
        order[f"baseline: {chosen[b]}"] = chosen[b]
    for lab in learned_rows:
        order[f"learned: {lab}"] = lab
    table = mean.loc[list(order.values())].copy()
    table.index = list(order)
    base = mean.loc["vae"]
    for k in ("lsd_hf", "l1", "lsd"):
        table[f"{k}_change_%"] = 100 * (table[k] / base[k] - 1)
    table = table[["lsd_hf", "lsd_hf_change_%", "l1", "l1_change_%", "lsd", "lsd_change_%"]]
    per_cat = df.groupby(["label", "category"])["lsd_hf"].mean().unstack()
    per_type = pd.DataFrame({row: 100 * (per_cat.loc[lab] / per_cat.loc["vae"] - 1) for row, lab in order.items()}).T
    counts = df[df.label == "vae"].groupby("category").size()
    per_type.columns = [f"{c} ({counts[c]})" for c in per_type.columns]
    return {"rows": rows, "table": table, "per_type": per_type, "chosen": chosen, "groups": order, "mels": mels}


#: A clip whose plain decode keeps less than this share of the input's 4-8 kHz mel energy "lost" energy.
LOST_BELOW = 0.9


def energy_given_back(result: dict, lost_below: float = LOST_BELOW):
    """Does each learned restorer give back the high-band energy the VAE lost? (``compare_restorers`` rows.)

    Per clip the 4-8 kHz mel energy ratio ``ρ = E_out / E_in`` (:func:`vaelib.metrics.mel_band_energy_ratio`, 1 =
    the input's energy) of the plain VAE and of each learned restorer. Per method:

    * ``mean |ln ρ|``: mean over clips of the absolute log ratio (0 = every clip at the input's energy); a
      restorer that restores brings it below the plain VAE's;
    * ``geometric mean ρ``: ``exp(mean ln ρ)`` (:data:`vaelib.study.MEAN_RULE`: ratios are averaged
      geometrically);
    * over the clips where the VAE *lost* energy (``ρ_vae < lost_below``): the mean ``ln ρ`` of the method
      (closer to 0 than the VAE's = energy given back) and how many of those clips it moved towards 1
      (``ln ρ_vae < ln ρ < -ln ρ_vae``: up, without overshooting by more than the VAE's own deficit).

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame)
        Per clip (clip × method ``ρ``) and the summary (one row per method).
    """
    import pandas as pd

    df = pd.DataFrame(result["rows"])
    labels = ["vae"] + [lab for lab in result["groups"].values() if lab.startswith("learned")]
    names = {lab: row for row, lab in result["groups"].items()}
    per_clip = df.pivot_table(index="clip", columns="label", values="ber_high", sort=False)[labels]
    per_clip.columns = [names.get(lab, lab) for lab in labels]
    log = np.log(per_clip.astype(float))
    lost = log.iloc[:, 0] < np.log(lost_below)
    rows = {}
    for col in log.columns:
        moved = (log[col] > log.iloc[:, 0]) & (log[col] < -log.iloc[:, 0])
        rows[col] = {"mean |ln ρ|": float(log[col].abs().mean()), "geometric mean ρ": float(np.exp(log[col].mean())),
                     f"clips with ρ_vae < {lost_below:g}": int(lost.sum()),
                     "mean ln ρ there": float(log.loc[lost, col].mean()) if lost.any() else float("nan"),
                     "of them moved towards 1": int((moved & lost).sum()) if col != log.columns[0] else 0}
    counts = [f"clips with ρ_vae < {lost_below:g}", "of them moved towards 1"]
    return per_clip, pd.DataFrame(rows).T.astype(dict.fromkeys(counts, int))


def extremes(result: dict) -> dict:
    """The best learned restorer's label and the clips where it lowers / raises mel LSD-HF the most.

    Returns ``{"label": str | None, "best": clip, "worst": clip, "change": {clip: relative change}}`` (no clips
    when no learned restorer was scored).
    """
    import pandas as pd

    t = result["table"]
    learned = [r for r in t.index if r.startswith("learned: ")]
    if not learned:
        return {"label": None, "best": None, "worst": None, "change": {}}
    label = result["groups"][min(learned, key=lambda r: t.loc[r, "lsd_hf"])]
    per_clip = pd.DataFrame(result["rows"]).pivot_table(index="clip", columns="label", values="lsd_hf", sort=False)
    change = per_clip[label] / per_clip["vae"] - 1
    return {"label": label, "best": change.idxmin(), "worst": change.idxmax(), "change": change.to_dict()}


def per_clip_changes(result: dict, metric: str = "lsd_hf") -> dict:
    """Each scored method's per-clip change of ``metric`` against the plain VAE (table row → ``{"changes":
    {clip: change}, "summary": vaelib.changes.change_summary}``), for every row but the plain VAE: how many clips
    a method improves and its worst clip, not only its mean."""
    import pandas as pd

    from ..changes import change_summary, relative_change

    per_clip = pd.DataFrame(result["rows"]).pivot_table(index="clip", columns="label", values=metric, sort=False)
    out = {}
    for row, label in result["groups"].items():
        if label == "vae" or label not in per_clip:
            continue
        clips = [str(c) for c in per_clip.index]
        change = relative_change(per_clip["vae"], per_clip[label]).tolist()
        out[row] = {"changes": dict(zip(clips, change, strict=True)),
                    "summary": change_summary(per_clip["vae"], per_clip[label], clips)}
    return out


def variant_mels(item: dict, labels, mels: dict | None = None) -> list[tuple[str, np.ndarray]]:
    """``[(label, log-mel (T, M))]``: the input, the plain VAE and each learned ``label`` of
    :func:`compare_restorers` (``learned``, ``learned_cond(auto)``, ``learned_cond(label)``) for one pair.
    ``mels``: :func:`compare_restorers`' ``"mels"``; a restorer output found there is not computed again."""
    from .. import enhance

    out = [("input", item["mel"][0, 0].numpy()), ("VAE only", item["dec"][0, 0].numpy())]
    done = (mels or {}).get(item["name"], {})
    for lab in labels:
        if lab in done:
            mel = done[lab]
        elif lab.startswith("learned_cond"):
            params = {"category": float(item["category"]) if "label" in lab else "auto"}
            mel = enhance.apply("learned_cond", item["dec"], params)
        else:
            mel = enhance.apply(lab, item["dec"], {})
        out.append((lab, mel[0, 0].numpy()))
    return out


def summary_numbers(result: dict) -> dict:
    """Flat numeric summary of :func:`compare_restorers` with stable keys (for ``metrics.json``).

    Keys ``n_clips``, ``<row>_mel_lsd_hf``, ``<row>_mel_l1`` and, except for the plain VAE,
    ``<row>_mel_lsd_hf_rel_change`` / ``<row>_mel_l1_rel_change`` (relative, a fraction; negative = better), where
    ``<row>`` is ``vae``, ``best_seed``, ``baseline_<method>``, ``learned``, ``learned_cond`` (type inferred, the
    unlabelled use) and ``learned_cond_label`` (type given); per clip (:func:`per_clip_changes`, mel LSD-HF):
    ``<row>_clips_improved``, ``<row>_median_change`` and ``<row>_worst_change`` (fractions). The chosen settings
    are in ``result["chosen"]``.
    """
    out = {"n_clips": len({r["clip"] for r in result["rows"]})}
    per = per_clip_changes(result)
    for row in result["table"].index:
        if row == "plain VAE":
            key = "vae"
        elif row.startswith("best seed setting"):
            key = "best_seed"
        elif row.startswith("baseline: "):
            key = "baseline_" + row[len("baseline: "):].split("(")[0]
        else:
            key = {"learned_cond(auto)": "learned_cond", "learned_cond(label)": "learned_cond_label"}.get(
                row[len("learned: "):], row[len("learned: "):])
        t = result["table"].loc[row]
        out[f"{key}_mel_lsd_hf"], out[f"{key}_mel_l1"] = float(t["lsd_hf"]), float(t["l1"])
        if key != "vae":
            out[f"{key}_mel_lsd_hf_rel_change"] = float(t["lsd_hf_change_%"]) / 100
            out[f"{key}_mel_l1_rel_change"] = float(t["l1_change_%"]) / 100
        if row in per:
            c = per[row]["summary"]
            out[f"{key}_clips_improved"] = float(c["improved"])
            out[f"{key}_median_change"], out[f"{key}_worst_change"] = float(c["median"]), float(c["worst"])
    return out


def verdict(result: dict, restorers=("learned", "learned_cond")) -> list[str]:
    """Sentences computed from :func:`compare_restorers` (never hard-coded numbers)."""
    t = result["table"]
    lines = []
    learned = [r for r in t.index if r.startswith("learned: ")]
    others = [r for r in t.index if not r.startswith("learned: ") and r != "plain VAE"]
    if not learned:
        return ["No learned restorer was scored (they exist for the bundled tiny VAE; train one for this VAE with "
                "`vaelib train-restorer`)."]
    best = min(learned, key=lambda r: t.loc[r, "lsd_hf"])
    b_hf, b_l1 = -t.loc[best, "lsd_hf_change_%"], -t.loc[best, "l1_change_%"]
    word = "restores" if b_hf > 0 else "does not restore any of"
    l1_word = "lowers" if b_l1 > 0 else "raises"
    lines.append(f"The best learned restorer ({best[9:]}) {word} {abs(b_hf):.0f} % of the high-band mel error "
                 f"(LSD ≥ 4 kHz) that the VAE leaves, and {l1_word} the full-band mel L1 by {abs(b_l1):.1f} %.")
    best_other = min(others, key=lambda r: t.loc[r, "lsd_hf"])
    o_hf = -t.loc[best_other, "lsd_hf_change_%"]
    lines.append(f"The best non-learned method ({best_other}) {'lowers' if o_hf > 0 else 'raises'} it by "
                 f"{abs(o_hf):.1f} % even at a setting chosen on these very clips.")
    if "learned: learned" in t.index and any(r.startswith("learned: learned_cond") for r in t.index):
        plain = t.loc["learned: learned", "lsd_hf"]
        for r in [r for r in t.index if r.startswith("learned: learned_cond")]:
            diff = 100 * (t.loc[r, "lsd_hf"] / plain - 1)
            how = "label given" if "label" in r else "type inferred from the mel"
            verb = "helps" if diff < -0.5 else ("hurts" if diff > 0.5 else "makes no difference")
            lines.append(f"Conditioning on the audio type ({how}) {verb}: LSD-HF {diff:+.1f} % vs. the "
                         "unconditional restorer.")
        pt = result["per_type"]
        if "learned: learned_cond(label)" in pt.index:
            d = pt.loc["learned: learned_cond(label)"] - pt.loc["learned: learned"]
            helped = [c for c, v in d.items() if v < -0.5]
            if helped:
                lines.append("Per audio type, the conditional model helps on " + ", ".join(helped) + ".")
            else:
                lines.append("Per audio type, the conditional model helps on none of the types.")
    return lines
