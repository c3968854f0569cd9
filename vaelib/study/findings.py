"""The run's answers, for the first screen of the report index: sentences and one figure, computed from the numbers.

The sentences come from the same builders as the notebooks' own text (:mod:`vaelib.study.prose`: 03's
conclusions use :func:`~vaelib.study.prose.best_setting_sentence` and :func:`~vaelib.study.prose.preset_sentence`
too), applied to each notebook's ``metrics.json`` (``"summary"`` numbers plus the records it writes, e.g. 03's
``"best"``). Nothing here is a hard-coded finding: a notebook that did not run contributes nothing.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from ..report import params as _params
from .glossary import METRICS, format_value
from .prose import METRIC_NAMES, fmt_num
from .sweeps import preset_labels

__all__ = ["load_docs", "run_findings", "Finding", "CitedTable", "cell", "headline_findings", "sweep_findings",
           "restorer_findings", "adaptive_index_findings", "headline_figure", "enhancer_figure", "restorer_sentence",
           "adaptive_findings", "perceptual_sentence"]


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


@dataclasses.dataclass
class CitedTable:
    """The table a finding summarises, rendered beside it on the index (``id`` is its HTML anchor).

    ``rows`` hold ``(row label, cell texts)``; every cell text is already formatted by :func:`cell`, the formatter
    the sentence uses too, so each number in the sentence appears verbatim in its table (a test checks it).
    """

    id: str
    caption: str
    columns: list[str]
    rows: list[tuple[str, list[str]]]


@dataclasses.dataclass
class Finding:
    """One sentence of the index, computed from the numbers, and the table it cites."""

    text: str
    table: CitedTable
    headline: bool = False

    def __str__(self) -> str:
        return self.text

    def __contains__(self, item) -> bool:
        return item in self.text


def cell(value, metric: str = "", suffix: str | None = None) -> str:
    """The one number formatter of the index's findings and their tables (:func:`vaelib.study.glossary.format_value`:
    the metric's unit, 3 decimals; ``suffix="rel_change"``: a signed percentage); ``"–"`` for a missing value."""
    return format_value(value, metric, suffix)


def _signed(value: float, metric: str) -> str:
    text = cell(value, metric)
    return text if text.startswith(("-", "–")) else f"+{text}"


def _pct(x: float) -> str:
    """A ratio as a whole percentage (``0.594`` → ``"59 %"``), the same in a finding and its table."""
    return f"{100 * x:.0f} %" if math.isfinite(x) else "–"


def _choice_names(choice) -> tuple[str, str]:
    if choice is None:
        return "the VAE", "the vocoder"
    return choice.short_names()


