"""Figures for the reports. Every function returns a :class:`matplotlib.figure.Figure` and never touches pyplot's
global state or the backend (no ``matplotlib.use``): figures are built with ``Figure()``, so they are not
auto-displayed and not kept alive by pyplot; show them with ``display(fig)`` (``%matplotlib inline``) and save
them with ``fig.savefig(path, dpi=90)``.

* :func:`comparison_figure` — the seed's 2×3 comparison: waveforms (first second), log-log spectrum, band
  energy bars, three log-mel spectrograms;
* :func:`mel_difference_figure` — decoded-minus-input log-mel in dB, plus its mean per mel bin;
* :func:`band_error_figure` — per-band log-mel error bars (mean ± std over clips);
* :func:`render_figure` — the enhancement explorer's view (enhanced mel, change vs. VAE-only, spectrum);
* :func:`sweep_figure`, :func:`pareto_figure`, :func:`per_clip_heatmap` — notebook 03;
* :func:`adaptive_figure` — notebook 05: fixed / adaptive / multi-scale / oracle per method, per clip.
* :func:`generation_figure` — ``vaelib generate``: plain vs. enhanced generation from the same latents.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter

from .metrics import HIGH_BAND_HZ

__all__ = [
    "MEL_SPAN",
    "energy_ratio_figure",
    "mel_scale",
    "clip_note",
    "training_curves_figure",
    "restorer_comparison_figure",
    "generation_figure",
    "comparison_figure",
    "mel_difference_figure",
    "band_error_figure",
    "render_figure",
    "sweep_figure",
    "pareto_figure",
    "per_clip_heatmap",
    "adaptive_figure",
    "per_clip_change_figure",
    "mel_axis",
]

_DB_PER_NEPER = 20.0 / math.log(10.0)  # log-mel (natural log of magnitude) → dB
_COLORS = ("#333333", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")
_BAND_ORDER = ("low", "mid", "high")
_BAND_TEXT = {"low": "<500 Hz", "mid": "0.5-4 kHz", "high": "4-8 kHz"}


def _cfg(cfg):
    from .audio import MelConfig

    return cfg or MelConfig()


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _mel2d(mel) -> np.ndarray:
    m = _np(mel)
    while m.ndim > 2:
        m = m[0]
    return m


def mel_axis(ax, cfg=None, ticks=(250, 500, 1000, 2000, 4000, 8000)):
    """Label the y axis of a log-mel image (bins on y) with the bin centre frequencies in Hz."""
    cfg = _cfg(cfg)
    f = cfg.mel_frequencies()
    pos = [float(np.interp(t, f, np.arange(len(f)))) for t in ticks if f[0] <= t <= f[-1] * 1.001]
    lab = [f"{t / 1000:g}k" if t >= 1000 else f"{t:g}" for t in ticks if f[0] <= t <= f[-1] * 1.001]
    ax.set_yticks(pos)
    ax.set_yticklabels(lab)
    ax.set_ylabel("Hz")


#: Span of the shared log-mel colour scale below the reference's maximum, in nat (ln units; 12 nat ≈ 104 dB).
MEL_SPAN = 12.0


def mel_scale(reference, span: float = MEL_SPAN) -> tuple[float, float]:
    """The shared colour scale of a row of log-mel panels, anchored on the reference (the input):
    ``(max(ref) − span, max(ref))``. Every panel uses it, so equal colours mean equal levels; what lies outside is
    clipped and :func:`clip_note` says so in the panel's title — an exploded enhancement (+14 nat) saturates its
    own panel instead of turning the input's and the VAE's panels black."""
    ref = _mel2d(reference)
    vmax = float(np.max(ref))
    return vmax - float(span), vmax


def clip_note(mel, vmin: float, vmax: float) -> str:
    """``""``, or e.g. ``"23 % of bins above the scale (max +14.2 nat over it)"`` for a panel shown on
    :func:`mel_scale`'s range."""
    m = _mel2d(mel)
    above = float(np.mean(m > vmax + 1e-6)) if m.size else 0.0
    if above <= 0:
        return ""
    share = f"{100 * above:.0f} %" if above >= 0.01 else "< 1 %"
    return f"{share} of bins above the scale (max {float(m.max()) - vmax:+.1f} nat over it)"


def _mel_row(axs, items, cfg, sr, vmin, vmax):
    """Draw ``[(label, log-mel), ...]`` on ``axs`` on one clipped scale, each title naming its clip; returns the
    last image (for the colour bar)."""
    im = None
    for ax, (label, a) in zip(axs, items, strict=True):
        note = clip_note(a, vmin, vmax)
        im = _imshow_mel(ax, a, cfg, sr, cfg.hop_length, vmin, vmax, f"{label}\n{note}" if note else label)
    return im


