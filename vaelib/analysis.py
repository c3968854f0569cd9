"""Helpers the report notebooks use: parameter checks, clip loading, scoring tables, sweeps, conclusions.

The notebooks (``notebooks/01_baseline.ipynb``, ``02_latent_enhance.ipynb``, ``03_analysis.ipynb``) only
orchestrate; every number they show is computed here (or in :mod:`vaelib.metrics`) so it can be tested:

* :func:`check_params` — validate the papermill parameters (one-line ``ValueError`` on a bad value);
* :func:`load_clips` — load a file / folder / ``"demo"``, skipping unreadable files with a message;
* :func:`load_models` — VAE + vocoder + the resolved :class:`vaelib.models.ModelChoice`;
* :func:`score_stages` / :func:`run_round_trips` — per-clip, per-stage tables (waveform metrics of
  :func:`vaelib.metrics.score` plus mel-domain metrics of :func:`vaelib.metrics.score_mel`, prefixed ``dec_``);
* :func:`seed_changes` — the seed report's "SNR / high band / correlation improvement" columns;
* :func:`sweep` / :func:`sweep_grid` — decode a gain sweep in batches and score it in the mel domain;
* :func:`pareto_front`, :func:`best_per_criterion`, :func:`per_clip_best`, :func:`seed_vs_measured`;
* :func:`why_disagree`, :func:`conclusions` — text built from the numbers (never hard-coded claims);
* :func:`write_metrics` — ``metrics.csv`` + ``metrics.json`` (``{"summary": {...}, "per_clip": [...]}``),
  the contract with the report runner.

Column conventions of the per-clip tables: waveform metrics keep the names of :func:`vaelib.metrics.score`
(``lsd_hf``, ``snr_db``, ``seed_ret_high``, ...); mel-domain metrics of a stage's *decoded* log-mel against the
input log-mel (no vocoder) carry the prefix ``dec_`` (``dec_mel_l1``, ``dec_mel_lsd_hf``, ...). Aggregates are
arithmetic means over clips (NaN ignored).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import enhance as _enhance
from . import metrics as _metrics
from ._util import one_line as _one_line

__all__ = [
    "SEED_CLAIMS",
    "NOTEBOOK_DIRS",
    "DEFAULT_SWEEPS",
    "SWEEP_FIXED",
    "CRITERIA",
    "Clip",
    "Models",
    "check_params",
    "enhancer_params",
    "prepare_out_dir",
    "load_clips",
    "load_models",
    "header_markdown",
    "progress",
    "save_figure",
    "score_stages",
    "run_round_trips",
    "vocode_stages",
    "aggregate",
    "is_ratio",
    "seed_changes",
    "quick_score",
    "baseline_summary",
    "enhance_summary",
    "attribution_table",
    "seed_comparison_table",
    "why_disagree",
    "sweep",
    "sweep_grid",
    "encode_clip",
    "aggregate_sweep",
    "analysis_summary",
    "preset_labels",
    "enhance_comparison_table",
    "pareto_front",
    "best_per_criterion",
    "per_clip_best",
    "seed_vs_measured",
    "conclusions",
    "seed_rule_notes",
    "METRIC_NAMES",
    "write_metrics",
    "inputs_signature",
    "reuse_seed_scores",
]

#: The seed report's headline numbers (the seed report ``seed/000_78df48b8cc3b6e3c.txt``, "实验结果": step 1
#: "VAE-only重建质量" and the step 2 table "Latent增强结果"; definitions in REFERENCE §3). Step 1: SNR and
#: correlation of the VAE-only reconstruction, band "retention" in percent. Step 2: change relative to
#: VAE-only — SNR in dB, high band (>= 4 kHz) retention difference × 100 (percentage points), correlation.
#: Measured with the seed's CLAP 48 kHz front end on cvssp/audioldm2-music, one clip, unseeded noise.
SEED_CLAIMS: dict = {
    "step1": {"snr_db": -0.81, "correlation": 0.0667, "ret_high_pct": 5.7, "ret_mid_pct": 26.4, "ret_low_pct": 61.7},
    "step2": {
        "seed_frequency": {"d_snr_db": -3.01, "d_high_pp": 94.9, "d_corr": 0.0200},
        "seed_noise": {"d_snr_db": -0.02, "d_high_pp": 0.3, "d_corr": -0.0045},
        "seed_contrast": {"d_snr_db": -2.97, "d_high_pp": 7.0, "d_corr": 0.0095},
        "seed_hybrid": {"d_snr_db": -3.64, "d_high_pp": 93.0, "d_corr": 0.0194},
    },
}

#: Sub-folder of ``out_dir`` each notebook writes into.
NOTEBOOK_DIRS = {"baseline": "01_baseline", "enhance": "02_latent_enhance", "analysis": "03_analysis"}

#: Default sweep values of each method's main parameter (the neutral value is the plain VAE row, added once).
DEFAULT_SWEEPS: dict[str, list[float]] = {
    "frequency": [1.1, 1.25, 1.5, 2.0],
    "noise": [0.05, 0.1, 0.2],
    "contrast": [0.8, 0.9, 1.15, 1.3],
    "hybrid": [1.1, 1.2, 1.4],
}

#: Parameters held fixed while a method's main parameter is swept (hybrid: the seed's level and factor).
SWEEP_FIXED: dict[str, dict] = {"hybrid": {k: v for k, v in _enhance.PRESETS["seed_hybrid"][1].items() if k != "gain"}}

#: Criteria of :func:`best_per_criterion`: label -> (column, rule); rule ``"min"`` or ``"closest1"``
#: (ratio closest to 1 on a log scale, i.e. minimal ``|ln x|``).
CRITERIA: dict[str, tuple[str, str]] = {
    "lowest high-band mel LSD": ("mel_lsd_hf", "min"),
    "lowest full-band mel LSD": ("mel_lsd", "min"),
    "lowest mel L1": ("mel_l1", "min"),
    "lowest high-band level error": ("mel_err_db_high", "min"),
    "high-band energy closest to the input": ("mel_ber_high", "closest1"),
}

_VOCODER_WORDS = ("auto", "hifigan", "griffinlim")
_SEED_PRESETS = ("seed_frequency", "seed_noise", "seed_contrast", "seed_hybrid")


# ----------------------------------------------------------------------------------------------------------
# parameters
# ----------------------------------------------------------------------------------------------------------
def _as_str(name, v, allow_empty=False) -> str:
    if not isinstance(v, (str, os.PathLike)) or (not allow_empty and not str(v).strip()):
        raise ValueError(f"parameter {name} must be a non-empty string, got {v!r}")
    return str(v)


def _as_bool(name, v) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return v.strip().lower() in ("true", "1", "yes")
    if isinstance(v, (int, np.integer)) and v in (0, 1):
        return bool(v)
    raise ValueError(f"parameter {name} must be True or False, got {v!r}")


def _as_int(name, v, lo=None) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer, float, str)):
        raise ValueError(f"parameter {name} must be an integer, got {v!r}")
    try:
        f = float(v)
    except ValueError:
        raise ValueError(f"parameter {name} must be an integer, got {v!r}") from None
    if not f.is_integer():
        raise ValueError(f"parameter {name} must be an integer, got {v!r}")
    out = int(f)
    if lo is not None and out < lo:
        raise ValueError(f"parameter {name} must be >= {lo}, got {out}")
    return out


def _as_float(name, v, lo=None, hi=None, lo_open=False) -> float:
    if isinstance(v, bool):
        raise ValueError(f"parameter {name} must be a number, got {v!r}")
    try:
        out = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"parameter {name} must be a number, got {v!r}") from None
    if not math.isfinite(out):
        raise ValueError(f"parameter {name} must be finite, got {v!r}")
    if lo is not None and (out <= lo if lo_open else out < lo):
        raise ValueError(f"parameter {name} must be {'>' if lo_open else '>='} {lo:g}, got {out:g}")
    if hi is not None and out > hi:
        raise ValueError(f"parameter {name} must be <= {hi:g}, got {out:g}")
    return out


def enhancer_params(method: str, gain=None, level=None, factor=None) -> dict:
    """The validated parameter dict of ``method`` from the notebook's ``gain`` / ``level`` / ``factor``.

    Only the parameters ``method`` takes are used (frequency: gain; noise: level; contrast: factor; hybrid: all
    three; none: nothing); ``None`` means the method's default. Raises a one-line ``ValueError`` for an unknown
    method or an out-of-range value.
    """
    given = {"gain": gain, "level": level, "factor": factor}
    enh = _enhance.get(method)
    params = {p.name: given[p.name] for p in enh.params if given.get(p.name) is not None}
    return _enhance.validate_params(method, params)


def check_params(params: dict, kind: str = "baseline") -> dict:
    """Validate and coerce a notebook's papermill parameters.

    Parameters
    ----------
    params : dict
        The notebook's parameters by name (``audio``, ``model``, ``vocoder``, ``duration_s``, ``device``, ``seed``,
        ``out_dir``, ``interactive``, ``max_clips``, ``max_players``; for ``kind="enhance"`` also ``method``,
        ``gain``, ``level``, ``factor``, ``clip``; for ``kind="analysis"`` also ``sweep_frequency``,
        ``sweep_noise``, ``sweep_contrast``, ``sweep_hybrid``, ``batch_size``).
    kind : str
        ``"baseline"``, ``"enhance"`` or ``"analysis"``.

    Returns
    -------
    dict
        Coerced values (``-p duration_s 5`` gives the int 5 → 5.0; ``"False"`` → False). For ``enhance`` it adds
        ``params`` (the method's validated parameters); for ``analysis`` ``grid`` (``{method: [values]}``).

    Raises
    ------
    ValueError
        One line naming the parameter and what is accepted.
    """
    if kind not in NOTEBOOK_DIRS:
        raise ValueError(f"kind must be one of {', '.join(NOTEBOOK_DIRS)}, got {kind!r}")
    p = dict(params)
    out = {}
    out["audio"] = _as_str("audio", p.get("audio", "demo"))
    out["model"] = _as_str("model", p.get("model", "auto"))
    voc = _as_str("vocoder", p.get("vocoder", "auto"))
    if voc not in _VOCODER_WORDS and not Path(voc).expanduser().exists() and voc.count("/") != 1:
        raise ValueError(f"parameter vocoder must be one of {', '.join(_VOCODER_WORDS)} (or a folder / repo id "
                         f"holding vocoder/), got {voc!r}")
    out["vocoder"] = voc
    dur = p.get("duration_s", 10.24)
    out["duration_s"] = None if dur is None else _as_float("duration_s", dur, lo=0.1)
    out["device"] = _as_str("device", p.get("device", "auto"))
    out["seed"] = _as_int("seed", p.get("seed", 0), lo=0)
    out["out_dir"] = _as_str("out_dir", p.get("out_dir", "") or "", allow_empty=True)
    out["interactive"] = _as_bool("interactive", p.get("interactive", True))
    out["max_clips"] = _as_int("max_clips", p.get("max_clips", 8), lo=1)
    out["max_players"] = _as_int("max_players", p.get("max_players", 2), lo=0)
    if kind == "enhance":
        method = _as_str("method", p.get("method", "frequency"))
        out["method"] = method
        out["params"] = enhancer_params(method, p.get("gain"), p.get("level"), p.get("factor"))
        out["clip"] = _as_int("clip", p.get("clip", 0), lo=0)
    if kind == "analysis":
        grid = {}
        for method, default in DEFAULT_SWEEPS.items():
            values = p.get(f"sweep_{method}", default)
            if isinstance(values, (int, float)) and not isinstance(values, bool):
                values = [values]
            if not isinstance(values, (list, tuple)):
                raise ValueError(f"parameter sweep_{method} must be a list of numbers, got {values!r}")
            main = _enhance.get(method).main_param
            checked = []
            for v in values:
                fixed = SWEEP_FIXED.get(method, {})
                checked.append(_enhance.validate_params(method, {**fixed, main: v})[main])
            grid[method] = sorted(dict.fromkeys(checked))
        out["grid"] = grid
        out["batch_size"] = _as_int("batch_size", p.get("batch_size", 4), lo=1)
    return out


def prepare_out_dir(out_dir: str, kind: str) -> Path:
    """Create and return the notebook's run folder ``out_dir/<NOTEBOOK_DIRS[kind]>``.

    ``out_dir=""`` makes a new temporary folder (so an unparameterised run never writes into the repository).
    Refuses (one-line ``ValueError``) a sub-folder that already holds files: results are never overwritten.
    """
    base = Path(out_dir).expanduser() if out_dir else Path(tempfile.mkdtemp(prefix="vaelib_run_"))
    folder = base / NOTEBOOK_DIRS[kind]
    if folder.exists() and any(folder.iterdir()):
        raise ValueError(f"{folder} already holds results; choose a new out_dir (results are never overwritten)")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# ----------------------------------------------------------------------------------------------------------
# loading
# ----------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Clip:
    """One loaded input clip: a unique ``name`` (file stem), its ``path`` and mono float32 ``wave``."""

    name: str
    path: Path
    wave: np.ndarray


def load_clips(audio, duration_s: float | None = None, max_clips: int | None = None, sr: int = 16000):
    """Load the clips of ``audio`` (a file, a folder, ``"demo"`` or a ``.lst`` list file), skipping the ones that fail.

    Each path from :func:`vaelib.audio.find_audio` is read with :func:`vaelib.audio.load_audio` (cropped to
    ``duration_s``); a file that raises is collected as ``(path, message)`` and skipped.

    Returns
    -------
    clips : list of Clip
        At most ``max_clips`` loaded clips, in file order; names are the file stems, made unique.
    skipped : list of (str, str)
        ``(path, one-line reason)`` of every file that could not be loaded.

    Raises
    ------
    ValueError
        No file could be loaded (one line listing the first reasons); ``FileNotFoundError`` /
        ``ValueError`` from :func:`vaelib.audio.find_audio` for a bad ``audio``.
    """
    from .audio import find_audio, load_audio

    files = find_audio(audio)  # handles files, folders, 'demo' and .lst lists
    clips, skipped, used = [], [], set()
    for path in files:
        if max_clips is not None and len(clips) >= max_clips:
            break
        try:
            wave = load_audio(path, sr=sr, duration=duration_s)
        except (ValueError, FileNotFoundError, OSError) as exc:
            skipped.append((str(path), _one_line(exc)))
            continue
        name, k = path.stem, 2
        while name in used:
            name, k = f"{path.stem}_{k}", k + 1
        used.add(name)
        clips.append(Clip(name, Path(path), wave))
    if not clips:
        reasons = "; ".join(f"{Path(p).name}: {m}" for p, m in skipped[:3])
        raise ValueError(f"none of the {len(files)} audio file(s) in {audio!r} could be loaded ({reasons})")
    return clips, skipped


@dataclasses.dataclass
class Models:
    """The loaded models: resolved ``choice`` (:class:`vaelib.models.ModelChoice`), ``vae``, ``vocoder``."""

    choice: object
    vae: object
    vocoder: object

    @property
    def cfg(self):
        return self.vae.mel_config


def load_models(model: str = "auto", vocoder: str = "auto", device="auto", seed: int = 0) -> Models:
    """Resolve and load the VAE and vocoder; Griffin-Lim's random initial phase is seeded with ``seed``."""
    from .models import GriffinLim, load_vae, load_vocoder, resolve_models

    choice = resolve_models(model, vocoder)
    vae = load_vae(model, device=device)
    voc = load_vocoder(vocoder, device=device, model=model)
    if isinstance(voc, GriffinLim):
        voc.seed = int(seed)
    return Models(choice, vae, voc)


def header_markdown(title: str, models: Models, params: dict, n_clips: int | None = None,
                    skipped=None) -> str:
    """Markdown header stating model, vocoder, front end, package version and whether the bundled model is used."""
    from . import __version__

    choice, vae, cfg = models.choice, models.vae, models.cfg
    n_par = sum(p.numel() for p in vae.model.parameters())
    voc = getattr(models.vocoder, "name", type(models.vocoder).__name__)
    if voc == "griffinlim":
        voc_line = f"Griffin-Lim (torch, {models.vocoder.n_iter} iterations, momentum {models.vocoder.momentum}, " \
                   f"seed {models.vocoder.seed}; no weights)"
    else:
        voc_line = f"HiFi-GAN (`SpeechT5HifiGan`) from `{getattr(models.vocoder, 'source', '?')}`"
    bundled = bool(getattr(vae, "bundled", False))
    lines = [
        f"# {title}",
        "",
        f"- **model**: {'bundled tiny VAE (vaelib, *not* AudioLDM2)' if bundled else 'AudioLDM2 VAE'} from "
        f"`{vae.source}` — {n_par / 1e6:.2f} M parameters, scaling_factor {vae.scaling_factor:.6g}",
        f"- **bundled model in use**: {'yes' if bundled else 'no'} ({choice.reason})",
        f"- **vocoder**: {voc_line}",
        f"- **front end**: training-matched AudioLDM2 log-mel — {cfg.sr} Hz, n_fft {cfg.n_fft}, hop {cfg.hop_length}, "
        f"{cfg.n_mels} Slaney mels {cfg.fmin:g}–{cfg.fmax:g} Hz, natural log clamped at 1e-5, input normalised to "
        "peak 0.5 (not the seed's CLAP 48 kHz extractor)",
        f"- **vaelib** {__version__}, torch {torch.__version__}, device `{vae.device}`, seed {params.get('seed', 0)}",
        f"- **audio**: `{params.get('audio')}`" + (f", {n_clips} clip(s)" if n_clips is not None else "")
        + (f", cropped to {params['duration_s']:g} s" if params.get("duration_s") else ""),
    ]
    if skipped:
        lines.append(f"- **skipped** {len(skipped)} unreadable file(s): "
                     + "; ".join(f"`{Path(p).name}` ({m})" for p, m in skipped))
    if bundled:
        lines += ["", "> The numbers below describe the bundled tiny VAE trained on the demo corpus, not AudioLDM2; "
                      "the seed's numbers came from `cvssp/audioldm2-music`."]
    return "\n".join(lines)


def save_figure(fig, path, dpi: int = 90):
    """Save ``fig`` as PNG at ``dpi`` and return an ``IPython.display.Image`` of the saved bytes.

    Displaying the returned image shows exactly the saved file and avoids rendering the figure a second time.
    Refuses to overwrite an existing file.
    """
    from IPython.display import Image

    path = Path(path)
    if path.exists():
        raise FileExistsError(f"refusing to overwrite {path}; choose a new out_dir")
    fig.savefig(path, dpi=dpi, format="png")
    return Image(data=path.read_bytes(), format="png")


def progress(iterable, desc: str = "", enabled: bool = True, total: int | None = None):
    """``tqdm.auto`` progress bar over ``iterable`` (``enabled=False`` or ``TQDM_DISABLE=1`` switches it off)."""
    from tqdm.auto import tqdm

    if not enabled:
        return iterable
    return tqdm(iterable, desc=desc, total=total)


# ----------------------------------------------------------------------------------------------------------
# per-clip scoring
# ----------------------------------------------------------------------------------------------------------
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
    rows = []
    for name in names:
        st = rec[name]
        params = {k: v for k, v in st.params.items() if k != "method"}
        row = {"stage": name, "method": st.params.get("method", name), "params": json.dumps(params, sort_keys=True)}
        if waveform and st.wave is not None:
            row.update(quick_score(rec.wave, st.wave, sr=rec.sr) if quick
                       else _metrics.score(rec.wave, st.wave, sr=rec.sr, cfg=cfg))
        row.update({f"dec_{k}": v for k, v in _metrics.score_mel(rec.input_mel, st.mel, cfg=cfg).items()})
        rows.append(row)
    return rows


def vocode_stages(rec, vocoder, stages) -> None:
    """Vocode the decoded mels of ``stages`` of a :class:`vaelib.pipeline.Reconstruction` in one batch (in order)
    and store the waveforms in ``rec[stage].wave``.

    Use with ``reconstruct(..., vocode=False)`` to vocode only what is scored or played. (Griffin-Lim draws its
    random initial phase for the whole batch, so the batch composition is part of the result.)
    """
    names = list(stages)
    if not names:
        return
    batch = torch.stack([torch.from_numpy(np.ascontiguousarray(rec[s].mel))[None] for s in names])
    with torch.inference_mode():
        out = vocoder(batch.float()).detach().float().cpu().numpy()
    for s, w in zip(names, out, strict=True):
        rec.stages[s].wave = w


def run_round_trips(clips, vae, vocoder, enhancers=None, seed: int = 0, stages=None, show_progress: bool = True,
                    keep: int | None = None, quick: bool = False, vocode=None):
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

    Returns
    -------
    df : pandas.DataFrame
        One row per (clip, stage): ``clip``, ``duration_s`` and the columns of :func:`score_stages`.
    recs : dict
        ``clip name -> Reconstruction`` of the kept clips.
    """
    from .pipeline import reconstruct

    rows, recs = [], {}
    for i, clip in enumerate(progress(clips, "clips", show_progress)):
        if vocode is None:
            rec = reconstruct(clip.wave, vae, vocoder, enhancers=enhancers, seed=seed)
        else:
            rec = reconstruct(clip.wave, vae, None, enhancers=enhancers, seed=seed, vocode=False)
            vocode_stages(rec, vocoder, vocode)
        for row in score_stages(rec, stages, quick=quick):
            rows.append({"clip": clip.name, "duration_s": len(clip.wave) / rec.sr, **row})
        if keep is None or i < keep:
            recs[clip.name] = rec
    return pd.DataFrame(rows), recs


def is_ratio(column: str) -> bool:
    """Whether a metric column is an energy / magnitude ratio (``*ber_*``, ``seed_ret_*``), averaged geometrically."""
    return "ber_" in column or column.startswith("seed_ret_")


def _geomean(x: pd.Series) -> float:
    v = x.to_numpy(dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return math.nan
    with np.errstate(divide="ignore"):
        return float(np.exp(np.mean(np.log(v)))) if np.all(v >= 0) else float(np.mean(v))


def aggregate(df: pd.DataFrame, by="stage", columns=None) -> pd.DataFrame:
    """Average over clips of every numeric column, grouped by ``by`` (NaN ignored; group order kept).

    Ratios (:func:`is_ratio`: band energy ratios and the seed's retention) use the geometric mean — one clip whose
    enhancement explodes to 1e20× the input's energy would otherwise swamp the others; everything else
    (distances, dB values, correlations, flatness, changes) the arithmetic mean.
    """
    keys = by if isinstance(by, list) else [by]
    num = [c for c in (columns or df.columns) if c not in keys and pd.api.types.is_numeric_dtype(df[c])]
    out = df.groupby(by, sort=False)[num].mean()
    ratios = [c for c in num if is_ratio(c)]
    if ratios:
        out[ratios] = df.groupby(by, sort=False)[ratios].agg(_geomean)
    return out


def seed_changes(df: pd.DataFrame, baseline: str = "vae") -> pd.DataFrame:
    """The seed report's step-2 columns, per clip: each stage's change relative to ``baseline``.

    ``d_snr_db = snr_db - snr_db[baseline]``, ``d_seed_high_pp = (seed_ret_high - seed_ret_high[baseline]) * 100``
    (the seed's "high band improvement", percentage points of its magnitude retention), ``d_corr = correlation -
    correlation[baseline]``, plus the honest counterparts ``d_lsd_hf`` and ``d_dec_mel_lsd_hf``. Rows: ``clip``,
    ``stage`` (the baseline's rows are dropped).
    """
    need = ["snr_db", "seed_ret_high", "correlation"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ValueError(f"seed_changes needs waveform metrics; missing columns {missing}")
    base = df[df["stage"] == baseline].set_index("clip")
    if base.empty:
        raise ValueError(f"no rows of baseline stage {baseline!r}")
    out = []
    for _, row in df[df["stage"] != baseline].iterrows():
        b = base.loc[row["clip"]]
        out.append({
            "clip": row["clip"], "stage": row["stage"],
            "d_snr_db": row["snr_db"] - b["snr_db"],
            "d_seed_high_pp": (row["seed_ret_high"] - b["seed_ret_high"]) * 100.0,
            "d_corr": row["correlation"] - b["correlation"],
            "d_lsd_hf": row.get("lsd_hf", np.nan) - b.get("lsd_hf", np.nan),
            "d_dec_mel_lsd_hf": row.get("dec_mel_lsd_hf", np.nan) - b.get("dec_mel_lsd_hf", np.nan),
        })
    return pd.DataFrame(out)


def quick_score(ref, est, sr: int = 16000, lsd: bool = True) -> dict:
    """The subset of :func:`vaelib.metrics.score` the comparison tables need, about 3× cheaper.

    Same definitions and values as :func:`vaelib.metrics.score` (tested), skipping mrSTFT, SI-SDR and the
    per-band log-mel errors: ``snr_db``, ``correlation``, ``seed_ret_low/mid/high`` (the seed's metrics),
    ``lsd``, ``lsd_lf``, ``lsd_hf`` (one STFT; omitted with ``lsd=False``), ``ber_low/mid/high``, ``hf_flatness``,
    ``hf_flatness_ref``, ``added_hf_flatness`` (one Welch PSD per signal).
    """
    return _metrics.score(ref, est, sr=sr, lsd=lsd, extended=False)


# ----------------------------------------------------------------------------------------------------------
# 01 — baseline
# ----------------------------------------------------------------------------------------------------------
_HEADLINE = ("lsd", "lsd_lf", "lsd_hf", "mrstft", "si_sdr", "snr_db", "correlation", "seed_ret_low", "seed_ret_mid",
             "seed_ret_high", "ber_high",
             "mel_err_db_high")
_DEC_HEADLINE = ("mel_l1", "mel_lsd", "mel_lsd_hf", "mel_ber_high", "mel_err_db_high")
_STAGE_PREFIX = {"mel_projection": "projection", "vae": "vae"}


def _f(x) -> float:
    return float(x) if x is not None else math.nan


def baseline_summary(df: pd.DataFrame) -> dict:
    """Headline floats of notebook 01 (means over clips) for ``metrics.json``.

    Keys: ``n_clips``; ``projection_<m>`` and ``vae_<m>`` for the waveform metrics ``m`` in ``lsd``, ``lsd_lf``,
    ``lsd_hf``, ``mrstft``, ``si_sdr``, ``snr_db``, ``correlation``, ``seed_ret_low``, ``seed_ret_mid``,
    ``seed_ret_high``, ``ber_high``,
    ``mel_err_db_high`` (mel projection = input mel → vocoder; vae = the round trip); ``vae_mel_l1``,
    ``vae_mel_lsd``, ``vae_mel_lsd_hf``, ``vae_mel_ber_high``, ``vae_mel_err_db_high`` (decoded vs input log-mel,
    no vocoder); ``vae_share_lsd_hf`` = ``(vae_lsd_hf - projection_lsd_hf) / vae_lsd_hf``, the part of the round
    trip's high-band LSD not already lost by the vocoder.
    """
    agg = aggregate(df)
    out = {"n_clips": float(df["clip"].nunique())}
    for stage, prefix in _STAGE_PREFIX.items():
        for m in _HEADLINE:
            out[f"{prefix}_{m}"] = _f(agg.loc[stage, m])
    for m in _DEC_HEADLINE:
        out[f"vae_{m}"] = _f(agg.loc["vae", f"dec_{m}"])
    v, p = out["vae_lsd_hf"], out["projection_lsd_hf"]
    out["vae_share_lsd_hf"] = (v - p) / v if v > 0 else math.nan
    return out


def attribution_table(df: pd.DataFrame) -> pd.DataFrame:
    """Stage attribution per clip (and the mean): how much of the round trip's loss is the vocoder's.

    Columns: ``proj LSD-HF`` (input mel → vocoder), ``VAE LSD-HF`` (round trip), ``VAE share`` (fraction of the
    round trip's LSD-HF not present in the projection), ``proj LSD`` / ``VAE LSD`` (full band) and the
    vocoder-free ``dec mel L1`` / ``dec mel LSD-HF`` (decoded vs input log-mel).
    """
    p = df[df["stage"] == "mel_projection"].set_index("clip")
    v = df[df["stage"] == "vae"].set_index("clip")
    t = pd.DataFrame({
        "proj LSD-HF": p["lsd_hf"], "VAE LSD-HF": v["lsd_hf"],
        "proj LSD": p["lsd"], "VAE LSD": v["lsd"],
        "dec mel L1": v["dec_mel_l1"], "dec mel LSD-HF": v["dec_mel_lsd_hf"],
    })
    t.loc["mean"] = t.mean()
    t.insert(2, "VAE share", (t["VAE LSD-HF"] - t["proj LSD-HF"]) / t["VAE LSD-HF"])
    return t


def seed_comparison_table(df: pd.DataFrame) -> pd.DataFrame:
    """The seed's metrics beside the honest ones, per clip and stage (plus the mean per stage).

    Seed (phase-sensitive): SNR dB, correlation, retention % per band (first 0.5 s, magnitudes). Honest:
    LSD-HF, mrSTFT, Welch band energy ratio of the high band in %, SI-SDR.
    """
    cols = {"snr_db": "SNR dB (seed)", "correlation": "corr (seed)", "seed_ret_low": "ret <500 % (seed)",
            "seed_ret_mid": "ret 0.5-4k % (seed)", "seed_ret_high": "ret >4k % (seed)", "lsd_hf": "LSD-HF",
            "mrstft": "mrSTFT", "ber_high": "energy 4-8k %", "si_sdr": "SI-SDR dB"}
    t = df[["clip", "stage", *cols]].copy()
    for c in ("seed_ret_low", "seed_ret_mid", "seed_ret_high", "ber_high"):
        t[c] = t[c] * 100.0
    mean = aggregate(t[["stage", *cols]], by="stage").reset_index()
    mean.insert(0, "clip", "mean")
    t = pd.concat([t, mean], ignore_index=True).rename(columns=cols)
    return t.set_index(["clip", "stage"])


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
                  else f"LSD-HF, which ignores phase, is {pl:.2f} for the projection and {vl:.2f} for the round trip, "
                       "so the VAE adds no high-band distance beyond the vocoder's")
    if ps < 10.0 and abs(pc) < 0.9:
        return (f"Even the mel projection, which never passes through the VAE, scores only {ps:.2f} dB SNR and "
                f"correlation {pc:.3f} (the round trip: {vs:.2f} dB, {vc:.3f}): waveform SNR and correlation compare "
                f"phase, which {vocoder_name} re-creates, so they cannot tell the stages apart, while {stage_part}.")
    return (f"Here the mel projection keeps the waveform (SNR {ps:.2f} dB, correlation {pc:.3f}), so the drop to "
            f"{vs:.2f} dB / {vc:.3f} after the VAE is real, and the magnitude metrics agree: {stage_part}.")


# ----------------------------------------------------------------------------------------------------------
# 02 — enhancement
# ----------------------------------------------------------------------------------------------------------
_ENH_KEYS = ("lsd_hf", "ber_high", "added_hf_flatness", "hf_flatness", "snr_db", "correlation", "seed_ret_high")


def enhance_summary(df: pd.DataFrame, variants=None) -> dict:
    """Headline floats of notebook 02 for ``metrics.json`` (means over clips).

    Keys: ``n_clips``; ``vae_<m>`` and ``<variant>_<m>`` for ``m`` in ``lsd_hf``, ``ber_high``,
    ``added_hf_flatness``, ``hf_flatness``, ``snr_db``, ``correlation``, ``seed_ret_high``, ``mel_lsd_hf``
    (decoded, no vocoder); ``<variant>_d_snr_db``, ``<variant>_d_seed_high_pp``, ``<variant>_d_corr`` (the seed's
    change columns, :func:`seed_changes`). Variants default to every stage except ``input``, ``mel_projection``
    and ``vae`` (e.g. ``configured``, ``seed_frequency``, ...).
    """
    agg = aggregate(df)
    ch = aggregate(seed_changes(df))
    variants = variants or [s for s in agg.index if s not in ("mel_projection", "vae")]
    out = {"n_clips": float(df["clip"].nunique())}
    for v in ["vae", *variants]:
        for m in _ENH_KEYS:
            out[f"{v}_{m}"] = _f(agg.loc[v, m])
        out[f"{v}_mel_lsd_hf"] = _f(agg.loc[v, "dec_mel_lsd_hf"])
        if v != "vae":
            for m in ("d_snr_db", "d_seed_high_pp", "d_corr"):
                out[f"{v}_{m}"] = _f(ch.loc[v, m])
    return out


def enhance_comparison_table(df: pd.DataFrame, variants=None) -> pd.DataFrame:
    """The seed's step-2 table (claimed and measured changes) next to LSD-HF, band energy ratio and flatness.

    Rows: variants (default the seed presets present in ``df`` plus ``configured``). Columns: the seed's claim and
    our measurement of ΔSNR (dB), Δ high band (percentage points of the seed's retention) and Δ correlation;
    then LSD-HF of the variant and of VAE-only, the Welch high-band energy ratio (variant / input), the
    high-band flatness of the variant and of the input, and the flatness of the *added* high-band energy (near 1:
    what was added is noise-like).
    """
    ch = aggregate(seed_changes(df))
    agg = aggregate(df)
    variants = variants or [v for v in ch.index if v in _SEED_PRESETS or v == "configured"]
    rows = []
    for v in variants:
        claim = SEED_CLAIMS["step2"].get(v, {})
        rows.append({
            "variant": v,
            "ΔSNR dB (seed)": claim.get("d_snr_db", np.nan), "ΔSNR dB": ch.loc[v, "d_snr_db"],
            "Δhigh pp (seed)": claim.get("d_high_pp", np.nan), "Δhigh pp": ch.loc[v, "d_seed_high_pp"],
            "Δcorr (seed)": claim.get("d_corr", np.nan), "Δcorr": ch.loc[v, "d_corr"],
            "LSD-HF": agg.loc[v, "lsd_hf"], "LSD-HF VAE-only": agg.loc["vae", "lsd_hf"],
            "energy 4-8k ratio": agg.loc[v, "ber_high"], "HF flatness": agg.loc[v, "hf_flatness"],
            "HF flatness input": agg.loc[v, "hf_flatness_ref"], "added-HF flatness": agg.loc[v, "added_hf_flatness"],
        })
    return pd.DataFrame(rows).set_index("variant")


# ----------------------------------------------------------------------------------------------------------
# 03 — sweeps
# ----------------------------------------------------------------------------------------------------------
def _setting_label(method: str, param, value) -> str:
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
        zs = torch.cat([_enhance.apply(m, latent, p, seed=seed) for m, _, _, p in chunk])
        mels = vae.decode(zs).float().cpu().numpy()[:, 0]
        for (method, param, value, params), mel in zip(chunk, mels, strict=True):
            label = _setting_label(method, param, value)
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


def encode_clip(wave, vae):
    """Normalise (peak 0.5) and pad a clip as :func:`vaelib.pipeline.reconstruct` does, then encode it once.

    Returns ``(x, mel, latent)``: the normalised padded waveform (numpy), its log-mel ``(1, 1, T, M)`` and the
    scaled latent ``(1, C, T/4, M/4)``.
    """
    from .audio import normalize, pad_to_multiple, wav_to_mel

    cfg = vae.mel_config
    x = pad_to_multiple(normalize(np.asarray(wave, dtype=np.float32))[0], cfg)
    mel = wav_to_mel(torch.from_numpy(x).to(vae.device), cfg)
    return x, mel, vae.encode(mel)


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


def per_clip_best(df: pd.DataFrame, metric: str = "mel_lsd_hf", presets=_SEED_PRESETS) -> pd.DataFrame:
    """Per clip: the plain VAE's ``metric``, the best setting and its value, and each seed preset's change."""
    rows = []
    labels = {p: _setting_label(*_preset_setting(p)) for p in presets}
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


def preset_labels(presets=_SEED_PRESETS) -> dict[str, str]:
    """``preset -> sweep label`` of the seed's settings (e.g. ``seed_frequency -> "frequency gain=1.5"``)."""
    return {p: _setting_label(*_preset_setting(p)) for p in presets}


def seed_vs_measured(seed_df: pd.DataFrame, sweep_df: pd.DataFrame | None = None) -> pd.DataFrame:
    """Table "the seed claimed X — here we measure Y" for the seed's headline numbers.

    Parameters
    ----------
    seed_df : pandas.DataFrame
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
    agg = aggregate(seed_df)
    s1 = SEED_CLAIMS["step1"]
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
        ("VAE-only retention >4 kHz (%)", s1["ret_high_pct"], v["seed_ret_high"] * 100,
         "energy 4-8 kHz, whole clip, Welch (%)", v["ber_high"] * 100),
        ("VAE-only retention 0.5-4 kHz (%)", s1["ret_mid_pct"], v["seed_ret_mid"] * 100,
         "energy 0.5-4 kHz, whole clip, Welch (%)", v["ber_mid"] * 100),
        ("VAE-only retention <500 Hz (%)", s1["ret_low_pct"], v["seed_ret_low"] * 100,
         "energy <500 Hz, whole clip, Welch (%)", v["ber_low"] * 100),
    ]
    ch = aggregate(seed_changes(seed_df))
    labels = preset_labels()
    ref_flat = v["hf_flatness_ref"] if "hf_flatness_ref" in v.index else math.nan
    for preset, claim in SEED_CLAIMS["step2"].items():
        if preset not in ch.index:
            continue
        name = preset.replace("seed_", "")
        lab = labels[preset]
        d_mel = mel_val(lab, "mel_lsd_hf") - (float(base_mel["mel_lsd_hf"]) if base_mel is not None else math.nan)
        e = agg.loc[preset]
        rows += [
            (f"{name}: ΔSNR (dB)", claim["d_snr_db"], ch.loc[preset, "d_snr_db"],
             "Δ high-band mel LSD, no vocoder (< 0: better)", d_mel),
            (f"{name}: Δ high band (pp)", claim["d_high_pp"], ch.loc[preset, "d_seed_high_pp"],
             "Δ energy 4-8 kHz, whole clip, Welch (pp)", (e["ber_high"] - v["ber_high"]) * 100),
            (f"{name}: Δ correlation", claim["d_corr"], ch.loc[preset, "d_corr"],
             f"flatness of added 4-8 kHz energy (input: {ref_flat:.2f})", e["added_hf_flatness"]),
        ]
    return pd.DataFrame(rows, columns=["claim", "seed", "measured", "counterpart", "counterpart value"])


#: Readable names of the mel-domain metrics, for generated text.
METRIC_NAMES = {"mel_lsd_hf": "high-band mel LSD", "mel_lsd": "full-band mel LSD", "mel_l1": "mel L1",
                "mel_err_db_high": "high-band log-mel error (dB)", "mel_ber_high": "4-8 kHz mel energy ratio"}


def _num(x: float, digits: int = 3) -> str:
    """``x`` with ``digits`` decimals, or in ``%.3g`` form when it is huge or tiny (e.g. an exploded energy ratio)."""
    if not np.isfinite(x):
        return str(x)
    if x != 0 and (abs(x) >= 1e4 or abs(x) < 10 ** -digits):
        return f"{x:.3g}"
    return f"{x:.{digits}f}"


def _change_word(d: float, base: float, lower_is_better: bool = True) -> str:
    """'improves' / 'worsens' / 'leaves ... essentially unchanged' (|d| < 0.1 % of ``base``)."""
    if not np.isfinite(d) or abs(d) <= 1e-3 * max(abs(base), 1e-12):
        return "barely changes"
    return "improves" if (d < 0) == lower_is_better else "worsens"


def conclusions(sweep_df: pd.DataFrame, seed_df: pd.DataFrame | None = None, metric: str = "mel_lsd_hf") -> list[str]:
    """Conclusions as sentences computed from the sweep (and seed-preset) numbers — no hard-coded findings.

    Every sentence is an f-string over the measured values; which sentence is used (improves / worsens, noise-like
    or not) is decided by comparing numbers, so the text follows whatever model and clips were run.

    Parameters
    ----------
    sweep_df : pandas.DataFrame
        Per-clip sweep rows (:func:`sweep_grid` with a ``clip`` column and the ``"VAE only"`` baseline).
    seed_df : pandas.DataFrame, optional
        Per-clip :func:`quick_score` rows of ``vae`` and the seed presets.
    metric : str
        The headline mel-domain metric (lower is better).
    """
    agg = aggregate_sweep(sweep_df)
    n = sweep_df["clip"].nunique()
    name = METRIC_NAMES.get(metric, metric)
    base = agg[agg["method"] == "none"].iloc[0]
    out = [f"The plain VAE round trip has {name} {_num(base[metric])}, and its decode carries "
           f"{_num(base['mel_ber_high'] * 100, 1)} % of the input's 4-8 kHz mel energy (average of {n} clip(s), "
           "mel domain, no vocoder)."]
    settings = agg[agg["method"] != "none"]
    if len(settings):
        better = settings[settings[metric] < base[metric]]
        best = settings.loc[settings[metric].astype(float).idxmin()]
        rel = (best[metric] - base[metric]) / base[metric] if base[metric] else math.nan
        if best[metric] < base[metric]:
            out.append(f"{len(better)} of {len(settings)} swept settings lower the {name}; the best, {best['label']}, "
                       f"reaches {_num(best[metric])} ({rel:+.1%} vs. VAE only).")
        else:
            out.append(f"None of the {len(settings)} swept settings lowers the {name} below the plain VAE's "
                       f"{_num(base[metric])}; the least harmful is {best['label']} ({_num(best[metric])}, "
                       f"{rel:+.1%}).")
    for preset, lab in preset_labels().items():
        hit = agg[agg["label"] == lab]
        if not len(hit):
            continue
        h = hit.iloc[0]
        verdict = _change_word(h[metric] - base[metric], base[metric])
        out.append(f"The seed's {preset.replace('seed_', '')} setting ({lab}) {verdict} "
                   f"the {name} ({_num(base[metric])} → {_num(h[metric])}) and moves the 4-8 kHz mel energy ratio "
                   f"from {_num(base['mel_ber_high'])} to {_num(h['mel_ber_high'])} (1 = the input's energy).")
    front = pareto_front(agg)
    out.append(f"{int(front.sum())} of {len(agg)} settings are Pareto-optimal for (4-8 kHz energy closest to the "
               f"input, lowest {name}): {', '.join(agg.loc[front, 'label'])}.")
    if len(settings):
        winners = sweep_df.loc[sweep_df.groupby("clip")[metric].idxmin(), "label"].value_counts()
        top, count = winners.index[0], int(winners.iloc[0])
        out.append(f"Per clip, the lowest {name} comes from {top} on {count} of {n} clip(s)"
                   + (f"; {len(winners)} different settings win on some clip." if len(winners) > 1 else "."))
    if seed_df is not None and len(seed_df):
        out += seed_rule_notes(seed_df)
    return out


def seed_rule_notes(df: pd.DataFrame, baseline: str = "vae") -> list[str]:
    """One sentence per enhanced stage: what the seed's rule credits it with, and whether that is content or noise.

    Built from per-clip waveform scores (:func:`quick_score` / :func:`vaelib.metrics.score` rows with ``clip`` and
    ``stage``; ``baseline`` = VAE only): the seed-rule high-band retention change (pp) and SNR change next to the
    whole-clip 4-8 kHz energy change and the spectral flatness of the energy the stage adds over the input,
    compared with the flatness of the input's own 4-8 kHz band.
    """
    ch = aggregate(seed_changes(df, baseline))
    sagg = aggregate(df)
    ref_flat = sagg.loc[baseline, "hf_flatness_ref"] if "hf_flatness_ref" in sagg.columns else math.nan
    out = []
    for stage in ch.index:
        pp, d_snr = ch.loc[stage, "d_seed_high_pp"], ch.loc[stage, "d_snr_db"]
        flat = sagg.loc[stage, "added_hf_flatness"]
        d_ber = (sagg.loc[stage, "ber_high"] - sagg.loc[baseline, "ber_high"]) * 100
        claim = SEED_CLAIMS["step2"].get(stage)
        reported = (f" (the seed reported {claim['d_high_pp']:+.1f})" if claim else "")
        text = (f"By the seed's rule, {stage.replace('seed_', '')} changes high-band retention by "
                f"{'+' if pp >= 0 else ''}{_num(pp, 1)} pp{reported} and SNR by {d_snr:+.2f} dB; over the whole "
                f"clip its 4-8 kHz energy changes by {'+' if d_ber >= 0 else ''}{_num(d_ber, 1)} % of the input's")
        if np.isfinite(flat) and np.isfinite(ref_flat):
            kind = ("flatter than the input's own 4-8 kHz band, i.e. more noise-like than the content it should "
                    "restore" if flat > ref_flat else "no flatter than the input's own 4-8 kHz band")
            text += (f", and the energy it adds over the input has spectral flatness {flat:.2f} vs. "
                     f"{ref_flat:.2f} for the input's band — {kind}")
        out.append(text + ".")
    return out


def analysis_summary(sweep_df: pd.DataFrame, seed_df: pd.DataFrame | None = None) -> dict:
    """Headline floats of notebook 03 for ``metrics.json`` (means over clips).

    Keys: ``n_clips``, ``n_settings``; ``vae_mel_lsd_hf``, ``vae_mel_l1``, ``vae_mel_ber_high`` (plain decode);
    ``best_<metric>`` and ``best_<metric>_change`` for each criterion of :data:`CRITERIA`; ``<preset>_mel_lsd_hf``
    and ``<preset>_mel_ber_high`` for the seed presets in the sweep; with ``seed_df`` also the measured seed
    quantities ``vae_snr_db``, ``vae_correlation``, ``vae_seed_ret_high_pct`` and ``<preset>_d_snr_db``,
    ``<preset>_d_seed_high_pp``, ``<preset>_d_corr``, ``<preset>_added_hf_flatness``.
    """
    agg = aggregate_sweep(sweep_df)
    base = agg[agg["method"] == "none"].iloc[0]
    out = {"n_clips": float(sweep_df["clip"].nunique()), "n_settings": float((agg["method"] != "none").sum())}
    for m in ("mel_lsd_hf", "mel_l1", "mel_ber_high"):
        out[f"vae_{m}"] = _f(base[m])
    for _, r in best_per_criterion(agg).iterrows():
        out[f"best_{r['metric']}"] = _f(r["best"])
        out[f"best_{r['metric']}_change"] = _f(r["change"])
    by_label = agg.set_index("label")
    for preset, lab in preset_labels().items():
        if lab in by_label.index:
            out[f"{preset}_mel_lsd_hf"] = _f(by_label.loc[lab, "mel_lsd_hf"])
            out[f"{preset}_mel_ber_high"] = _f(by_label.loc[lab, "mel_ber_high"])
    if seed_df is not None and len(seed_df):
        sagg = aggregate(seed_df)
        out["vae_snr_db"] = _f(sagg.loc["vae", "snr_db"])
        out["vae_correlation"] = _f(sagg.loc["vae", "correlation"])
        out["vae_seed_ret_high_pct"] = _f(sagg.loc["vae", "seed_ret_high"] * 100)
        ch = aggregate(seed_changes(seed_df))
        for preset in ch.index:
            for m in ("d_snr_db", "d_seed_high_pp", "d_corr"):
                out[f"{preset}_{m}"] = _f(ch.loc[preset, m])
            out[f"{preset}_added_hf_flatness"] = _f(sagg.loc[preset, "added_hf_flatness"])
    return out


_SEED_SCORE_COLUMNS = ("snr_db", "correlation", "seed_ret_low", "seed_ret_mid", "seed_ret_high", "ber_low", "ber_mid",
                       "ber_high", "added_hf_flatness", "hf_flatness", "hf_flatness_ref")


def inputs_signature(clips, models: Models, params: dict) -> dict:
    """What determines a notebook's per-clip numbers: clip files, crop, model, vocoder, seed, device, version.

    Notebook 02 records it in its ``metrics.json`` (``"inputs"``); notebook 03 reuses 02's seed-rule scores only
    when its own signature is identical (:func:`reuse_seed_scores`).
    """
    from . import __version__

    voc = models.vocoder
    vocoder = {"name": getattr(voc, "name", type(voc).__name__), "source": str(getattr(voc, "source", ""))}
    for attr in ("n_iter", "momentum", "seed"):
        if hasattr(voc, attr):
            vocoder[attr] = getattr(voc, attr)
    return _clean({"clips": [[c.name, str(Path(c.path).resolve()) if c.path else None, len(c.wave)] for c in clips],
                   "duration_s": params.get("duration_s"), "model": str(models.vae.source),
                   "scaling_factor": models.vae.scaling_factor, "vocoder": vocoder, "seed": params.get("seed"),
                   "device": str(models.vae.device), "vaelib": __version__})


def reuse_seed_scores(out_dir, signature: dict) -> pd.DataFrame | None:
    """The per-clip seed-rule scores of ``vae`` and the seed presets from notebook 02's ``metrics.json``.

    Returns ``None`` (compute them yourself) unless ``out_dir/02_latent_enhance/metrics.json`` exists, was written
    with the same :func:`inputs_signature` and holds every needed row and column. Saves notebook 03 from vocoding
    the presets a second time when both notebooks run into one folder.
    """
    path = Path(out_dir) / NOTEBOOK_DIRS["enhance"] / "metrics.json"
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if doc.get("inputs") != _clean(signature):
        return None
    df = pd.DataFrame(doc.get("per_clip") or [])
    stages = ["vae", *_SEED_PRESETS]
    need = ["clip", "stage", *_SEED_SCORE_COLUMNS]
    if df.empty or any(c not in df.columns for c in need):
        return None
    df = df[df["stage"].isin(stages)][need].reset_index(drop=True)
    names = [c[0] for c in signature["clips"]]
    if len(df) != len(names) * len(stages) or set(df["clip"]) != set(names):
        return None
    for c in _SEED_SCORE_COLUMNS:
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    return df


# ----------------------------------------------------------------------------------------------------------
# files
# ----------------------------------------------------------------------------------------------------------
def _clean(v):
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, Path):
        return str(v)
    return v


def write_metrics(folder, per_clip: pd.DataFrame, summary: dict, **extra) -> tuple[Path, Path]:
    """Write ``metrics.csv`` (the per-clip table) and ``metrics.json`` into ``folder``.

    ``metrics.json`` = ``{"summary": {key: float}, "per_clip": [row, ...], **extra}``; NaN/Inf become ``null``
    (strict JSON). ``summary`` values must be numbers. Refuses to overwrite existing files.
    """
    folder = Path(folder)
    csv_path, json_path = folder / "metrics.csv", folder / "metrics.json"
    for p in (csv_path, json_path):
        if p.exists():
            raise FileExistsError(f"refusing to overwrite {p}; choose a new out_dir")
    bad = [k for k, v in summary.items() if isinstance(v, bool) or not isinstance(v, (int, float, np.number))]
    if bad:
        raise ValueError(f"summary values must be numbers; not numbers: {bad}")
    folder.mkdir(parents=True, exist_ok=True)
    per_clip.to_csv(csv_path, index=False)
    doc = {"summary": _clean(dict(summary)), "per_clip": _clean(per_clip.to_dict(orient="records")),
           **{k: _clean(v) for k, v in extra.items()}}
    json_path.write_text(json.dumps(doc, indent=1, allow_nan=False, ensure_ascii=False))
    return csv_path, json_path
