"""Train and evaluate a small HiFi-GAN vocoder (``transformers.SpeechT5HifiGan``, AudioLDM2's vocoder class).

The model maps vaelib's log-mel ``(B, T, 64)`` (:func:`vaelib.audio.wav_to_mel`, AudioLDM2's 16 kHz front end)
to a waveform of ``T * hop`` samples (``hop = prod(upsample_rates) = 160``). It keeps AudioLDM2's vocoder layout
(upsample rates 5, 4, 2, 2, 2; kernels 16, 16, 8, 4, 4; multi-receptive-field resblocks with kernels 3, 7, 11 and
dilations 1, 3, 5; Kong et al. 2020, HiFi-GAN V1 topology) and changes only the width
(``upsample_initial_channel``: 1024 in AudioLDM2, 128 here), so it loads through
:func:`vaelib.models.load_vocoder` from ``<folder>/vocoder/{config.json, model.safetensors}``.

Output length: each ``ConvTranspose1d(stride u, kernel k, padding (k - u) // 2)`` maps ``L`` frames to
``(L - 1) u - 2 (k - u) // 2 + k`` samples, i.e. ``u L + 1`` for the (16, 5), ``u L`` for (16, 4) etc.; chained,
``T`` frames give ``T * 160 + 32`` samples. As in :class:`vaelib.models.HifiGanVocoder` the output is trimmed to
the first ``T * hop`` samples, in training and at inference alike, so the network learns the alignment that
vaelib uses.

Training objective (no discriminator; ``y`` the target crop, ``ŷ`` the trimmed vocoder output)::

    L = w_stft * (1/R) Σ_r [ L_sc^r(y, ŷ) + L_mag^r(y, ŷ) ] + w_mel * mean | M(y) - M(ŷ) |

    L_sc^r  = || |Y_r| - |Ŷ_r| ||_F / || |Y_r| ||_F                (spectral convergence)
    L_mag^r = mean | ln |Y_r| - ln |Ŷ_r| |                         (log-magnitude L1)

with ``|Y_r| = sqrt(max(|STFT_r(y)|², 1e-7))`` (Hann window, ``center=True``, reflect padding) for the resolutions
``(n_fft, hop) ∈ {(2048, 512), (1024, 256), (512, 128), (256, 64), (128, 32)}``: the multi-resolution STFT loss of
Yamamoto et al. 2020 (Parallel WaveGAN, arXiv:1910.11480, eqs. 4-6), over :data:`vaelib.metrics.MRSTFT_RESOLUTIONS`
plus two shorter ones for transients. ``M`` is the training front end :func:`vaelib.audio.wav_to_mel` (natural log
of the clamped Slaney mel magnitude), i.e. HiFi-GAN's mel-spectrogram loss (Kong et al. 2020, arXiv:2010.05646,
eq. 3) computed with the very analysis that made the input: the vocoder is asked to be a right inverse of the front
end. HiFi-GAN weights the mel term 45 against its adversarial and feature-matching terms; without a GAN the weight
only sets the balance between two reconstruction terms measured in the same unit (nats of magnitude), and the
STFT term (≈ 1-2 at the start, ≈ 0.8 near convergence) and the mel term (≈ 0.3-1) are of the same order, so
``w_stft = w_mel = 1`` is used (a 64-band mel is a smoothed view of the 1024-point log-magnitude, one more
resolution in effect). Without a GAN the phase is constrained only through the overlapping STFT frames of
several sizes; the known cost is some buzz/metallic colour in noisy high bands (Yamamoto et al. 2020, §4.2 show the
same for STFT-only training).

Data (:class:`VocoderCropSampler`): random, seeded crops of whole clips normalised as in AudioLDM training
(:func:`vaelib.audio.normalize`, peak 0.5), random gain, occasional two-clip mixes; the conditioning is the crop's
own log-mel.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import math
import time
from pathlib import Path

import numpy as np
import torch

from .audio import MelConfig, load_audio, normalize, wav_to_mel

__all__ = ["TinyVocoderConfig", "VocoderTrainConfig", "make_tiny_vocoder", "VocoderCropSampler",
           "MultiResolutionSTFTLoss", "VocoderLoss", "vocoder_forward", "train", "evaluate", "file_list_hash",
           "training_files", "count_parameters", "LOSS_RESOLUTIONS"]

#: STFT resolutions ``(n_fft, hop)`` of the training loss: :data:`vaelib.metrics.MRSTFT_RESOLUTIONS` plus two
#: shorter ones (transients, hi-hats).
LOSS_RESOLUTIONS = ((2048, 512), (1024, 256), (512, 128), (256, 64), (128, 32))


@dataclasses.dataclass
class TinyVocoderConfig:
    """Architecture: ``transformers.SpeechT5HifiGanConfig`` arguments (AudioLDM2's vocoder, narrower).

    Attributes
    ----------
    upsample_initial_channel : int
        Width of the first upsampling stage; stage ``i`` has ``upsample_initial_channel / 2**(i+1)`` channels
        (1024 in AudioLDM2: 55 M parameters; 128: 0.92 M; 64: 0.24 M).
    upsample_rates, upsample_kernel_sizes : tuple of int
        Transposed-convolution strides (their product is the hop, 160) and kernel sizes.
    resblock_kernel_sizes, resblock_dilation_sizes : tuple
        Multi-receptive-field fusion blocks (HiFi-GAN ResBlock1).
    """

    model_in_dim: int = 64
    sampling_rate: int = 16000
    upsample_initial_channel: int = 128
    upsample_rates: tuple = (5, 4, 2, 2, 2)
    upsample_kernel_sizes: tuple = (16, 16, 8, 4, 4)
    resblock_kernel_sizes: tuple = (3, 7, 11)
    resblock_dilation_sizes: tuple = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    leaky_relu_slope: float = 0.1
    normalize_before: bool = False

    @property
    def hop_length(self) -> int:
        return int(math.prod(self.upsample_rates))

    def to_hf(self):
        """The ``SpeechT5HifiGanConfig``."""
        from transformers import SpeechT5HifiGanConfig

        return SpeechT5HifiGanConfig(
            model_in_dim=self.model_in_dim, sampling_rate=self.sampling_rate,
            upsample_initial_channel=self.upsample_initial_channel, upsample_rates=list(self.upsample_rates),
            upsample_kernel_sizes=list(self.upsample_kernel_sizes),
            resblock_kernel_sizes=list(self.resblock_kernel_sizes),
            resblock_dilation_sizes=[list(d) for d in self.resblock_dilation_sizes],
            leaky_relu_slope=self.leaky_relu_slope, normalize_before=self.normalize_before)


@dataclasses.dataclass
class VocoderTrainConfig:
    """Training hyper-parameters.

    Attributes
    ----------
    steps, batch_size, crop_frames : int
        Optimiser steps, crops per batch, crop length in mel frames (50 = 0.5 s at hop 160).
    lr, lr_min, warmup_steps : float, float, int
        Adam learning rate: linear warm-up over ``warmup_steps``, then cosine from ``lr`` to ``lr_min``
        (Loshchilov & Hutter 2017): ``lr(s) = lr_min + (lr - lr_min) (1 + cos(π s'/S')) / 2``.
    beta1, beta2 : float
        Adam betas (HiFi-GAN's 0.8, 0.99).
    grad_clip : float
        Clip the global gradient norm to this (0: off).
    stft_weight, mel_weight : float
        ``w_stft`` and ``w_mel`` of the loss (module docstring).
    gain_db, mix_prob : float
        Augmentation: uniform random gain in ``±gain_db`` dB around peak 0.5; probability of mixing two clips.
    seed, threads : int
        Seed of the initialisation, the sampler and torch; ``torch.set_num_threads`` (0: leave).
    log_every, val_every : int
        Steps between CSV rows and between held-out evaluations.
    max_minutes : float
        Stop early after this much training wall time (0: no limit); the schedule still assumes ``steps``.
    """

    steps: int = 2000
    batch_size: int = 8
    crop_frames: int = 50
    lr: float = 1e-3
    lr_min: float = 5e-5
    warmup_steps: int = 50
    beta1: float = 0.8
    beta2: float = 0.99
    grad_clip: float = 5.0
    stft_weight: float = 1.0
    mel_weight: float = 1.0
    gain_db: float = 6.0
    mix_prob: float = 0.2
    seed: int = 0
    threads: int = 1
    log_every: int = 25
    val_every: int = 200
    max_minutes: float = 0.0


def make_tiny_vocoder(cfg: TinyVocoderConfig | None = None, seed: int = 0):
    """A freshly initialised ``SpeechT5HifiGan`` for ``cfg``; the same ``seed`` gives the same weights.

    Initialisation: every ``Conv1d`` / ``ConvTranspose1d`` gets PyTorch's default (``reset_parameters``:
    Kaiming-uniform with ``a = sqrt(5)``, He et al. 2015). transformers' own init draws the transposed convolutions
    from ``N(0, 0.01²)`` (HiFi-GAN's ``init_weights``), which only trains under weight normalisation (Salimans &
    Kingma 2016) — without it the 5 stages shrink the output to ~1e-9 and the gradients vanish. torch's global RNG
    is forked, so building a model does not change the caller's random stream.
    """
    from transformers import SpeechT5HifiGan

    cfg = cfg or TinyVocoderConfig()
    if cfg.upsample_initial_channel < 2 ** len(cfg.upsample_rates):
        raise ValueError(f"upsample_initial_channel must be >= {2 ** len(cfg.upsample_rates)} (the last stage has "
                         f"upsample_initial_channel / 2**{len(cfg.upsample_rates)} channels)")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SpeechT5HifiGan(cfg.to_hf())
        for mod in model.modules():
            if isinstance(mod, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)):
                mod.reset_parameters()
    return model


def count_parameters(model) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def training_files(extra_dirs=(), exclude=(), demo_train: bool = True) -> list[Path]:
    """The training file list: the bundled demo *train* clips plus the audio under ``extra_dirs``, minus any file
    whose name or path is in ``exclude`` (e.g. a held-out list). Never includes the demo eval clips."""
    from .audio import find_audio

    files = list(find_audio("demo", demo_split="train")) if demo_train else []
    for d in extra_dirs:
        files += [p for p in find_audio(Path(d)) if p.suffix.lower() != ".lst"]
    excl = {str(e) for e in exclude} | {Path(e).name for e in exclude}
    eval_names = {p.resolve() for p in find_audio("demo", demo_split="eval")}
    out = [p for p in files if p.name not in excl and str(p) not in excl and p.resolve() not in eval_names]
    return sorted(dict.fromkeys(out))


def file_list_hash(files) -> str:
    """``sha256`` over ``name \\t sha256(bytes)`` lines of the sorted files (order- and location-independent)."""
    lines = sorted(f"{Path(p).name}\t{hashlib.sha256(Path(p).read_bytes()).hexdigest()}" for p in files)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


class VocoderCropSampler:
    """Random, seeded ``(log-mel (B, T, n_mels), wave (B, T*hop))`` training pairs from whole clips.

    Each clip is loaded at ``cfg.sr``, normalised once (:func:`vaelib.audio.normalize`, peak 0.5) and zero-padded
    to at least one crop. A crop is a uniformly placed window of ``crop_frames * hop`` samples of a uniformly drawn
    clip (redrawn up to 3 times when its RMS is below 1e-3, so digital silence does not dominate); with probability
    ``mix_prob`` a crop of another clip (factor U(0.3, 1)) is added and the sum renormalised; then a gain
    ``U(-gain_db, gain_db)`` dB. The conditioning is ``wav_to_mel(crop, pad=False)`` (exactly ``crop_frames``
    frames; the front end's reflect padding at the crop edges is what a clip's edges get at inference).

    Parameters
    ----------
    files : sequence of path
        Audio files (see :func:`training_files`).
    exclude : sequence of path or str, optional
        Names or paths that must never be read (a held-out list); a listed file in ``files`` raises.
    waves : sequence of numpy.ndarray, optional
        Already loaded waveforms instead of ``files`` (tests).
    """

    def __init__(self, files=(), cfg: MelConfig | None = None, crop_frames: int = 50, gain_db: float = 6.0,
                 mix_prob: float = 0.2, seed: int = 0, exclude=(), waves=None):
        self.cfg = cfg or MelConfig.audioldm2()
        self.files = [Path(p) for p in files]
        excl = {str(e) for e in exclude} | {Path(e).name for e in exclude}
        bad = [p for p in self.files if p.name in excl or str(p) in excl]
        if bad:
            raise ValueError(f"{len(bad)} training files are on the excluded list, e.g. {bad[0]}")
        if waves is None:
            waves = [load_audio(p, sr=self.cfg.sr) for p in self.files]
        self.n = crop_frames * self.cfg.hop_length
        self.waves = [normalize(np.asarray(w, np.float32))[0] for w in waves]
        self.waves = [np.pad(w, (0, max(0, self.n - len(w)))) for w in self.waves]
        if not self.waves:
            raise ValueError("VocoderCropSampler needs at least one clip")
        self.gain_db, self.mix_prob = gain_db, mix_prob
        self.rng = np.random.default_rng(seed)
        self.last_indices: list[int] = []

    def _crop(self) -> np.ndarray:
        for _ in range(4):
            i = int(self.rng.integers(len(self.waves)))
            w = self.waves[i]
            start = int(self.rng.integers(0, len(w) - self.n + 1))
            x = w[start:start + self.n]
            if float(np.sqrt(np.mean(x * x))) >= 1e-3:
                break
        self.last_indices.append(i)
        return x

    def batch(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mel (B, crop_frames, n_mels), wave (B, crop_frames * hop))``."""
        self.last_indices = []
        out = []
        for _ in range(batch_size):
            x = self._crop()
            if self.mix_prob > 0 and self.rng.random() < self.mix_prob:
                x = normalize(x + self.rng.uniform(0.3, 1.0) * self._crop())[0]
            if self.gain_db > 0:
                x = x * 10 ** (self.rng.uniform(-self.gain_db, self.gain_db) / 20)
            out.append(x.astype(np.float32))
        wave = torch.from_numpy(np.stack(out))
        return wav_to_mel(wave, self.cfg, pad=False)[:, 0], wave


def _stft_mag(x: torch.Tensor, n_fft: int, hop: int, eps: float) -> torch.Tensor:
    window = torch.hann_window(n_fft, periodic=True, device=x.device, dtype=x.dtype)
    spec = torch.stft(x, n_fft=n_fft, hop_length=hop, win_length=n_fft, window=window, center=True,
                      pad_mode="reflect", return_complex=True)
    return torch.sqrt(torch.clamp(spec.real**2 + spec.imag**2, min=eps))


class MultiResolutionSTFTLoss(torch.nn.Module):
    """``(1/R) Σ_r (L_sc^r + L_mag^r)`` of Yamamoto et al. 2020 (module docstring), batch-pooled as in Parallel
    WaveGAN (``L_sc`` is one Frobenius ratio over the whole batch). Same magnitude floor (power clamped at
    ``eps = 1e-7``) and STFT as :func:`vaelib.metrics.mrstft`, so with ``resolutions=MRSTFT_RESOLUTIONS`` and a
    batch of one it equals that metric (up to float32)."""

    def __init__(self, resolutions=LOSS_RESOLUTIONS, eps: float = 1e-7):
        super().__init__()
        self.resolutions = tuple(tuple(int(v) for v in r) for r in resolutions)
        self.eps = eps

    def forward(self, target: torch.Tensor, est: torch.Tensor, return_parts: bool = False):
        sc, mag = [], []
        for n_fft, hop in self.resolutions:
            t, e = _stft_mag(target, n_fft, hop, self.eps), _stft_mag(est, n_fft, hop, self.eps)
            sc.append(torch.linalg.vector_norm(t - e) / torch.linalg.vector_norm(t))
            mag.append((torch.log(t) - torch.log(e)).abs().mean())
        sc_m, mag_m = torch.stack(sc).mean(), torch.stack(mag).mean()
        total = sc_m + mag_m
        return (total, sc_m, mag_m) if return_parts else total


class VocoderLoss(torch.nn.Module):
    """``w_stft · MR-STFT(y, ŷ) + w_mel · mean|M(y) - M(ŷ)|`` (module docstring); returns ``(loss, parts)``.

    ``M(y)`` is passed in as the conditioning mel when known (it is the same front end), else computed.
    """

    def __init__(self, stft_weight: float = 1.0, mel_weight: float = 1.0, cfg: MelConfig | None = None,
                 resolutions=LOSS_RESOLUTIONS):
        super().__init__()
        self.stft = MultiResolutionSTFTLoss(resolutions)
        self.stft_weight, self.mel_weight = stft_weight, mel_weight
        self.cfg = cfg or MelConfig.audioldm2()

    def forward(self, target: torch.Tensor, est: torch.Tensor, target_mel: torch.Tensor | None = None):
        stft, sc, mag = self.stft(target, est, return_parts=True)
        if target_mel is None:
            target_mel = wav_to_mel(target, self.cfg, pad=False)[:, 0]
        mel = (wav_to_mel(est, self.cfg, pad=False)[:, 0] - target_mel).abs().mean()
        loss = self.stft_weight * stft + self.mel_weight * mel
        return loss, {k: float(v.detach()) for k, v in (("stft", stft), ("sc", sc), ("mag", mag), ("mel", mel))}


def vocoder_forward(model, mel: torch.Tensor, hop: int = 160) -> torch.Tensor:
    """``model(mel)`` trimmed to ``T * hop`` samples, exactly as :class:`vaelib.models.HifiGanVocoder` does
    (the raw ``SpeechT5HifiGan`` output has ``T * hop + 32`` samples), but differentiable. ``mel``: (B, T, M)."""
    wave = model(mel)
    if wave.ndim == 1:
        wave = wave[None]
    return wave[:, : mel.shape[1] * hop]


def _lr_at(step: int, cfg: VocoderTrainConfig) -> float:
    """Learning rate for 1-based ``step``: linear warm-up, then cosine to ``lr_min`` at ``cfg.steps``."""
    if cfg.warmup_steps > 0 and step <= cfg.warmup_steps:
        return cfg.lr * step / cfg.warmup_steps
    span = max(1, cfg.steps - cfg.warmup_steps)
    frac = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.lr_min + (cfg.lr - cfg.lr_min) * 0.5 * (1 + math.cos(math.pi * frac))


def train(model, sampler: VocoderCropSampler, cfg: VocoderTrainConfig | None = None, log_path=None,
          progress: bool = True, val_batch=None):
    """Train ``model`` (a ``SpeechT5HifiGan``) in place with Adam, warm-up + cosine lr and gradient clipping.

    Parameters
    ----------
    val_batch : (mel, wave), optional
        Fixed held-out pairs; every ``cfg.val_every`` steps (and at the end) their loss is logged as ``val_*``.

    Returns
    -------
    list of dict
        Logged rows (``step, loss, stft, sc, mag, mel, lr, grad_norm, seconds`` and ``val_loss, val_stft,
        val_mel`` where evaluated), also written to ``log_path`` (CSV, flushed as it goes).
    """
    from tqdm.auto import tqdm

    cfg = cfg or VocoderTrainConfig()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    hop = int(math.prod(model.config.upsample_rates))
    loss_fn = VocoderLoss(cfg.stft_weight, cfg.mel_weight, sampler.cfg)
    opt = torch.optim.Adam(model.parameters(), lr=_lr_at(1, cfg), betas=(cfg.beta1, cfg.beta2))
    fields = ["step", "loss", "stft", "sc", "mag", "mel", "lr", "grad_norm", "seconds", "val_loss", "val_stft",
              "val_mel"]
    log_file = open(log_path, "w", newline="") if log_path is not None else None  # noqa: SIM115
    writer = csv.DictWriter(log_file, fieldnames=fields) if log_file is not None else None
    if writer is not None:
        writer.writeheader()
    rows, acc, t0 = [], [], time.time()
    model.train()
    bar = tqdm(range(1, cfg.steps + 1), desc="train vocoder", disable=not progress)
    for step in bar:
        lr = _lr_at(step, cfg)
        for g in opt.param_groups:
            g["lr"] = lr
        mel, wave = sampler.batch(cfg.batch_size)
        est = vocoder_forward(model, mel, hop)
        loss, parts = loss_fn(wave, est, mel)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
        opt.step()
        acc.append((float(loss.detach()), parts["stft"], parts["sc"], parts["mag"], parts["mel"], float(gn)))
        elapsed = time.time() - t0
        stop = cfg.max_minutes > 0 and elapsed > cfg.max_minutes * 60
        last = step == cfg.steps or stop
        if step % cfg.log_every == 0 or step == 1 or last:
            m = np.mean(acc, axis=0)
            row = {"step": step, "loss": float(m[0]), "stft": float(m[1]), "sc": float(m[2]), "mag": float(m[3]),
                   "mel": float(m[4]), "lr": lr, "grad_norm": float(m[5]), "seconds": round(elapsed, 1),
                   "val_loss": "", "val_stft": "", "val_mel": ""}
            acc = []
            if val_batch is not None and (step % cfg.val_every == 0 or last):
                row.update(_val(model, loss_fn, val_batch, hop))
                model.train()
            rows.append(row)
            bar.set_postfix(loss=f"{row['loss']:.3f}", lr=f"{lr:.1e}")
            if writer is not None:
                writer.writerow(row)
                log_file.flush()
        if stop:
            break
    model.eval()
    if log_file is not None:
        log_file.close()
    return rows


@torch.no_grad()
def _val(model, loss_fn, val_batch, hop) -> dict:
    model.eval()
    mel, wave = val_batch
    loss, parts = loss_fn(wave, vocoder_forward(model, mel, hop), mel)
    return {"val_loss": float(loss), "val_stft": parts["stft"], "val_mel": parts["mel"]}


def evaluate(vocoder, files, gl=None, cfg: MelConfig | None = None, threads: int | None = 1) -> dict:
    """Vocoder-only scores on whole clips: log-mel of the input → vocoder, against the input.

    For each clip ``x = normalize(load_audio(p, sr))`` (peak 0.5), ``M = wav_to_mel(x)`` (waveform zero-padded
    to a multiple of 4 frames, as the pipeline does), ``y = vocoder(M)`` (``T * hop`` samples; the metrics
    truncate to the common length): :func:`vaelib.metrics.lsd_hf`, :func:`vaelib.metrics.lsd` and
    :func:`vaelib.metrics.mrstft` of ``(x, y)``, for ``vocoder`` and for Griffin-Lim (``gl``, default
    ``load_vocoder("griffinlim")``), plus the metric floor ``lsd_hf(x, x)`` (not 0 where a clip has digital
    silence frames: ``log10(0/eps + eps)`` terms of the ssr_eval formula), and wall seconds of each vocoder call.

    Returns
    -------
    dict
        ``{"per_clip": [row, ...], "mean": {...}, "median": {...}}``; row keys ``clip, seconds_audio, lsd_hf_floor``
        and ``{voc,gl}_{lsd_hf,lsd,mrstft,seconds}``; ``mean`` also has the relative reductions
        ``1 - voc / gl`` of LSD-HF and MR-STFT.
    """
    from . import metrics
    from .models import load_vocoder

    cfg = cfg or MelConfig.audioldm2()
    if threads:
        torch.set_num_threads(threads)
    gl = gl if gl is not None else load_vocoder("griffinlim")
    rows = []
    for path in files:
        x = normalize(load_audio(path, sr=cfg.sr))[0]
        mel = wav_to_mel(x, cfg)
        row = {"clip": Path(path).stem, "seconds_audio": round(len(x) / cfg.sr, 3),
               "lsd_hf_floor": metrics.lsd_hf(x, x, sr=cfg.sr)}
        for name, voc in (("voc", vocoder), ("gl", gl)):
            t0 = time.perf_counter()
            with torch.inference_mode():
                y = voc(mel).float().cpu().numpy()[0]
            row[f"{name}_seconds"] = time.perf_counter() - t0
            row[f"{name}_lsd_hf"] = metrics.lsd_hf(x, y, sr=cfg.sr)
            row[f"{name}_lsd"] = metrics.lsd(x, y, sr=cfg.sr)
            row[f"{name}_mrstft"] = metrics.mrstft(x, y)
        rows.append(row)
    keys = [k for k in rows[0] if k != "clip"]
    mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    median = {k: float(np.median([r[k] for r in rows])) for k in keys}
    for m in ("lsd_hf", "mrstft", "lsd"):
        mean[f"reduction_{m}"] = 1.0 - mean[f"voc_{m}"] / mean[f"gl_{m}"]
    return {"per_clip": rows, "mean": mean, "median": median}