def headline_findings(summary: dict, choice=None) -> list[Finding]:
    """The index's first sentence and the vocoder's share, from notebook 01's ``"summary"``
    (:func:`vaelib.study.summaries.baseline_summary`), both citing one table.

    The headline answers the seed's question in the domain where the VAE's own loss is visible: the decoded log-mel
    against the input mel, no vocoder (``vae_mel_err_db_lf_dec`` / ``vae_mel_err_db_high_dec``: mean |Δ log-mel| in
    dB below and at/above 4 kHz), beside a band-blind 4×4 pooling codec for scale. The second sentence gives the
    vocoder's share: the input mel straight through the vocoder and the whole round trip, both re-analysed with the
    front end. ``choice`` (:class:`vaelib.models.ModelChoice`) names the model and vocoder — the bundled stand-ins
    say so ("not AudioLDM2").
    """
    dec_lf, dec_hf = _num(summary, "vae_mel_err_db_lf_dec"), _num(summary, "vae_mel_err_db_high_dec")
    if not (math.isfinite(dec_lf) and math.isfinite(dec_hf)):
        return []
    vae_name, voc_name = _choice_names(choice)
    n = int(_num(summary, "n_clips") or 0)
    lf, hf = "mel_err_db_lf", "mel_err_db_high"
    p_lf, p_hf = _num(summary, "projection_mel_err_db_lf"), _num(summary, "projection_mel_err_db_high")
    v_lf, v_hf = _num(summary, "vae_mel_err_db_lf"), _num(summary, "vae_mel_err_db_high")
    r_lf, r_hf = _num(summary, "naive_mel_err_db_lf_dec"), _num(summary, "naive_mel_err_db_high_dec")
    rows = [("VAE alone: decoded log-mel vs. input mel (no vocoder)", [cell(dec_lf, lf), cell(dec_hf, hf)])]
    scaled = all(math.isfinite(x) and x > 0 for x in (r_lf, r_hf))
    if scaled:
        rows.append(("for scale: band-blind 4×4 pooling codec of the input mel", [cell(r_lf, lf), cell(r_hf, hf)]))
        rows.append(("VAE alone as a share of that codec's error", [_pct(dec_lf / r_lf), _pct(dec_hf / r_hf)]))
    vocoded = all(math.isfinite(x) for x in (p_lf, p_hf, v_lf, v_hf))
    if vocoded:
        rows += [("vocoder alone: input mel → vocoder, re-analysed", [cell(p_lf, lf), cell(p_hf, hf)]),
                 ("VAE + vocoder: the round trip, re-analysed", [cell(v_lf, lf), cell(v_hf, hf)]),
                 ("what the VAE adds to the vocoder's loss (round trip − vocoder alone)",
                  [_signed(v_lf - p_lf, lf), _signed(v_hf - p_hf, hf)])]
    table = CitedTable(
        "t-headline",
        f"Mean |Δ log-mel| in dB over frames and mel bins below and at/above 4 kHz, arithmetic mean of {n} clip(s); "
        f"VAE: {vae_name}; vocoder: {voc_name}.",
        ["", "below 4 kHz", "4–8 kHz"], rows)
    more = "more" if dec_hf > dec_lf else "less"
    text = (f"With {vae_name} and {voc_name}, the VAE itself loses {cell(dec_hf, hf)} of log-mel at and above 4 kHz "
            f"and {cell(dec_lf, lf)} below, {more} above than below (decoded vs. input mel, no vocoder")
    text += ")"
    if scaled:  # any codec errs more below 4 kHz on this log-mel: the band-blind codec says which band the VAE keeps
        worse = "worse" if dec_hf / r_hf > dec_lf / r_lf else "better"
        text += (f"; against a band-blind 4×4 pooling codec it keeps the high band {worse} than the low band "
                 f"({_pct(dec_hf / r_hf)} of that codec's error above 4 kHz, {_pct(dec_lf / r_lf)} below)")
    out = [Finding(text + ".", table, headline=True)]
    if vocoded:
        out.append(Finding(
            f"The vocoder's share ({voc_name}): the input mel through the vocoder alone is {cell(p_hf, hf)} off at "
            f"and above 4 kHz and {cell(p_lf, lf)} below; through the VAE and the vocoder {cell(v_hf, hf)} and "
            f"{cell(v_lf, lf)}, so the VAE adds {_signed(v_hf - p_hf, hf)} and {_signed(v_lf - p_lf, lf)} "
            "(both re-analysed with the front end).", table))
    return out


