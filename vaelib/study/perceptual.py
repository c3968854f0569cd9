"""Perceptual measures in the notebooks, when ``vaelib[perceptual]`` is installed (01: per stage; 04: the plain
VAE vs. the learned restorers, vocoded).

ViSQOL's audio mode is computed for every clip; the reference-based speech measures (ViSQOL speech mode, STOI,
ESTOI, PESQ-WB) only for **speech** clips (type by the one rule, :func:`vaelib.categories.category_of`), since
they were designed and validated for speech only: their columns say "(speech only)" and are empty for other
clips. DNSMOS (no reference, 1.5 s per output on 2 cores: the costliest measure, benchmarks/README.md) is left to
``vaelib eval --metrics default,perceptual``, which keeps the report within its time. Every
table's caption names the libraries and versions (:func:`perceptual_caption`). Without any of the libraries the
functions return ``None`` and the notebooks say how to install them.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..metrics.perceptual import (
    MEASURES,
    PERCEPTUAL_KEYS,
    SPEECH_ONLY,
    perceptual,
    perceptual_available,
    perceptual_versions,
)

__all__ = ["perceptual_ready", "perceptual_rows", "perceptual_table", "perceptual_caption", "perceptual_summary",
           "baseline_perceptual", "restorer_perceptual", "INSTALL_HINT"]

INSTALL_HINT = ("Perceptual measures (ViSQOL, STOI, PESQ, DNSMOS) are not installed: "
                "`pip install 'vaelib[perceptual]'` (docs/perceptual.md).")
#: Columns shown in the notebooks, in order (DNSMOS SIG/BAK stay in the CSV files).
SHOWN = ("visqol", "visqol_speech", "stoi", "estoi", "pesq_wb")
#: What the notebooks compute: speech clips / the others (DNSMOS only in ``vaelib eval``).
NOTEBOOK_KINDS = {"speech": ("visqol", "visqol_speech", "stoi", "pesq"), "other": ("visqol",)}


def perceptual_ready() -> bool:
    """Whether at least ViSQOL's audio mode is installed (the measure shown for every clip)."""
    return bool(perceptual_available("visqol"))


def _category(path) -> str:
    from ..categories import category_of

    return category_of(path)


def perceptual_rows(pairs, sr: int = 16000) -> pd.DataFrame | None:
    """One row per (clip, stage): ``clip``, ``category``, ``stage`` and the keys of
    :data:`vaelib.metrics.PERCEPTUAL_KEYS`; speech measures are NaN for clips that are not speech.

    Parameters
    ----------
    pairs : iterable of (name, category, reference waveform, {stage: waveform})
    """
    if not perceptual_ready():
        return None
    rows = []
    for name, category, ref, stages in pairs:
        kinds = NOTEBOOK_KINDS["speech" if category == "speech" else "other"]
        for stage, wave in stages.items():
            res = perceptual(ref, wave, sr=sr, kinds=kinds)
            rows.append({"clip": name, "category": category, "stage": stage, **res})
    return pd.DataFrame(rows, columns=["clip", "category", "stage", *PERCEPTUAL_KEYS])


def perceptual_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per clip and stage, the shown measures with labelled columns ("… (speech only)" for the speech measures)."""
    cols = {k: MEASURES[k]["label"] + (" (speech only)" if k in SPEECH_ONLY else "") + " ↑" for k in SHOWN}
    out = rows[["clip", "category", "stage", *SHOWN]].rename(columns=cols)
    return out.set_index(["clip", "stage"]).round(3)


def perceptual_caption(rows: pd.DataFrame | None = None) -> str:
    """Markdown caption: what each column is, where it applies, and the libraries' versions."""
    v = perceptual_versions()
    libs = ", ".join(f"{name} {ver}" for name, ver in v.items() if ver)
    n_speech = int((rows.drop_duplicates("clip")["category"] == "speech").sum()) if rows is not None else None
    speech = (f" ({n_speech} speech clip{'s' if n_speech != 1 else ''} here)" if n_speech is not None else "")
    return ("Higher is better. ViSQOL (audio mode, 48 kHz) for every clip; the speech measures — ViSQOL speech "
            f"mode, STOI, ESTOI, PESQ-WB — for speech clips only{speech} (DNSMOS: `vaelib eval --metrics "
            "default,perceptual`). "
            f"Each output is scored against the normalised input. Libraries: {libs}. Definitions and the "
            "validation of the ViSQOL port: docs/perceptual.md.")


