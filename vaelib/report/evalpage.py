"""The corpus view of a ``vaelib eval`` run, from its table: no model, no recomputation.

:func:`write_eval_report` reads ``results.parquet`` (and ``bad_files.parquet``, ``summary.json`` and the worst
clips' excerpts in ``audio/`` when present) and writes one self-contained, inert HTML page:

* the run's parameters and totals;
* per stage, the distribution of each headline metric (median, 10th/90th percentile, mean — geometric for the
  energy ratios, :data:`vaelib.study.stages.MEAN_RULE`) and a histogram;
* per category, the median of each headline metric per stage and a box plot of the VAE's high-band mel LSD;
* the worst clips (by ``dec_mel_lsd_hf`` of the ``vae`` stage) with audio players for the excerpts eval kept;
* the unreadable files with their one-line reasons.

A 10 000-clip run gives a page of the same size as a 10-clip run: tables are per stage and category, the clip
lists are capped. Every string that comes from the input (clip names, categories, paths, model ids, error
messages) goes through :func:`vaelib.report.html.html_text`; the page carries :func:`vaelib.report.html.csp_meta` and no
script; images and audio are ``data:`` URIs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..study.stages import MEAN_RULE, mean_over_clips
from .html import csp_meta, fmt_value, html_text, png_data_uri, wave_data_uri

__all__ = ["write_eval_report", "HEADLINE"]

#: Metrics shown per stage and category: (column, label, lower is better).
HEADLINE = (
    ("dec_mel_lsd_hf", "mel LSD-HF (VAE, no vocoder)", True),
    ("dec_mel_lsd", "mel LSD (no vocoder)", True),
    ("dec_mel_l1", "mel L1 [nat] (no vocoder)", True),
    ("dec_mel_ber_high", "mel energy ratio 4-8 kHz (no vocoder)", None),
    ("lsd_hf", "LSD-HF (waveform)", True),
    ("lsd", "LSD (waveform)", True),
    ("mrstft", "multi-resolution STFT", True),
    ("ber_high", "energy ratio 4-8 kHz (waveform)", None),
    ("mel_err_db_high", "mel error 4-8 kHz [dB]", True),
)
MAX_LISTED = 50

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;line-height:1.4}
table{border-collapse:collapse;margin:0.6em 0 1.4em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td.t,th.t{text-align:left}code{background:#f5f5f5;padding:0 3px}
img{max-width:100%}.note{color:#555;font-size:0.92em}audio{width:230px;height:32px}
"""


def _fmt(v, digits=4) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return html_text(v)
    return html_text(fmt_value(f, digits, nan="–"))


def _png(fig) -> str:
    return f'<img alt="figure" src="{png_data_uri(fig, dpi=80, tight=True)}">'


