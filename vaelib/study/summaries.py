"""The headline numbers of each notebook (``metrics.json`` ``"summary"``): flat ``{key: float}`` dicts.

Keys are documented per function; :mod:`vaelib.study.findings` turns them into sentences and
:mod:`vaelib.study.glossary` labels them.
"""

from __future__ import annotations

import math

import pandas as pd

from .claims import claims_changes, preset_labels
from .stages import aggregate
from .sweeps import aggregate_sweep, best_per_criterion

__all__ = ["baseline_summary", "enhance_summary", "analysis_summary"]

_HEADLINE = ("lsd", "lsd_lf", "lsd_hf", "mrstft", "si_sdr", "snr_db", "correlation", "claims_ret_low", "claims_ret_mid",
             "claims_ret_high", "ber_high", "mel_err_db_lf", "mel_err_db_high")


_DEC_HEADLINE = ("mel_l1", "mel_lsd", "mel_lsd_lf", "mel_lsd_hf", "mel_ber_high", "mel_err_db_lf", "mel_err_db_high")


_STAGE_PREFIX = {"mel_projection": "projection", "vae": "vae"}


def _f(x) -> float:
    return float(x) if x is not None else math.nan


def baseline_summary(df: pd.DataFrame) -> dict:
    """Headline floats of notebook 01 (means over clips) for ``metrics.json``.

    Keys: ``n_clips``; ``projection_<m>`` and ``vae_<m>`` for the waveform metrics ``m`` in ``lsd``, ``lsd_lf``,
    ``lsd_hf``, ``mrstft``, ``si_sdr``, ``snr_db``, ``correlation``, ``claims_ret_low``, ``claims_ret_mid``,
    ``claims_ret_high``, ``ber_high``, ``mel_err_db_lf`` (< 4 kHz), ``mel_err_db_high`` (≥ 4 kHz) (mel projection =
    input mel → vocoder; vae = the round trip); ``vae_mel_l1``, ``vae_mel_lsd``, ``vae_mel_lsd_lf``,
    ``vae_mel_lsd_hf``, ``vae_mel_ber_high``, ``vae_mel_err_db_lf_dec``, ``vae_mel_err_db_high_dec`` (decoded vs
    input log-mel, no vocoder: the VAE's own loss, the index's headline); ``naive_mel_err_db_lf_dec``,
    ``naive_mel_err_db_high_dec`` (the band-blind 4×4 reference codec,
    :func:`vaelib.study.stages.reference_codec_errors`); ``vae_share_lsd_hf`` =
    ``(vae_lsd_hf - projection_lsd_hf) / vae_lsd_hf``, the part of the round trip's high-band LSD not already lost
    by the vocoder; ``vae_share_lsd_lf`` the same below 4 kHz. Means follow :data:`vaelib.study.stages.MEAN_RULE`.
    """
    agg = aggregate(df)
    out = {"n_clips": float(df["clip"].nunique())}
    for stage, prefix in _STAGE_PREFIX.items():
        for m in _HEADLINE:
            if m in agg.columns:
                out[f"{prefix}_{m}"] = _f(agg.loc[stage, m])
    for m in _DEC_HEADLINE:  # the decoded log-mel's error gets "_dec": "vae_mel_err_db_high" is the vocoded one's
        if f"dec_{m}" in agg.columns:
            out[f"vae_{m}_dec" if m.startswith("mel_err_db_") else f"vae_{m}"] = _f(agg.loc["vae", f"dec_{m}"])
    for m in ("mel_err_db_lf", "mel_err_db_high"):  # the band-blind reference codec, for scale
        if f"naive_{m}" in agg.columns:
            out[f"naive_{m}_dec"] = _f(agg.loc["vae", f"naive_{m}"])
    v, p = out["vae_lsd_hf"], out["projection_lsd_hf"]
    out["vae_share_lsd_hf"] = (v - p) / v if v > 0 else math.nan
    v, p = out["vae_lsd_lf"], out["projection_lsd_lf"]
    out["vae_share_lsd_lf"] = (v - p) / v if v > 0 else math.nan
    return out


_ENH_KEYS = ("lsd_hf", "ber_high", "added_hf_flatness", "hf_flatness", "snr_db", "correlation", "claims_ret_high")


