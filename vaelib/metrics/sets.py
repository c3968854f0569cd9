"""Metric sets of ``vaelib eval --metrics``: ``default`` (always), ``perceptual`` and ``embedding`` (opt-in).

* ``default`` — the spectral metrics of :func:`vaelib.metrics.score` and :func:`vaelib.metrics.score_mel`.
* ``perceptual`` — the columns of :data:`vaelib.metrics.PERCEPTUAL_KEYS` (:func:`vaelib.metrics.perceptual`),
  per (clip, stage), with the stage's output as ``est`` and the clip's input as ``ref``. Opt-in: on 2 cores
  they take several times as long as the rest of eval (benchmarks/README.md). The speech measures are computed
  for every clip; the summary gives their medians over all clips and over the ``speech`` category.
* ``embedding`` — ``clap_cosine`` (:func:`vaelib.metrics.embedding.embedding_distance`) per (clip, stage), and
  per stage the Fréchet Audio Distance (:func:`vaelib.metrics.embedding.fad`) between the CLAP embeddings of
  the inputs and of that stage's outputs over the whole run. The CLAP model comes from
  :func:`vaelib.metrics.embedding.load_clap` (``"auto"``: ``$VAELIB_CLAP`` or the HF cache); the embeddings are
  kept in ``results.parquet`` (``clap_emb``, ``clap_ref_emb``) and left out of ``results.csv``.
"""

from __future__ import annotations

import math

import numpy as np

from .perceptual import PERCEPTUAL_KEYS, SPEECH_ONLY, perceptual, perceptual_available, perceptual_versions

__all__ = ["METRIC_SETS", "parse_metric_sets", "ExtraScorer", "extra_summary", "CSV_DROP", "SUMMARY_KEYS"]

METRIC_SETS = ("default", "perceptual", "embedding")
#: Columns kept in Parquet only (one embedding vector per row).
CSV_DROP = ("clap_emb", "clap_ref_emb")
#: Per-(clip, stage) columns the summary aggregates.
SUMMARY_KEYS = PERCEPTUAL_KEYS + ("clap_cosine",)


def parse_metric_sets(spec) -> tuple[str, ...]:
    """``"default,perceptual"`` → ``("default", "perceptual")``; ``default`` is always included, order fixed.

    Raises a one-line :class:`ValueError` for an unknown set, and for ``perceptual`` when none of its libraries is
    installed (``pip install 'vaelib[perceptual]'``).
    """
    if spec is None:
        return ("default",)
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if str(s).strip()]
    bad = [n for n in names if n not in METRIC_SETS]
    if bad:
        raise ValueError(f"--metrics: unknown metric set(s) {', '.join(bad)}; use a comma-separated subset of "
                         f"{', '.join(METRIC_SETS)}")
    if "perceptual" in names and not any(perceptual_available().values()):
        raise ValueError("--metrics perceptual: none of its libraries is installed; pip install 'vaelib[perceptual]'")
    return tuple(s for s in METRIC_SETS if s == "default" or s in names)


class ExtraScorer:
    """Computes the opt-in columns of one clip for every stage (the CLAP model is loaded on first use)."""

    def __init__(self, sets, device: str = "cpu"):
        self.sets = tuple(sets)
        self.device = device
        self._clap = None

    @property
    def active(self) -> bool:
        return any(s != "default" for s in self.sets)

    def _embedder(self):
        if self._clap is None:
            from .embedding import load_clap

            self._clap = load_clap("auto", device=self.device)
        return self._clap

    def stage_columns(self, ref, waves: dict, sr: int) -> dict[str, dict]:
        """``{stage: {column: value}}`` for the stages in ``waves`` (``ref``: the clip's input)."""
        out = {name: {} for name in waves}
        if "perceptual" in self.sets:
            for name, w in waves.items():
                out[name].update(perceptual(ref, w, sr=sr))
        if "embedding" in self.sets:
            clap = self._embedder()
            r = np.asarray(ref, dtype=np.float64).reshape(-1)
            e_ref = clap.embed(r, sr)
            for name, w in waves.items():
                w = np.asarray(w, dtype=np.float64).reshape(-1)
                n = min(len(r), len(w))
                e_ref_n = e_ref if n == len(r) else clap.embed(r[:n], sr)
                e = clap.embed(w[:n], sr)
                out[name].update({"clap_cosine": float(1.0 - np.dot(e_ref_n, e)), "clap_emb": e.tolist(),
                                  "clap_ref_emb": e_ref_n.tolist(), "clap_model": clap.source})
        return out


def _stats(x) -> dict:
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if not x.size:
        return {"n": 0, "median": math.nan, "mean": math.nan}
    return {"n": int(x.size), "median": float(np.median(x)), "mean": float(x.mean())}


def extra_summary(df) -> dict:
    """The ``perceptual`` block of ``summary.json``: per stage, each opt-in column's median and mean over all
    clips and (speech measures) over the ``speech`` category; FAD per stage; the library versions."""
    keys = [k for k in SUMMARY_KEYS if k in df]
    if not len(df) or not keys:
        return {}
    out = {"versions": perceptual_versions(), "stages": {}}
    for stage, g in df.groupby("stage", sort=False):
        block = {}
        for k in keys:
            block[k] = _stats(g[k])
            if k in SPEECH_ONLY and "category" in g:
                block[k]["speech"] = _stats(g.loc[g["category"] == "speech", k])
        if "clap_emb" in g and "clap_ref_emb" in g:
            from .embedding import fad

            try:
                block["fad_clap"] = fad(np.stack(g["clap_ref_emb"].map(np.asarray)),
                                        np.stack(g["clap_emb"].map(np.asarray)))
            except ValueError:  # fewer than two clips
                block["fad_clap"] = math.nan
        out["stages"][str(stage)] = block
    if "clap_model" in df:
        out["clap_model"] = sorted(set(df["clap_model"].dropna().astype(str)))
    return out
