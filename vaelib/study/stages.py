"""Per-clip, per-stage scoring of the round trip and the tables of notebook 01.

Column conventions: waveform metrics keep the names of :func:`vaelib.metrics.score` (``lsd_hf``, ``snr_db``,
``claims_ret_high``, ...); mel-domain metrics of a stage's *decoded* log-mel against the input log-mel (no vocoder)
carry the prefix ``dec_`` (``dec_mel_l1``, ``dec_mel_lsd_hf``, ...). Aggregates are means over clips (NaN ignored;
ratios geometric, see :func:`aggregate`).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from .. import metrics as _metrics
from .session import progress

__all__ = ["score_stages", "vocode_stages", "run_round_trips", "is_ratio", "aggregate", "quick_score",
           "attribution_table", "share_reading", "mean_over_clips", "MEAN_RULE", "below_cutoff_db",
           "reference_codec_errors"]

#: The one definition of "mean over clips" used by every notebook, the index and the eval page, in words.
MEAN_RULE = ("means over clips are arithmetic for distances, dB values, scores and changes, and geometric for "
             "ratios (energy ratios, the seed's retention), so one exploded clip cannot swamp the others")


def below_cutoff_db(low: float, mid: float, cfg) -> float:
    """The mean absolute log-mel error below 4 kHz, from the ``low`` (< 500 Hz) and ``mid`` (0.5-4 kHz) band errors.

    ``err_lf = (n_low * err_low + n_mid * err_mid) / (n_low + n_mid)`` with ``n_b`` the number of mel bins whose
    centre lies in band ``b`` (:data:`vaelib.metrics.BANDS`, ``cfg.band_mask``): both band errors are means over the
    same frames, so this is exactly :func:`vaelib.metrics.mel_band_error_db_logmel` over ``[0, 4 kHz)``.
    """
    lo, mid_b = _metrics.BANDS["low"], _metrics.BANDS["mid"]
    n_low, n_mid = int(cfg.band_mask(*lo).sum()), int(cfg.band_mask(*mid_b).sum())
    if n_low + n_mid == 0:
        return math.nan
    return (n_low * float(low) + n_mid * float(mid)) / (n_low + n_mid)


def score_stages(rec, stages=None, cfg=None, waveform: bool = True, quick: bool = False) -> list[dict]:
    """Score the stages of one :class:`vaelib.pipeline.Reconstruction` against its input.

    For every stage (default: all but ``input``) one row: ``stage``, ``method`` and its parameters (as
    ``params``, JSON), the waveform metrics ``score(rec.wave, stage.wave)`` (when ``waveform`` and the stage was
    vocoded) and the mel-domain metrics ``score_mel(rec.input_mel, stage.mel)`` prefixed ``dec_`` (the decoded
    log-mel against the input log-mel, no vocoder; all zero for ``mel_projection``, which *is* the input mel).
    ``quick=True`` uses :func:`quick_score` instead of :func:`vaelib.metrics.score` for the waveform metrics.
    """
    cfg = cfg or _metrics._cfg_for(None, rec.sr)
    names = [s for s in (stages or rec.stages) if s != "input"]
    waves = {n: rec[n].wave for n in names if waveform and rec[n].wave is not None}
    scores = _metrics.score_many(rec.wave, waves, sr=rec.sr, cfg=cfg, extended=not quick) if waves else {}
    reference = reference_codec_errors(rec.input_mel, cfg)
    rows = []
    for name in names:
        st = rec[name]
        params = {k: v for k, v in st.params.items() if k != "method"}
        row = {"stage": name, "method": st.params.get("method", name), "params": json.dumps(params, sort_keys=True)}
        row.update(scores.get(name, {}))
        row.update({f"dec_{k}": v for k, v in _metrics.score_mel(rec.input_mel, st.mel, cfg=cfg).items()})
        for prefix in ("", "dec_"):  # the error below 4 kHz, beside the one above it (the headline's two numbers)
            if f"{prefix}mel_err_db_low" in row and f"{prefix}mel_err_db_mid" in row:
                row[f"{prefix}mel_err_db_lf"] = below_cutoff_db(row[f"{prefix}mel_err_db_low"],
                                                                row[f"{prefix}mel_err_db_mid"], cfg)
        row.update(reference)
        rows.append(row)
    return rows


def reference_codec_errors(input_mel, cfg, factor: int = 4) -> dict[str, float]:
    """The log-mel error of a band-blind reference codec, for scale: ``naive_mel_err_db_lf`` (< 4 kHz) and
    ``naive_mel_err_db_high`` (≥ 4 kHz) of :func:`vaelib.tiny_vae.naive_codec` (``factor × factor`` average pool of
    the input log-mel, bilinear upsample back) against the input, by :func:`vaelib.metrics.mel_band_error_db_logmel`.

    Any codec's absolute error on the Slaney log-mel is larger below 4 kHz, where the bins are narrow and hold fine
    structure, than above (docs/reference.md §6); this codec treats every bin alike, so the VAE's error is read
    against it band by band.
    """
    import torch

    from ..tiny_vae import naive_codec

    mel = torch.as_tensor(np.asarray(input_mel, dtype=np.float32))
    while mel.ndim < 4:
        mel = mel[None]
    rec = naive_codec(mel, factor)
    err = _metrics.mel_band_error_db_logmel(mel, rec, cfg=cfg)
    return {"naive_mel_err_db_lf": below_cutoff_db(err["low"], err["mid"], cfg),
            "naive_mel_err_db_high": err["high"]}


def vocode_stages(rec, vocoder, stages) -> None:
    """Vocode the decoded mels of ``stages`` of a :class:`vaelib.pipeline.Reconstruction` in one batch (in order)
    and store the waveforms in ``rec[stage].wave``.

    Use with ``reconstruct(..., vocode=False)`` to vocode only what is scored or played. (Griffin-Lim starts each
    item from the same seeded initial phase, so a clip's output does not depend on its batch company.)
    """
    from ..pipeline import vocode

    names = list(stages)
    if not names:
        return
    for s, w in zip(names, vocode(vocoder, [rec[s].mel for s in names]), strict=True):
        rec.stages[s].wave = w


def run_round_trips(clips, vae, vocoder, enhancers=None, seed: int = 0, stages=None, show_progress: bool = True,
                    keep: int | None = None, quick: bool = False, vocode=None, cache=None):
    """Run :func:`vaelib.pipeline.reconstruct` on every clip and score every stage.

    Parameters
    ----------
    clips : list of Clip
    vae, vocoder
        Loaded models.
    enhancers
        Passed to :func:`vaelib.pipeline.reconstruct` (e.g. ``{"configured": ("contrast", {"factor": 1.7})}``).
    seed : int
        Seed of the stochastic enhancers.
    stages : list of str, optional
        Stages to score (default: all).
    show_progress : bool
        Show a ``tqdm.auto`` bar.
    keep : int, optional
        Keep the full reconstructions of the first ``keep`` clips only (default: all) — the rest are dropped
        after scoring to save memory.
    quick : bool
        Score waveforms with :func:`quick_score` (no mrSTFT / SI-SDR / per-band mel error) instead of
        :func:`vaelib.metrics.score`.
    vocode : list of str, optional
        Stages to vocode (with :func:`vocode_stages`, one batch per clip, in this order); default: every stage
        in one batch, as :func:`vaelib.pipeline.reconstruct` does. Stages not vocoded get mel-domain scores only.
    cache : vaelib.pipeline.RoundTripCache, optional
        Share each clip's encoding and plain decode with the other notebooks of a run (``Session.cache``).

    Returns
    -------
    df : pandas.DataFrame
        One row per (clip, stage): ``clip``, ``duration_s`` and the columns of :func:`score_stages`.
    recs : dict
        ``clip name -> Reconstruction`` of the kept clips.
    """
    from ..pipeline import reconstruct

    rows, recs = [], {}
    for i, clip in enumerate(progress(clips, "clips", show_progress)):
        if vocode is None:
            rec = reconstruct(clip.wave, vae, vocoder, enhancers=enhancers, seed=seed, cache=cache)
        else:
            rec = reconstruct(clip.wave, vae, None, enhancers=enhancers, seed=seed, vocode=False, cache=cache)
            vocode_stages(rec, vocoder, vocode)
        for row in score_stages(rec, stages, quick=quick):
            rows.append({"clip": clip.name, "duration_s": len(clip.wave) / rec.sr, **row})
        if keep is None or i < keep:
            recs[clip.name] = rec
    return pd.DataFrame(rows), recs


def is_ratio(column: str) -> bool:
    """Whether a metric column is an energy / magnitude ratio (``*ber_*``, ``claims_ret_*``), averaged geometrically."""
    return "ber_" in column or column.startswith("claims_ret_")


def _geomean(x: pd.Series) -> float:
    v = x.to_numpy(dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return math.nan
    with np.errstate(divide="ignore"):
        return float(np.exp(np.mean(np.log(v)))) if np.all(v >= 0) else float(np.mean(v))


def mean_over_clips(values, column: str) -> float:
    """The mean of one metric's per-clip ``values`` by :data:`MEAN_RULE`: geometric for a ratio column
    (:func:`is_ratio`), arithmetic otherwise; NaN ignored (and ±inf, which no clip's mean can carry)."""
    v = pd.Series(values, dtype=float).replace([np.inf, -np.inf], np.nan)
    return _geomean(v) if is_ratio(column) else (float(v.mean()) if v.notna().any() else math.nan)


def aggregate(df: pd.DataFrame, by="stage", columns=None) -> pd.DataFrame:
    """Average over clips of every numeric column, grouped by ``by`` (NaN ignored; group order kept).

    Ratios (:func:`is_ratio`: band energy ratios and the seed's retention) use the geometric mean — one clip whose
    enhancement explodes to 1e20× the input's energy would otherwise swamp the others; everything else
    (distances, dB values, correlations, flatness, changes) the arithmetic mean (:data:`MEAN_RULE`,
    :func:`mean_over_clips`).
    """
    keys = by if isinstance(by, list) else [by]
    num = [c for c in (columns or df.columns) if c not in keys and pd.api.types.is_numeric_dtype(df[c])]
    out = df.groupby(by, sort=False)[num].mean()
    ratios = [c for c in num if is_ratio(c)]
    if ratios:
        out[ratios] = df.groupby(by, sort=False)[ratios].agg(_geomean)
    return out


def quick_score(ref, est, sr: int = 16000, lsd: bool = True) -> dict:
    """The subset of :func:`vaelib.metrics.score` the comparison tables need, about 3× cheaper.

    Same definitions and values as :func:`vaelib.metrics.score` (tested), skipping mrSTFT, SI-SDR and the
    per-band log-mel errors: ``snr_db``, ``correlation``, ``claims_ret_low/mid/high`` (the seed's metrics),
    ``lsd``, ``lsd_lf``, ``lsd_hf`` (one STFT; omitted with ``lsd=False``), ``ber_low/mid/high``, ``hf_flatness``,
    ``hf_flatness_ref``, ``added_hf_flatness`` (one Welch PSD per signal).
    """
    return _metrics.score(ref, est, sr=sr, lsd=lsd, extended=False)


def attribution_table(df: pd.DataFrame) -> pd.DataFrame:
    """Stage attribution per clip (and the mean): how much of the round trip's loss is the vocoder's.

    Columns: ``proj LSD-HF`` (input mel → vocoder), ``VAE LSD-HF`` (round trip), ``VAE share`` (fraction of the
    round trip's LSD-HF not present in the projection), ``reading`` (what that share means, beside it: a negative
    share says the round trip scores *closer* to the input than the vocoder alone: the vocoder's error masks the
    VAE's on waveforms), ``proj LSD`` / ``VAE LSD`` (full band) and the vocoder-free ``dec mel L1`` /
    ``dec mel LSD-HF`` and decoded log-mel errors below / at and above 4 kHz in dB (decoded vs input log-mel: the
    VAE's own loss, the index's headline).
    """
    p = df[df["stage"] == "mel_projection"].set_index("clip")
    v = df[df["stage"] == "vae"].set_index("clip")
    t = pd.DataFrame({
        "proj LSD-HF": p["lsd_hf"], "VAE LSD-HF": v["lsd_hf"],
        "proj LSD": p["lsd"], "VAE LSD": v["lsd"],
        "dec mel L1": v["dec_mel_l1"], "dec mel LSD-HF": v["dec_mel_lsd_hf"],
    })
    for col, name in (("dec_mel_err_db_lf", "dec log-mel error < 4 kHz dB"),
                      ("dec_mel_err_db_high", "dec log-mel error ≥ 4 kHz dB")):
        if col in v.columns:
            t[name] = v[col]
    t.loc["mean"] = t.mean()
    share = (t["VAE LSD-HF"] - t["proj LSD-HF"]) / t["VAE LSD-HF"]
    t.insert(2, "VAE share", share)
    t.insert(3, "reading", [share_reading(x) for x in share])
    return t


def share_reading(share: float) -> str:
    """A few words on what a ``VAE share`` value means (shown beside the number)."""
    if not np.isfinite(share):
        return "undefined (no high-band distance)"
    if share > 0.005:
        return f"VAE adds {share:.0%} of the round trip's high-band distance"
    if share < -0.005:
        return ("< 0: on waveforms the vocoder's own error masks the VAE's (the round trip scores closer than the "
                "vocoder alone); the VAE's loss shows in its decoded log-mel (dec columns)")
    return "≈ 0: on waveforms the vocoder's error hides the VAE's; see the decoded log-mel (dec columns)"