def _shared_scale_colorbar(fig, im, ax, reference_label: str = "input"):
    """Colour bar of a :func:`mel_scale` row; its label says the scale is the first panel's range, clipped."""
    fig.colorbar(im, ax=ax, extend="both", label=f"log-mel (ln), {reference_label}'s range, clipped")


def _imshow_mel(ax, mel, cfg, sr, hop, vmin, vmax, title, cmap="magma"):
    m = _mel2d(mel)
    dur = m.shape[0] * hop / sr
    im = ax.imshow(m.T, origin="lower", aspect="auto", extent=(0, dur, -0.5, m.shape[1] - 0.5), vmin=vmin,
                   vmax=vmax, cmap=cmap, interpolation="nearest")
    _title(ax, title, fontsize=9)
    ax.set_xlabel("s")
    mel_axis(ax, cfg)
    return im


def _title(ax, text: str, **kw) -> None:
    """``ax.set_title`` at its default height (axes top + pad), fixed: matplotlib's automatic placement measures
    every tick label of the axes at each draw (~20 % of a comparison figure's time) only to lift the title above
    x tick labels on top, and no panel of these figures has any there — the pixels are the same."""
    ax.set_title(text, y=1.0, **kw)


def _welch_db(x, sr, nperseg=1024):
    from scipy.signal import welch

    x = _np(x).reshape(-1)
    f, p = welch(x, fs=sr, nperseg=min(nperseg, len(x)))
    return f, 10 * np.log10(p + 1e-20)


def _band_energy_db(x, sr, welch=None):
    """Energy (dB) per band of :data:`vaelib.metrics.BANDS`, from the Welch PSD (``welch``: its ``(f, dB)`` if
    already computed)."""
    from .metrics import BANDS

    f, p_db = _welch_db(x, sr) if welch is None else welch
    p = 10 ** (p_db / 10)
    out = []
    for b in _BAND_ORDER:
        lo, hi = BANDS[b]
        m = (f >= lo) & ((f < hi) | (hi >= sr / 2))
        out.append(10 * np.log10(p[m].sum() + 1e-20))
    return np.array(out)


