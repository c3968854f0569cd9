"""The run's answers, for the first screen of the report index: sentences and one figure, computed from the numbers.

The sentences come from the same builders as the notebooks' own text (:mod:`vaelib.study.prose`: 03's
conclusions use :func:`~vaelib.study.prose.best_setting_sentence` and :func:`~vaelib.study.prose.preset_sentence`
too), applied to each notebook's ``metrics.json`` (``"summary"`` numbers plus the records it writes, e.g. 03's
``"best"``). Nothing here is a hard-coded finding: a notebook that did not run contributes nothing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..report import params as _params
from .prose import METRIC_NAMES, attribution_sentences, best_setting_sentence, fmt_num, preset_sentence
from .sweeps import preset_labels

__all__ = ["load_docs", "run_findings", "attribution_figure", "restorer_sentence", "adaptive_findings",
           "perceptual_sentence"]


def load_docs(run_dir, stems) -> dict[str, dict]:
    """``{stem: metrics.json document}`` of the notebooks of a run that wrote one (others are left out)."""
    out = {}
    for stem in stems:
        path = Path(run_dir) / stem / "metrics.json"
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and isinstance(doc.get("summary"), dict):
            out[stem] = doc
    return out


def _num(summary: dict, key: str) -> float:
    v = summary.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v is not None else math.nan


def restorer_sentence(label: str, base_hf: float, hf: float, base_l1: float, l1: float) -> str:
    """What a mel-domain restorer does to the plain VAE's high-band mel LSD and mel L1 (lower is better)."""
    d_hf = (hf - base_hf) / base_hf if base_hf else math.nan
    d_l1 = (l1 - base_l1) / base_l1 if base_l1 else math.nan
    verb = "lowers" if hf < base_hf else "does not lower"
    return (f"The {label} {verb} the high-band mel LSD of the plain VAE: {fmt_num(base_hf)} → {fmt_num(hf)} "
            f"({d_hf:+.1%}); full-band mel L1 {fmt_num(base_l1)} → {fmt_num(l1)} ({d_l1:+.1%}).")


def _restorer_findings(summary: dict) -> list[str]:
    out = []
    base_hf, base_l1 = _num(summary, "vae_mel_lsd_hf"), _num(summary, "vae_mel_l1")
    for prefix, label in (("learned", "learned restorer"), ("learned_cond", "conditional learned restorer")):
        hf, l1 = _num(summary, f"{prefix}_mel_lsd_hf"), _num(summary, f"{prefix}_mel_l1")
        if math.isfinite(hf) and math.isfinite(base_hf):
            line = restorer_sentence(label, base_hf, hf, base_l1, l1)
            improved, worst = _num(summary, f"{prefix}_clips_improved"), _num(summary, f"{prefix}_worst_change")
            n = _num(summary, "n_clips")
            if math.isfinite(improved) and math.isfinite(worst) and math.isfinite(n):
                line += (f" Per clip: it improves {int(improved)} of {int(n)} clips (high-band mel LSD), worst clip "
                         f"{worst:+.0%}.")
            out.append(line)
    return out


def perceptual_sentence(label: str, summary: dict, prefix: str, key: str = "visqol") -> str | None:
    """What a restorer does to a perceptual measure, from notebook 04's summary (``vaelib.study.perceptual``):
    "The learned restorer changes ViSQOL (audio mode) by +x on the run's N clips (...)". ``None`` when the run
    has no such numbers (the perceptual extra not installed, or no restorer)."""
    from .glossary import METRICS

    base, value = _num(summary, f"vae_{key}"), _num(summary, f"{prefix}_{key}")
    change = _num(summary, f"{prefix}_{key}_change")
    if not (math.isfinite(base) and math.isfinite(value) and math.isfinite(change)):
        return None
    n = int(_num(summary, "n_perceptual_speech" if key != "visqol" else "n_perceptual_clips") or 0)
    name = "ViSQOL (audio mode, vocoded)" if key == "visqol" else METRICS[key].label + " (speech clips)"
    detail = [f"plain VAE {fmt_num(base)} → {fmt_num(value)}"]
    med, up = _num(summary, f"{prefix}_{key}_change_median"), _num(summary, f"{prefix}_{key}_n_improved")
    if math.isfinite(med):
        detail.append(f"median per-clip change {med:+.3f}")
    if math.isfinite(up) and n:
        detail.append(f"higher on {int(up)} of {n} clips")
    return (f"The {label} changes {name} by {change:+.3f} on the run's {n} clip{'s' if n != 1 else ''} "
            f"(mean of per-clip changes, higher is better; {'; '.join(detail)}).")


