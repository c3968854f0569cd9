"""What the notebooks write: ``metrics.csv`` / ``metrics.json`` and the inputs signature that lets 03 reuse
02's scores."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["write_metrics", "inputs_signature", "clean_json"]

def inputs_signature(clips, models, params: dict) -> dict:
    """What determines a notebook's per-clip numbers: clip files, crop, model, vocoder, seed, device, version.

    Notebook 02 records it in its ``metrics.json`` (``"inputs"``); notebook 03 reuses 02's seed-rule scores only
    when its own signature is identical (:func:`reuse_claims_scores`).
    """
    from .. import __version__

    voc = models.vocoder
    vocoder = {"name": getattr(voc, "name", type(voc).__name__), "source": str(getattr(voc, "source", ""))}
    for attr in ("n_iter", "momentum", "seed"):
        if hasattr(voc, attr):
            vocoder[attr] = getattr(voc, attr)
    return clean_json({"clips": [[c.name, str(Path(c.path).resolve()) if c.path else None, len(c.wave)] for c in clips],
                   "duration_s": params.get("duration_s"), "model": str(models.vae.source),
                   "scaling_factor": models.vae.scaling_factor, "vocoder": vocoder, "seed": params.get("seed"),
                   "device": str(models.vae.device), "vaelib": __version__})


def clean_json(v):
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, dict):
        return {str(k): clean_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [clean_json(x) for x in v]
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
    doc = {"summary": clean_json(dict(summary)), "per_clip": clean_json(per_clip.to_dict(orient="records")),
           **{k: clean_json(v) for k, v in extra.items()}}
    json_path.write_text(json.dumps(doc, indent=1, allow_nan=False, ensure_ascii=False))
    return csv_path, json_path
