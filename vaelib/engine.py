"""The batched round trip: windows of many clips, and the many windows of one long clip, in one model call.

:func:`vaelib.longaudio.reconstruct_long` (and the streaming :class:`~vaelib.longaudio.RoundTrip` under it) runs
the models one window of one clip at a time: right for a stream, wasteful for a corpus, above all on a GPU.
:class:`Engine` runs the *same* plan — the same windows of :class:`~vaelib.longaudio.Windowing`, the same seeds
(``seed + k`` for window ``k`` of a clip), the same mel-domain crossfade and the same vocoder chunks — but packs
the work of many clips into one tensor per model call:

1. **front end + encode**: the waveform segments of ``batch_size`` windows → one ``wav_to_mel`` and one
   ``vae.encode`` call;
2. **latent enhancers + decode**: each window's latent and its latent-stage enhanced versions (each with its own
   window's seed) → one ``vae.decode`` call of ``batch_size × (1 + latent enhancers)`` latents;
3. **mel enhancers** (restorers, shelves) on the plain decodes: a seedless one on the whole batch in one call, a
   seeded one, or a restorer with its consistency gate on, window by window (:func:`_batchable` says why);
4. **join**: weighted sums of the windows' log-mels in float64, exactly :class:`~vaelib.longaudio.RoundTrip`'s
   weights, cast to float32 once a frame is final;
5. **vocoder**: the chunks of every vocoded stage of every clip → one vocoder call of ``batch_size`` chunks ×
   stages, then the same weighted overlap-add of waveforms.

``batch_size`` counts **windows (or vocoder chunks) per model call**; a vocoder call holds ``batch_size`` chunks,
each with all of its vocoded stages.

Length bucketing and padding. Windows are batched only with windows of the *same length*: every window of a file
longer than one window has the training length (``window`` frames, the last one end-aligned), so long files and
clips of exactly one window always batch together; a shorter clip is one window of its own length and waits in its
length's bucket. Nothing is ever padded to make a batch: GroupNorm statistics, the attention of real AudioLDM2
VAEs, HiFi-GAN's convolutions at the edges and Griffin-Lim's STFT frames would all see the padding, so padding would
leak into a clip's numbers. Clips waiting in partly filled buckets are bounded: once ``max_clips`` clips are in
flight, every bucket runs as it is (``max_clips`` defaults to ``2 * batch_size``).

Numbers. In float32 each clip's stages equal the one-window-at-a-time path to float round-off (tested to 1e-5
against :func:`vaelib.longaudio.reconstruct_long`, for long and short files and stochastic enhancers, in batches
that mix them): the batch only changes which kernels the backend picks. A gated restorer (the consistency gate of
:mod:`vaelib.restore.gate`, on by default for ``learned``) amplifies that round-off by its factor's condition
(``|a| / |b|``, 5–10 measured): its mel agrees to 5e-5 of the mel's scale and its table rows to about 5e-5
relative (measured 4.3e-5 on ``added_hf_flatness``, 2026-12-03). Griffin-Lim starts every item from the
same seeded phase, so an item does not depend on the others of its batch. Under ``torch.autocast`` (bf16/fp16
on CUDA) the agreement is what that dtype gives (``benchmarks/bench_gpu.py`` prints it).

Memory: at most ``batch_size`` windows are in a model call and at most ``max_clips`` clips in flight; per clip the
joined output arrays (as :func:`~vaelib.longaudio.reconstruct_long` returns them) and a float64 accumulator of one
window.

:attr:`Engine.timings` adds up the seconds of each part (front end, encode, latent enhancers, decode, mel
enhancers, vocoder, join), synchronising CUDA before each reading when ``time_cuda`` is set.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Iterable, Iterator

import numpy as np
import torch

from . import enhance as _enhance
from .audio import MelConfig, normalize, pad_to_multiple, wav_to_mel
from .longaudio import Windowing, add_weighted

__all__ = ["Engine", "window_stages", "TIMED_PARTS"]

#: The parts :attr:`Engine.timings` reports, in pipeline order.
TIMED_PARTS = ("front_end", "encode", "latent_enhance", "decode", "mel_enhance", "vocode", "join")


def window_stages(vae, segs: torch.Tensor, specs: dict, seeds, cfg: MelConfig, timer=None) -> list[dict]:
    """Stage log-mels of a batch of equal-length waveform windows: the round trip of :func:`vaelib.reconstruct`
    without the vocoder, for ``B`` windows in one front-end, one encoder and one decoder call.

    Parameters
    ----------
    vae : vaelib.models.LatentVAE
    segs : torch.Tensor
        ``(B, samples)`` float32, already normalised and a multiple of 4 frames long.
    specs : dict
        Parsed enhancers (:func:`vaelib.enhance.parse`).
    seeds : sequence of int
        One seed per window (stochastic enhancers).
    cfg : MelConfig
    timer : callable, optional
        ``timer(part)`` is called after each part (see :class:`Engine`).

    Returns
    -------
    list of dict
        Per window: ``{"mel_projection": input log-mel, "vae": plain decode, label: enhanced}``, each a torch
        tensor ``(1, 1, T, M)`` on the VAE's device.
    """
    tick = timer or (lambda part: None)
    mel = wav_to_mel(segs.to(vae.device), cfg)
    tick("front_end")
    z = vae.encode(mel)
    tick("encode")
    latent = [n for n, sp in specs.items() if _enhance.get(sp.method).stage == "latent"]
    zs = []
    for i, seed in enumerate(seeds):  # per window: its latent, then its enhanced latents with its own seed
        zi = z[i:i + 1]
        zs.append(zi)
        zs.extend(_enhance.apply(specs[n], zi, seed=seed) for n in latent)
    tick("latent_enhance")
    dec = vae.decode(torch.cat(zs))
    tick("decode")
    per = 1 + len(latent)
    plain = dec[0::per]  # (B, 1, T, M): every window's plain decode
    batched = {n: _enhance.apply(sp, plain) for n, sp in specs.items() if n not in latent and _batchable(sp)}
    out = []
    for i, seed in enumerate(seeds):
        d = {"mel_projection": mel[i:i + 1], "vae": plain[i:i + 1]}
        d.update({n: dec[i * per + 1 + j:i * per + 2 + j] for j, n in enumerate(latent)})
        d.update({n: b[i:i + 1] for n, b in batched.items()})
        for n, sp in specs.items():
            if n not in d:
                d[n] = _enhance.apply(sp, d["vae"], seed=seed)
        out.append({"mel_projection": d["mel_projection"], "vae": d["vae"], **{n: d[n] for n in specs}})
    tick("mel_enhance")
    return out


def _batchable(spec) -> bool:
    """Whether a mel-stage enhancer runs on a batch of windows at once.

    Every enhancer of the registry treats batch items independently, so a seedless one runs on the whole batch in
    one call (a restorer without its gate: one network call). Window by window: seeded ones (each window's own
    seed) and restorers with the consistency gate on. The gate is ill-conditioned on the bundled tiny VAE: its
    factor ``s* = -<a, b> / <b, b>`` comes from round trips of the restored mel, which the tiny VAE amplifies, so the
    few 1e-6 by which a batched convolution differs from a single one moved ``s*`` by up to 10 % of its value in a
    batch of 3 (measured on the signals of ``tests/test_engine.py``); run window by window, its round trips keep
    the one-window path's batch of two and its numbers."""
    enh = _enhance.get(spec.method)
    if enh.uses_seed:
        return False
    return not ((enh.restorer or enh.wraps) and spec.params.get("gate", 0.0) >= 1.0)