def comparison_figure(waves, mels, sr: int = 16000, cfg=None, title: str = "", first_s: float = 1.0) -> Figure:
    """The seed's 2×3 comparison figure.

    Top row: waveforms of the first ``first_s`` seconds (overlaid), log-log Welch spectrum, band energy bars
    (dB, per band of :data:`vaelib.metrics.BANDS`), the y range set by the first waveform (the input; others beyond
    it are clipped and named in the title). Bottom row: three log-mel spectrograms on the first one's colour scale
    (:func:`mel_scale`; clipped bins stated in each panel's title, :func:`clip_note`).

    Parameters
    ----------
    waves : list of (str, array_like)
        ``(label, waveform)`` pairs (1–3, e.g. original, VAE only, enhanced), same sample rate.
    mels : list of (str, array_like)
        Exactly three ``(label, log-mel (T, M))`` pairs for the bottom row.
    sr : int
    cfg : vaelib.audio.MelConfig, optional
    title : str
    first_s : float
        Seconds shown in the waveform panel.
    """
    cfg = _cfg(cfg)
    if len(mels) != 3:
        raise ValueError(f"comparison_figure needs exactly 3 mels for the bottom row, got {len(mels)}")
    fig = Figure(figsize=(15, 8))
    fig.subplots_adjust(left=0.05, right=0.95, bottom=0.07, top=0.91, wspace=0.28, hspace=0.32)
    axs = fig.subplots(2, 3)
    n = int(first_s * sr)
    psd = [_welch_db(_np(w), sr) for _, w in waves]  # once per wave: the spectrum and the band bars
    for i, (label, w) in enumerate(waves):
        w = _np(w).reshape(-1)[:n]
        axs[0, 0].plot(np.arange(len(w)) / sr, w, lw=0.6, alpha=0.8, color=_COLORS[i % len(_COLORS)], label=label)
        f, p = psd[i]
        axs[0, 1].semilogx(f[1:], p[1:], lw=0.9, color=_COLORS[i % len(_COLORS)], label=label)
    ref_peak = float(np.max(np.abs(_np(waves[0][1]).reshape(-1)[:n]))) if waves else 0.0
    over = [label for label, w in waves[1:]
            if float(np.max(np.abs(_np(w).reshape(-1)[:n]), initial=0)) > 1.5 * ref_peak]
    if ref_peak > 0:  # the input's range: an exploded enhancement is clipped, not allowed to flatten the input
        axs[0, 0].set_ylim(-1.5 * ref_peak, 1.5 * ref_peak)
    _title(axs[0, 0], f"waveform (first {first_s:g} s)" + (f"; clipped: {', '.join(over)}" if over else ""),
           fontsize=9)
    axs[0, 0].set_xlabel("s")
    axs[0, 0].legend(fontsize=7, loc="upper right")
    _title(axs[0, 1], "spectrum (Welch PSD, log-log)", fontsize=9)
    axs[0, 1].set_xlabel("Hz")
    axs[0, 1].set_ylabel("dB")
    axs[0, 1].axvline(HIGH_BAND_HZ, color="grey", lw=0.6, ls=":")
    axs[0, 1].legend(fontsize=7)
    width = 0.8 / max(len(waves), 1)
    x = np.arange(len(_BAND_ORDER))
    for i, (label, w) in enumerate(waves):
        axs[0, 2].bar(x + (i - (len(waves) - 1) / 2) * width, _band_energy_db(w, sr, psd[i]), width,
                      color=_COLORS[i % len(_COLORS)], label=label)
    axs[0, 2].set_xticks(x)
    axs[0, 2].set_xticklabels([_BAND_TEXT[b] for b in _BAND_ORDER])
    axs[0, 2].set_ylabel("band energy (dB)")
    _title(axs[0, 2], "band energy", fontsize=9)
    axs[0, 2].legend(fontsize=7, loc="lower left")
    arrays = [_mel2d(m) for _, m in mels]
    vmin, vmax = mel_scale(arrays[0])
    im = _mel_row(axs[1], [(label, a) for (label, _), a in zip(mels, arrays, strict=True)], cfg, sr, vmin, vmax)
    _shared_scale_colorbar(fig, im, axs[1, 2], "first panel")
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def mel_difference_figure(input_mel, decoded_mel, cfg=None, sr: int = 16000, title: str = "") -> Figure:
    """Decoded-minus-input log-mel in dB (``20/ln 10 · (L_dec − L_in)``) and its mean over time per mel bin.

    Blue: the decode has less energy than the input there; red: more. The colour range is symmetric at the
    99th percentile of ``|difference|``.
    """
    cfg = _cfg(cfg)
    a, b = _mel2d(input_mel), _mel2d(decoded_mel)
    t = min(a.shape[0], b.shape[0])
    d = (b[:t] - a[:t]) * _DB_PER_NEPER
    lim = max(float(np.percentile(np.abs(d), 99)), 1e-3)
    fig = Figure(figsize=(12, 3.6))
    gs = fig.add_gridspec(1, 2, width_ratios=(5, 1), left=0.06, right=0.98, bottom=0.14, top=0.82, wspace=0.08)
    ax = fig.add_subplot(gs[0])
    im = _imshow_mel(ax, d, cfg, sr, cfg.hop_length, -lim, lim, "decoded − input log-mel (dB)", cmap="RdBu_r")
    fig.colorbar(im, ax=ax, label="dB")
    ax2 = fig.add_subplot(gs[1], sharey=ax)
    ax2.plot(d.mean(axis=0), np.arange(d.shape[1]), color="k", lw=1)
    ax2.axvline(0, color="grey", lw=0.6)
    ax2.set_xlabel("mean dB")
    ax2.set_title("per mel bin", fontsize=9)
    ax2.tick_params(labelleft=False)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def band_error_figure(errors: dict, title: str = "per-band log-mel error") -> Figure:
    """Grouped bars: mean ± std over clips of the log-mel error (dB) per band, one group per source.

    Parameters
    ----------
    errors : dict
        ``label -> DataFrame`` (or dict of arrays) with columns ``low``, ``mid``, ``high`` (one row per clip),
        e.g. ``{"mel projection → vocoder": ..., "VAE round trip": ..., "VAE decode (no vocoder)": ...}``.
    """
    fig = Figure(figsize=(7.5, 3.8))
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.1, top=0.9)
    ax = fig.subplots()
    x = np.arange(len(_BAND_ORDER))
    width = 0.8 / max(len(errors), 1)
    for i, (label, tab) in enumerate(errors.items()):
        vals = np.array([np.asarray(tab[b], dtype=float) for b in _BAND_ORDER])  # (bands, clips)
        mean = np.nanmean(vals, axis=1)
        std = np.nanstd(vals, axis=1) if vals.shape[1] > 1 else np.zeros(len(_BAND_ORDER))
        ax.bar(x + (i - (len(errors) - 1) / 2) * width, mean, width, yerr=std, capsize=3,
               color=_COLORS[(i + 1) % len(_COLORS)], label=label)
    ax.set_xticks(x)
    ax.set_xticklabels([_BAND_TEXT[b] for b in _BAND_ORDER])
    ax.set_ylabel("mean |Δ log-mel| (dB)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return fig


def render_figure(input_mel, vae_mel, enhanced_mel, waves=None, sr: int = 16000, cfg=None, title: str = "") -> Figure:
    """The enhancement explorer's figure: enhanced log-mel, enhanced − VAE-only (dB), and the spectrum.

    ``waves`` (optional) is a list of ``(label, waveform)`` for the spectrum panel; without it the panel shows
    the mean log-mel level per bin of the three mels instead.
    """
    cfg = _cfg(cfg)
    a, v, e = _mel2d(input_mel), _mel2d(vae_mel), _mel2d(enhanced_mel)
    fig = Figure(figsize=(15, 3.8))
    fig.subplots_adjust(left=0.05, right=0.97, bottom=0.14, top=0.84, wspace=0.3)
    axs = fig.subplots(1, 3)
    vmin, vmax = mel_scale(a)
    im0 = _mel_row(axs[:1], [("enhanced decode (log-mel)", e)], cfg, sr, vmin, vmax)
    _shared_scale_colorbar(fig, im0, axs[0], "the input")
    d = (e - v) * _DB_PER_NEPER
    lim = max(float(np.percentile(np.abs(d), 99)), 1e-3)
    im = _imshow_mel(axs[1], d, cfg, sr, cfg.hop_length, -lim, lim, "enhanced − VAE only (dB)", cmap="RdBu_r")
    fig.colorbar(im, ax=axs[1], label="dB")
    if waves:
        for i, (label, w) in enumerate(waves):
            f, p = _welch_db(w, sr)
            axs[2].semilogx(f[1:], p[1:], lw=0.9, color=_COLORS[i % len(_COLORS)], label=label)
        axs[2].set_xlabel("Hz")
        axs[2].set_ylabel("dB")
        axs[2].set_title("spectrum (Welch PSD)", fontsize=9)
    else:
        f = cfg.mel_frequencies()
        for i, (label, m) in enumerate((("input", a), ("VAE only", v), ("enhanced", e))):
            axs[2].semilogx(f, m.mean(axis=0) * _DB_PER_NEPER, color=_COLORS[i], label=label)
        axs[2].set_xlabel("Hz")
        axs[2].set_ylabel("mean log-mel (dB)")
        axs[2].set_title("mean level per mel bin", fontsize=9)
    axs[2].axvline(HIGH_BAND_HZ, color="grey", lw=0.6, ls=":")
    axs[2].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def sweep_figure(agg, metric: str = "mel_lsd_hf", ratio: str = "mel_ber_high") -> Figure:
    """One panel per method: ``metric`` (left axis) and ``ratio`` (right axis) against the swept value.

    ``agg`` is :func:`vaelib.study.aggregate_sweep`'s table; the plain VAE (``method == "none"``) is drawn as
    dashed horizontal lines.
    """
    methods = [m for m in dict.fromkeys(agg["method"]) if m != "none"]
    base = agg[agg["method"] == "none"]
    fig = Figure(figsize=(3.8 * max(len(methods), 1), 3.4))
    fig.subplots_adjust(left=0.07, right=0.93, bottom=0.16, top=0.9, wspace=0.65)
    axs = np.atleast_1d(fig.subplots(1, max(len(methods), 1)))
    for ax, m in zip(axs, methods, strict=False):
        g = agg[agg["method"] == m].sort_values("value")
        ax.plot(g["value"], g[metric], "o-", color=_COLORS[1], label=metric)
        ax2 = ax.twinx()
        ax2.plot(g["value"], g[ratio], "s--", color=_COLORS[2], label=ratio)
        if len(base):
            ax.axhline(float(base[metric].iloc[0]), color=_COLORS[1], ls=":", lw=1)
            ax2.axhline(float(base[ratio].iloc[0]), color=_COLORS[2], ls=":", lw=1)
        r = np.concatenate([g[ratio].to_numpy(dtype=float), base[ratio].to_numpy(dtype=float)])
        r = r[np.isfinite(r)]
        if r.size and r.min() > 0 and r.max() / r.min() > 20:
            ax2.set_yscale("log")
        ax.set_xlabel(str(g["param"].iloc[0]))
        ax.set_ylabel(metric, color=_COLORS[1])
        ax2.set_ylabel(ratio, color=_COLORS[2])
        ax.set_title(m, fontsize=10)
    return fig


def pareto_figure(agg, front=None, x: str = "mel_ber_high", y: str = "mel_lsd_hf") -> Figure:
    """Pareto plot: high-band energy ratio (log x) against ``y``, one colour per method, front connected.

    ``front`` is a boolean mask (:func:`vaelib.study.pareto_front`); the ideal is ``x = 1`` (dotted) and low
    ``y``.
    """
    fig = Figure(figsize=(7.5, 5))
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.11, top=0.93)
    ax = fig.subplots()
    labels = []  # (x, y, text) of the swept settings, placed once the axes' scales are known
    for i, m in enumerate(dict.fromkeys(agg["method"])):
        g = agg[agg["method"] == m]
        if m == "none":  # on top of everything, with a white edge, so no label or marker hides it
            ax.scatter(g[x], g[y], s=220, marker="*", color=_COLORS[i % len(_COLORS)], edgecolor="white",
                       linewidth=1.0, label="VAE only", zorder=6)
            continue
        ax.scatter(g[x], g[y], s=40, marker="o", color=_COLORS[i % len(_COLORS)], label=m, zorder=3)
        labels += [(float(r[x]), float(r[y]), f"{r['value']:g}") for _, r in g.iterrows()]
    if front is not None and np.any(front):
        f = agg[np.asarray(front)].sort_values(x)
        ax.plot(f[x], f[y], "-", color="grey", lw=1, zorder=2, label="Pareto front")
    vals = agg[x].to_numpy(dtype=float)
    vals = vals[np.isfinite(vals)]
    if vals.size and np.all(vals > 0):
        ax.set_xscale("log")
    if vals.size and vals.min() / 2 <= 1.0 <= vals.max() * 2:
        ax.axvline(1.0, color="k", ls=":", lw=0.8, label="input's energy")
    elif vals.size:
        ax.text(0.01, 0.01, f"ideal x = 1 is off the axis (range {vals.min():.3g}–{vals.max():.3g})",
                transform=ax.transAxes, fontsize=8, color="grey")
    _place_labels(ax, labels, avoid=[(float(a), float(b)) for a, b in agg.loc[agg["method"] == "none", [x, y]]
                                      .to_numpy(dtype=float)])
    ax.set_xlabel(f"{x} (enhanced / input energy, 1 = ideal)")
    ax.set_ylabel(f"{y} (lower is better)")
    ax.set_title("high-band energy vs. high-band distance (mean over clips)", fontsize=10)
    ax.legend(fontsize=8)
    return fig