def _perceptual_findings(summary: dict) -> list[str]:
    out = []
    for prefix, label in (("learned", "learned restorer"), ("learned_cond", "conditional learned restorer")):
        s = perceptual_sentence(label, summary, prefix)
        if s:
            out.append(s)
    return out


def run_findings(docs: dict[str, dict]) -> list[str]:
    """Sentences answering the run's questions, in order: what the VAE adds to the vocoder's loss (01), what the
    best and the seed report's settings do (03), what a learned restorer does (04), how much of the gap to the
    per-clip oracle an adaptive or multi-scale setting closes (05)."""
    nb = {kind: stem for kind, (stem, _) in _params.NOTEBOOKS.items()}
    out: list[str] = []
    base = docs.get(nb["baseline"], {}).get("summary")
    if base:
        out += attribution_sentences(base)
    an_doc = docs.get(nb["analysis"])
    if an_doc:
        s = an_doc["summary"]
        name = METRIC_NAMES["mel_lsd_hf"]
        best = [r for r in an_doc.get("best") or [] if isinstance(r, dict) and r.get("metric") == "mel_lsd_hf"]
        if best and math.isfinite(_num(s, "vae_mel_lsd_hf")):
            r = best[0]
            out.append(best_setting_sentence(name, _num(s, "vae_mel_lsd_hf"), str(r.get("label")),
                                             float(r.get("best", math.nan)), int(_num(s, "n_better_mel_lsd_hf") or 0),
                                             int(_num(s, "n_settings") or 0)))
        for preset, label in preset_labels().items():
            if f"{preset}_mel_lsd_hf" in s and preset in ("seed_frequency", "seed_hybrid"):
                out.append(preset_sentence(preset, label, name, _num(s, "vae_mel_lsd_hf"),
                                           _num(s, f"{preset}_mel_lsd_hf"), _num(s, "vae_mel_ber_high"),
                                           _num(s, f"{preset}_mel_ber_high")))
    learned = docs.get("04_learned_enhance")
    if learned:
        out += _restorer_findings(learned["summary"])
        out += _perceptual_findings(learned["summary"])  # when 04 ran with vaelib[perceptual] installed
        # 04's own verdict: its first line restates the sentence above; the next compares the best simple baseline
        out += [str(x) for x in learned.get("verdict") or [] if isinstance(x, str)][1:2]
    adaptive = docs.get(nb.get("adaptive", ""))
    if adaptive:
        out += adaptive_findings(adaptive["summary"])
    return out


