"""The latent-enhancement explorer: a pure :func:`render` function and the ipywidgets that drive it.

``render(state, ctx) -> RenderResult`` decodes one clip's latent with the chosen enhancer and returns the figure,
a metrics table and the audio players' HTML. It has no side effects, so the notebook renders the same thing
headless (``interactive=False``: ``render`` once, display the result statically) and interactively
(:func:`build_widgets`: a method dropdown, a gain slider and the controls each method needs, re-rendering into an
``Output`` on every change). Tests drive the widgets by setting ``.value`` — no browser needed.

Audio players use ``IPython.display.Audio(..., normalize=False)``, so a gain change stays audible
(``normalize=True`` would peak-normalise it away); a waveform beyond ±1 is attenuated to peak 1 (never clipped) and
its label says by how many dB (:func:`audio_html`).
"""

from __future__ import annotations

import dataclasses
import html

import ipywidgets as W
import numpy as np
import pandas as pd

from . import enhance as _enhance
from . import metrics as _metrics

__all__ = ["RenderState", "RenderContext", "RenderResult", "render", "audio_html", "display_outputs",
           "build_widgets", "EnhanceExplorer", "RestorerState", "render_restorer", "RestorerExplorer", "restorer_names"]

#: Columns of the metrics table: (label, source, key). source "wave" = :func:`vaelib.study.quick_score` (the
#: definitions of :func:`vaelib.metrics.score`), "mel" = :func:`vaelib.metrics.score_mel`.
METRIC_COLUMNS = (
    ("mel LSD-HF", "mel", "mel_lsd_hf"),
    ("mel L1", "mel", "mel_l1"),
    ("mel energy 4-8k", "mel", "mel_ber_high"),
    ("LSD-HF", "wave", "lsd_hf"),
    ("LSD", "wave", "lsd"),
    ("energy 4-8k", "wave", "ber_high"),
    ("HF flatness", "wave", "hf_flatness"),
    ("added-HF flatness", "wave", "added_hf_flatness"),
    ("SNR dB (seed)", "wave", "snr_db"),
    ("corr (seed)", "wave", "correlation"),
    ("ret >4k (seed)", "wave", "claims_ret_high"),
)


@dataclasses.dataclass(frozen=True)
class RenderState:
    """What the explorer shows: enhancer ``method`` and its controls, the ``clip`` index and the noise ``seed``.

    ``gain`` is used by frequency and hybrid, ``level`` by noise and hybrid, ``factor`` by contrast and hybrid
    (see :func:`vaelib.enhance.enhancer_params`); ``extra`` holds ``(name, value)`` pairs of any other parameter
    (the adaptive enhancers' ``weight``, the multi-scale ones' per-level ``gain1``, ``gain2``, ``amount``, ...).
    """

    method: str = "frequency"
    gain: float = 1.5
    level: float = 0.1
    factor: float = 1.3
    clip: int = 0
    seed: int = 0
    extra: tuple = ()

    def params(self) -> dict:
        """The validated parameters of :attr:`method` (one-line ``ValueError`` when out of range)."""
        return _enhance.enhancer_params(self.method, self.gain, self.level, self.factor, **dict(self.extra))

    @classmethod
    def from_params(cls, method: str, params: dict, clip: int = 0, seed: int = 0) -> RenderState:
        """The state showing ``method`` with ``params`` (e.g. a notebook's checked ``P["params"]``)."""
        main = {"gain": 1.5, "level": 0.1, "factor": 1.3}
        extra = tuple((k, float(v)) for k, v in params.items() if k not in main)
        return cls(method=method, **{k: float(params.get(k, d)) for k, d in main.items()}, clip=clip, seed=seed,
                   extra=extra)