def _place_labels(ax, labels, avoid=(), fontsize: int = 7, min_px: float = 11.0) -> None:
    """Annotate points with short texts, each at the candidate offset farthest from the labels and markers placed
    before it (a greedy label repel: swept values near x = 1 sit close together and used to overlap)."""
    if not labels:
        return
    ax.autoscale_view()
    to_px = ax.transData.transform
    log_x = ax.get_xscale() == "log"
    finite = [(a, b, t) for a, b, t in labels if np.isfinite(a) and np.isfinite(b) and (a > 0 or not log_x)]
    taken = [to_px((a, b)) for a, b in avoid if np.isfinite(a) and np.isfinite(b)]
    taken += [to_px((a, b)) for a, b, _ in finite]  # the markers themselves
    offsets = [(4, 4), (4, -11), (-14, 4), (-14, -11), (6, 13), (-18, 13), (6, -20), (-18, -20)]
    for a, b, text in sorted(finite, key=lambda r: (r[0], r[1])):
        px = to_px((a, b))
        best, best_d = offsets[0], -1.0
        for dx, dy in offsets:
            c = px + np.array([dx + 3 * len(text), dy + 3])  # rough centre of the text box
            d = min((float(np.hypot(*(c - q))) for q in taken), default=np.inf)
            if d > best_d:
                best, best_d = (dx, dy), d
            if d >= min_px * 1.5:
                break
        ax.annotate(text, (a, b), fontsize=fontsize, xytext=best, textcoords="offset points", zorder=4)
        taken.append(px + np.array([best[0] + 3 * len(text), best[1] + 3]))