def adaptive_findings(summary: dict, metric: str = "mel_lsd_hf") -> list[str]:
    """Notebook 05's answer for the index, from its ``metrics.json`` ``"summary"``
    (:func:`vaelib.study.adaptive.summary_numbers`): per method, the share of the gap between the best fixed
    setting and the per-clip oracle that adaptive and multi-scale settings close on held-out clips; empty when 05
    did not run."""
    methods = [k[: -len(f"_fixed_{metric}")] for k in summary if k.endswith(f"_fixed_{metric}")]
    parts = []
    for m in methods:
        fixed, oracle = _num(summary, f"{m}_fixed_{metric}"), _num(summary, f"{m}_oracle_{metric}")
        if not (math.isfinite(fixed) and math.isfinite(oracle)):
            continue
        if fixed - oracle < 0.01 * fixed:  # as vaelib.study.adaptive.verdict: too small a gap to share out
            parts.append(f"{m}: no gap to close (fixed {fmt_num(fixed)}, oracle {fmt_num(oracle)})")
            continue
        bits = []
        for key, label in (("adaptive", "adaptive"), ("adaptive_bundled", "bundled adaptive rule"),
                           ("multiscale", "multi-scale")):
            g = _num(summary, f"{m}_{key}_gap")
            if f"{m}_{key}_gap" in summary:
                bits.append(f"{label} {g:+.0%}" if math.isfinite(g) else f"{label} n/a (no gap)")
        if bits:
            parts.append(f"{m} ({fmt_num(fixed)} → oracle {fmt_num(oracle)}): " + ", ".join(bits))
    if not parts:
        return []
    n = _num(summary, "n_clips")
    n = int(n) if math.isfinite(n) else 0
    name = METRIC_NAMES.get(metric, metric)
    return [f"Share of the gap between the best fixed setting and the per-clip oracle ({name}, {n} held-out clips, "
            "leave-one-clip-out) closed by a setting chosen without the original: " + "; ".join(parts) + "."]


def attribution_figure(docs: dict[str, dict]):
    """Small horizontal bar chart of the high-band distance at each stage: vocoder only → VAE round trip (waveform
    LSD-HF), and VAE decode → best swept setting → learned restorer (mel LSD-HF, no vocoder). ``None`` without 01."""
    from matplotlib.figure import Figure

    nb = {kind: stem for kind, (stem, _) in _params.NOTEBOOKS.items()}
    base = docs.get(nb["baseline"], {}).get("summary")
    if not base:
        return None
    rows = [("input → vocoder", _num(base, "projection_lsd_hf"), "waveform LSD-HF"),
            ("input → VAE → vocoder", _num(base, "vae_lsd_hf"), "waveform LSD-HF"),
            ("VAE decode (no vocoder)", _num(base, "vae_mel_lsd_hf"), "mel LSD-HF")]
    an = docs.get(nb["analysis"], {}).get("summary")
    if an and math.isfinite(_num(an, "best_mel_lsd_hf")):
        rows.append(("best latent setting (03)", _num(an, "best_mel_lsd_hf"), "mel LSD-HF"))
    learned = docs.get("04_learned_enhance", {}).get("summary")
    if learned:
        for prefix, label in (("learned", "learned restorer (04)"), ("learned_cond", "conditional restorer (04)")):
            if math.isfinite(_num(learned, f"{prefix}_mel_lsd_hf")):
                rows.append((label, _num(learned, f"{prefix}_mel_lsd_hf"), "mel LSD-HF"))
    rows = [r for r in rows if math.isfinite(r[1])]
    fig = Figure(figsize=(6.4, 0.42 * len(rows) + 0.9))
    ax = fig.subplots()
    colors = {"waveform LSD-HF": "#1f77b4", "mel LSD-HF": "#ff7f0e"}
    y = list(range(len(rows)))[::-1]
    ax.barh(y, [r[1] for r in rows], color=[colors[r[2]] for r in rows], height=0.6)
    for yi, (_, v, _) in zip(y, rows, strict=True):
        ax.text(v, yi, f" {v:.3f}", va="center", fontsize=8)
    ax.set_yticks(y)
    ax.set_yticklabels([r[0] for r in rows], fontsize=8)
    ax.set_xlabel("high-band (≥ 4 kHz) distance to the input, lower is better", fontsize=8)
    ax.tick_params(axis="x", labelsize=8)
    handles = [ax.bar(0, 0, color=c, label=k) for k, c in colors.items() if any(r[2] == k for r in rows)]
    ax.legend(handles=handles, fontsize=7, loc="lower right", frameon=False)
    ax.set_xlim(0, max(r[1] for r in rows) * 1.25 if rows else 1)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    return fig