def _table(header, rows, text_cols=1) -> str:
    th = "".join(f'<th class="t">{html_text(h)}</th>' if i < text_cols else f"<th>{html_text(h)}</th>"
                 for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f'<td class="t">{c}</td>' if i < text_cols else f"<td>{c}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _histograms(df, metrics) -> str:
    from matplotlib.figure import Figure

    n = len(metrics)
    cols = 3
    fig = Figure(figsize=(11, 2.6 * math.ceil(n / cols)))
    for i, (col, label, _) in enumerate(metrics):
        ax = fig.add_subplot(math.ceil(n / cols), cols, i + 1)
        for stage, g in df.groupby("stage", sort=False):
            v = g[col].replace([math.inf, -math.inf], math.nan).dropna()
            if len(v):
                ax.hist(v, bins=min(40, max(5, len(v) // 3)), alpha=0.5, label=str(stage))
        ax.set_title(label, fontsize=9)
        ax.tick_params(labelsize=7)
        if i == 0:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


def _boxplot(df, col, label) -> str:
    from matplotlib.figure import Figure

    g = df[df["stage"] == "vae"]
    cats = sorted(g["category"].fillna("").unique())
    if not cats:
        return ""
    fig = Figure(figsize=(min(11, 2 + 1.2 * len(cats)), 3))
    ax = fig.add_subplot(1, 1, 1)
    data = [g[g["category"].fillna("") == c][col].dropna() for c in cats]
    ax.boxplot(data, showfliers=True)
    ax.set_xticks(range(1, len(cats) + 1), [c or "(none)" for c in cats], fontsize=8)
    ax.set_title(f"{label}, per category (stage vae)", fontsize=9)
    fig.tight_layout()
    return _png(fig)


def _player_rule() -> str:
    from ..widgets import PLAYER_RULE  # widgets imports ipywidgets: only when a page has players

    return PLAYER_RULE


def _players(folder: Path, files: dict) -> list[str]:
    """Labelled players of one worst clip's excerpts (``{stage: file name}``, the input first), loudness-matched to
    the input as the notebooks' players are (:func:`vaelib.widgets.player_gains`; the kept files are untouched):
    A/B listening compares content, not level. An excerpt that does not read is left out."""
    import soundfile as sf

    from ..widgets import player_gains

    loaded = []
    for stage, name in files.items():
        f = folder / Path(str(name)).name
        if not f.is_file():
            continue
        try:
            wave, sr = sf.read(f, dtype="float32", always_2d=False)
        except Exception:  # a damaged excerpt: no player, never a failed page
            continue
        loaded.append((stage, wave.reshape(-1), sr))
    gains = player_gains([(stage, wave) for stage, wave, _ in loaded])
    out = []
    for (stage, wave, sr), g in zip(loaded, gains, strict=True):
        label = html_text(stage) + (f" (played at {20 * math.log10(g):+.1f} dB)" if abs(20 * math.log10(g)) >= 0.05
                                    else "")
        out.append(f'{label}<br><audio controls preload="none" src="{wave_data_uri(wave * g, sr)}"></audio>')
    return out


def write_eval_report(eval_dir, out_dir=None) -> Path:
    """Write the corpus view of an eval run folder as a self-contained ``index.html``.

    Parameters
    ----------
    eval_dir : str or Path
        A folder written by :func:`vaelib.evaluate.evaluate` (``results.parquet`` at least).
    out_dir : str or Path, optional
        Where to write ``index.html`` (default: ``<eval_dir>/report``). An existing ``index.html`` is refused.

    Returns
    -------
    Path
        The ``index.html`` written.
    """
    import pandas as pd

    eval_dir = Path(eval_dir)
    results = eval_dir / "results.parquet"
    if not results.is_file():
        from ..audio import is_eval_run_folder

        hint = ("the run has no finished clip yet: rerun the same `vaelib eval` command to continue it"
                if is_eval_run_folder(eval_dir) else
                "pass the folder of a `vaelib eval` run: `vaelib eval --audio <corpus> --out <a new folder outside "
                "the corpus>`, then `vaelib report --from-eval <that folder>`")
        raise FileNotFoundError(f"{eval_dir} holds no results.parquet; {hint}")
    out_dir = Path(out_dir) if out_dir is not None else eval_dir / "report"
    page = out_dir / "index.html"
    if page.exists():
        raise FileExistsError(f"refusing to overwrite {page}; choose a new output folder")
    df = pd.read_parquet(results)
    bad = pd.read_parquet(eval_dir / "bad_files.parquet") if (eval_dir / "bad_files.parquet").is_file() else None
    summary = {}
    if (eval_dir / "summary.json").is_file():
        try:
            summary = json.loads((eval_dir / "summary.json").read_text())
        except ValueError:
            summary = {}
    metrics = [m for m in HEADLINE if m[0] in df.columns]
    parts = [f"<!DOCTYPE html><html><head><meta charset=\"utf-8\">{csp_meta()}<title>vaelib eval report</title>"
             f"<style>{_STYLE}</style></head><body>", "<h1>Round-trip loss of a corpus</h1>"]

    # --- run --------------------------------------------------------------------------------------------
    n_clips = int(df["path"].nunique()) if len(df) else 0
    hours = float(df.drop_duplicates("path")["duration_s"].sum()) / 3600 if len(df) else 0.0
    first = df.iloc[0] if len(df) else {}
    info = [("eval folder", str(eval_dir)), ("clips", n_clips), ("audio", f"{hours:.2f} h"),
            ("unreadable files", 0 if bad is None else len(bad))]
    for key in ("model", "vocoder", "device", "dtype", "enhancers", "windowing", "seed", "run_hash"):
        if key in df.columns and len(df):
            info.append((key, first[key]))
    parts.append(_table(["", ""], [(html_text(k), html_text(v)) for k, v in info], text_cols=2))
    parts.append('<p class="note">Stages: <code>mel_projection</code> = the input mel straight into the vocoder '
                 "(the vocoder's own loss), <code>vae</code> = encode, decode, vocoder; others = enhancers. "
                 "<code>dec_*</code> metrics compare the decoded log-mel with the input log-mel (no vocoder). "
                 "LSD and mel LSD: lower is better; energy ratios: 1 = same energy.</p>")
    if not len(df):
        parts.append("<p>No clip was evaluated.</p>")

    # --- per stage --------------------------------------------------------------------------------------
    if len(df) and metrics:
        parts.append("<h2>Distributions per stage</h2>")
        rows = []
        for col, label, _ in metrics:
            for stage, g in df.groupby("stage", sort=False):
                v = g[col].replace([math.inf, -math.inf], math.nan).dropna()
                q = v.quantile([0.1, 0.5, 0.9]) if len(v) else pd.Series([math.nan] * 3, index=[0.1, 0.5, 0.9])
                rows.append((html_text(label), html_text(stage), _fmt(q[0.5]), _fmt(q[0.1]), _fmt(q[0.9]),
                             _fmt(mean_over_clips(v, col)), html_text(len(v))))
        parts.append(_table(["metric", "stage", "median", "p10", "p90", "mean", "clips"], rows, text_cols=2))
        parts.append(f'<p class="note">Means: {html_text(MEAN_RULE)} (the same rule as the report notebooks and '
                     "index).</p>")
        parts.append(_histograms(df, metrics))

    # --- every enhancer against the plain VAE, clip by clip -------------------------------------------------
    vs_vae = summary.get("vs_vae") or {}
    if vs_vae:
        parts.append("<h2>Each enhancer against the plain VAE, per clip</h2>")
        parts.append('<p class="note">Change of each clip\'s distance from the plain VAE (negative = better): how many '
                     'clips improve, the median change and the worst clip — a mean can hide a clip made much '
                     'worse.</p>')
        rows = []
        for stage, per in vs_vae.items():
            for m, label in (("dec_mel_lsd_hf", "mel LSD-HF"), ("dec_mel_l1", "mel L1"),
                             ("lsd_hf", "LSD-HF (waveform)")):
                c = per.get(m)
                if not c or not c.get("clips"):
                    continue
                rows.append((html_text(stage), html_text(label), html_text(f"{c['improved']} of {c['clips']}"),
                             _fmt(100 * c["median"], 3), html_text(c["worst_clip"]), _fmt(100 * c["worst"], 3),
                             _fmt(100 * c["mean_of_means"], 3)))
        parts.append(_table(["stage", "distance", "clips improved", "median change %", "worst clip",
                             "worst change %", "change of the means %"], rows, text_cols=3))

    # --- per category -----------------------------------------------------------------------------------
    if len(df) and metrics:
        parts.append("<h2>Per category (medians)</h2>")
        cat = df.assign(category=df["category"].fillna("").replace("", "(none)"))
        cols = [m for m in metrics if m[0] in ("dec_mel_lsd_hf", "dec_mel_l1", "lsd_hf", "mrstft", "ber_high")]
        rows = []
        for (c, stage), g in cat.groupby(["category", "stage"], sort=True):
            rows.append((html_text(c), html_text(stage), html_text(g["path"].nunique()),
                         *(_fmt(g[m[0]].median()) for m in cols)))
        parts.append(_table(["category", "stage", "clips", *(m[1] for m in cols)], rows, text_cols=2))
        if "dec_mel_lsd_hf" in df.columns:
            parts.append(_boxplot(df, "dec_mel_lsd_hf", "mel LSD-HF"))

    # --- worst clips ------------------------------------------------------------------------------------
    if len(df) and "dec_mel_lsd_hf" in df.columns:
        parts.append("<h2>Worst clips (mel LSD-HF of the VAE stage)</h2>")
        worst = summary.get("worst") or []
        if worst:
            rows = []
            for w in worst:
                players = _players(eval_dir / "audio", w.get("files") or {})
                rows.append((html_text(w.get("rank")), html_text(w.get("clip")), html_text(w.get("category") or ""),
                             _fmt(w.get("dec_mel_lsd_hf")), "<br>".join(players) or "–"))
            parts.append(f'<p class="note">Excerpts: the first {_fmt(worst[0].get("excerpt_s", ""), 3)} s of each '
                         "clip (input, then each stage), as kept by <code>vaelib eval</code>; "
                         f"{html_text(_player_rule())}.</p>")
            parts.append(_table(["#", "clip", "category", "mel LSD-HF", "listen"], rows, text_cols=3))
        g = df[df["stage"] == "vae"].sort_values("dec_mel_lsd_hf", ascending=False).head(MAX_LISTED)
        rows = [(html_text(i + 1), html_text(r["clip"]), html_text(r["category"] or ""), _fmt(r["duration_s"], 4),
                 *(_fmt(r[m[0]]) for m in metrics[:5])) for i, (_, r) in enumerate(g.iterrows())]
        parts.append(f"<p>The {len(rows)} worst of {n_clips} clips:</p>")
        parts.append(_table(["#", "clip", "category", "seconds", *(m[1] for m in metrics[:5])], rows, text_cols=3))

    # --- bad files ----------------------------------------------------------------------------------------
    if bad is not None and len(bad):
        parts.append(f"<h2>Unreadable files ({len(bad)})</h2>")
        rows = [(html_text(r["clip"]), html_text(r["reason"])) for _, r in bad.head(MAX_LISTED * 4).iterrows()]
        parts.append(_table(["file", "reason"], rows, text_cols=2))
        if len(bad) > MAX_LISTED * 4:
            parts.append(f"<p>… and {len(bad) - MAX_LISTED * 4} more in bad_files.csv.</p>")
    parts.append("</body></html>")
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = page.with_name(".index.html.tmp")
    tmp.write_text("".join(parts), encoding="utf-8")
    tmp.replace(page)
    return page