def per_clip_heatmap(table, title: str = "change vs. VAE only", cmap: str = "RdBu_r") -> Figure:
    """Heatmap of a clips × settings table of changes (negative = better for a distance), values annotated."""
    vals = np.asarray(table.to_numpy(dtype=float))
    fig = Figure(figsize=(3.5 + 1.3 * vals.shape[1], 1.6 + 0.4 * vals.shape[0]), layout="constrained")
    ax = fig.subplots()
    finite = vals[np.isfinite(vals)]
    lim = max(float(np.abs(finite).max()) if finite.size else 1.0, 1e-6)
    im = ax.imshow(vals, cmap=cmap, vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(vals.shape[1]))
    ax.set_xticklabels([str(c) for c in table.columns], rotation=20, ha="right", fontsize=8)
    ax.set_yticks(range(vals.shape[0]))
    ax.set_yticklabels([str(i) for i in table.index], fontsize=8)
    for (i, j), v in np.ndenumerate(vals):
        if np.isfinite(v):  # white on the dark ends of the diverging map, black on the light middle
            ax.text(j, i, f"{v:+.2f}", ha="center", va="center", fontsize=7,
                    color="white" if abs(v) / lim > 0.6 else "black")
    fig.colorbar(im, ax=ax)
    ax.set_title(title, fontsize=10)
    return fig