@dataclasses.dataclass
class _Clip:
    """One clip in flight: its plan, accumulators and outputs."""

    x: np.ndarray  # normalised, padded waveform (the reference)
    gain: float
    n_frames: int
    plan: list
    stages: list | None = None
    mels: dict = dataclasses.field(default_factory=dict)  # stage -> float32 (n_frames, M)
    waves: dict = dataclasses.field(default_factory=dict)  # stage -> float32 (n_frames * hop,)
    acc: dict = dataclasses.field(default_factory=dict)  # stage -> float64 accumulator of frames [acc0, ...)
    acc0: int = 0
    windows_done: int = 0
    chunks_queued: int = 0
    chunks_done: int = 0
    wacc: dict = dataclasses.field(default_factory=dict)
    wacc0: int = 0

    @property
    def done(self) -> bool:
        return self.windows_done == len(self.plan) and self.chunks_done == len(self.plan)


class Engine:
    """Round trips of many recordings, batched across clips and windows (see the module docstring).

    Parameters
    ----------
    vae : vaelib.models.LatentVAE
    vocoder : callable or None
        ``vocoder(mel) -> wave``; ``None``: mels only.
    enhancers : list or dict, optional
        As :func:`vaelib.pipeline.reconstruct` takes them.
    seed : int
        Window ``k`` of every clip uses ``seed + k`` (as :class:`vaelib.longaudio.RoundTrip`).
    windowing : Windowing, optional
    batch_size : int
        Windows (or vocoder chunks, with all their stages) per model call.
    vocode : sequence of str, optional
        Stages to vocode (default: every stage).
    cfg : MelConfig, optional
    max_clips : int, optional
        Clips in flight before partly filled buckets run (default ``2 * batch_size``).
    allow_foreign_restorer : bool
        As for :func:`vaelib.reconstruct`.
    time_cuda : bool
        Synchronise CUDA before each timing reading (exact per-part times, a little slower).
    """

    def __init__(self, vae, vocoder=None, enhancers=None, *, seed: int = 0, windowing: Windowing | None = None,
                 batch_size: int = 8, vocode=None, cfg: MelConfig | None = None, max_clips: int | None = None,
                 allow_foreign_restorer: bool = False, time_cuda: bool = False):
        from .pipeline import parse_enhancers

        for name, v in (("batch_size", batch_size), ("max_clips", 1 if max_clips is None else max_clips)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1 (got {v!r})")
        self.vae, self.vocoder = vae, vocoder
        self.specs = parse_enhancers(enhancers)
        _enhance.check_restorers(self.specs, vae, allow_foreign_restorer)
        self.seed = int(seed)
        self.win = windowing or Windowing()
        self.batch_size = int(batch_size)
        self.max_clips = int(max_clips or 2 * batch_size)
        self.cfg = cfg or vae.mel_config
        self.hop = self.cfg.hop_length
        self.stages = ["mel_projection", "vae", *self.specs]
        self.vocode_names = self.stages if vocode is None else list(vocode)
        missing = [s for s in self.vocode_names if s not in self.stages]
        if missing:
            raise ValueError(f"cannot vocode unknown stage(s) {missing}; the stages are {self.stages}")
        self.time_cuda = bool(time_cuda) and vae.device.type == "cuda"
        #: Seconds per part (:data:`TIMED_PARTS`), summed over every call of this engine.
        self.timings = dict.fromkeys(TIMED_PARTS, 0.0)
        #: Model calls made: ``{"windows": n, "vocoder": n}``, and items in them.
        self.calls = {"windows": 0, "window_items": 0, "vocoder": 0, "vocoder_items": 0}
        self._t = time.perf_counter()

    # ------------------------------------------------------------------------------------------------------
    def _tick(self, part):
        if self.time_cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        self.timings[part] += t - self._t
        self._t = t

    def _restart_clock(self):
        if self.time_cuda:
            torch.cuda.synchronize()
        self._t = time.perf_counter()

    # ------------------------------------------------------------------------------------------------------
    def run(self, waves: Iterable, *, normalise: bool = True) -> Iterator:
        """Reconstruct every waveform; yields one :class:`vaelib.pipeline.Reconstruction` per input, in order.

        ``waves``: an iterable of mono waveforms (any length, at the front end's rate), consumed lazily. Each
        result equals :func:`vaelib.longaudio.reconstruct_long` of that waveform (``latent`` None,
        ``n_windows`` set) to float round-off.
        """
        from .pipeline import _to_wave_np

        self._restart_clock()
        flight: collections.deque = collections.deque()
        self._wq: dict = collections.defaultdict(list)  # length -> [(clip, k)]
        self._vq: dict = collections.defaultdict(list)  # length -> [(clip, k)]
        for wave in waves:
            x = _to_wave_np(wave)
            del wave  # only the normalised, padded copy is kept
            gain = 1.0
            if normalise:
                x, gain = normalize(x)
            x = pad_to_multiple(x, self.cfg)
            n = x.shape[0] // self.hop
            clip = _Clip(x, float(gain), n, self.win.plan(n))
            flight.append(clip)
            for k, (_, length, _, _) in enumerate(clip.plan):
                self._wq[length].append((clip, k))
            self._work(force=len(flight) >= self.max_clips)
            while flight and flight[0].done:
                yield self._result(flight.popleft())
        while flight:
            self._work(force=True)
            while flight and flight[0].done:
                yield self._result(flight.popleft())

    def _work(self, force: bool) -> None:
        """Run every full bucket; with ``force``, run everything queued (windows, then the chunks they free)."""
        b = self.batch_size
        while True:
            ran = False
            for q, fn in ((self._wq, self._run_windows), (self._vq, self._run_chunks)):
                for length in list(q):
                    jobs = q[length]
                    while len(jobs) >= b or (force and jobs):
                        take, q[length] = jobs[:b], jobs[b:]
                        jobs = q[length]
                        fn(take)
                        ran = True
                    if not jobs:
                        del q[length]
            if not ran:
                return

    # ------------------------------------------------------------------------------------------------------
    def _run_windows(self, jobs) -> None:
        segs, seeds = [], []
        for clip, k in jobs:
            start, length, _, _ = clip.plan[k]
            segs.append(torch.from_numpy(np.ascontiguousarray(clip.x[start * self.hop:(start + length) * self.hop])))
            seeds.append(self.seed + k)
        self._restart_clock()
        outs = window_stages(self.vae, torch.stack(segs), self.specs, seeds, self.cfg, timer=self._tick)
        self.calls["windows"] += 1
        self.calls["window_items"] += len(jobs)
        host = {s: torch.cat([o[s] for o in outs]).float().cpu().numpy() for s in outs[0]}  # one copy per stage
        for i, (clip, k) in enumerate(jobs):
            self._join_window(clip, k, {s: np.ascontiguousarray(m[i, 0]) for s, m in host.items()})
        self._tick("join")

    def _join_window(self, clip: _Clip, k: int, mels: dict) -> None:
        """Add window ``k``'s weighted mels (windows of a clip arrive in order) and finalise what it completes."""
        start, length, prev, last = clip.plan[k]
        if clip.stages is None:
            clip.stages = list(mels)
            m = self.cfg.n_mels
            clip.mels = {s: np.empty((clip.n_frames, m), np.float32) for s in clip.stages}
            clip.acc = {s: np.zeros((0, m)) for s in clip.stages}
        wt = self.win.weight(start, length, prev, last)
        lo, end = max(start, clip.acc0), start + length
        for s in clip.stages:
            clip.acc[s] = add_weighted(clip.acc[s], clip.acc0, lo, start, end, wt, mels[s])
        clip.windows_done += 1
        # frames before the next window's start get no more weight (the next window's ramp starts later)
        upto = clip.n_frames if last else clip.plan[k + 1][0]
        cut = upto - clip.acc0
        for s in clip.stages:
            clip.mels[s][clip.acc0:upto] = clip.acc[s][:cut]
            clip.acc[s] = clip.acc[s][cut:]
        clip.acc0 = upto
        self._queue_chunks(clip)

    def _queue_chunks(self, clip: _Clip) -> None:
        """Queue every vocoder chunk whose mel frames are all final (the same plan as the windows)."""
        if self.vocoder is None or not self.vocode_names:
            clip.chunks_done = clip.chunks_queued = len(clip.plan)
            return
        while clip.chunks_queued < len(clip.plan):
            start, length, _, _ = clip.plan[clip.chunks_queued]
            if start + length > clip.acc0:  # mel frames before acc0 are final
                return
            self._vq[length].append((clip, clip.chunks_queued))
            clip.chunks_queued += 1

    def _run_chunks(self, jobs) -> None:
        from .pipeline import vocode

        names = self.vocode_names
        mels = []
        for clip, k in jobs:
            start, length, _, _ = clip.plan[k]
            mels.extend(torch.from_numpy(np.ascontiguousarray(clip.mels[s][start:start + length]))[None]
                        for s in names)
        self._restart_clock()
        out = vocode(self.vocoder, torch.stack(mels))
        self.calls["vocoder"] += 1
        self.calls["vocoder_items"] += len(mels)
        self._tick("vocode")
        for j, (clip, k) in enumerate(jobs):
            self._join_chunk(clip, k, {s: out[j * len(names) + i] for i, s in enumerate(names)})
        self._tick("join")

    def _join_chunk(self, clip: _Clip, k: int, waves: dict) -> None:
        start, length, prev, last = clip.plan[k]
        hop = self.hop
        if not clip.waves:
            clip.waves = {s: np.empty(clip.n_frames * hop, np.float32) for s in waves}
            clip.wacc = {s: np.zeros(0) for s in waves}
        wt = self.win.weight(start, length, prev, last, scale=hop)
        base = clip.wacc0 * hop
        lo, end = max(start, clip.wacc0) * hop, (start + length) * hop
        for s, w in waves.items():
            clip.wacc[s] = add_weighted(clip.wacc[s], base, lo, start * hop, end, wt, w)
        clip.chunks_done += 1
        upto = clip.n_frames if last else clip.plan[k + 1][0]
        cut = (upto - clip.wacc0) * hop
        for s in waves:
            clip.waves[s][base:upto * hop] = clip.wacc[s][:cut]
            clip.wacc[s] = clip.wacc[s][cut:]
        clip.wacc0 = upto

    def _result(self, clip: _Clip):
        from .pipeline import Reconstruction, Stage

        stages = {"input": Stage("input", clip.mels["mel_projection"], clip.x)}
        for s in clip.stages:
            params = {"method": self.specs[s].method, **self.specs[s].params} if s in self.specs else {}
            stages[s] = Stage(s, clip.mels[s], clip.waves.get(s), params)
        rec = Reconstruction(wave=clip.x, gain=clip.gain, latent=None, stages=stages, sr=self.cfg.sr)
        rec.n_windows = len(clip.plan)
        return rec