def sweep_findings(doc: dict) -> list[Finding]:
    """What the latent enhancers do (notebook 03), from its ``metrics.json``: the sweep's verdict
    (:func:`vaelib.study.sweeps.sweep_verdict`, the count 03's conclusions use) and the seed report's frequency and
    hybrid settings, citing one table of the decoded log-mels' high-band mel LSD and 4–8 kHz energy ratio."""
    s = doc.get("summary") or {}
    v = doc.get("sweep_verdict")
    base, base_ber = _num(s, "vae_mel_lsd_hf"), _num(s, "vae_mel_ber_high")
    if not isinstance(v, dict) or not math.isfinite(base):
        return []
    name = METRIC_NAMES["mel_lsd_hf"]
    n_set, n_better = int(v.get("n_settings") or 0), int(v.get("n_better") or 0)
    best, label = float(v.get("best") if v.get("best") is not None else math.nan), str(v.get("best_label"))
    n = int(_num(s, "n_clips") or 0)
    m, r = "mel_lsd_hf", "mel_ber_high"
    def rel(x):
        return cell((x - base) / base if base else math.nan, "", "rel_change")

    rows = [("plain VAE (no enhancer)", [cell(base, m), "", cell(base_ber, r)])]
    best_ber = float(v["best_mel_ber_high"]) if isinstance(v.get("best_mel_ber_high"), (int, float)) else math.nan
    rows.append((f"best of the {n_set} swept settings: {label}", [cell(best, m), rel(best), cell(best_ber, r)]))
    presets = {p: lab for p, lab in preset_labels().items() if p in ("seed_frequency", "seed_hybrid")
               and math.isfinite(_num(s, f"{p}_mel_lsd_hf"))}
    for p, lab in presets.items():
        val = _num(s, f"{p}_mel_lsd_hf")
        rows.append((f"seed report's {p.replace('seed_', '')} setting ({lab})",
                     [cell(val, m), rel(val), cell(_num(s, f"{p}_mel_ber_high"), r)]))
    table = CitedTable("t-sweep", f"Notebook 03: decoded log-mels (no vocoder), mean of {n} clip(s) (energy ratio: "
                       f"geometric mean); {n_set} swept settings, the plain VAE not counted among them.",
                       ["", f"{METRICS[m].label} ↓", "change vs. plain VAE",
                        f"{METRICS[r].label}, decoded / input (→ 1)"], rows)
    if math.isfinite(best) and best < base:
        first = (f"Latent enhancers: {n_better} of the {n_set} swept settings lower the {name}; the best, {label}, "
                 f"takes it from {cell(base, m)} to {cell(best, m)} ({rel(best)}).")
    else:
        first = (f"Latent enhancers: none of the {n_set} swept settings lowers the {name} below the plain VAE's "
                 f"{cell(base, m)}; the least harmful, {label}, reaches {cell(best, m)} ({rel(best)}).")
    out = [Finding(first, table)]
    bits = []
    for p, lab in presets.items():
        val = _num(s, f"{p}_mel_lsd_hf")
        verdict = "lowers" if val < base else "raises"
        bits.append(f"{lab} {verdict} it to {cell(val, m)} and puts the 4–8 kHz mel energy at "
                    f"{cell(_num(s, f'{p}_mel_ber_high'), r)} the input's")
    if bits:
        out.append(Finding("The seed report's settings: " + "; ".join(bits) + f" (plain VAE: {cell(base_ber, r)}).",
                           table))
    return out


def restorer_findings(summary: dict) -> list[Finding]:
    """What the learned restorers do to the plain VAE's decoded log-mel (notebook 04's ``"summary"``): high-band
    mel LSD, clips improved and the worst clip, and ViSQOL when the perceptual extra ran; one table."""
    m = "mel_lsd_hf"
    base = _num(summary, f"vae_{m}")
    if not math.isfinite(base):
        return []
    n = int(_num(summary, "n_clips") or 0)
    has_visqol = math.isfinite(_num(summary, "vae_visqol"))
    cols = ["", f"{METRICS[m].label} ↓", "change", "clips improved", "worst clip"]
    if has_visqol:
        cols += ["ViSQOL (audio mode, vocoded) ↑", "change"]
    rows = [("plain VAE", [cell(base, m), "", "", ""] + ([cell(_num(summary, "vae_visqol"), "visqol"), ""]
                                                        if has_visqol else []))]
    bits = []
    for prefix, label in (("learned", "learned restorer"), ("learned_cond", "conditional restorer")):
        hf = _num(summary, f"{prefix}_{m}")
        if not math.isfinite(hf):
            continue
        rel = cell(_num(summary, f"{prefix}_{m}_rel_change"), "", "rel_change")
        improved = f"{int(_num(summary, f'{prefix}_clips_improved') or 0)} of {n}"
        worst = cell(_num(summary, f"{prefix}_worst_change"), "", "rel_change")
        row = [cell(hf, m), rel, improved, worst]
        bit = f"the {label} {'lowers' if hf < base else 'does not lower'} it to {cell(hf, m)} ({rel}; {improved} clips "
        bit += f"better, worst clip {worst}"
        if has_visqol:
            vq, dv = _num(summary, f"{prefix}_visqol"), _num(summary, f"{prefix}_visqol_change")
            row += [cell(vq, "visqol"), _signed(dv, "visqol") if math.isfinite(dv) else "–"]
            if math.isfinite(dv):
                bit += f"; ViSQOL {_signed(dv, 'visqol')}"
        rows.append((label, row))
        bits.append(bit + ")")
    if not bits:
        return []
    table = CitedTable("t-restorers", f"Notebook 04: decoded log-mels of {n} clip(s) (ViSQOL: vocoded, mean of "
                       "per-clip changes); change, worst clip: relative change of the high-band mel LSD vs. the plain "
                       "VAE.",
                       cols, rows)
    return [Finding(f"Learned restorers on the plain VAE's {METRIC_NAMES[m]} ({cell(base, m)}): " + "; ".join(bits)
                    + ".", table)]


