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
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Iterator

import numpy as np

from .longaudio import RoundTrip, Windowing

__all__ = ["Streamer", "stream", "as_mono_block"]


class Streamer:
    """Block-wise round trip of one stage (``"vae"`` by default, or an enhancer's label).

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
    """

    def __init__(self, vae, vocoder, enhancers=None, *, stage: str = "vae", gain: float = 1.0, seed: int = 0,
                 windowing: Windowing | None = None):
        if vocoder is None:
            raise ValueError("Streamer needs a vocoder (vaelib.load_vocoder('auto'))")
        if (isinstance(gain, (bool, np.bool_)) or not isinstance(gain, numbers.Real) or not math.isfinite(gain)
                or gain <= 0):
            raise ValueError(f"gain must be a finite positive number, e.g. 0.5 / expected_peak (got {gain!r})")
        self.stage = stage
        self.gain = float(gain)
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

    def _out(self, pieces) -> np.ndarray:
        if not pieces:
            return np.zeros(0, dtype=np.float32)
        return (np.concatenate([p.waves[self.stage] for p in pieces]) / self.gain).astype(np.float32)

    def process(self, block) -> np.ndarray:
        """Take one block of samples (mono, any length; see the module docstring for dtypes and shapes) and return
        the output that became final (maybe empty), float32 in the input's [-1, 1) scale."""
        return self._out(self._rt.push(as_mono_block(block) * np.float32(self.gain)))

    def flush(self) -> np.ndarray:
        """End of the stream: return the rest (the input is padded to a multiple of 4 frames)."""
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

    ``kwargs`` go to :class:`Streamer` (``enhancers``, ``stage``, ``gain``, ``seed``, ``windowing``).
    """
    s = Streamer(vae, vocoder, **kwargs)
    for block in blocks:
        out = s.process(block)
        if out.size:
            yield out
    out = s.flush()
    if out.size:
        yield out
