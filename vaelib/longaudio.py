"""Recordings of any length: the round trip in windows of the training length, joined in the mel domain.

The AudioLDM2 VAE was trained on 1024-frame crops (10.24 s at 16 kHz). Fed a whole long recording at once its
mid-block attention makes time and memory quadratic in the length (docs/reference.md §6), and its GroupNorm
statistics and attention then span far more than the model ever saw: the bundled tiny VAE decodes a 60 s signal
in one piece with a mel L1 error of 0.366 nat against the input, but 0.252 nat in 10.24 s windows
(``docs/eval.md``). So long audio goes through the model in windows of the training length:

* **VAE windows** of ``window`` frames start every ``hop = window - overlap`` frames; the last one is aligned to
  the end of the file, so every window has the training length (a file no longer than one window is one window,
  i.e. exactly :func:`vaelib.pipeline.reconstruct`). Each window runs :func:`vaelib.engine.window_stages` (the
  round trip of :func:`vaelib.pipeline.reconstruct` without the vocoder, so every enhancer of the registry applies
  unchanged), with ``seed + k`` for window ``k``.
* **Joined in the mel domain** by a crossfade: between window ``k`` and the next one the weight moves from ``k``
  to ``k + 1`` along a raised-cosine ramp of ``fade`` frames centred in the middle of their regular overlap
  (``c_k = s_k + window - overlap / 2``). The ``(overlap - fade) / 2`` outermost frames of each window get weight
  0 (the window edges, where zero padding of the convolutions and the reflect padding of the front end act),
  and the weights of overlapping windows sum to 1 at every frame. Why a crossfade of log-mels and not an
  overlap-add of waveforms: both windows estimate *the same* mel frames, so amplitude-complementary weights
  (sum 1) interpolate between two estimates; the two windows' decodes differ by their own normalisation
  statistics (≈0.2 nat on the bundled model), which a hard cut would turn into an audible step and a short
  ramp spreads over ``fade`` frames.
* **Vocoder chunks** use the same plan and weights on the joined mel (weights at sample resolution): a clip
  no longer than one window is vocoded whole, as in :func:`~vaelib.pipeline.reconstruct`; HiFi-GAN's receptive
  field is a few frames, far less than the zero-weight margins; Griffin-Lim reconstructs each chunk's phase
  independently and the ramp blends the two estimates.

Time is linear in the length and memory flat (a few windows of state) — :class:`RoundTrip` is a block-wise
processor (the streaming API, :mod:`vaelib.stream`, is a thin wrapper); :func:`reconstruct_long` runs it over a
whole file and returns a :class:`vaelib.pipeline.Reconstruction` (without the latent). Both run one window of one
clip per model call, as a stream must; :class:`vaelib.engine.Engine` runs the same plan for many clips with many
windows per call (``vaelib eval``) and gives the same numbers.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .audio import MelConfig, normalize, pad_to_multiple

__all__ = ["Windowing", "Piece", "RoundTrip", "reconstruct_long", "ramp", "add_weighted"]


def ramp(n: int) -> np.ndarray:
    """Rising raised-cosine ramp of ``n`` points, ``r[i] = sin²(π (i + ½) / (2n))``; ``r + r[::-1] = 1`` exactly
    in real arithmetic (``sin² + cos²``), so a falling ramp ``1 - r`` and the rising ramp sum to one."""
    i = np.arange(n, dtype=np.float64)
    return np.sin(np.pi * (i + 0.5) / (2 * n)) ** 2


def add_weighted(acc: np.ndarray, base: int, lo: int, start: int, end: int, weight: np.ndarray,
                 values: np.ndarray) -> np.ndarray:
    """One window's (or chunk's) share of an overlap-add: ``acc[p - base] += weight[p - start] · values[p - start]``
    for the points ``lo <= p < end`` (float64), ``acc`` holding points ``base, base + 1, ...`` and grown with zeros
    to reach ``end``; returns ``acc`` (a new array when it grew). ``weight`` and ``values`` cover ``[start, end)``
    (``values`` frames × bins or samples; points before ``lo`` are final and get nothing). The one accumulation of
    the windowed round trip (:class:`RoundTrip`, :class:`vaelib.engine.Engine`, the low-latency streamer)."""
    if acc.shape[0] < end - base:
        acc = np.concatenate([acc, np.zeros((end - base - acc.shape[0],) + acc.shape[1:])])
    w = weight[lo - start:end - start]
    if values.ndim == 2:
        w = w[:, None]
    acc[lo - base:end - base] += w * values[lo - start:end - start].astype(np.float64, copy=False)
    return acc


@dataclasses.dataclass(frozen=True)
class Windowing:
    """Window plan for long audio (frames of the front end: 100 per second at 16 kHz).

    Attributes
    ----------
    window : int
        Window length in frames; 1024 = the training length (10.24 s). Multiple of 4.
    overlap : int
        Frames shared by consecutive windows. Multiple of 4, ``fade <= overlap`` and ``overlap + fade <= 2 * hop``.
    fade : int
        Length in frames of the crossfade ramp, centred in the overlap.
    """

    window: int = 1024
    overlap: int = 128
    fade: int = 64

    def __post_init__(self):
        w, o, f = self.window, self.overlap, self.fade
        for name, v in (("window", w), ("overlap", o), ("fade", f)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise ValueError(f"windowing {name} must be an integer number of frames (got {v!r})")
        if w < 8 or w % 4 or o % 4:
            raise ValueError(f"window ({w}) and overlap ({o}) must be multiples of 4 frames, window >= 8")
        if not 0 < f <= o < w or o + f > 2 * (w - o):
            raise ValueError(f"need 0 < fade <= overlap < window and overlap + fade <= 2 * (window - overlap); "
                             f"got window={w}, overlap={o}, fade={f}")

    @property
    def hop(self) -> int:
        """Frames between window starts, ``window - overlap``."""
        return self.window - self.overlap

    @property
    def margin(self) -> int:
        """Zero-weight frames at each inner window edge, ``(overlap - fade) // 2``."""
        return (self.overlap - self.fade) // 2

    def starts(self, n_frames: int) -> list[int]:
        """Window start frames for a signal of ``n_frames`` frames (a multiple of 4).

        Regular windows at ``k * hop`` while they end before the signal does, then one window aligned to the end;
        a signal of at most ``window`` frames is one window ``[0, n_frames)``.
        """
        if n_frames <= self.window:
            return [0]
        out = []
        s = 0
        while s + self.window < n_frames:
            out.append(s)
            s += self.hop
        out.append(n_frames - self.window)
        return out

    def crossover(self, start: int) -> int:
        """Frame at the centre of the ramp between the window starting at ``start`` and the next one."""
        return start + self.window - self.overlap // 2

    def seam_mask(self, n_frames: int, margin: int = 8) -> np.ndarray:
        """Boolean mask of the frames within ``fade / 2 + margin`` of a crossover of a file of ``n_frames``:
        "near a seam" for the seam-error measurement (benchmarks/bench_long.py) and its test."""
        near = np.zeros(n_frames, bool)
        for start, _, _, last in self.plan(n_frames):
            if not last:
                c = self.crossover(start)
                near[max(c - self.fade // 2 - margin, 0):c + self.fade // 2 + margin] = True
        return near

    def weight(self, start: int, length: int, prev: int | None, last: bool, scale: int = 1) -> np.ndarray:
        """Weight of one window over its ``length * scale`` points (``scale`` points per frame).

        Parameters
        ----------
        start, length : int
            The window's first frame and length in frames.
        prev : int or None
            Start of the previous window (None for the first): a rising ramp centred at ``crossover(prev)``.
        last : bool
            No falling ramp at the end (else one centred at ``crossover(start)``).
        scale : int
            Points per frame (1 for mels, the hop length for waveforms).
        """
        out = np.ones(length * scale, dtype=np.float64)
        f = self.fade * scale
        r = ramp(f)
        if prev is not None:
            lo = (self.crossover(prev) - start) * scale - f // 2
            out[:lo] = 0.0
            out[lo:lo + f] = r
        if not last:
            lo = (self.crossover(start) - start) * scale - f // 2
            out[lo:lo + f] *= 1.0 - r
            out[lo + f:] = 0.0
        return out

    def plan(self, n_frames: int) -> list[tuple[int, int, int | None, bool]]:
        """``(start, length, prev, last)`` of every window for ``n_frames`` frames (see :meth:`starts`)."""
        starts = self.starts(n_frames)
        if len(starts) == 1:
            return [(0, n_frames, None, True)]
        return [(s, self.window, None if k == 0 else starts[k - 1], k == len(starts) - 1)
                for k, s in enumerate(starts)]


@dataclasses.dataclass
class Piece:
    """Finished output of :class:`RoundTrip` for frames ``[start, start + n)``.

    Attributes
    ----------
    start : int
        First frame.
    mels : dict of str to numpy.ndarray
        Joined log-mel ``(n, n_mels)`` per stage (``mel_projection`` is the input log-mel).
    waves : dict of str to numpy.ndarray
        Vocoded waveform ``(n * hop,)`` per vocoded stage (float32).
    """

    start: int
    mels: dict
    waves: dict

    @property
    def n(self) -> int:
        return next(iter(self.mels.values())).shape[0]


class RoundTrip:
    """Block-wise round trip of one recording: push samples, get finished :class:`Piece` s.

    Parameters
    ----------
    vae : vaelib.models.LatentVAE
    vocoder : callable or None
        ``vocoder(mel) -> wave``; ``None`` gives mels only (``Piece.waves`` empty).
    enhancers : list or dict, optional
        As :func:`vaelib.pipeline.reconstruct` takes them (any registry name, with parameters).
    seed : int
        Seed of stochastic enhancers; window ``k`` uses ``seed + k``.
    windowing : Windowing, optional
        The window plan (default: 1024-frame windows, 128 frames overlap, 64-frame ramp).
    vocode : sequence of str, optional
        Stages to vocode (default: every stage). Mels of every stage are always returned.
    cfg : MelConfig, optional
        Front end (default: the VAE's).
    allow_foreign_restorer : bool
        Apply a restorer trained for another VAE anyway (refused here, once, by default:
        :func:`vaelib.enhance.check_restorers`).

    Notes
    -----
    Samples are taken as they are: normalise the whole recording first (:func:`reconstruct_long` does; the
    training rule needs the peak of the whole file). Output for a frame is final :attr:`latency_frames` frames of
    input after it (plus compute time); :meth:`flush` pads the end with zeros to a multiple of 4 frames and
    returns the rest. The windows and chunks are exactly those of :meth:`Windowing.plan` for the whole input, so
    any split of the input into blocks gives the same output.
    """

    def __init__(self, vae, vocoder=None, enhancers=None, *, seed: int = 0, windowing: Windowing | None = None,
                 vocode=None, cfg: MelConfig | None = None, allow_foreign_restorer: bool = False):
        from .enhance import check_restorers
        from .pipeline import parse_enhancers

        self.vae, self.vocoder = vae, vocoder
        self.enhancers = parse_enhancers(enhancers)
        check_restorers(self.enhancers, vae, allow_foreign_restorer)  # once here, not per window
        self.seed = int(seed)
        self.win = windowing or Windowing()
        self.cfg = cfg or vae.mel_config
        self._vocode_names = None if vocode is None else list(vocode)
        self.hop = self.cfg.hop_length
        self.stages: list[str] | None = None  # set by the first window
        self.n_windows = 0
        self._buf = np.zeros(0, dtype=np.float32)  # input samples from frame _buf0 on
        self._buf0 = 0
        self._n_in = 0  # samples pushed
        self._k = 0  # next regular VAE window
        self._j = 0  # next regular vocoder chunk
        self._acc: dict = {}  # stage -> weighted mel sum (float64) from frame _acc0 on
        self._acc0 = 0
        self._store: dict = {}  # stage -> final mel (float32) from frame _store0 on
        self._store0 = 0
        self._final = 0  # mel frames < _final are final
        self._wacc: dict = {}  # stage -> weighted wave sum (float64) from frame _wacc0 on
        self._wacc0 = 0
        self._ready = 0  # frames < _ready can be emitted
        self._emitted = 0
        self._n_frames: int | None = None
        self._done = False

    @property
    def latency_frames(self) -> int:
        """Most frames of input that can arrive after a frame before its output is emitted (algorithmic latency).

        Output comes in pieces of about ``hop`` frames. With a vocoder, vocoder chunk ``j`` runs once VAE window
        ``j + 1`` has, i.e. once the input passes ``s_{j+1} + window``; the first frame of the first piece waits
        longest: ``window + hop = 2 * hop + overlap`` frames (19.2 s with the defaults; later pieces' first frames
        ``(overlap - fade) / 2`` frames less, their last frames about ``hop`` less). Mels only: ``window``
        frames. Compute time comes on top.
        """
        w = self.win
        return w.window + w.hop if self.vocoder is not None else w.window

    @property
    def latency_samples(self) -> int:
        """:attr:`latency_frames` in samples."""
        return self.latency_frames * self.hop

    # ------------------------------------------------------------------------------------------------------
    def push(self, samples) -> list[Piece]:
        """Take more input samples (1-D float, any block size) and return the pieces that became final."""
        if self._done:
            raise RuntimeError("this RoundTrip was flushed; start a new one")
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        if x.size and not np.isfinite(x).all():
            raise ValueError("input block holds NaN or Inf samples")
        self._buf = np.concatenate([self._buf, x]) if self._buf.size else x  # only read, never written
        self._n_in += x.size
        w = self.win
        # regular window k exists once input beyond its end has arrived (then it is not the last window)
        while self._n_in > (self._k * w.hop + w.window) * self.hop:
            s = self._k * w.hop
            self._run_window(s, w.window, None if self._k == 0 else s - w.hop, last=False)
            self._k += 1
            self._set_final(w.crossover(s) - w.fade // 2)
            self._vocode_ready()
        return self._emit()

    def flush(self) -> list[Piece]:
        """End of input: pad to a multiple of 4 frames, run the end-aligned last window, return the rest."""
        if self._done:
            return []
        self._done = True
        if self._n_in == 0:
            return []
        n = pad_to_multiple(np.zeros(self._n_in, dtype=np.float32), self.cfg).shape[0]
        if n > self._n_in:
            self._buf = np.concatenate([self._buf, np.zeros(n - self._n_in, dtype=np.float32)])
        self._n_frames = n_frames = n // self.hop
        start, length, prev, last = self.win.plan(n_frames)[-1]
        self._run_window(start, length, prev, last)
        self._set_final(n_frames)
        self._vocode_ready()
        return self._emit()

    # ------------------------------------------------------------------------------------------------------
    def _run_window(self, start, length, prev, last):
        import torch

        from .engine import window_stages

        a = (start - self._buf0) * self.hop
        seg = torch.from_numpy(np.ascontiguousarray(self._buf[a:a + length * self.hop]))[None]
        out = window_stages(self.vae, seg, self.enhancers, [self.seed + self.n_windows], self.cfg)[0]
        rec = {s: np.ascontiguousarray(m[0, 0].float().cpu().numpy()) for s, m in out.items()}
        self.n_windows += 1
        if self.stages is None:
            self.stages = list(rec)
            missing = [s for s in (self._vocode_names or []) if s not in self.stages]
            if missing:
                raise ValueError(f"cannot vocode unknown stage(s) {missing}; the stages are {self.stages}")
            self._acc = {s: np.zeros((0, self.cfg.n_mels)) for s in self.stages}
            self._store = {s: np.zeros((0, self.cfg.n_mels), dtype=np.float32) for s in self.stages}
        wt = self.win.weight(start, length, prev, last)
        lo = max(start, self._acc0)  # frames before _acc0 are final; this window's weight there is 0
        end = start + length
        for s in self.stages:
            self._acc[s] = add_weighted(self._acc[s], self._acc0, lo, start, end, wt, rec[s])
        if not last:  # every later window starts after this one
            drop = start + 1 - self._buf0
            self._buf = self._buf[drop * self.hop:]
            self._buf0 += drop

    def _set_final(self, upto):
        """Mel frames ``< upto`` are final: move them from the accumulator to the store."""
        k = upto - self._acc0
        for s in self.stages:
            self._store[s] = np.concatenate([self._store[s], self._acc[s][:k].astype(np.float32)])
            self._acc[s] = self._acc[s][k:]
        self._acc0 = self._final = upto

    def _vocode_ready(self):
        """Vocode every chunk (same plan as the VAE windows) whose mel frames are all final."""
        w = self.win
        if self.vocoder is None:
            self._ready = self._final
        else:
            while True:
                s = self._j * w.hop
                if self._n_frames is None:  # regular chunk j: not the last, and its mel is final
                    if not (self._n_in > (s + w.window) * self.hop and s + w.window <= self._final):
                        break
                    self._vocode_chunk(s, w.window, None if self._j == 0 else s - w.hop, last=False)
                    self._j += 1
                    self._ready = w.crossover(s) - w.fade // 2
                    continue
                plan = w.plan(self._n_frames)
                for start, length, prev, last in plan[self._j:]:
                    self._vocode_chunk(start, length, prev, last)
                self._j = len(plan)
                self._ready = self._n_frames
                break
        self._trim_store()

    def _vocode_chunk(self, start, length, prev, last):
        import torch

        from .pipeline import vocode

        names = self._vocode_names if self._vocode_names is not None else self.stages
        if not names:
            return
        a = start - self._store0
        mels = torch.stack([torch.from_numpy(np.ascontiguousarray(self._store[s][a:a + length]))[None]
                            for s in names])
        out = vocode(self.vocoder, mels)
        wt = self.win.weight(start, length, prev, last, scale=self.hop)
        lo = max(start, self._wacc0) * self.hop  # samples already emitted have weight 0 here
        end = (start + length) * self.hop
        base = self._wacc0 * self.hop
        for i, s in enumerate(names):
            self._wacc[s] = add_weighted(self._wacc.get(s, np.zeros(0)), base, lo, start * self.hop, end, wt, out[i])

    def _emit(self) -> list[Piece]:
        n = self._ready - self._emitted
        if n <= 0:
            return []
        a = self._emitted - self._store0
        mels = {s: self._store[s][a:a + n].copy() for s in self.stages}
        waves = {}
        for s, acc in self._wacc.items():
            k = (self._ready - self._wacc0) * self.hop
            waves[s] = acc[:k].astype(np.float32)
            self._wacc[s] = acc[k:]
        self._wacc0 = self._ready
        piece = Piece(self._emitted, mels, waves)
        self._emitted = self._ready
        self._trim_store()
        return [piece]

    def _trim_store(self):
        """Drop final mels that were emitted and that no later vocoder chunk reads (the end-aligned last chunk
        starts after the last regular one)."""
        keep = self._emitted
        if self.vocoder is not None and self._n_frames is None:
            keep = min(keep, max(0, (self._j - 1) * self.win.hop + 1))
        k = keep - self._store0
        if k > 0:
            for s in self.stages:
                self._store[s] = self._store[s][k:]
            self._store0 = keep


def reconstruct_long(wave, vae, vocoder=None, enhancers=None, *, seed: int = 0, windowing: Windowing | None = None,
                     normalise: bool = True, vocode=None, cfg: MelConfig | None = None, block: int | None = None,
                     allow_foreign_restorer: bool = False):
    """The round trip of a recording of any length, in windows (see the module docstring).

    A recording of at most one window gives exactly :func:`vaelib.pipeline.reconstruct`'s stages.

    Parameters
    ----------
    wave : array_like
        Mono waveform at the front end's rate.
    vae, vocoder, enhancers, seed, windowing, vocode, cfg, allow_foreign_restorer
        As for :class:`RoundTrip` (``vocoder=None``: mels only).
    normalise : bool
        Apply the training normalisation (mean removed, peak 0.5) over the whole recording first.
    block : int, optional
        Push the input in blocks of this many samples (default: 4 window hops, so that finished output leaves the
        processor as it goes; any block size gives the same result).

    Returns
    -------
    vaelib.pipeline.Reconstruction
        Stages ``input`` (normalised padded waveform and the input log-mel), ``mel_projection``, ``vae`` and one
        per enhancer; ``latent`` is None (not kept for long files); ``n_windows`` attribute added.
    """
    from .pipeline import Reconstruction, Stage, _to_wave_np

    x = _to_wave_np(wave)
    cfg = cfg or vae.mel_config
    gain = 1.0
    if normalise:
        x, gain = normalize(x)
    x = pad_to_multiple(x, cfg)  # padding here (not in flush) lets the input double as the reference waveform
    rt = RoundTrip(vae, vocoder, enhancers, seed=seed, windowing=windowing, vocode=vocode, cfg=cfg,
                   allow_foreign_restorer=allow_foreign_restorer)
    mels: dict = {}
    waves: dict = {}
    win = windowing or Windowing()
    step = block or 4 * win.hop * cfg.hop_length  # finished output is collected every few windows

    def take(pieces):  # write each finished piece into preallocated outputs (no list of pieces, no concatenation)
        for p in pieces:
            for name, m in p.mels.items():
                if name not in mels:
                    mels[name] = np.empty((x.shape[0] // cfg.hop_length, m.shape[1]), dtype=np.float32)
                mels[name][p.start:p.start + m.shape[0]] = m
            for name, w in p.waves.items():
                if name not in waves:
                    waves[name] = np.empty(x.shape[0], dtype=np.float32)
                waves[name][p.start * cfg.hop_length:p.start * cfg.hop_length + w.shape[0]] = w

    for i in range(0, x.shape[0], step):
        take(rt.push(x[i:i + step]))
    take(rt.flush())
    stages = {}
    for s in rt.stages:
        params = {}
        if s in rt.enhancers:
            method, p = rt.enhancers[s]
            params = {"method": method, **p}
        stages[s] = Stage(s, mels[s], waves.get(s), params)
    stages = {"input": Stage("input", stages["mel_projection"].mel, x), **stages}
    rec = Reconstruction(wave=x, gain=float(gain), latent=None, stages=stages, sr=cfg.sr)
    rec.n_windows = rt.n_windows
    return rec

