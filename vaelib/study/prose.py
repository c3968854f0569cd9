"""Sentences computed from the numbers — never hard-coded findings.

Every sentence is an f-string over measured values; which sentence is used (improves / worsens, noise-like or
not) is decided by comparing numbers, so the text follows whatever model and clips were run. Notebook 03's
conclusions and the report index's findings come from here.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ._format import fmt_num
from .claims import claims_rule_notes
from .sweeps import aggregate_sweep, pareto_front, preset_labels, sweep_verdict

__all__ = ["METRIC_NAMES", "why_disagree", "conclusions", "fmt_num", "attribution_sentences", "best_setting_sentence",
           "preset_sentence"]

#: Readable names of the mel-domain metrics, for generated text.
METRIC_NAMES = {"mel_lsd_hf": "high-band mel LSD", "mel_lsd": "full-band mel LSD", "mel_l1": "mel L1",
                "mel_err_db_high": "high-band log-mel error (dB)", "mel_ber_high": "4-8 kHz mel energy ratio"}


def _change_word(d: float, base: float, lower_is_better: bool = True) -> str:
    """'improves' / 'worsens' / 'leaves ... essentially unchanged' (|d| < 0.1 % of ``base``)."""
    if not np.isfinite(d) or abs(d) <= 1e-3 * max(abs(base), 1e-12):
        return "barely changes"
    return "improves" if (d < 0) == lower_is_better else "worsens"


_VOCODER_TEXT = {"griffinlim": "Griffin-Lim", "hifigan": "HiFi-GAN"}


def why_disagree(summary: dict, vocoder_name: str = "the vocoder") -> str:
    """One sentence, built from :func:`baseline_summary` numbers, on why the seed's metrics and LSD disagree."""
    vocoder_name = _VOCODER_TEXT.get(vocoder_name, vocoder_name)
    ps, vs = summary["projection_snr_db"], summary["vae_snr_db"]
    pc, vc = summary["projection_correlation"], summary["vae_correlation"]
    pl, vl = summary["projection_lsd_hf"], summary["vae_lsd_hf"]
    share = summary.get("vae_share_lsd_hf", math.nan)
    stage_part = (f"LSD-HF, which ignores phase, is {pl:.2f} for the projection and {vl:.2f} for the round trip, "
                  f"so the VAE accounts for {share:.0%} of the high-band distance" if math.isfinite(share) and share > 0
                  else f"LSD-HF, which ignores phase, is {pl:.2f} for the projection and {vl:.2f} for the round trip: "
                       f"{vocoder_name}'s own error masks the VAE's on waveforms")
    dec_hf = summary.get("vae_mel_err_db_high_dec", math.nan)
    dec_lf = summary.get("vae_mel_err_db_lf_dec", math.nan)
    if math.isfinite(dec_hf) and math.isfinite(dec_lf):
        stage_part += (f"; the VAE's own loss shows in its decoded log-mel (no vocoder): {dec_hf:.2f} dB at and above "
                       f"4 kHz, {dec_lf:.2f} dB below")
    if ps < 10.0 and abs(pc) < 0.9:
        return (f"Even the mel projection, which never passes through the VAE, scores only {ps:.2f} dB SNR and "
                f"correlation {pc:.3f} (the round trip: {vs:.2f} dB, {vc:.3f}): waveform SNR and correlation compare "
                f"phase, which {vocoder_name} re-creates, so they cannot tell the stages apart, while {stage_part}.")
    return (f"Here the mel projection keeps the waveform (SNR {ps:.2f} dB, correlation {pc:.3f}), so the drop to "
            f"{vs:.2f} dB / {vc:.3f} after the VAE is real, and the magnitude metrics agree: {stage_part}.")


def _share_words(share: float, band: str) -> str:
    if not math.isfinite(share):
        return f"adds nothing measurable to the {band} distance"
    if share > 0.005:
        return f"adds {share:.0%} of the round trip's {band} distance"
    return (f"adds no {band} distance of its own (share {share:+.0%}: the round trip scores as close to the input as "
            "the vocoder alone, or closer)")


def attribution_sentences(summary: dict) -> list[str]:
    """What the VAE adds to the vocoder's loss above and below 4 kHz, from :func:`baseline_summary` numbers.

    ``share = (round trip − vocoder only) / round trip`` of LSD-HF (≥ 4 kHz) and LSD-LF (< 4 kHz); then the
    vocoder-free distance of the decoded log-mel.
    """
    out = []
    hf, lf = summary.get("vae_share_lsd_hf", math.nan), summary.get("vae_share_lsd_lf", math.nan)
    if "vae_lsd_hf" in summary and "projection_lsd_hf" in summary:
        out.append(f"Above 4 kHz the VAE {_share_words(hf, 'high-band')}: LSD-HF "
                   f"{fmt_num(summary['projection_lsd_hf'])} with the vocoder alone, {fmt_num(summary['vae_lsd_hf'])} "
                   "through the VAE.")
    if "vae_lsd_lf" in summary and "projection_lsd_lf" in summary:
        out.append(f"Below 4 kHz it {_share_words(lf, 'low-band')}: LSD-LF {fmt_num(summary['projection_lsd_lf'])} "
                   f"with the vocoder alone, {fmt_num(summary['vae_lsd_lf'])} through the VAE.")
    if "vae_mel_lsd_hf" in summary:
        n = int(summary.get("n_clips", 0))
        out.append(f"Without any vocoder, the decoded log-mel is {fmt_num(summary['vae_mel_lsd_hf'])} mel LSD-HF and "
                   f"{fmt_num(summary.get('vae_mel_l1', math.nan))} mel L1 away from the input (mean of {n} clip(s)).")
    return out