def training_curves_figure(logs: dict, title: str = "learned restorers: training") -> Figure:
    """Training loss and held-out mel LSD-HF change (%) against step, one line per restorer.

    ``logs`` maps a restorer name to its ``training_log.csv`` rows (dicts with ``step``, ``loss`` and
    ``heldout_lsd_hf_change``, a fraction, empty/None where not evaluated).
    """
    fig = Figure(figsize=(11, 3.4))
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.16, top=0.84, wspace=0.25)
    ax1, ax2 = fig.subplots(1, 2)
    for i, (name, rows) in enumerate(logs.items()):
        color = _COLORS[(i + 1) % len(_COLORS)]
        ax1.plot([float(r["step"]) for r in rows], [float(r["loss"]) for r in rows], color=color, lw=1, label=name)
        ev = [(float(r["step"]), 100 * float(r["heldout_lsd_hf_change"])) for r in rows
              if r.get("heldout_lsd_hf_change") not in (None, "", "None")]
        if ev:
            ax2.plot([s for s, _ in ev], [v for _, v in ev], marker="o", ms=3, color=color, label=name)
    ax1.set(xlabel="step", ylabel="loss (nat)")
    ax1.set_title("training loss (band-weighted L1 + high-band RMS)", fontsize=9)
    ax2.axhline(0, color="grey", lw=0.6)
    ax2.set(xlabel="step", ylabel="% vs. plain VAE")
    ax2.set_title("held-out clips: mel LSD ≥ 4 kHz change", fontsize=9)
    for ax in (ax1, ax2):
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=11)
    return fig