def adaptive_index_findings(summary: dict, metric: str = "mel_lsd_hf") -> list[Finding]:
    """Notebook 05 for the index, in one short sentence (the largest share of the fixed-to-oracle gap that a setting
    chosen per clip without the original closes on held-out clips) and a table of every method."""
    methods = [k[: -len(f"_fixed_{metric}")] for k in summary if k.endswith(f"_fixed_{metric}")]
    kinds = (("adaptive", "adaptive"), ("adaptive_bundled", "bundled rule"), ("multiscale", "multi-scale"))
    rows, best = [], None
    for mth in methods:
        fixed, oracle = _num(summary, f"{mth}_fixed_{metric}"), _num(summary, f"{mth}_oracle_{metric}")
        if not (math.isfinite(fixed) and math.isfinite(oracle)):
            continue
        no_gap = fixed - oracle < 0.01 * fixed  # as vaelib.study.adaptive.verdict: too small a gap to share out
        cells = [cell(fixed, metric), cell(oracle, metric)]
        for key, label in kinds:
            g = _num(summary, f"{mth}_{key}_gap")
            if f"{mth}_{key}_gap" not in summary or no_gap or not math.isfinite(g):
                cells.append("–")
                continue
            text = cell(g, "", "rel_change")
            cells.append(text)
            if best is None or g > best[0]:
                best = (g, text, mth, label)
        rows.append((mth, cells))
    if not rows:
        return []
    n = int(_num(summary, "n_clips") or 0)
    table = CitedTable("t-adaptive", f"Notebook 05: {METRIC_NAMES.get(metric, metric)} of the best fixed setting and "
                       f"the per-clip oracle, and the share of that gap closed on {n} held-out clip(s) "
                       "(leave-one-clip-out; – : no gap to share out).",
                       ["method", "best fixed", "oracle", *(lab for _, lab in kinds)], rows)
    if best is None or best[0] <= 0:
        text = ("Choosing the setting per clip without the original closes none of the gap between the best fixed "
                "setting and the per-clip oracle.")
    else:
        text = (f"Choosing the setting per clip without the original closes at most {best[1]} of the gap between the "
                f"best fixed setting and the per-clip oracle ({best[2]}, {best[3]}).")
    return [Finding(text, table)]


def run_findings(docs: dict[str, dict], choice=None) -> list[Finding]:
    """The index's findings, in order: the headline (what the VAE itself loses above and below 4 kHz, decoded
    log-mel vs. input mel) and the vocoder's share (01), what the latent enhancers and the seed report's settings do
    (03), what the learned restorers do (04), how much of the gap to the per-clip oracle a per-clip setting closes
    (05). Each :class:`Finding` cites the table it summarises; a notebook that did not run contributes nothing."""
    nb = {kind: stem for kind, (stem, _) in _params.NOTEBOOKS.items()}
    out: list[Finding] = []
    base = docs.get(nb["baseline"], {}).get("summary")
    if base:
        out += headline_findings(base, choice)
    an_doc = docs.get(nb["analysis"])
    if an_doc:
        out += sweep_findings(an_doc)
    learned = docs.get(nb.get("learned", "04_learned_enhance"))
    if learned:
        out += restorer_findings(learned["summary"])
    adaptive = docs.get(nb.get("adaptive", ""))
    if adaptive:
        out += adaptive_index_findings(adaptive["summary"])
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