def best_setting_sentence(name: str, base: float, best_label: str, best: float, n_better: int,
                          n_settings: int) -> str:
    """Whether any swept setting beats the plain VAE on metric ``name`` (lower is better), and which does best."""
    rel = (best - base) / base if base else math.nan
    if best < base:
        return (f"{n_better} of {n_settings} swept settings lower the {name}; the best, {best_label}, reaches "
                f"{fmt_num(best)} ({rel:+.1%} vs. VAE only).")
    return (f"None of the {n_settings} swept settings lowers the {name} below the plain VAE's {fmt_num(base)}; the "
            f"least harmful is {best_label} ({fmt_num(best)}, {rel:+.1%}).")


def preset_sentence(preset: str, label: str, name: str, base: float, value: float, ber_base: float,
                    ber_value: float) -> str:
    """What one of the seed report's settings does to metric ``name`` and to the 4-8 kHz mel energy ratio."""
    verdict = _change_word(value - base, base)
    return (f"The seed report's {preset.replace('seed_', '')} setting ({label}) {verdict} the {name} "
            f"({fmt_num(base)} → {fmt_num(value)}) and moves the 4-8 kHz mel energy ratio from {fmt_num(ber_base)} "
            f"to {fmt_num(ber_value)} (1 = the input's energy).")


def conclusions(sweep_df: pd.DataFrame, claims_df: pd.DataFrame | None = None, metric: str = "mel_lsd_hf") -> list[str]:
    """Conclusions as sentences computed from the sweep (and seed-preset) numbers — no hard-coded findings.

    Every sentence is an f-string over the measured values; which sentence is used (improves / worsens, noise-like
    or not) is decided by comparing numbers, so the text follows whatever model and clips were run. The report
    index's findings use the same sentence builders (:func:`best_setting_sentence`, :func:`preset_sentence`) on the
    summary numbers (:mod:`vaelib.study.findings`).

    Parameters
    ----------
    sweep_df : pandas.DataFrame
        Per-clip sweep rows (:func:`sweep_grid` with a ``clip`` column and the ``"VAE only"`` baseline).
    claims_df : pandas.DataFrame, optional
        Per-clip :func:`quick_score` rows of ``vae`` and the seed presets.
    metric : str
        The headline mel-domain metric (lower is better).
    """
    agg = aggregate_sweep(sweep_df)
    n = sweep_df["clip"].nunique()
    name = METRIC_NAMES.get(metric, metric)
    base = agg[agg["method"] == "none"].iloc[0]
    out = [f"The plain VAE round trip has {name} {fmt_num(base[metric])}, and its decode carries "
           f"{fmt_num(base['mel_ber_high'] * 100, 1)} % of the input's 4-8 kHz mel energy (average of {n} clip(s), "
           "mel domain, no vocoder)."]
    v = sweep_verdict(agg, metric)
    if v["n_settings"]:
        out.append(best_setting_sentence(name, v["base"], v["best_label"], v["best"], v["n_better"], v["n_settings"]))
    for preset, lab in preset_labels().items():
        hit = agg[agg["label"] == lab]
        if len(hit):
            h = hit.iloc[0]
            out.append(preset_sentence(preset, lab, name, float(base[metric]), float(h[metric]),
                                       float(base["mel_ber_high"]), float(h["mel_ber_high"])))
    front = pareto_front(agg)
    out.append(f"{int(front.sum())} of {len(agg)} candidates (the {v['n_settings']} swept settings and the plain VAE) "
               f"are Pareto-optimal for (4-8 kHz energy closest to the input, lowest {name}): "
               f"{', '.join(agg.loc[front, 'label'])}.")
    if v["n_settings"]:
        winners = sweep_df.loc[sweep_df.groupby("clip")[metric].idxmin(), "label"].value_counts()
        top, count = winners.index[0], int(winners.iloc[0])
        out.append(f"Per clip, the lowest {name} comes from {top} on {count} of {n} clip(s)"
                   + (f"; {len(winners)} different settings win on some clip." if len(winners) > 1 else "."))
    if claims_df is not None and len(claims_df):
        out += claims_rule_notes(claims_df)
    return out