def restorer_comparison_figure(mels, cfg=None, sr: int = 16000, title: str = "") -> Figure:
    """Log-mels side by side (top, shared colour scale) and each one's error against the first, in dB (bottom).

    ``mels`` = ``[(label, log-mel (T, M)), ...]``, the reference (input) first, e.g. input / VAE only / learned
    / learned_cond. Bottom-left: mean absolute error per mel bin (dB) of every other mel, with the 4 kHz line.
    """
    cfg = _cfg(cfg)
    arrays = [_mel2d(m) for _, m in mels]
    n = len(arrays)
    if n < 2:
        raise ValueError(f"restorer_comparison_figure needs the reference and at least one mel, got {n}")
    fig = Figure(figsize=(4.2 * n, 6.6))
    fig.subplots_adjust(left=0.05, right=0.97, bottom=0.08, top=0.9, wspace=0.3, hspace=0.38)
    axs = fig.subplots(2, n)
    vmin, vmax = mel_scale(arrays[0])
    im = _mel_row(axs[0], [(label, a) for (label, _), a in zip(mels, arrays, strict=True)], cfg, sr, vmin, vmax)
    _shared_scale_colorbar(fig, im, axs[0, -1], "first panel")
    ref = arrays[0]
    t = min(a.shape[0] for a in arrays)
    diffs = [(a[:t] - ref[:t]) * _DB_PER_NEPER for a in arrays[1:]]
    lim = max(max(float(np.percentile(np.abs(d), 99)) for d in diffs), 1e-3)
    for ax, (label, _), d in zip(axs[1, 1:], mels[1:], diffs, strict=True):
        _imshow_mel(ax, d, cfg, sr, cfg.hop_length, -lim, lim, f"{label} − {mels[0][0]} (dB)", cmap="RdBu_r")
    f = cfg.mel_frequencies()
    for i, ((label, _), d) in enumerate(zip(mels[1:], diffs, strict=True)):
        axs[1, 0].semilogx(f, np.abs(d).mean(axis=0), color=_COLORS[(i + 1) % len(_COLORS)], lw=1, label=label)
    axs[1, 0].axvline(4000, color="grey", lw=0.6, ls=":")
    axs[1, 0].set(xlabel="Hz", ylabel="mean |error| (dB)")
    axs[1, 0].set_title("error per mel bin", fontsize=9)
    axs[1, 0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def per_clip_change_figure(changes: dict, title: str = "per-clip change of mel LSD-HF vs. the plain VAE") -> Figure:
    """One panel per method: each clip's relative change (%) against the plain VAE, sorted, bars below zero
    (better) in blue and above (worse) in red, the median as a dashed line. ``changes``: ``{method: {clip: change}}``
    (:func:`vaelib.study.restorers.per_clip_changes`). A mean hides a clip made worse; this does not."""
    n = max(1, len(changes))
    fig = Figure(figsize=(7.5, 1.9 * n + 0.6))
    for k, (method, per) in enumerate(changes.items()):
        ax = fig.add_subplot(n, 1, k + 1)
        items = sorted(((c, 100 * v) for c, v in per.items() if v == v), key=lambda cv: cv[1])
        vals = [v for _, v in items]
        ax.bar(range(len(vals)), vals, color=["tab:blue" if v < 0 else "tab:red" for v in vals])
        if vals:
            ax.axhline(float(np.median(vals)), color="k", ls="--", lw=0.8, label=f"median {np.median(vals):+.0f} %")
            ax.legend(loc="best", fontsize=7, frameon=True, framealpha=0.8)
        ax.axhline(0, color="grey", lw=0.6)
        ax.set_xticks(range(len(vals)))
        ax.set_xticklabels([c for c, _ in items], rotation=30, ha="right", fontsize=6)
        ax.set_ylabel("% vs VAE", fontsize=8)
        ax.set_title(method, fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def energy_ratio_figure(per_clip, lost_below: float = 0.9,
                        title: str = "4-8 kHz mel energy kept, per clip (1 = the input's energy)") -> Figure:
    """Each clip's high-band energy ratio ``E_out / E_in`` (log axis) for the plain VAE (first column of
    ``per_clip``, grey) and each restorer (coloured), clips sorted by the VAE's ratio; the dotted line marks
    ``lost_below`` (clips left of where the grey dots cross it lost energy in the VAE). ``per_clip``: clip × method
    (:func:`vaelib.study.energy_given_back`)."""
    fig = Figure(figsize=(7.5, 3.0))
    ax = fig.add_subplot(1, 1, 1)
    order = per_clip.sort_values(per_clip.columns[0])
    x = np.arange(len(order))
    for k, col in enumerate(order.columns):
        style = {"color": "grey", "marker": "o", "ms": 6} if k == 0 else {"marker": "^v<>sd"[(k - 1) % 6], "ms": 5}
        ax.plot(x, order[col].to_numpy(dtype=float), ls="none", label=col, **style)
    ax.set_yscale("log")
    for axis in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):  # 0.6, 1, 2 instead of 6×10⁻¹
        axis(FormatStrFormatter("%g"))
    ax.tick_params(axis="y", which="both", labelsize=7)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.axhline(lost_below, color="k", lw=0.6, ls=":")
    ax.set_xticks(x)
    ax.set_xticklabels([str(c) for c in order.index], rotation=30, ha="right", fontsize=6)
    ax.set_ylabel("E_out / E_in (4-8 kHz)", fontsize=8)
    ax.legend(fontsize=7, loc="best", frameon=True, framealpha=0.8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def adaptive_figure(per_clip, metric: str = "mel_lsd_hf", title: str = "") -> Figure:
    """Notebook 05: per method, every held-out clip's ``metric`` change vs. the best fixed setting, by approach.

    ``per_clip`` is :func:`vaelib.study.adaptive.compare`'s table (``method``, ``approach``, ``clip``, ``metric``).
    One panel per method; x = approach (VAE only, adaptive, adaptive (bundled), multi-scale, oracle), y = ``approach
    − fixed`` per clip (dots; below 0 = better than the fixed setting), the mean as a black bar and the median as a
    grey one. The spread is the point: a mean gain carried by one clip shows as one low dot.
    """
    order = ("VAE only", "adaptive", "adaptive (bundled)", "multi-scale", "oracle")
    methods = list(dict.fromkeys(per_clip["method"]))
    fig = Figure(figsize=(2.4 * max(len(methods), 1) + 0.8, 3.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, max(len(methods), 1), sharey=False))
    for ax, method in zip(axes, methods, strict=False):
        g = per_clip[per_clip["method"] == method]
        fixed = g[g["approach"] == "fixed"].set_index("clip")[metric]
        shown = [a for a in order if a in set(g["approach"])]
        for x, approach in enumerate(shown):
            v = g[g["approach"] == approach].set_index("clip")[metric]
            d = (v - fixed.loc[v.index]).to_numpy(dtype=float)
            jitter = (np.arange(len(d)) - (len(d) - 1) / 2) * (0.35 / max(len(d), 1))
            color = _COLORS[order.index(approach) % len(_COLORS)]  # one colour per approach in every panel
            ax.scatter(x + jitter, d, s=12, color=color, alpha=0.8, zorder=3)
            ax.hlines(np.mean(d), x - 0.3, x + 0.3, color="black", lw=1.6, zorder=4)
            ax.hlines(np.median(d), x - 0.3, x + 0.3, color="grey", lw=1.0, ls="--", zorder=4)
        ax.axhline(0, color="grey", lw=0.6)
        ax.set_xticks(range(len(shown)))
        ax.set_xticklabels(shown, rotation=35, ha="right", fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
        ax.set_title(method, fontsize=9)
    axes[0].set_ylabel(f"{metric} − fixed best (per clip)", fontsize=8)
    fig.suptitle(title or f"held-out clips: change of {metric} vs. the best fixed setting (black: mean, "
                 "dashed: median; lower is better)", fontsize=9)
    return fig


def generation_figure(plain_mel, enhanced_mel, plain_wave, enhanced_wave, sr: int = 16000, cfg=None,
                      title: str = "", labels=("plain", "enhanced")) -> Figure:
    """One generation decoded two ways (``vaelib generate``): the two log-mels on a shared colour scale, their
    difference ``20/ln 10 · (L_enh − L_plain)`` in dB, and the waveforms' band energies (dB, per band of
    :data:`vaelib.metrics.BANDS`, from the Welch PSD) with the mean difference per mel bin.

    ``plain_mel`` / ``enhanced_mel``: log-mels ``(T, M)`` (natural log, as the pipeline's VAE decodes them: what
    the vocoder received); ``plain_wave`` / ``enhanced_wave``: the generated waveforms at ``sr``. ``title`` is
    shown literally (``$`` is escaped, so a prompt never turns into mathtext).
    """
    cfg = _cfg(cfg)
    a, b = _mel2d(plain_mel), _mel2d(enhanced_mel)
    t = min(a.shape[0], b.shape[0])
    diff = (b[:t] - a[:t]) * _DB_PER_NEPER
    fig = Figure(figsize=(13, 7))
    fig.subplots_adjust(left=0.06, right=0.96, bottom=0.08, top=0.9, wspace=0.3, hspace=0.4)
    axs = fig.subplots(2, 3)
    vmin, vmax = mel_scale(a)
    im = _mel_row(axs[0, :2], [(f"{labels[0]} log-mel", a), (f"{labels[1]} log-mel", b)], cfg, sr, vmin, vmax)
    _shared_scale_colorbar(fig, im, axs[0, 1], f"the {labels[0]} log-mel")
    lim = max(float(np.percentile(np.abs(diff), 99)), 1e-3)
    im = _imshow_mel(axs[0, 2], diff, cfg, sr, cfg.hop_length, -lim, lim, f"{labels[1]} − {labels[0]} (dB)",
                     cmap="RdBu_r")
    fig.colorbar(im, ax=axs[0, 2], label="dB")
    x = np.arange(len(_BAND_ORDER))
    for i, w in enumerate((plain_wave, enhanced_wave)):
        axs[1, 0].bar(x + (i - 0.5) * 0.4, _band_energy_db(w, sr), 0.4, color=_COLORS[i], label=labels[i])
    axs[1, 0].set_xticks(x)
    axs[1, 0].set_xticklabels([_BAND_TEXT[k] for k in _BAND_ORDER])
    axs[1, 0].set_ylabel("band energy (dB)")
    axs[1, 0].set_title("band energy (waveforms)", fontsize=9)
    axs[1, 0].legend(fontsize=7, loc="lower left")
    f = cfg.mel_frequencies()
    axs[1, 1].semilogx(f, diff.mean(axis=0), color=_COLORS[1], lw=1)
    axs[1, 1].axhline(0, color="grey", lw=0.6)
    axs[1, 1].axvline(HIGH_BAND_HZ, color="grey", lw=0.6, ls=":")
    axs[1, 1].set(xlabel="Hz", ylabel="mean difference (dB)")
    axs[1, 1].set_title(f"{labels[1]} − {labels[0]} per mel bin", fontsize=9)
    for i, w in enumerate((plain_wave, enhanced_wave)):
        fw, p = _welch_db(w, sr)
        axs[1, 2].semilogx(fw[1:], p[1:], lw=0.9, color=_COLORS[i], label=labels[i])
    axs[1, 2].axvline(HIGH_BAND_HZ, color="grey", lw=0.6, ls=":")
    axs[1, 2].set(xlabel="Hz", ylabel="dB")
    axs[1, 2].set_title("spectrum (Welch PSD)", fontsize=9)
    axs[1, 2].legend(fontsize=7)
    if title:
        fig.suptitle(str(title).replace("$", r"\$"), fontsize=11)
    return fig