def headline_figure(summary: dict):
    """The headline as a figure: mean |Δ log-mel| (dB) below and at/above 4 kHz of the VAE alone (decoded, no
    vocoder), the band-blind 4×4 reference codec, the vocoder alone and the round trip — one quantity, one axis.
    ``None`` without the numbers (notebook 01's ``"summary"``)."""
    from matplotlib.figure import Figure

    paths = [("VAE alone (decoded, no vocoder)", "vae_mel_err_db_lf_dec", "vae_mel_err_db_high_dec"),
             ("4×4 pooling codec (for scale)", "naive_mel_err_db_lf_dec", "naive_mel_err_db_high_dec"),
             ("vocoder alone", "projection_mel_err_db_lf", "projection_mel_err_db_high"),
             ("VAE + vocoder", "vae_mel_err_db_lf", "vae_mel_err_db_high")]
    rows = [(lab, _num(summary, a), _num(summary, b)) for lab, a, b in paths]
    rows = [r for r in rows if math.isfinite(r[1]) and math.isfinite(r[2])]
    if not rows:
        return None
    fig = Figure(figsize=(6.4, 0.55 * len(rows) + 1.0))
    ax = fig.subplots()
    y = np.arange(len(rows))[::-1].astype(float)
    h = 0.38
    for k, (band, color) in enumerate((("below 4 kHz", "#4c72b0"), ("4–8 kHz", "#dd8452"))):
        vals = [r[1 + k] for r in rows]
        ax.barh(y + (h / 2 if k == 0 else -h / 2), vals, height=h, color=color, label=band)
        for yi, v in zip(y, vals, strict=True):
            ax.text(v, yi + (h / 2 if k == 0 else -h / 2), f" {cell(v, 'mel_err_db_high')}", va="center", fontsize=7)
    ax.set_yticks(y)
    ax.set_yticklabels([r[0] for r in rows], fontsize=8)
    ax.set_xlabel("mean |Δ log-mel| vs. the input mel [dB], lower is better", fontsize=8)
    ax.tick_params(axis="x", labelsize=8)
    ax.set_xlim(0, max(max(r[1], r[2]) for r in rows) * 1.3)
    ax.legend(fontsize=7, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=2, frameon=False)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    return fig


def enhancer_figure(docs: dict[str, dict]):
    """High-band mel LSD of the decoded log-mel (no vocoder, one quantity) for the plain VAE, the best swept latent
    setting and the seed report's settings (03) and the learned restorers (04). ``None`` when neither ran."""
    from matplotlib.figure import Figure

    nb = {kind: stem for kind, (stem, _) in _params.NOTEBOOKS.items()}
    rows = []
    an = docs.get(nb["analysis"], {})
    s = an.get("summary") or {}
    v = an.get("sweep_verdict") if isinstance(an.get("sweep_verdict"), dict) else {}
    base = _num(s, "vae_mel_lsd_hf")
    learned = (docs.get(nb.get("learned", "04_learned_enhance")) or {}).get("summary") or {}
    if not math.isfinite(base):
        base = _num(learned, "vae_mel_lsd_hf")
    if not math.isfinite(base):
        return None
    rows.append(("plain VAE", base))
    if v.get("best") is not None:
        rows.append((f"best swept: {v.get('best_label')}", float(v["best"])))
    for p, lab in preset_labels().items():
        if p in ("seed_frequency", "seed_hybrid") and math.isfinite(_num(s, f"{p}_mel_lsd_hf")):
            rows.append((f"seed: {lab}", _num(s, f"{p}_mel_lsd_hf")))
    for prefix, label in (("learned", "learned restorer"), ("learned_cond", "conditional restorer")):
        if math.isfinite(_num(learned, f"{prefix}_mel_lsd_hf")):
            rows.append((label, _num(learned, f"{prefix}_mel_lsd_hf")))
    if len(rows) < 2:
        return None
    fig = Figure(figsize=(6.4, 0.36 * len(rows) + 0.9))
    ax = fig.subplots()
    y = np.arange(len(rows))[::-1]
    ax.barh(y, [r[1] for r in rows], color=["#888888"] + ["#4c72b0"] * (len(rows) - 1), height=0.6)
    for yi, (_, val) in zip(y, rows, strict=True):
        ax.text(val, yi, f" {cell(val, 'mel_lsd_hf')}", va="center", fontsize=7)
    ax.axvline(base, color="#888888", lw=0.8, ls="--")
    ax.set_yticks(y)
    ax.set_yticklabels([r[0] for r in rows], fontsize=8)
    ax.set_xlabel("high-band mel LSD of the decoded log-mel (no vocoder), lower is better", fontsize=8)
    ax.tick_params(axis="x", labelsize=8)
    ax.set_xlim(0, max(r[1] for r in rows) * 1.25)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    return fig