@dataclasses.dataclass
class RenderContext:
    """Everything :func:`render` needs that does not change with the controls (computed once per clip).

    Attributes
    ----------
    names : list of str
        Clip names.
    waves : list of numpy.ndarray
        Normalised input waveforms (the metrics' reference).
    input_mels : list of numpy.ndarray
        Input log-mels ``(T, M)``.
    latents : list of torch.Tensor
        Scaled latents ``(1, C, T/4, M/4)``.
    vae_mels, vae_waves : list
        The plain round trip's decoded log-mel and vocoded waveform (``None`` without a vocoder).
    vae : vaelib.models.LatentVAE
    vocoder : callable or None
        ``None`` renders mel-domain metrics only (no audio).
    sr : int
    """

    names: list
    waves: list
    input_mels: list
    latents: list
    vae_mels: list
    vae_waves: list
    vae: object
    vocoder: object = None
    sr: int = 16000

    @classmethod
    def from_reconstructions(cls, recs: dict, vae, vocoder=None) -> RenderContext:
        """Build from ``{name: vaelib.pipeline.Reconstruction}`` (e.g. :func:`vaelib.study.run_round_trips`)."""
        if not recs:
            raise ValueError("RenderContext needs at least one reconstruction")
        recs = dict(recs)
        first = next(iter(recs.values()))
        return cls(names=list(recs), waves=[r.wave for r in recs.values()],
                   input_mels=[r.input_mel for r in recs.values()], latents=[r.latent for r in recs.values()],
                   vae_mels=[r["vae"].mel for r in recs.values()], vae_waves=[r["vae"].wave for r in recs.values()],
                   vae=vae, vocoder=vocoder, sr=first.sr)


@dataclasses.dataclass
class RenderResult:
    """Output of :func:`render`.

    Attributes
    ----------
    state : RenderState
    params : dict
        The enhancer parameters used.
    mel : numpy.ndarray
        Enhanced decoded log-mel ``(T, M)``.
    wave : numpy.ndarray or None
        Enhanced vocoded waveform.
    figure : matplotlib.figure.Figure
    metrics : pandas.DataFrame
        Rows ``VAE only`` and ``enhanced``; columns :data:`METRIC_COLUMNS`.
    audio_html : str
        Players for input / VAE only / enhanced (empty without a vocoder).
    """

    state: RenderState
    params: dict
    mel: np.ndarray
    wave: np.ndarray | None
    figure: object
    metrics: pd.DataFrame
    audio_html: str

    @property
    def title(self) -> str:
        ps = ", ".join(f"{k}={v:g}" for k, v in self.params.items())
        return f"{self.state.method}({ps})" if ps else self.state.method


#: How the players are levelled, in words (shown under every group of players).
PLAYER_RULE = ("players are loudness-matched to the input: each copy is scaled to the input's RMS level (gain in its "
               "label), or less where that would clip; only the played copy is scaled, never the scored signal")


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def player_gains(items) -> list[float]:
    """The gain of each played copy, so A/B listening compares content, not level.

    The first item is the reference (the input), played as it is unless it would clip (then scaled to peak 1).
    Every other copy gets ``g = rms(reference) / rms(copy)`` — the same RMS as the reference — limited to
    ``1 / peak(copy)`` so that it never clips; a silent copy or reference keeps ``g = 1``. The scored signals are
    never touched: this is applied to the players' copies only.
    """
    data = [np.asarray(w, dtype=np.float64).reshape(-1) if w is not None else None for _, w in items]
    ref = next((d for d in data if d is not None), None)
    target = _rms(ref) if ref is not None else 0.0
    gains = []
    for d in data:
        if d is None:
            gains.append(1.0)
            continue
        peak = float(np.max(np.abs(d))) if d.size else 0.0
        g = 1.0
        if d is not ref and target > 0 and _rms(d) > 0:
            g = target / _rms(d)
        if peak * g > 1.0:
            g = 1.0 / peak
        gains.append(g)
    return gains


