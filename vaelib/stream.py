"""Streaming: feed audio blocks, get reconstructed blocks back, with a stated latency.

:class:`Streamer` wraps :class:`vaelib.longaudio.RoundTrip` — the same windows of the training length, the same
mel-domain crossfade and the same vocoder chunks as ``vaelib eval`` uses for long files — so the concatenated
output of a stream equals :func:`vaelib.longaudio.reconstruct_long` of the whole signal (``normalise=False``),
whatever the block sizes (tested).

Latency: output comes in pieces of ``hop`` frames; a sample is emitted at most :attr:`Streamer.latency_s` after
it arrived (``window + hop`` frames: 19.2 s with the default 10.24 s windows; about ``hop`` frames less for the
last sample of a piece), plus the compute time of one window and one vocoder chunk. Smaller windows lower it
(``Windowing(256, 32, 16)``: 4.8 s) at the price of windows shorter than the model was trained on.
Real-time factors are in ``benchmarks/README.md``.

Low latency: ``Streamer(vae, vocoder, low_latency="low")`` (or a :class:`LowLatency`) runs short VAE windows —
past context + a new chunk + a little look-ahead, only the chunk kept and crossfaded to its neighbours — and
vocodes chunk by chunk (:class:`LowLatencyRoundTrip`), so the latency is the chunk plus the look-aheads, not
window + hop. **Recommended: the ``"low"`` preset** (``LowLatency()``: VAE chunk 20 frames, context 80,
look-ahead 8, fade 8; vocoder context 16, look-ahead 4, fade 8): **0.40 s** algorithmic latency; measured on 60 s
of the demo corpus with the bundled model and Griffin-Lim, relative to the offline round trip of the same audio,
high-band mel LSD 0.956× (decoded mel) and 1.020× (vocoded waveform), mel L1 0.982× / 1.007×, at a real-time
factor of 0.13 on one CPU thread (``benchmarks/bench_stream.py``; the other presets, ``"lowest"`` 0.24 s and
``"safe"`` 0.8 s, are in :data:`LOW_LATENCY_PRESETS` and the table in ``benchmarks/README.md``). The bundled VAE
was trained on 64-frame crops, so short windows suit it; the AudioLDM2 VAE (1024-frame crops) is not measured
here. The low-latency output is not equal to :func:`~vaelib.longaudio.reconstruct_long` (other windows), has the
input's length after :meth:`Streamer.flush`, and does not depend on the block sizes (tested).

Input: each block is mono, 1-D (``(n,)``; ``(n, 1)`` and ``(1, n)`` are taken as mono too). Float blocks are used
as they are; integer PCM blocks are scaled to [-1, 1) as soundfile reads them: ``int8``/``int16``/``int32``/``int64``
divided by 2**(bits-1), ``uint8`` (8-bit WAV) as ``(x - 128) / 128``. Multichannel blocks (``(2, n)``, ``(n, 2)``)
are refused rather than guessed at (flattening interleaves or concatenates channels): downmix first, e.g.
``block.mean(axis=0)``. Blocks holding NaN/Inf, booleans, complex or other unsigned types are refused; each
refusal is one line (``ValueError`` / ``TypeError``).

Level: the training normalisation (mean removed, peak 0.5) needs the whole signal, which a stream does not have.
Pass ``gain`` so that the stream peaks near 0.5 (e.g. ``0.5 / expected_peak``); the output is divided by it again.

Example::

    from vaelib.stream import Streamer
    s = Streamer(vae, vocoder, gain=0.5 / 0.9)
    for block in microphone_blocks():        # numpy float32 blocks of any size
        play(s.process(block))               # may be empty until the first window is done
    play(s.flush())

    s = Streamer(vae, vocoder, gain=0.5 / 0.9, low_latency="low")   # 0.4 s instead of 19.2 s
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Iterable, Iterator

import numpy as np

from .longaudio import RoundTrip, Windowing, add_weighted, ramp

__all__ = ["Streamer", "stream", "as_mono_block", "LowLatency", "LowLatencyRoundTrip", "LOW_LATENCY_PRESETS"]


class Streamer:
    """Block-wise round trip of one stage (``"vae"`` by default, or an enhancer's label).

    Default: training-length windows, output equal to :func:`vaelib.longaudio.reconstruct_long` (19.2 s latency).
    ``low_latency="low"`` (recommended low-latency setting): 0.40 s, high-band mel LSD at most 2 % above offline
    (0.956× decoded, 1.020× vocoded), RTF 0.13 on one thread (module docstring, ``benchmarks/README.md``).

    Parameters
    ----------
    vae : vaelib.models.LatentVAE
    vocoder : callable
        ``vocoder(mel) -> wave`` (:func:`vaelib.load_vocoder`).
    enhancers : list or dict, optional
        As :func:`vaelib.pipeline.reconstruct` takes them; only ``stage`` is vocoded.
    stage : str
        The stage to return: ``"vae"``, ``"mel_projection"`` or an enhancer's label.
    gain : float
        Input is multiplied by ``gain`` before the model and the output divided by it.
    seed : int
        Seed of stochastic enhancers (window ``k`` uses ``seed + k``).
    windowing : vaelib.longaudio.Windowing, optional
        Window plan (default: the training length, 1024 frames).
    low_latency : LowLatency or str, optional
        Low-latency mode instead of the training-length windows: a :class:`LowLatency` or a preset name of
        :data:`LOW_LATENCY_PRESETS` (``"low"``: 0.4 s, the recommended one). Not with ``windowing``.
    keep_mel : bool
        Keep the decoded log-mel of ``stage`` as it becomes final (:attr:`mel`), e.g. to score the stream.
    """

    def __init__(self, vae, vocoder, enhancers=None, *, stage: str = "vae", gain: float = 1.0, seed: int = 0,
                 windowing: Windowing | None = None, low_latency: LowLatency | str | None = None,
                 keep_mel: bool = False):
        if vocoder is None:
            raise ValueError("Streamer needs a vocoder (vaelib.load_vocoder('auto'))")
        if (isinstance(gain, (bool, np.bool_)) or not isinstance(gain, numbers.Real) or not math.isfinite(gain)
                or gain <= 0):
            raise ValueError(f"gain must be a finite positive number, e.g. 0.5 / expected_peak (got {gain!r})")
        if low_latency is not None and windowing is not None:
            raise ValueError("pass windowing (training-length windows) or low_latency, not both")
        self.stage = stage
        self.gain = float(gain)
        self.keep_mel = bool(keep_mel)
        self._mels: list = []
        if low_latency is not None:
            self.low_latency = _low_latency(low_latency)
            self._rt = LowLatencyRoundTrip(vae, vocoder, self.low_latency, enhancers, stage=stage, seed=seed,
                                           keep_mel=keep_mel)
            self.sr = self._rt.cfg.sr
            return
        self.low_latency = None
        self._rt = RoundTrip(vae, vocoder, enhancers, seed=seed, windowing=windowing, vocode=[stage])
        names = {"mel_projection", "vae", *self._rt.enhancers}
        if stage not in names:
            raise ValueError(f"stage {stage!r} is not produced; choose one of {sorted(names)}")
        self.sr = self._rt.cfg.sr

    @property
    def latency_samples(self) -> int:
        """Longest wait, in samples of input, between a sample arriving and its output being returned."""
        return self._rt.latency_samples

    @property
    def latency_s(self) -> float:
        """:attr:`latency_samples` in seconds."""
        return self.latency_samples / self.sr

    @property
    def mel(self) -> np.ndarray:
        """Decoded log-mel ``(frames, n_mels)`` of the stage that is final so far (``keep_mel=True``), in the
        model's scale (the input times ``gain``)."""
        if not self.keep_mel:
            raise RuntimeError("construct the Streamer with keep_mel=True to keep the mel")
        if self.low_latency is not None:
            return self._rt.mel
        return np.concatenate(self._mels) if self._mels else np.zeros((0, self._rt.cfg.n_mels), dtype=np.float32)

    def _out(self, pieces) -> np.ndarray:
        if isinstance(pieces, np.ndarray):  # the low-latency processor returns samples
            return (pieces / self.gain).astype(np.float32)
        if self.keep_mel:
            self._mels.extend(p.mels[self.stage] for p in pieces)
        if not pieces:
            return np.zeros(0, dtype=np.float32)
        return (np.concatenate([p.waves[self.stage] for p in pieces]) / self.gain).astype(np.float32)

    def process(self, block) -> np.ndarray:
        """Take one block of samples (mono, any length; see the module docstring for dtypes and shapes) and return
        the output that became final (maybe empty), float32 in the input's [-1, 1) scale."""
        return self._out(self._rt.push(as_mono_block(block) * np.float32(self.gain)))

    def flush(self) -> np.ndarray:
        """End of the stream: return the rest. Training-length windows: the input is padded to a multiple of 4
        frames and the output has the padded length; low-latency mode: the output has the input's length."""
        return self._out(self._rt.flush())


def as_mono_block(block) -> np.ndarray:
    """One input block as a 1-D float32 array, integer PCM scaled to [-1, 1); anything ambiguous is refused.

    ``int8/16/32/64``: ``x / 2**(bits-1)``; ``uint8``: ``(x - 128) / 128`` (8-bit WAV is offset binary);
    float: as is. Shapes ``(n,)``, ``(n, 1)``, ``(1, n)``. See the module docstring.
    """
    if hasattr(block, "detach"):  # a torch tensor
        block = block.detach().cpu().numpy()
    a = np.asarray(block)
    if a.dtype == np.bool_ or a.dtype.kind not in "iuf":
        raise TypeError(f"audio block must hold float or integer PCM samples (got dtype {a.dtype})")
    shape = a.shape
    if a.ndim == 2 and 1 in shape:
        a = a.reshape(-1)
    if a.ndim != 1:
        raise ValueError(f"audio block must be mono, 1-D (samples,); got shape {shape} — downmix multichannel audio "
                         "first, e.g. block.mean(axis=0) for (channels, samples) or block.mean(axis=1) for "
                         "(samples, channels)")
    if a.dtype.kind == "i":
        return (a.astype(np.float64) / float(2 ** (8 * a.dtype.itemsize - 1))).astype(np.float32)
    if a.dtype.kind == "u":
        if a.dtype != np.uint8:
            raise TypeError(f"unsigned {a.dtype} audio is ambiguous; pass float32 in [-1, 1) or signed PCM (int16)")
        return ((a.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes Inf, refused just below
        out = a.astype(np.float32, copy=False)
    if not np.isfinite(out).all():
        raise ValueError("audio block holds NaN or Inf samples (float32 overflow included); repair the input")
    return out


def stream(blocks: Iterable, vae, vocoder, **kwargs) -> Iterator[np.ndarray]:
    """Generator form of :class:`Streamer`: yields a reconstructed block for every non-empty output, then the rest.

    ``kwargs`` go to :class:`Streamer` (``enhancers``, ``stage``, ``gain``, ``seed``, ``windowing``,
    ``low_latency``).
    """
    s = Streamer(vae, vocoder, **kwargs)
    for block in blocks:
        out = s.process(block)
        if out.size:
            yield out
    out = s.flush()
    if out.size:
        yield out


# ----------------------------------------------------------------------------------------------------------
# low-latency mode
# ----------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class LowLatency:
    """Settings of the low-latency stream (frames of the front end: 10 ms at 16 kHz); validated here, only here.

    VAE window ``k`` is ``context`` frames of past + the new chunk ``[k·chunk, (k+1)·chunk)`` + ``lookahead``
    frames of future; only the chunk's frames are kept, joined to the neighbours' by a raised-cosine crossfade of
    ``fade`` frames centred on the chunk boundary (0: a hard cut). The vocoder then runs on the mel chunk by
    chunk: ``voc_context`` frames of past mel + the chunk + ``voc_lookahead`` frames of future mel, the waveforms
    of neighbouring chunks crossfaded over ``voc_fade`` frames; Griffin-Lim starts each chunk from the phases the
    previous chunk converged to on the frames they share, so the crossfaded waveforms agree in phase
    (:class:`LowLatencyRoundTrip`).

    Attributes
    ----------
    chunk : int
        New frames per VAE window (multiple of 4).
    context : int
        Past frames in each VAE window (multiple of 4; the first window has none).
    lookahead : int
        Future frames in each VAE window (multiple of 4).
    fade : int
        Mel crossfade between chunks, frames (even; ``fade / 2 <= context``, ``fade / 2 <= lookahead``,
        ``fade <= chunk``).
    voc_context : int
        Past mel frames the vocoder sees before each chunk's crossfade (``voc_context + voc_fade >= 4``).
    voc_lookahead : int
        Future mel frames the vocoder sees after the centre of each chunk's closing crossfade
        (``voc_fade / 2 <= voc_lookahead``).
    voc_fade : int
        Waveform crossfade between vocoder chunks, frames (even, >= 2).

    Notes
    -----
    Algorithmic latency (:attr:`latency_frames`): ``chunk + lookahead + fade/2 + voc_lookahead + voc_fade/2``.
    Constraint ``chunk >= fade/2 + voc_lookahead + voc_fade/2`` keeps every chunk's output non-empty, and
    ``chunk >= fade/2 + 4`` gives the vocoder at least 4 frames (one STFT window) at a time.
    """

    chunk: int = 20
    context: int = 80
    lookahead: int = 8
    fade: int = 8
    voc_context: int = 16
    voc_lookahead: int = 4
    voc_fade: int = 8

    def __post_init__(self):
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"LowLatency.{f.name} must be a non-negative integer number of frames (got {v!r})")
        c, x, la, fd = self.chunk, self.context, self.lookahead, self.fade
        vx, vla, vf = self.voc_context, self.voc_lookahead, self.voc_fade
        if c < 4 or c % 4 or x % 4 or la % 4:
            raise ValueError(f"LowLatency chunk ({c}), context ({x}) and lookahead ({la}) must be multiples of 4 "
                             "frames (the VAE's time stride), chunk >= 4")
        if fd % 2 or fd > c or fd // 2 > min(x, la):
            raise ValueError(f"LowLatency fade ({fd}) must be even, <= chunk ({c}) and fade/2 <= context ({x}) and "
                             f"<= lookahead ({la})")
        if vf < 2 or vf % 2 or vf // 2 > vla or vx + vf < 4:
            raise ValueError(f"LowLatency voc_fade ({vf}) must be even, >= 2, voc_fade/2 <= voc_lookahead ({vla}) "
                             f"and voc_context + voc_fade >= 4 (got voc_context={vx})")
        if c < max(fd // 2 + vla + vf // 2, fd // 2 + 4):
            raise ValueError(f"LowLatency chunk ({c}) must be >= fade/2 + voc_lookahead + voc_fade/2 "
                             f"({fd // 2 + vla + vf // 2}) and >= fade/2 + 4 ({fd // 2 + 4})")

    @property
    def latency_frames(self) -> int:
        """Algorithmic latency in frames, ``chunk + lookahead + fade/2 + voc_lookahead + voc_fade/2``."""
        return self.chunk + self.lookahead + self.fade // 2 + self.voc_lookahead + self.voc_fade // 2

    @property
    def window(self) -> int:
        """VAE window length in frames (``context + chunk + lookahead``; shorter at the start and the end)."""
        return self.context + self.chunk + self.lookahead

    def describe(self) -> str:
        """One line: ``chunk/context/lookahead/fade + vocoder context/lookahead/fade`` in frames."""
        return (f"VAE {self.chunk}/{self.context}/{self.lookahead}/{self.fade}, "
                f"vocoder {self.voc_context}/{self.voc_lookahead}/{self.voc_fade}")


#: Named low-latency settings (``Streamer(..., low_latency="low")``); latencies at 16 kHz.
LOW_LATENCY_PRESETS = {
    "low": LowLatency(),  # 0.4 s: the recommended setting (benchmarks/README.md)
    "lowest": LowLatency(chunk=12, context=80, lookahead=4, fade=4, voc_context=16, voc_lookahead=4, voc_fade=4),
    "safe": LowLatency(chunk=48, context=160, lookahead=16, fade=8, voc_context=32, voc_lookahead=8, voc_fade=8),
}


def _low_latency(value) -> LowLatency:
    if isinstance(value, LowLatency):
        return value
    if isinstance(value, str) and value in LOW_LATENCY_PRESETS:
        return LOW_LATENCY_PRESETS[value]
    raise ValueError(f"low_latency must be a LowLatency or one of {sorted(LOW_LATENCY_PRESETS)} (got {value!r})")


class LowLatencyRoundTrip:
    """Block-wise low-latency round trip of one stage: push samples, get final waveform samples back.

    Parameters
    ----------
    vae : vaelib.models.LatentVAE
    vocoder : callable
        ``vocoder(mel) -> wave``.
    settings : LowLatency
    enhancers : list or dict, optional
        As :func:`vaelib.pipeline.reconstruct` takes them.
    stage : str
        The stage to vocode and return.
    seed : int
        Seed of stochastic enhancers (window ``k`` uses ``seed + k``).
    cfg : MelConfig, optional
        Front end (default: the VAE's).
    keep_mel : bool
        Keep the final log-mel of ``stage`` (:attr:`mel`), e.g. to score the stream.
    allow_foreign_restorer : bool
        As for :class:`vaelib.longaudio.RoundTrip`.

    Notes
    -----
    With ``s_k = k·chunk``, VAE window ``k`` covers frames ``[s_k − context, s_k + chunk + lookahead)`` (clipped to
    the signal) and runs as soon as that input has arrived; its mel weight rises along a ramp of ``fade`` frames
    centred at ``s_k`` and falls along one centred at ``s_k + chunk`` (weights of neighbours sum to 1), so mel
    frames ``< F_k = s_k + chunk − fade/2`` are final after it. Vocoder chunk ``k`` then vocodes the final mel
    ``[c_{k-1} − voc_fade/2 − voc_context, F_k)`` with ``c_k = F_k − voc_lookahead`` and keeps the samples
    between ramps of ``voc_fade`` frames centred at ``c_{k-1}`` and ``c_k``: output before ``c_k − voc_fade/2``
    is final. Griffin-Lim (:class:`vaelib.models.GriffinLim`, its own iterations and momentum) starts chunk ``k``
    from the unit phases of chunk ``k - 1``'s result on the frames they share and from its seeded random phases
    after them; other vocoders (HiFi-GAN) are called on the span as it is. :meth:`flush` pads the input to a
    multiple of 4 frames (windows and chunks are clipped there) and returns the rest, cut to the input's length.
    Windows and chunks depend only on sample positions, so any split of the input gives the same output.
    """

    def __init__(self, vae, vocoder, settings: LowLatency, enhancers=None, *, stage: str = "vae", seed: int = 0,
                 cfg=None, keep_mel: bool = False, allow_foreign_restorer: bool = False):
        from .enhance import check_restorers
        from .pipeline import parse_enhancers

        if vocoder is None:
            raise ValueError("LowLatencyRoundTrip needs a vocoder (vaelib.load_vocoder('auto'))")
        self.vae, self.vocoder, self.ll = vae, vocoder, _low_latency(settings)
        self.enhancers = parse_enhancers(enhancers)
        check_restorers(self.enhancers, vae, allow_foreign_restorer)  # once here, not per window
        names = {"mel_projection", "vae", *self.enhancers}
        if stage not in names:
            raise ValueError(f"stage {stage!r} is not produced; choose one of {sorted(names)}")
        self.stage, self.seed = stage, int(seed)
        self.cfg = cfg or vae.mel_config
        self.hop = self.cfg.hop_length
        self.n_windows = 0
        self._buf = np.zeros(0, dtype=np.float32)  # input samples from frame _buf0 on
        self._buf0 = 0
        self._n_in = 0
        self._k = 0  # next VAE window
        self._acc = np.zeros((0, self.cfg.n_mels))  # weighted mel sum from frame _final on
        self._mel = np.zeros((0, self.cfg.n_mels), dtype=np.float32)  # final mel from frame _mel0 to _final
        self._mel0 = 0
        self._final = 0
        self._j = 0  # next vocoder chunk
        self._wacc = np.zeros(0)  # weighted wave sum from sample _emitted on
        self._ready = 0  # output samples < _ready are final
        self._emitted = 0
        self._n_frames: int | None = None
        self._gl_prev = None  # Griffin-Lim: (first frame, end frame, unit phases) of the previous chunk
        self._done = False
        self.keep_mel = bool(keep_mel)
        self._mel_kept: list = []

    @property
    def latency_frames(self) -> int:
        """Algorithmic latency in frames (:attr:`LowLatency.latency_frames`); compute time comes on top."""
        return self.ll.latency_frames

    @property
    def latency_samples(self) -> int:
        """:attr:`latency_frames` in samples: no sample waits longer for its output (tested)."""
        return self.latency_frames * self.hop

    @property
    def mel(self) -> np.ndarray:
        """Final log-mel ``(frames, n_mels)`` of the stage so far (``keep_mel=True``; the padded length after
        :meth:`flush`)."""
        if not self.keep_mel:
            raise RuntimeError("construct with keep_mel=True to keep the mel")
        return (np.concatenate(self._mel_kept) if self._mel_kept
                else np.zeros((0, self.cfg.n_mels), dtype=np.float32))

    # ------------------------------------------------------------------------------------------------------
    def push(self, samples) -> np.ndarray:
        """Take more input samples (1-D float32, any block size) and return the output that became final."""
        if self._done:
            raise RuntimeError("this stream was flushed; start a new one")
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        if x.size and not np.isfinite(x).all():
            raise ValueError("input block holds NaN or Inf samples")
        self._buf = np.concatenate([self._buf, x]) if self._buf.size else x
        self._n_in += x.size
        ll = self.ll
        while self._n_in >= (self._k * ll.chunk + ll.chunk + ll.lookahead) * self.hop:
            self._run_window(self._k)
            self._k += 1
            self._vocode_ready()
        return self._emit()

    def flush(self) -> np.ndarray:
        """End of input: pad to a multiple of 4 frames, run the remaining windows and chunks, return the rest
        (the whole output then has the input's length)."""
        from .audio import pad_to_multiple

        if self._done:
            return np.zeros(0, dtype=np.float32)
        self._done = True
        if self._n_in == 0:
            return np.zeros(0, dtype=np.float32)
        n = pad_to_multiple(np.zeros(self._n_in, dtype=np.float32), self.cfg).shape[0]
        if n > self._n_in:
            self._buf = np.concatenate([self._buf, np.zeros(n - self._n_in, dtype=np.float32)])
        self._n_frames = n // self.hop
        while self._k * self.ll.chunk < self._n_frames:
            self._run_window(self._k)
            self._k += 1
        self._vocode_ready()
        out = self._emit()
        return out[:max(0, self._n_in - (self._emitted - out.size))]

    # ------------------------------------------------------------------------------------------------------
    def _run_window(self, k):
        from .pipeline import reconstruct

        ll, n = self.ll, self._n_frames
        s = k * ll.chunk
        a = max(0, s - ll.context)
        full = s + ll.chunk + ll.lookahead
        b = full if n is None else min(full, n)
        last = n is not None and s + ll.chunk >= n
        seg = self._buf[(a - self._buf0) * self.hop:(b - self._buf0) * self.hop]
        rec = reconstruct(seg, self.vae, None, self.enhancers, cfg=self.cfg, seed=self.seed + k, normalise=False,
                          vocode=False, allow_foreign_restorer=True)  # checked in __init__
        self.n_windows += 1
        wt = _weight(full - a, s - a if k else None, None if last else s + ll.chunk - a, ll.fade, 1)[:b - a]
        lo = self._final  # frames before it are final; this window's weight there is 0
        acc = add_weighted(self._acc, lo, lo, a, b, wt, rec[self.stage].mel)
        upto = n if last else s + ll.chunk - ll.fade // 2
        self._mel = np.concatenate([self._mel, acc[:upto - lo].astype(np.float32)])
        if self.keep_mel:
            self._mel_kept.append(self._mel[lo - self._mel0:])
        self._acc = acc[upto - lo:]
        self._final = upto
        nxt = max(0, s + ll.chunk - ll.context)  # the next window's first frame
        self._buf = self._buf[(nxt - self._buf0) * self.hop:]
        self._buf0 = nxt

    def _vocode_ready(self):
        """Vocode every chunk whose mel is final (all the rest at the end)."""
        ll, n = self.ll, self._n_frames
        while self._n_frames is None or self._ready < self._n_frames * self.hop:
            j = self._j
            c = j * ll.chunk + ll.chunk - ll.fade // 2 - ll.voc_lookahead  # centre of the closing ramp
            full = c + ll.voc_lookahead
            if n is None and full > self._final:
                break
            last = n is not None and c + ll.voc_fade // 2 > n
            prev = c - ll.chunk if j else None
            a = 0 if prev is None else max(0, prev - ll.voc_fade // 2 - ll.voc_context)
            b = n if last else min(full, self._final)
            wave = self._vocode_span(a, b)
            h = self.hop
            wt = _weight(full - a, None if prev is None else prev - a, None if last else c - a, ll.voc_fade, h)
            wt = wt[:(b - a) * h]
            lo, base = self._ready, self._emitted  # samples before lo are final (weight 0 here); acc from base
            self._wacc = add_weighted(self._wacc, base, lo, a * h, b * h, wt, wave)
            self._ready = b * h if last else (c - ll.voc_fade // 2) * h
            self._j += 1
            nxt = max(0, c - ll.voc_fade // 2 - ll.voc_context)  # the next chunk's first mel frame
            if not last and nxt > self._mel0:
                self._mel = self._mel[nxt - self._mel0:]
                self._mel0 = nxt
            if last:
                break

    def _vocode_span(self, a: int, b: int) -> np.ndarray:
        """Waveform ``((b - a) * hop,)`` of the final mel frames ``[a, b)``.

        Griffin-Lim starts from the phases its previous chunk converged to on the frames both share (seeded
        random phases after them), so that neighbouring chunks agree in phase where they are crossfaded; any
        other vocoder is called on the span as it is.
        """
        import torch

        from .models import GriffinLim
        from .pipeline import vocode

        mel = self._mel[a - self._mel0:b - self._mel0]
        voc = self.vocoder
        if not isinstance(voc, GriffinLim):
            return vocode(voc, [mel[None]])[0].astype(np.float64)
        prev = None
        if self._gl_prev is not None:  # warm start: the frames shared with the previous chunk keep its phases
            pa, pb, unit = self._gl_prev
            prev = unit[a - pa:min(pb, b) - pa]
        wave, unit = voc.vocode_warm(torch.from_numpy(np.ascontiguousarray(mel)), prev)
        self._gl_prev = (a, b, unit)
        return wave.float().cpu().numpy().astype(np.float64)

    def _emit(self) -> np.ndarray:
        k = self._ready - self._emitted
        if k <= 0:
            return np.zeros(0, dtype=np.float32)
        out = self._wacc[:k].astype(np.float32)
        self._wacc = self._wacc[k:]
        self._emitted = self._ready
        return out


def _weight(length: int, rise: int | None, fall: int | None, fade: int, scale: int) -> np.ndarray:
    """Weight over ``length * scale`` points: 0 before a ramp of ``fade`` frames centred at frame ``rise``, 1, then
    a falling ramp centred at ``fall`` and 0 after it (no ramp for None; ``fade = 0``: hard steps)."""
    out = np.ones(length * scale, dtype=np.float64)
    f = fade * scale
    r = ramp(f) if f else np.zeros(0)
    if rise is not None:
        lo = rise * scale - f // 2
        out[:lo] = 0.0
        out[lo:lo + f] = r
    if fall is not None:
        lo = fall * scale - f // 2
        out[lo:lo + f] *= 1.0 - r
        out[lo + f:] = 0.0
    return out
