"""The seed report's claims, and what we measure in their place.

"The seed report" is the earlier study this project re-examines (its text: the ``seed/`` report of the project's
shared folder; its method definitions: ``docs/reference.md`` §3). Its numbers are claims to explain, not targets.
Its metrics (waveform SNR, Pearson correlation, first-half-second magnitude "retention") are phase-sensitive;
every table here puts a phase-blind counterpart beside each claim.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..report import params as _params
from ._format import fmt_num
from .files import clean_json
from .stages import aggregate
from .sweeps import CLAIMS_PRESETS, aggregate_sweep, preset_labels

__all__ = ["CLAIMS", "claims_changes", "claims_comparison_table", "enhance_comparison_table", "claims_vs_measured",
           "claims_rule_notes", "reuse_claims_scores"]

#: The seed report's headline numbers (the seed report ``seed/000_78df48b8cc3b6e3c.txt``, "实验结果": step 1
#: "VAE-only重建质量" and the step 2 table "Latent增强结果"; definitions in docs/reference.md §3). Step 1: SNR and
#: correlation of the VAE-only reconstruction, band "retention" in percent. Step 2: change relative to
#: VAE-only — SNR in dB, high band (>= 4 kHz) retention difference × 100 (percentage points), correlation.
#: Measured with the seed's CLAP 48 kHz front end on cvssp/audioldm2-music, one clip, unseeded noise.
CLAIMS: dict = {
    "step1": {"snr_db": -0.81, "correlation": 0.0667, "ret_high_pct": 5.7, "ret_mid_pct": 26.4, "ret_low_pct": 61.7},
    "step2": {
        "seed_frequency": {"d_snr_db": -3.01, "d_high_pp": 94.9, "d_corr": 0.0200},
        "seed_noise": {"d_snr_db": -0.02, "d_high_pp": 0.3, "d_corr": -0.0045},
        "seed_contrast": {"d_snr_db": -2.97, "d_high_pp": 7.0, "d_corr": 0.0095},
        "seed_hybrid": {"d_snr_db": -3.64, "d_high_pp": 93.0, "d_corr": 0.0194},
    },
}


def claims_changes(df: pd.DataFrame, baseline: str = "vae") -> pd.DataFrame:
    """The seed report's step-2 columns, per clip: each stage's change relative to ``baseline``.

    ``d_snr_db = snr_db - snr_db[baseline]``, ``d_claims_high_pp = (claims_ret_high - claims_ret_high[baseline]) * 100``
    (the seed's "high band improvement", percentage points of its magnitude retention), ``d_corr = correlation -
    correlation[baseline]``, plus the honest counterparts ``d_lsd_hf`` and ``d_dec_mel_lsd_hf``. Rows: ``clip``,
    ``stage`` (the baseline's rows are dropped).
    """
    need = ["snr_db", "claims_ret_high", "correlation"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ValueError(f"claims_changes needs waveform metrics; missing columns {missing}")
    base = df[df["stage"] == baseline].set_index("clip")
    if base.empty:
        raise ValueError(f"no rows of baseline stage {baseline!r}")
    out = []
    for _, row in df[df["stage"] != baseline].iterrows():
        b = base.loc[row["clip"]]
        out.append({
            "clip": row["clip"], "stage": row["stage"],
            "d_snr_db": row["snr_db"] - b["snr_db"],
            "d_claims_high_pp": (row["claims_ret_high"] - b["claims_ret_high"]) * 100.0,
            "d_corr": row["correlation"] - b["correlation"],
            "d_lsd_hf": row.get("lsd_hf", np.nan) - b.get("lsd_hf", np.nan),
            "d_dec_mel_lsd_hf": row.get("dec_mel_lsd_hf", np.nan) - b.get("dec_mel_lsd_hf", np.nan),
        })
    return pd.DataFrame(out)


def claims_comparison_table(df: pd.DataFrame) -> pd.DataFrame:
    """The seed's metrics beside the honest ones, per clip and stage (plus the mean per stage).

    Seed (phase-sensitive): SNR dB, correlation, retention % per band (first 0.5 s, magnitudes). Honest:
    LSD-HF, mrSTFT, Welch band energy ratio of the high band in %, SI-SDR.
    """
    cols = {"snr_db": "SNR dB (seed)", "correlation": "corr (seed)", "claims_ret_low": "ret <500 % (seed)",
            "claims_ret_mid": "ret 0.5-4k % (seed)", "claims_ret_high": "ret >4k % (seed)", "lsd_hf": "LSD-HF",
            "mrstft": "mrSTFT", "ber_high": "energy 4-8k %", "si_sdr": "SI-SDR dB"}
    t = df[["clip", "stage", *cols]].copy()
    for c in ("claims_ret_low", "claims_ret_mid", "claims_ret_high", "ber_high"):
        t[c] = t[c] * 100.0
    mean = aggregate(t[["stage", *cols]], by="stage").reset_index()
    mean.insert(0, "clip", "mean")
    t = pd.concat([t, mean], ignore_index=True).rename(columns=cols)
    return t.set_index(["clip", "stage"])


def enhance_comparison_table(df: pd.DataFrame, variants=None) -> pd.DataFrame:
    """The seed's step-2 table (claimed and measured changes) next to LSD-HF, band energy ratio and flatness.

    Rows: variants (default the seed presets present in ``df`` plus ``configured``). Columns: the seed's claim and
    our measurement of ΔSNR (dB), Δ high band (percentage points of the seed's retention) and Δ correlation;
    then LSD-HF of the variant and of VAE-only, the Welch high-band energy ratio (variant / input), the
    high-band flatness of the variant and of the input, and the flatness of the *added* high-band energy (near 1:
    what was added is noise-like).
    """
    ch = aggregate(claims_changes(df))
    agg = aggregate(df)
    variants = variants or [v for v in ch.index if v in CLAIMS_PRESETS or v == "configured"]
    rows = []
    for v in variants:
        claim = CLAIMS["step2"].get(v, {})
        rows.append({
            "variant": v,
            "ΔSNR dB (seed)": claim.get("d_snr_db", np.nan), "ΔSNR dB": ch.loc[v, "d_snr_db"],
            "Δhigh pp (seed)": claim.get("d_high_pp", np.nan), "Δhigh pp": ch.loc[v, "d_claims_high_pp"],
            "Δcorr (seed)": claim.get("d_corr", np.nan), "Δcorr": ch.loc[v, "d_corr"],
            "LSD-HF": agg.loc[v, "lsd_hf"], "LSD-HF VAE-only": agg.loc["vae", "lsd_hf"],
            "energy 4-8k ratio": agg.loc[v, "ber_high"], "HF flatness": agg.loc[v, "hf_flatness"],
            "HF flatness input": agg.loc[v, "hf_flatness_ref"], "added-HF flatness": agg.loc[v, "added_hf_flatness"],
        })
    return pd.DataFrame(rows).set_index("variant")


def claims_vs_measured(claims_df: pd.DataFrame, sweep_df: pd.DataFrame | None = None) -> pd.DataFrame:
    """Table "the seed claimed X — here we measure Y" for the seed's headline numbers.

    Parameters
    ----------
    claims_df : pandas.DataFrame
        Rows ``clip``, ``stage`` (``vae`` and the seed presets) with the keys of :func:`quick_score` (waveforms
        vocoded from the decoded mels; ``lsd=False`` is enough).
    sweep_df : pandas.DataFrame, optional
        Per-clip sweep table (:func:`sweep_grid` rows with ``clip``), for the mel-domain counterparts.

    Returns
    -------
    pandas.DataFrame
        Columns ``claim``, ``seed``, ``measured`` (same rule, our pipeline, mean over clips), ``counterpart``
        (an honest metric's name) and ``counterpart value``.
    """
    agg = aggregate(claims_df)
    s1 = CLAIMS["step1"]
    mel = aggregate_sweep(sweep_df).set_index("label") if sweep_df is not None else None
    base_mel = mel.loc["VAE only"] if mel is not None else None

    def mel_val(label, col):
        return float(mel.loc[label, col]) if mel is not None and label in mel.index else math.nan

    v = agg.loc["vae"]
    rows = [
        ("VAE-only SNR (dB)", s1["snr_db"], v["snr_db"], "mel LSD, full band (no vocoder)",
         mel_val("VAE only", "mel_lsd")),
        ("VAE-only correlation", s1["correlation"], v["correlation"], "mel L1 (no vocoder)",
         mel_val("VAE only", "mel_l1")),
        ("VAE-only retention >4 kHz (%)", s1["ret_high_pct"], v["claims_ret_high"] * 100,
         "energy 4-8 kHz, whole clip, Welch (%)", v["ber_high"] * 100),
        ("VAE-only retention 0.5-4 kHz (%)", s1["ret_mid_pct"], v["claims_ret_mid"] * 100,
         "energy 0.5-4 kHz, whole clip, Welch (%)", v["ber_mid"] * 100),
        ("VAE-only retention <500 Hz (%)", s1["ret_low_pct"], v["claims_ret_low"] * 100,
         "energy <500 Hz, whole clip, Welch (%)", v["ber_low"] * 100),
    ]
    ch = aggregate(claims_changes(claims_df))
    labels = preset_labels()
    ref_flat = v["hf_flatness_ref"] if "hf_flatness_ref" in v.index else math.nan
    for preset, claim in CLAIMS["step2"].items():
        if preset not in ch.index:
            continue
        name = preset.replace("seed_", "")
        lab = labels[preset]
        d_mel = mel_val(lab, "mel_lsd_hf") - (float(base_mel["mel_lsd_hf"]) if base_mel is not None else math.nan)
        e = agg.loc[preset]
        rows += [
            (f"{name}: ΔSNR (dB)", claim["d_snr_db"], ch.loc[preset, "d_snr_db"],
             "Δ high-band mel LSD, no vocoder (< 0: better)", d_mel),
            (f"{name}: Δ high band (pp)", claim["d_high_pp"], ch.loc[preset, "d_claims_high_pp"],
             "Δ energy 4-8 kHz, whole clip, Welch (pp)", (e["ber_high"] - v["ber_high"]) * 100),
            (f"{name}: Δ correlation", claim["d_corr"], ch.loc[preset, "d_corr"],
             f"flatness of added 4-8 kHz energy (input: {ref_flat:.2f})", e["added_hf_flatness"]),
        ]
    return pd.DataFrame(rows, columns=["claim", "seed", "measured", "counterpart", "counterpart value"])


def claims_rule_notes(df: pd.DataFrame, baseline: str = "vae") -> list[str]:
    """One sentence per enhanced stage: what the seed's rule credits it with, and whether that is content or noise.

    Built from per-clip waveform scores (:func:`quick_score` / :func:`vaelib.metrics.score` rows with ``clip`` and
    ``stage``; ``baseline`` = VAE only): the seed-rule high-band retention change (pp) and SNR change next to the
    whole-clip 4-8 kHz energy change and the spectral flatness of the energy the stage adds over the input,
    compared with the flatness of the input's own 4-8 kHz band.
    """
    ch = aggregate(claims_changes(df, baseline))
    sagg = aggregate(df)
    ref_flat = sagg.loc[baseline, "hf_flatness_ref"] if "hf_flatness_ref" in sagg.columns else math.nan
    out = []
    for stage in ch.index:
        pp, d_snr = ch.loc[stage, "d_claims_high_pp"], ch.loc[stage, "d_snr_db"]
        flat = sagg.loc[stage, "added_hf_flatness"]
        d_ber = (sagg.loc[stage, "ber_high"] - sagg.loc[baseline, "ber_high"]) * 100
        claim = CLAIMS["step2"].get(stage)
        reported = (f" (the seed reported {claim['d_high_pp']:+.1f})" if claim else "")
        text = (f"By the seed's rule, {stage.replace('seed_', '')} changes high-band retention by "
                f"{'+' if pp >= 0 else ''}{fmt_num(pp, 1)} pp{reported} and SNR by {d_snr:+.2f} dB; over the whole "
                f"clip its 4-8 kHz energy changes by {'+' if d_ber >= 0 else ''}{fmt_num(d_ber, 1)} % of the input's")
        if np.isfinite(flat) and np.isfinite(ref_flat):
            kind = ("flatter than the input's own 4-8 kHz band, i.e. more noise-like than the content it should "
                    "restore" if flat > ref_flat else "no flatter than the input's own 4-8 kHz band")
            text += (f", and the energy it adds over the input has spectral flatness {flat:.2f} vs. "
                     f"{ref_flat:.2f} for the input's band — {kind}")
        out.append(text + ".")
    return out


_CLAIMS_SCORE_COLUMNS = ("snr_db", "correlation", "claims_ret_low", "claims_ret_mid", "claims_ret_high", "ber_low",
                         "ber_mid", "ber_high", "added_hf_flatness", "hf_flatness", "hf_flatness_ref")


def reuse_claims_scores(out_dir, signature: dict) -> pd.DataFrame | None:
    """The per-clip seed-rule scores of ``vae`` and the seed presets from notebook 02's ``metrics.json``.

    Returns ``None`` (compute them yourself) unless ``out_dir/02_latent_enhance/metrics.json`` exists, was written
    with the same :func:`inputs_signature` and holds every needed row and column. Saves notebook 03 from vocoding
    the presets a second time when both notebooks run into one folder.
    """
    path = Path(out_dir) / _params.NOTEBOOKS["enhance"][0] / "metrics.json"
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if doc.get("inputs") != clean_json(signature):
        return None
    df = pd.DataFrame(doc.get("per_clip") or [])
    stages = ["vae", *CLAIMS_PRESETS]
    need = ["clip", "stage", *_CLAIMS_SCORE_COLUMNS]
    if df.empty or any(c not in df.columns for c in need):
        return None
    df = df[df["stage"].isin(stages)][need].reset_index(drop=True)
    names = [c[0] for c in signature["clips"]]
    if len(df) != len(names) * len(stages) or set(df["clip"]) != set(names):
        return None
    for c in _CLAIMS_SCORE_COLUMNS:
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    return df