def audio_html(items, sr: int = 16000, match: bool = True) -> str:
    """HTML of labelled audio players side by side; ``items`` = ``[(label, waveform), ...]``, the input first.

    With ``match`` (default) each copy is loudness-matched to the first item (:func:`player_gains`: same RMS, never
    clipping) and its label says the gain in dB; a line under the players states the rule (:data:`PLAYER_RULE`).
    Without it, copies keep their level and only a copy whose peak exceeds 1 is scaled down to peak 1. Each
    waveform is embedded with ``IPython.display.Audio(..., normalize=False)`` (a data URI: ~430 KB per 10 s at
    16 kHz), so the level set here is the level heard.
    """
    from IPython.display import Audio

    items = [(label, (w.detach().float().cpu().numpy() if hasattr(w, "detach") else w)) for label, w in items]
    gains = player_gains(items) if match else None
    cells = []
    for k, (label, w) in enumerate(items):
        if w is None:
            continue
        data = np.asarray(w, dtype=np.float32).reshape(-1)
        peak = float(np.max(np.abs(data))) if data.size else 0.0
        if gains is not None:
            g = gains[k]
            if abs(20 * np.log10(g)) >= 0.05:
                label = f"{label} (played at {20 * np.log10(g):+.1f} dB)"
            data = (data * g).astype(np.float32)
        elif peak > 1.0:
            data = data / peak
            label = f"{label} (attenuated {20 * np.log10(peak):.0f} dB to avoid clipping)"
        player = Audio(data, rate=sr, normalize=False)._repr_html_()
        cells.append(f'<div style="display:inline-block;margin:0 12px 6px 0"><div style="font-size:12px">'
                     f"{html.escape(str(label))}</div>{player}</div>")
    note = (f'<div style="font-size:11px;color:#666">{html.escape(PLAYER_RULE[0].upper() + PLAYER_RULE[1:])}.</div>'
            if match and cells else "")
    return "<div>" + "".join(cells) + note + "</div>"


def _metric_row(ref_wave, wave, ref_mel, mel, sr, cfg) -> dict:
    from .study import quick_score

    mel_scores = _metrics.score_mel(ref_mel, mel, cfg=cfg)
    wave_scores = quick_score(ref_wave, wave, sr=sr) if wave is not None else {}
    row = {}
    for label, source, key in METRIC_COLUMNS:
        src = mel_scores if source == "mel" else wave_scores
        row[label] = src.get(key, np.nan)
    return row


def render(state: RenderState, ctx: RenderContext) -> RenderResult:
    """Render one enhancer setting on one clip: decode, vocode, score and plot. Pure (no side effects).

    Parameters
    ----------
    state : RenderState
        Method, its controls, clip index and seed.
    ctx : RenderContext
        Precomputed clip data and models.

    Returns
    -------
    RenderResult
        Figure (:func:`vaelib.plots.render_figure`), metrics table (VAE only vs. enhanced, against the input),
        audio players HTML (input / VAE only / enhanced, ``normalize=False``).
    """
    from .pipeline import decode_latents, vocode

    if not 0 <= state.clip < len(ctx.names):
        raise ValueError(f"clip index {state.clip} out of range: {len(ctx.names)} clip(s) loaded "
                         f"(0..{len(ctx.names) - 1})")
    params = state.params()
    i = state.clip
    spec = _enhance.Spec(state.method, params)  # params: validated by state.params()
    if _enhance.get(state.method).stage == "mel":  # adaptive / multi-scale mel-stage: the plain decode, enhanced
        import torch

        plain = torch.from_numpy(np.ascontiguousarray(ctx.vae_mels[i]))[None, None]
        mel_t = _enhance.apply(spec, plain, seed=state.seed).float()
    else:
        mel_t = decode_latents(ctx.vae, ctx.latents[i], {"enhanced": spec}, seed=state.seed, plain=False)["enhanced"]
        mel_t = mel_t.float()
    mel = mel_t[0, 0].cpu().numpy()
    wave = None
    if ctx.vocoder is not None:
        wave = vocode(ctx.vocoder, mel_t)[0]
    return _result(state, params, mel, wave, ctx, i, "enhanced")


