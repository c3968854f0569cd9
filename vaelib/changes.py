"""Per-clip changes and their distribution: how an enhancer or restorer does on *each* clip, not only on average.

For a distance where lower is better (LSD, mel L1, ...), the change of clip ``i`` from a reference (the plain VAE)
to a candidate is the relative change

    c_i = d_i(candidate) / d_i(reference) - 1        (negative = better; NaN where d_i(reference) is 0 or missing)

and :func:`change_summary` reports, over the clips with a finite ``c_i``: ``clips`` (n), ``median`` and ``mean`` of
``c_i``, ``improved`` (#{c_i < 0}), ``share_improved`` (improved / n), ``worse`` (#{c_i > 0}), the ``worst_clip``
(argmax c_i) and ``worst`` (max c_i), the ``best_clip`` and ``best`` (min c_i), and ``mean_of_means`` — the change
of the means, ``mean(d(candidate)) / mean(d(reference)) - 1``, the one number reports used to give alone. Used by
``vaelib eval``'s summary, the restorer cards, notebook 04 and the index's findings, so every place counts the
same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["relative_change", "change_summary", "describe_change"]


def relative_change(reference, candidate) -> np.ndarray:
    """``candidate / reference - 1`` elementwise (float64); NaN where the reference is 0 or either is not finite."""
    ref = np.asarray(reference, dtype=np.float64)
    new = np.asarray(candidate, dtype=np.float64)
    if ref.shape != new.shape:
        raise ValueError(f"reference and candidate need the same shape, got {ref.shape} and {new.shape}")
    with np.errstate(divide="ignore", invalid="ignore"):
        out = new / ref - 1.0
    out[~np.isfinite(out) | (ref == 0)] = np.nan
    return out


def change_summary(reference: Sequence[float], candidate: Sequence[float], names: Sequence[str]) -> dict:
    """The distribution of the per-clip relative change (formulas in the module docstring).

    Parameters
    ----------
    reference, candidate : sequence of float
        One distance per clip (lower is better), in the same clip order.
    names : sequence of str
        The clips' names.

    Returns
    -------
    dict
        ``clips``, ``median``, ``mean``, ``improved``, ``share_improved``, ``worse``, ``worst_clip``, ``worst``,
        ``best_clip``, ``best``, ``mean_of_means``; the numbers are NaN (names None) when no clip has a finite change.
    """
    names = list(names)
    change = relative_change(reference, candidate)
    if len(names) != change.size:
        raise ValueError(f"{len(names)} names for {change.size} clips")
    ok = np.isfinite(change)
    n = int(ok.sum())
    ref = np.asarray(reference, dtype=np.float64)[ok]
    new = np.asarray(candidate, dtype=np.float64)[ok]
    if n == 0:
        nan = math.nan
        return {"clips": 0, "median": nan, "mean": nan, "improved": 0, "share_improved": nan, "worse": 0,
                "worst_clip": None, "worst": nan, "best_clip": None, "best": nan, "mean_of_means": nan}
    c = change[ok]
    kept = [nm for nm, k in zip(names, ok, strict=True) if k]
    i_worst, i_best = int(np.argmax(c)), int(np.argmin(c))
    return {"clips": n, "median": float(np.median(c)), "mean": float(np.mean(c)), "improved": int((c < 0).sum()),
            "share_improved": float((c < 0).mean()), "worse": int((c > 0).sum()), "worst_clip": kept[i_worst],
            "worst": float(c[i_worst]), "best_clip": kept[i_best], "best": float(c[i_best]),
            "mean_of_means": float(new.mean() / ref.mean() - 1.0) if ref.mean() else math.nan}


def describe_change(summary: Mapping, what: str = "") -> str:
    """One plain-text sentence of a :func:`change_summary`: ``"improves 7 of 8 clips (median −21 %); worst clip
    x.wav +3 %"``, prefixed with ``what``. Not escaped: escape it where it meets Markdown or HTML."""
    if not summary or not summary.get("clips"):
        return f"{what}no clip to compare".strip()
    pct = lambda v: f"{100 * v:+.0f} %".replace("-", "−")  # noqa: E731
    head = f"{what}improves {summary['improved']} of {summary['clips']} clips (median {pct(summary['median'])})"
    return f"{head}; worst clip {summary['worst_clip']} {pct(summary['worst'])}"