def perceptual_summary(rows: pd.DataFrame | None, prefixes: dict[str, str], base: str | None = None,
                       detail=("visqol",)) -> dict:
    """Flat numbers for ``metrics.json``: ``<prefix>_<key>`` = mean over the clips where the key applies, and
    against the ``base`` stage (e.g. the plain VAE) ``<prefix>_<key>_change`` (mean per-clip difference); for the
    keys in ``detail`` also ``<prefix>_<key>_change_median`` and ``<prefix>_<key>_n_improved`` (clips where it
    went up); with ``n_perceptual_clips`` / ``n_perceptual_speech``.

    Parameters
    ----------
    rows : DataFrame from :func:`perceptual_rows`, or None (gives ``{}``)
    prefixes : dict
        ``{stage: summary prefix}``, e.g. ``{"vae": "vae", "learned": "learned"}``.
    base : str, optional
        The stage the changes are taken against.
    """
    if rows is None or not len(rows):
        return {}
    out = {"n_perceptual_clips": float(rows["clip"].nunique()),
           "n_perceptual_speech": float(rows.loc[rows["category"] == "speech", "clip"].nunique())}
    wide = {k: rows.pivot_table(index="clip", columns="stage", values=k, dropna=False) for k in PERCEPTUAL_KEYS}
    for stage, prefix in prefixes.items():
        for k, t in wide.items():
            if stage not in t:
                continue
            col = t[stage].dropna()
            out[f"{prefix}_{k}"] = float(col.mean()) if len(col) else math.nan
            if base is not None and stage != base and base in t:
                d = (t[stage] - t[base]).dropna()
                out[f"{prefix}_{k}_change"] = float(d.mean()) if len(d) else math.nan
                if k in detail:
                    out[f"{prefix}_{k}_change_median"] = float(d.median()) if len(d) else math.nan
                    out[f"{prefix}_{k}_n_improved"] = float((d > 0).sum()) if len(d) else math.nan
    return out


def baseline_perceptual(recs: dict, clips) -> pd.DataFrame | None:
    """Notebook 01: each clip's mel projection and VAE round trip scored against its (normalised) input."""
    path = {c.name: c.path for c in clips}
    pairs = [(name, _category(path.get(name, name)), rec.wave,
              {"mel_projection": rec["mel_projection"].wave, "vae": rec["vae"].wave})
             for name, rec in recs.items()]
    return perceptual_rows(pairs, sr=int(next(iter(recs.values())).sr) if recs else 16000)


def reuse_baseline_rows(out_dir, signature: dict) -> pd.DataFrame | None:
    """Notebook 01's perceptual rows of the plain VAE (``vae`` stage), for notebook 04 to reuse.

    ``None`` (score them yourself) unless ``out_dir/01_baseline/metrics.json`` was written with the same
    :func:`vaelib.study.inputs_signature` and ``perceptual.csv`` beside it holds a ``vae`` row for every clip of the
    signature: the same clips, crop, model, vocoder and seed give the same waveform (to float rounding across
    thread counts), so the same scores. Saves 04
    from vocoding and scoring the plain VAE a second time when both run into one folder (as 03 reuses 02's)."""
    import json
    from pathlib import Path

    from .files import clean_json

    folder = Path(out_dir) / "01_baseline"
    try:
        doc = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
        rows = pd.read_csv(folder / "perceptual.csv")
    except (OSError, ValueError):
        return None
    if doc.get("inputs") != clean_json(signature) or not {"clip", "stage", *PERCEPTUAL_KEYS} <= set(rows.columns):
        return None
    rows = rows[rows["stage"] == "vae"]
    names = [c[0] for c in signature["clips"]]
    if len(rows) != len(names) or set(rows["clip"].astype(str)) != set(names):
        return None
    return rows.assign(clip=rows["clip"].astype(str)).reset_index(drop=True)


def restorer_perceptual(items: list[dict], labels, vocoder, sr: int = 16000,
                        reuse: pd.DataFrame | None = None, mels: dict | None = None) -> pd.DataFrame | None:
    """Notebook 04: the plain VAE and each learned restorer (``labels`` of
    :func:`vaelib.study.compare_restorers`), vocoded with the run's vocoder, against the input waveform.
    ``reuse``: the plain VAE's rows already scored (:func:`reuse_baseline_rows`); only the restorers are scored.
    ``mels``: the restorers' outputs already computed (``compare_restorers(...)["mels"]``)."""
    if not perceptual_ready():
        return None
    from ..pipeline import vocode
    from .restorers import variant_mels

    pairs = []
    for it in items:
        variants = variant_mels(it, labels, mels)[1:]  # plain VAE, then each restorer (the input is the reference)
        if reuse is not None:
            variants = [m for m in variants if m[0] != "VAE only"]
        waves = vocode(vocoder, [m for _, m in variants])
        stages = {("vae" if lab == "VAE only" else lab): np.asarray(w, dtype=np.float64)
                  for (lab, _), w in zip(variants, waves, strict=True)}
        pairs.append((it["name"], _category(it["path"]), np.asarray(it["wave"], dtype=np.float64), stages))
    rows = perceptual_rows(pairs, sr=sr)
    if reuse is not None and rows is not None:
        rank = {key: i for i, key in enumerate((it["name"], s) for it in items for s in ("vae", *labels))}
        rows = pd.concat([reuse[rows.columns], rows], ignore_index=True)
        k = [rank.get(key, len(rank)) for key in zip(rows["clip"], rows["stage"], strict=True)]
        rows = rows.assign(_k=k).sort_values("_k", kind="stable").drop(columns="_k").reset_index(drop=True)
    return rows