def _result(state, params: dict, mel, wave, ctx: RenderContext, i: int, label: str) -> RenderResult:
    """The shared tail of :func:`render` and :func:`render_restorer`: metrics table (VAE only vs. ``label``,
    against the input), figure and players of clip ``i``."""
    from .plots import render_figure

    cfg = ctx.vae.mel_config
    ref_wave, ref_mel = ctx.waves[i], ctx.input_mels[i]
    vae_wave = ctx.vae_waves[i] if ctx.vocoder is not None else None
    table = pd.DataFrame(
        [_metric_row(ref_wave, vae_wave, ref_mel, ctx.vae_mels[i], ctx.sr, cfg),
         _metric_row(ref_wave, wave, ref_mel, mel, ctx.sr, cfg)],
        index=["VAE only", label])
    if wave is None:
        table = table[[col for col, source, _ in METRIC_COLUMNS if source == "mel"]]
    result = RenderResult(state=state, params=params, mel=mel, wave=wave, figure=None, metrics=table, audio_html="")
    waves = [("input", ref_wave), ("VAE only", vae_wave), (label, wave)] if wave is not None else None
    result.figure = render_figure(ref_mel, ctx.vae_mels[i], mel, waves=waves, sr=ctx.sr, cfg=cfg,
                                  title=f"{ctx.names[i]} — {result.title}")
    if wave is not None:
        result.audio_html = audio_html(waves, ctx.sr)
    return result


def _display_data(data: dict) -> dict:
    return {"output_type": "display_data", "data": data, "metadata": {}}


def display_outputs(result: RenderResult | None, error: str | None = None, dpi: int = 72) -> tuple:
    """A :class:`RenderResult` as Jupyter ``display_data`` outputs: figure (PNG), metrics table (HTML), players.

    Used to fill the explorer's ``Output`` widget without capturing ``display()`` calls; ``error`` (a one-line
    message) replaces everything when given.
    """
    import base64
    import io

    if error or result is None:
        msg = html.escape(error or "nothing rendered")
        return (_display_data({"text/html": f"<b>error:</b> {msg}", "text/plain": f"error: {error}"}),)
    buf = io.BytesIO()
    result.figure.savefig(buf, dpi=dpi, format="png")
    out = [_display_data({"image/png": base64.b64encode(buf.getvalue()).decode("ascii"),
                          "text/plain": f"<figure {result.title}>"}),
           _display_data({"text/html": result.metrics.to_html(float_format=lambda v: f"{v:.4g}"),
                          "text/plain": result.metrics.to_string()})]
    if result.audio_html:
        out.append(_display_data({"text/html": result.audio_html, "text/plain": "<audio players>"}))
    return tuple(out)


def _param_spec(name: str) -> _enhance.Param:
    for e in _enhance.ENHANCERS.values():
        for p in e.params:
            if p.name == name:
                return p
    raise KeyError(name)


def build_widgets(ctx: RenderContext, state: RenderState | None = None, show: bool = True):
    """Build the explorer: method dropdown, gain / level / factor sliders, clip dropdown, seed, output area.

    Every control change re-runs :func:`render` and shows its figure, metrics table and players in the
    ``Output``; sliders a method does not use are hidden. Returns an :class:`EnhanceExplorer` (an
    ``ipywidgets.VBox``) whose ``result`` attribute holds the last :class:`RenderResult`.

    Parameters
    ----------
    ctx : RenderContext
    state : RenderState, optional
        Initial values (default :class:`RenderState()`).
    show : bool
        Display each render in the ``Output`` widget (tests may switch it off).
    """
    return EnhanceExplorer(ctx, state or RenderState(), show=show)


