"""Sweeps of the enhancers' parameters in the mel domain, the Pareto front and the best setting per criterion
(notebook 03)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import torch

from .. import enhance as _enhance
from .. import metrics as _metrics
from ..pipeline import decode_latents, encode_decode
from ..report.params import DEFAULT_SWEEPS, SWEEP_FIXED  # re-exported here: the schema owns the defaults
from .stages import aggregate

__all__ = ["DEFAULT_SWEEPS", "SWEEP_FIXED", "CRITERIA", "CLAIMS_PRESETS", "sweep", "sweep_grid", "encode_clip",
           "aggregate_sweep", "pareto_front", "best_per_criterion", "per_clip_best", "preset_labels", "setting_label",
           "sweep_verdict"]

#: The seed report's four settings, as preset names of :data:`vaelib.enhance.PRESETS`.
CLAIMS_PRESETS = ("seed_frequency", "seed_noise", "seed_contrast", "seed_hybrid")

#: Criteria of :func:`best_per_criterion`: label -> (column, rule); rule ``"min"`` or ``"closest1"``
#: (ratio closest to 1 on a log scale, i.e. minimal ``|ln x|``).
CRITERIA: dict[str, tuple[str, str]] = {
    "lowest high-band mel LSD": ("mel_lsd_hf", "min"),
    "lowest full-band mel LSD": ("mel_lsd", "min"),
    "lowest mel L1": ("mel_l1", "min"),
    "lowest high-band level error": ("mel_err_db_high", "min"),
    "high-band energy closest to the input": ("mel_ber_high", "closest1"),
}


def setting_label(method: str, param, value) -> str:
    if method == "none":
        return "VAE only"
    return f"{method} {param}={value:g}"


def sweep_grid(latent: torch.Tensor, vae, grid: dict, batch_size: int = 8, *, ref_mel, fixed: dict | None = None,
               seed: int = 0, cfg=None, baseline: bool = True, mels_out: dict | None = None) -> pd.DataFrame:
    """Decode a grid of enhancer settings of one latent in batches and score each in the mel domain.

    Parameters
    ----------
    latent : torch.Tensor
        Scaled latent ``(1, C, T/4, M/4)`` of one clip (:meth:`vaelib.models.LatentVAE.encode`).
    vae : vaelib.models.LatentVAE
    grid : dict
        ``method -> values`` of the method's main parameter (``gain`` / ``level`` / ``factor``; hybrid: ``gain``).
    batch_size : int
        Latents decoded per :meth:`~vaelib.models.LatentVAE.decode` call.
    ref_mel : array_like
        The input log-mel ``(T, M)`` (or ``(1, 1, T, M)``) every decode is scored against.
    fixed : dict, optional
        ``method -> {param: value}`` held fixed (default :data:`SWEEP_FIXED`: hybrid at the seed's level/factor).
    seed : int
        Seed of the stochastic enhancers (the same noise for every value).
    cfg : vaelib.audio.MelConfig, optional
        Front end (default: the VAE's).
    baseline : bool
        Add the plain decode as a ``method="none"`` row (label ``"VAE only"``).
    mels_out : dict, optional
        If given, filled with ``label -> decoded log-mel (T, M)`` numpy arrays.

    Returns
    -------
    pandas.DataFrame
        One row per setting: ``method``, ``param``, ``value``, ``label``, ``params`` (JSON) and the keys of
        :func:`vaelib.metrics.score_mel` (``mel_l1``, ``mel_lsd_hf``, ``mel_ber_high``, ...).
    """
    cfg = cfg or vae.mel_config
    fixed = SWEEP_FIXED if fixed is None else fixed
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    specs = []  # (method, param, value, params)
    if baseline:
        specs.append(("none", None, math.nan, {}))
    for method, values in grid.items():
        main = _enhance.get(method).main_param
        if main is None:
            raise ValueError(f"method {method!r} has no parameter to sweep")
        for v in values:
            params = _enhance.validate_params(method, {**fixed.get(method, {}), main: v})
            specs.append((method, main, float(params[main]), params))
    rows = []
    for i in range(0, len(specs), batch_size):
        chunk = specs[i:i + batch_size]
        parsed = {str(k): _enhance.Spec(m, p) for k, (m, _, _, p) in enumerate(chunk)}
        decoded = decode_latents(vae, latent, parsed, seed=seed, plain=False)
        mels = [decoded[str(k)].float().cpu().numpy()[0, 0] for k in range(len(chunk))]
        for (method, param, value, params), mel in zip(chunk, mels, strict=True):
            label = setting_label(method, param, value)
            if mels_out is not None:
                mels_out[label] = mel
            rows.append({"method": method, "param": param, "value": value, "label": label,
                         "params": json.dumps(params, sort_keys=True),
                         **_metrics.score_mel(ref_mel, mel, cfg=cfg)})
    return pd.DataFrame(rows)


def sweep(latent: torch.Tensor, vae, method: str, values, batch_size: int = 8, *, ref_mel, fixed=None, seed: int = 0,
          cfg=None, baseline: bool = False, mels_out: dict | None = None) -> pd.DataFrame:
    """Sweep one method's main parameter over ``values``: :func:`sweep_grid` with ``{method: values}``."""
    return sweep_grid(latent, vae, {method: list(values)}, batch_size, ref_mel=ref_mel, fixed=fixed, seed=seed,
                      cfg=cfg, baseline=baseline, mels_out=mels_out)


def encode_clip(wave, vae, cache=None):
    """Normalise (peak 0.5) and pad a clip as :func:`vaelib.pipeline.reconstruct` does, then encode it once.

    Returns ``(x, mel, latent)``: the normalised padded waveform (numpy), its log-mel ``(1, 1, T, M)`` and the
    scaled latent ``(1, C, T/4, M/4)``. ``cache``: a :class:`vaelib.pipeline.RoundTripCache` (``Session.cache``).
    """
    enc = encode_decode(wave, vae, decode=False, cache=cache)
    return enc.wave, enc.mel, enc.latent


def aggregate_sweep(df: pd.DataFrame) -> pd.DataFrame:
    """Average over clips of every metric per setting (``label``, see :func:`aggregate`: geometric mean for
    ratios), with ``method``, ``param``, ``value``, ``params`` kept."""
    keys = ["label", "method", "param", "value", "params"]
    num = [c for c in df.columns if c not in keys and c != "clip" and pd.api.types.is_numeric_dtype(df[c])]
    agg = aggregate(df[["label", *num]], by="label")
    first = df.groupby("label", sort=False)[[c for c in ("method", "param", "value", "params") if c in df]].first()
    return first.join(agg).reset_index()


def pareto_front(agg: pd.DataFrame, x: str = "mel_ber_high", y: str = "mel_lsd_hf") -> pd.Series:
    """Boolean mask of the Pareto-optimal rows for (high-band energy closest to the input, lowest ``y``).

    A row is dominated when another row has ``|ln x|`` no larger and ``y`` no larger, one of them strictly.
    """
    a = np.abs(np.log(agg[x].to_numpy(dtype=float)))
    b = agg[y].to_numpy(dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    mask = np.zeros(len(agg), dtype=bool)
    for i in np.flatnonzero(ok):
        dominated = ok & (a <= a[i]) & (b <= b[i]) & ((a < a[i]) | (b < b[i]))
        mask[i] = not dominated.any()
    return pd.Series(mask, index=agg.index, name="pareto")


def best_per_criterion(agg: pd.DataFrame, criteria: dict | None = None) -> pd.DataFrame:
    """The best setting (row of :func:`aggregate_sweep`) for each criterion of :data:`CRITERIA`.

    Columns: ``criterion``, ``metric``, ``label``, ``method``, ``value``, ``best`` (its metric value), ``vae_only``
    (the plain decode's), ``change`` (``best - vae_only``).
    """
    criteria = criteria or CRITERIA
    base = agg[agg["method"] == "none"]
    rows = []
    for crit, (col, rule) in criteria.items():
        vals = agg[col].to_numpy(dtype=float)
        key = np.abs(np.log(vals)) if rule == "closest1" else vals
        key = np.where(np.isfinite(key), key, np.inf)
        i = int(np.argmin(key))
        b = float(base[col].iloc[0]) if len(base) else math.nan
        rows.append({"criterion": crit, "metric": col, "label": agg["label"].iloc[i], "method": agg["method"].iloc[i],
                     "value": float(agg["value"].iloc[i]), "best": float(vals[i]), "vae_only": b,
                     "change": float(vals[i]) - b})
    return pd.DataFrame(rows)


def sweep_verdict(agg: pd.DataFrame, metric: str = "mel_lsd_hf") -> dict:
    """The sweep's answer, counted one way for notebook 03's conclusions and the report index alike.

    "Swept settings" are the rows of :func:`aggregate_sweep` other than the plain VAE (``method == "none"``, label
    ``"VAE only"``), which is never counted as a setting: ``n_settings`` of them, ``n_better`` with ``metric``
    below the plain VAE's, ``best_label`` / ``best`` the swept setting with the lowest ``metric`` (even when it
    does not beat the plain VAE: then it is the least harmful). ``base`` is the plain VAE's value; ``n_front`` of
    the ``n_candidates = n_settings + 1`` rows (the swept settings and the plain VAE) are Pareto-optimal
    (:func:`pareto_front`); ``metric`` names the metric; ``best_mel_ber_high`` the best setting's 4-8 kHz mel energy
    ratio (when the sweep has it).
    """
    base = float(agg.loc[agg["method"] == "none", metric].iloc[0])
    settings = agg[agg["method"] != "none"]
    out = {"metric": metric, "base": base, "n_settings": int(len(settings)),
           "n_better": int((settings[metric].astype(float) < base).sum()), "best_label": None, "best": math.nan,
           "n_candidates": int(len(agg)), "n_front": int(pareto_front(agg).sum())}
    if len(settings):
        i = settings[metric].astype(float).idxmin()
        out["best_label"], out["best"] = str(settings.loc[i, "label"]), float(settings.loc[i, metric])
        if "mel_ber_high" in settings.columns:
            out["best_mel_ber_high"] = float(settings.loc[i, "mel_ber_high"])
    return out


def per_clip_best(df: pd.DataFrame, metric: str = "mel_lsd_hf", presets=CLAIMS_PRESETS) -> pd.DataFrame:
    """Per clip: the plain VAE's ``metric``, the best setting and its value, and each seed preset's change."""
    rows = []
    labels = {p: setting_label(*_preset_setting(p)) for p in presets}
    for clip, g in df.groupby("clip", sort=False):
        base = float(g.loc[g["method"] == "none", metric].iloc[0])
        i = g[metric].astype(float).idxmin()
        row = {"clip": clip, f"VAE-only {metric}": base, "best setting": g.loc[i, "label"],
               f"best {metric}": float(g.loc[i, metric]), "best change": float(g.loc[i, metric]) - base}
        for p, lab in labels.items():
            hit = g[g["label"] == lab]
            row[f"{p} change"] = float(hit[metric].iloc[0]) - base if len(hit) else math.nan
        rows.append(row)
    return pd.DataFrame(rows).set_index("clip")


def _preset_setting(preset: str):
    method, params = _enhance.PRESETS[preset]
    main = _enhance.get(method).main_param
    return method, main, float(params[main])


def preset_labels(presets=CLAIMS_PRESETS) -> dict[str, str]:
    """``preset -> sweep label`` of the seed's settings (e.g. ``seed_frequency -> "frequency gain=1.5"``)."""
    return {p: setting_label(*_preset_setting(p)) for p in presets}