def enhance_summary(df: pd.DataFrame, variants=None) -> dict:
    """Headline floats of notebook 02 for ``metrics.json`` (means over clips).

    Keys: ``n_clips``; ``vae_<m>`` and ``<variant>_<m>`` for ``m`` in ``lsd_hf``, ``ber_high``,
    ``added_hf_flatness``, ``hf_flatness``, ``snr_db``, ``correlation``, ``claims_ret_high``, ``mel_lsd_hf``
    (decoded, no vocoder); ``<variant>_d_snr_db``, ``<variant>_d_claims_high_pp``, ``<variant>_d_corr`` (the seed's
    change columns, :func:`claims_changes`). Variants default to every stage except ``input``, ``mel_projection``
    and ``vae`` (e.g. ``configured``, ``seed_frequency``, ...).
    """
    agg = aggregate(df)
    ch = aggregate(claims_changes(df))
    variants = variants or [s for s in agg.index if s not in ("mel_projection", "vae")]
    out = {"n_clips": float(df["clip"].nunique())}
    for v in ["vae", *variants]:
        for m in _ENH_KEYS:
            out[f"{v}_{m}"] = _f(agg.loc[v, m])
        out[f"{v}_mel_lsd_hf"] = _f(agg.loc[v, "dec_mel_lsd_hf"])
        if v != "vae":
            for m in ("d_snr_db", "d_claims_high_pp", "d_corr"):
                out[f"{v}_{m}"] = _f(ch.loc[v, m])
    return out


def analysis_summary(sweep_df: pd.DataFrame, claims_df: pd.DataFrame | None = None) -> dict:
    """Headline floats of notebook 03 for ``metrics.json`` (means over clips).

    Keys: ``n_clips``, ``n_settings``; ``vae_mel_lsd_hf``, ``vae_mel_l1``, ``vae_mel_ber_high`` (plain decode);
    ``best_<metric>`` and ``best_<metric>_change`` for each criterion of :data:`CRITERIA`; ``<preset>_mel_lsd_hf``
    and ``<preset>_mel_ber_high`` for the seed presets in the sweep; ``n_better_mel_lsd_hf`` (settings below the
    plain VAE's mel LSD-HF); with ``claims_df`` also the measured seed-report
    quantities ``vae_snr_db``, ``vae_correlation``, ``vae_claims_ret_high_pct`` and ``<preset>_d_snr_db``,
    ``<preset>_d_claims_high_pp``, ``<preset>_d_corr``, ``<preset>_added_hf_flatness``.
    """
    agg = aggregate_sweep(sweep_df)
    base = agg[agg["method"] == "none"].iloc[0]
    out = {"n_clips": float(sweep_df["clip"].nunique()), "n_settings": float((agg["method"] != "none").sum())}
    for m in ("mel_lsd_hf", "mel_l1", "mel_ber_high"):
        out[f"vae_{m}"] = _f(base[m])
    for _, r in best_per_criterion(agg).iterrows():
        out[f"best_{r['metric']}"] = _f(r["best"])
        out[f"best_{r['metric']}_change"] = _f(r["change"])
    settings = agg[agg["method"] != "none"]
    out["n_better_mel_lsd_hf"] = float((settings["mel_lsd_hf"] < base["mel_lsd_hf"]).sum())
    by_label = agg.set_index("label")
    for preset, lab in preset_labels().items():
        if lab in by_label.index:
            out[f"{preset}_mel_lsd_hf"] = _f(by_label.loc[lab, "mel_lsd_hf"])
            out[f"{preset}_mel_ber_high"] = _f(by_label.loc[lab, "mel_ber_high"])
    if claims_df is not None and len(claims_df):
        sagg = aggregate(claims_df)
        out["vae_snr_db"] = _f(sagg.loc["vae", "snr_db"])
        out["vae_correlation"] = _f(sagg.loc["vae", "correlation"])
        out["vae_claims_ret_high_pct"] = _f(sagg.loc["vae", "claims_ret_high"] * 100)
        ch = aggregate(claims_changes(claims_df))
        for preset in ch.index:
            for m in ("d_snr_db", "d_claims_high_pp", "d_corr"):
                out[f"{preset}_{m}"] = _f(ch.loc[preset, m])
            out[f"{preset}_added_hf_flatness"] = _f(sagg.loc[preset, "added_hf_flatness"])
    return out