class EnhanceExplorer(W.VBox):
    """ipywidgets container of the explorer; ``.method``, ``.gain``, ``.level``, ``.factor``, ``.clip``,
    ``.seed`` are the controls, ``.out`` the output area, ``.result`` the last :class:`RenderResult`."""

    def __init__(self, ctx: RenderContext, state: RenderState, show: bool = True):
        self.ctx, self.show, self.result, self.error = ctx, show, None, None
        style = {"description_width": "70px"}
        from .report.params import specs

        methods = specs("enhance")["method"].choices()  # the latent-stage enhancers, as the schema accepts them
        self.method = W.Dropdown(options=methods, value=state.method, description="method", style=style)

        def slider(name, value, step):
            p = _param_spec(name)
            return W.FloatSlider(value=value, min=p.lo, max=p.hi, step=step, description=name,
                                 continuous_update=False, readout_format=".2f", style=style)

        self.gain = slider("gain", state.gain, 0.05)
        self.level = slider("level", state.level, 0.01)
        self.factor = slider("factor", state.factor, 0.05)
        # every other parameter of the offered methods (adaptive weight, multi-scale per-level gains / amounts)
        given = dict(state.extra)
        names = dict.fromkeys(p.name for m in methods for p in _enhance.get(m).params
                              if p.name not in ("gain", "level", "factor") and not p.choices)
        self.extra = {n: slider(n, given.get(n, _param_spec(n).default), 0.01) for n in names}
        self.clip = W.Dropdown(options=[(n, i) for i, n in enumerate(ctx.names)], value=state.clip,
                               description="clip", style=style)
        self.seed = W.BoundedIntText(value=state.seed, min=0, max=2**31 - 1, description="seed", style=style)
        self.out = W.Output()
        controls = [self.method, self.gain, self.level, self.factor, self.clip, self.seed, *self.extra.values()]
        super().__init__([W.HBox([self.method, self.clip, self.seed]),
                          W.HBox([self.gain, self.level, self.factor]), W.HBox(list(self.extra.values())), self.out])
        for c in controls:
            c.observe(self._update, names="value")
        self._update()

    def state(self) -> RenderState:
        """The :class:`RenderState` the controls currently describe."""
        used = {p.name for p in _enhance.get(self.method.value).params}
        return RenderState(method=self.method.value, gain=float(self.gain.value), level=float(self.level.value),
                           factor=float(self.factor.value), clip=int(self.clip.value), seed=int(self.seed.value),
                           extra=tuple((n, float(w.value)) for n, w in self.extra.items() if n in used))

    def _update(self, change=None):
        used = {p.name for p in _enhance.get(self.method.value).params}
        for name in ("gain", "level", "factor"):
            getattr(self, name).layout.display = None if name in used else "none"
        for name, w in self.extra.items():
            w.layout.display = None if name in used else "none"
        try:
            self.result, self.error = render(self.state(), self.ctx), None
        except ValueError as exc:
            self.error = " ".join(str(exc).split())
        if self.show:
            # Set the Output widget's outputs directly instead of capturing display() calls with `with self.out:`:
            # capture routes messages by msg_id, which hangs papermill/nbclient after the cell finishes
            # (nteract/papermill#723); a plain state update renders the same in Jupyter and headless.
            self.out.outputs = display_outputs(self.result, self.error)


# ----------------------------------------------------------------------------------------------------------
# notebook 04: the learned-restorer explorer (restorer choice + strength), same pattern as the explorer above
# ----------------------------------------------------------------------------------------------------------
def restorer_names() -> list[str]:
    """The registered learned restorers (``learned``, ``learned_cond`` and any added with ``restore.register``)."""
    return _enhance.restorer_names()


@dataclasses.dataclass(frozen=True)
class RestorerState:
    """What the restorer explorer shows: ``restorer``, its ``strength`` (0 = plain VAE), the audio ``category``
    a conditional restorer is given (``auto``: inferred from the mel) and the ``clip`` index."""

    restorer: str = "learned"
    strength: float = 1.0
    category: str = "auto"
    clip: int = 0

    @property
    def method(self) -> str:
        return self.restorer

    def params(self) -> dict:
        """The validated enhancer parameters (one-line ``ValueError`` when out of range)."""
        takes = {p.name for p in _enhance.get(self.restorer).params}
        raw = {"strength": self.strength, **({"category": self.category} if "category" in takes else {})}
        return _enhance.validate_params(self.restorer, raw)


def render_restorer(state: RestorerState, ctx: RenderContext) -> RenderResult:
    """Render one restorer setting on one clip: restore the decoded log-mel, vocode, score, plot. Pure.

    Same outputs as :func:`render` (figure, metrics table VAE only vs. restored, players), for mel-stage
    restorers acting on the plain VAE's decoded log-mel ``ctx.vae_mels``.
    """
    import torch

    from .pipeline import vocode

    if not 0 <= state.clip < len(ctx.names):
        raise ValueError(f"clip index {state.clip} out of range: {len(ctx.names)} clip(s) loaded "
                         f"(0..{len(ctx.names) - 1})")
    if state.restorer not in restorer_names():
        raise ValueError(f"unknown restorer {state.restorer!r}; accepted: {', '.join(restorer_names())}")
    params = state.params()
    i = state.clip
    vae_mel = torch.from_numpy(np.ascontiguousarray(ctx.vae_mels[i]))[None, None]
    mel_t = _enhance.apply(_enhance.Spec(state.restorer, params), vae_mel).float()  # validated by state.params()
    mel = mel_t[0, 0].cpu().numpy()
    wave = vocode(ctx.vocoder, mel_t)[0] if ctx.vocoder is not None else None
    return _result(state, params, mel, wave, ctx, i, "restored")


class RestorerExplorer(W.VBox):
    """ipywidgets explorer of notebook 04: ``.restorer`` dropdown, ``.strength`` slider, ``.category`` (shown for
    conditional restorers), ``.clip``; ``.out`` the output area, ``.result`` the last :class:`RenderResult`."""

    def __init__(self, ctx: RenderContext, state: RestorerState | None = None, show: bool = True):
        state = state or RestorerState()
        self.ctx, self.show, self.result, self.error = ctx, show, None, None
        style = {"description_width": "70px"}
        self.restorer = W.Dropdown(options=restorer_names(), value=state.restorer, description="restorer",
                                   style=style)
        self.strength = W.FloatSlider(value=state.strength, min=0.0, max=1.0, step=0.05, description="strength",
                                      continuous_update=False, readout_format=".2f", style=style)
        cats = _enhance.get("learned_cond").params[1].choices
        self.category = W.Dropdown(options=list(cats), value=state.category, description="type", style=style)
        self.clip = W.Dropdown(options=[(n, i) for i, n in enumerate(ctx.names)], value=state.clip,
                               description="clip", style=style)
        self.out = W.Output()
        super().__init__([W.HBox([self.restorer, self.clip]), W.HBox([self.strength, self.category]), self.out])
        for c in (self.restorer, self.strength, self.category, self.clip):
            c.observe(self._update, names="value")
        self._update()

    def state(self) -> RestorerState:
        """The :class:`RestorerState` the controls currently describe."""
        return RestorerState(restorer=self.restorer.value, strength=float(self.strength.value),
                             category=self.category.value, clip=int(self.clip.value))

    def _update(self, change=None):
        takes = {p.name for p in _enhance.get(self.restorer.value).params}
        self.category.layout.display = None if "category" in takes else "none"
        try:
            self.result, self.error = render_restorer(self.state(), self.ctx), None
        except ValueError as exc:
            self.error = " ".join(str(exc).split())
        if self.show:
            self.out.outputs = display_outputs(self.result, self.error)  # no capture: see EnhanceExplorer._update
