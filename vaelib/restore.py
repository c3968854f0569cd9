"""Learned high-band restorers for a frozen mel VAE, and ``vaelib train-restorer``.

Two kinds, both residual so that the untrained (zero-initialised) model is the identity:

* ``mel``    — a post-net on the decoded log-mel: ``r' = r + s · f(r)`` (a small U-Net, :class:`MelPostNet`);
* ``latent`` — a latent residual net: ``z' = z + s · g(z)`` (:class:`LatentResNet`), trained *through* the frozen
  decoder on whole clips so that ``decode(z')`` matches the input log-mel (decoding a latent crop is not cropping
  the full decode: GroupNorm statistics and mid-block attention span the whole input — docs/reference.md §6).

``s`` is the ``strength`` in [0, 1]: 0 returns the plain VAE output exactly (a copy of the input tensor, no float
operation on it), 1 the fully restored output. With ``conditional=True`` every residual block is FiLM-modulated
(Perez et al. 2018: ``h · (1 + γ(e)) + β(e)``) by an embedding ``e`` of the audio type (speech / music /
percussion / other); :class:`TypeClassifier` infers the type from the decoded mel (or latent) when no label is
given, and the embedding is then the probability-weighted mix of the type embeddings.

Training objective (per crop, natural-log mel, ``d = restored − input``; :func:`restorer_loss`)::

    loss = Σ_{t,m} w_m |d_{t,m}| / Σ_{t,m} w_m  +  λ · mean_t sqrt( mean_{m ∈ HF} d_{t,m}² + ε )

with ``w_m = hf_weight`` (3) for mel bins centred at or above 4 kHz (``metrics.HIGH_BAND_HZ``) and 1 below, and
``λ = lsd_weight`` (1). The first term is the AudioLDM VAE's own L1 on log-mel, tilted toward the band to restore;
the second is the per-frame RMS log-ratio over the high band, which is ``ln 10 / 2`` times the mel LSD-HF that
:func:`vaelib.metrics.mel_lsd` reports — L1 alone is not the target metric (it lets a few frames keep large
errors that LSD, a mean of per-frame RMS values, punishes). ``ε = 1e-4`` keeps the gradient finite at 0.

Training needs only (input log-mel, decoded log-mel) pairs for the mel kind, so every clip goes through the
frozen VAE once (:func:`collect_pairs`) and the net trains on random crops of those pairs.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._util import one_line, save_json
from .audio import LOG_CLAMP
from .metrics import HIGH_BAND_HZ

__all__ = [
    "CATEGORIES", "RestorerConfig", "TrainOptions", "MelPostNet", "LatentResNet", "TypeClassifier", "Restorer",
    "MelTCN", "training_log", "card_info",
    "category_of", "restorer_loss", "collect_pairs", "augment_wave", "score_methods", "split_holdout", "train_restorer",
    "evaluate_restorer", "save_restorer", "load_restorer", "bundled_restorer", "bundled_dir", "register",
    "RestorerError",
    "add_parser",
]

#: Audio types the conditional restorer knows, in embedding order.
CATEGORIES = ("speech", "music", "percussion", "other")
FORMAT = "vaelib-restorer"
WEIGHTS = "model.safetensors"
_PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth", ".pkl")


class RestorerError(ValueError):
    """Bad input to training or loading; the one-line message says how to fix it."""


def category_of(path) -> str:
    """Audio type of a file from its name: the stem's first ``_``-separated word or a parent folder's name.

    ``speech*`` → speech, ``music*`` → music, ``drum*``/``percussion*`` → percussion, anything else → other
    (the demo corpus names its clips ``speech_…``, ``music_…``, ``drums_…``, ``chirp_…``/``noise_…``/``tone_…``).
    """
    p = Path(str(path))
    words = [p.stem.lower().split("_")[0], *(q.name.lower() for q in p.parents)]
    for w in words:
        if w.startswith("speech"):
            return "speech"
        if w.startswith("music"):
            return "music"
        if w.startswith(("drum", "percussion")):
            return "percussion"
    return "other"


# --------------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class RestorerConfig:
    """Architecture and front end of a restorer (stored in ``config.json``).

    Attributes
    ----------
    kind : {"mel", "latent"}
    conditional : bool
        FiLM-conditioned on the audio type, with a type classifier for unlabelled audio.
    arch : {"tcn", "unet"}
        Mel kind only: :class:`MelTCN` (default) or :class:`MelPostNet` (2-D U-Net).
    channels : int
        Width: TCN channels; U-Net base width (C, 2C, 4C at full, 1/2, 1/4 resolution); latent net channels.
    n_mels, latent_channels : int
    mel_mean, mel_std : float
        Affine input normalisation (set from the training data).
    sr, n_fft, fmin, fmax : float
        Front end, for the mel bin centres of the high-band mask.
    high_band_hz : float
    categories : list of str
    emb_dim : int
    mel_floor : float or None
        Mel kind: the restored log-mel is clamped from below at this value (the front end's ``log(1e-5)``: an
        input log-mel is never lower, so the clamp can only reduce the error). ``None`` (restorers trained
        before it existed): no clamp.
    """

    kind: str = "mel"
    conditional: bool = False
    arch: str = "tcn"
    channels: int = 128
    n_mels: int = 64
    latent_channels: int = 8
    mel_mean: float = -5.0
    mel_std: float = 3.0
    sr: int = 16000
    n_fft: int = 1024
    fmin: float = 0.0
    fmax: float = 8000.0
    high_band_hz: float = HIGH_BAND_HZ
    categories: tuple = CATEGORIES
    emb_dim: int = 16
    mel_floor: float | None = None

    def __post_init__(self):
        if self.kind not in ("mel", "latent"):
            raise RestorerError(f"kind must be 'mel' or 'latent', got {self.kind!r}")
        if self.arch not in ("tcn", "unet"):
            raise RestorerError(f"arch must be 'tcn' or 'unet', got {self.arch!r}")
        self.categories = tuple(self.categories)

    def hf_mask(self) -> np.ndarray:
        """Boolean mask of the mel bins centred at or above ``high_band_hz``."""
        import librosa

        f = librosa.mel_frequencies(self.n_mels + 2, fmin=self.fmin, fmax=self.fmax, htk=False)[1:-1]
        return f >= self.high_band_hz


class _Block(nn.Module):
    """Residual block ``x + conv(silu(FiLM(conv(silu(x)))))``; FiLM ``h·(1+γ)+β`` from an embedding."""

    def __init__(self, ch: int, dilation: int = 1, emb_dim: int = 0):
        super().__init__()
        self.c1 = nn.Conv2d(ch, ch, 3, padding=dilation, dilation=dilation)
        self.c2 = nn.Conv2d(ch, ch, 3, padding=1)
        self.film = nn.Linear(emb_dim, 2 * ch) if emb_dim else None
        if self.film is not None:
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)

    def forward(self, x, emb=None):
        h = self.c1(F.silu(x))
        if self.film is not None and emb is not None:
            g, b = self.film(emb)[:, :, None, None].chunk(2, dim=1)
            h = h * (1 + g) + b
        return x + self.c2(F.silu(h))


def _pos_channel(x: torch.Tensor) -> torch.Tensor:
    """A channel holding the frequency-bin position in [-1, 1] (the nets are not frequency-shift invariant)."""
    pos = torch.linspace(-1.0, 1.0, x.shape[-1], device=x.device, dtype=x.dtype)
    return pos.expand(x.shape[0], 1, x.shape[2], x.shape[3])


class MelPostNet(nn.Module):
    """Tiny U-Net on the normalised decoded log-mel ``(B, 1, T, M)`` → residual ``(B, 1, T, M)``.

    Three resolutions (full, 1/2, 1/4 in time and frequency) with ``C, 2C, 4C`` channels, three dilated
    residual blocks (dilation 1, 2, 4) at 1/4 resolution, skip connections, zero-initialised output layer.
    """

    def __init__(self, channels: int = 16, emb_dim: int = 0):
        super().__init__()
        c = channels
        self.inp = nn.Conv2d(2, c, 3, padding=1)
        self.e0 = _Block(c, 1, emb_dim)
        self.d1 = nn.Conv2d(c, 2 * c, 3, stride=2, padding=1)
        self.e1 = _Block(2 * c, 1, emb_dim)
        self.d2 = nn.Conv2d(2 * c, 4 * c, 3, stride=2, padding=1)
        self.mid = nn.ModuleList([_Block(4 * c, d, emb_dim) for d in (1, 2, 4)])
        self.u2 = nn.Conv2d(4 * c, 2 * c, 1)
        self.m1 = nn.Conv2d(4 * c, 2 * c, 3, padding=1)
        self.b1 = _Block(2 * c, 1, emb_dim)
        self.u1 = nn.Conv2d(2 * c, c, 1)
        self.m0 = nn.Conv2d(2 * c, c, 3, padding=1)
        self.b0 = _Block(c, 1, emb_dim)
        self.out = nn.Conv2d(c, 1, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x, emb=None):
        t, m = x.shape[-2:]
        pt, pm = (-t) % 4, (-m) % 4
        if pt or pm:
            x = F.pad(x, (0, pm, 0, pt), mode="replicate")
        h0 = self.e0(self.inp(torch.cat([x, _pos_channel(x)], 1)), emb)
        h1 = self.e1(self.d1(F.silu(h0)), emb)
        h = self.d2(F.silu(h1))
        for blk in self.mid:
            h = blk(h, emb)
        h = self.u2(F.interpolate(h, size=h1.shape[-2:], mode="nearest"))
        h = self.b1(self.m1(torch.cat([h, h1], 1)), emb)
        h = self.u1(F.interpolate(h, size=h0.shape[-2:], mode="nearest"))
        h = self.b0(self.m0(torch.cat([h, h0], 1)), emb)
        return self.out(F.silu(h))[..., :t, :m]


class _Block1d(nn.Module):
    """Residual block over time ``x + conv1x1(silu(FiLM(conv_k3,dilated(silu(x)))))`` on ``(B, C, T)``."""

    def __init__(self, ch: int, dilation: int = 1, emb_dim: int = 0):
        super().__init__()
        self.c1 = nn.Conv1d(ch, ch, 3, padding=dilation, dilation=dilation)
        self.c2 = nn.Conv1d(ch, ch, 1)
        self.film = nn.Linear(emb_dim, 2 * ch) if emb_dim else None
        if self.film is not None:
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)

    def forward(self, x, emb=None):
        h = self.c1(F.silu(x))
        if self.film is not None and emb is not None:
            g, b = self.film(emb)[:, :, None].chunk(2, dim=1)
            h = h * (1 + g) + b
        return x + self.c2(F.silu(h))


class MelTCN(nn.Module):
    """Temporal conv net on the normalised log-mel with the mel bins as channels: ``(B, 1, T, M)`` → residual.

    ``Conv1d(M → C, 3)``, six residual blocks (dilations 1, 2, 4, 8, 1, 2: a receptive field of ±37 frames,
    every block sees all mel bins), zero-initialised ``Conv1d(C → M, 3)``. On CPU it is ~6× cheaper per crop
    than :class:`MelPostNet` at equal width of the result (large matrix products instead of thin 2-D convs).
    """

    def __init__(self, n_mels: int = 64, channels: int = 128, emb_dim: int = 0):
        super().__init__()
        self.inp = nn.Conv1d(n_mels, channels, 3, padding=1)
        self.blocks = nn.ModuleList([_Block1d(channels, d, emb_dim) for d in (1, 2, 4, 8, 1, 2)])
        self.out = nn.Conv1d(channels, n_mels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x, emb=None):
        h = self.inp(x[:, 0].transpose(1, 2))
        for blk in self.blocks:
            h = blk(h, emb)
        return self.out(F.silu(h)).transpose(1, 2)[:, None]


class LatentResNet(nn.Module):
    """Residual net on the scaled latent ``(B, C_z, T/4, M/4)``: four dilated residual blocks, zero-init output."""

    def __init__(self, latent_channels: int = 8, channels: int = 64, emb_dim: int = 0):
        super().__init__()
        self.inp = nn.Conv2d(latent_channels + 1, channels, 3, padding=1)
        self.blocks = nn.ModuleList([_Block(channels, d, emb_dim) for d in (1, 2, 4, 1)])
        self.out = nn.Conv2d(channels, latent_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, z, emb=None):
        h = self.inp(torch.cat([z, _pos_channel(z)], 1))
        for blk in self.blocks:
            h = blk(h, emb)
        return self.out(F.silu(h))


class TypeClassifier(nn.Module):
    """Audio-type logits from a (normalised) mel or latent ``(B, C, T, F)``: three strided convs, time-mean pool."""

    def __init__(self, in_channels: int = 1, n_classes: int = 4, width: int = 16):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(in_channels + 1, width, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1), nn.SiLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d((1, 4))
        self.head = nn.Linear(2 * width * 4, n_classes)

    def forward(self, x):
        h = self.pool(self.convs(torch.cat([x, _pos_channel(x)], 1)))
        return self.head(h.flatten(1))


class Restorer(nn.Module):
    """A trained restorer: the residual net, the optional type classifier and its :class:`RestorerConfig`.

    Use :meth:`restore`; ``forward`` returns the raw residual of the normalised input.
    """

    def __init__(self, config: RestorerConfig):
        super().__init__()
        self.config = config
        emb = config.emb_dim if config.conditional else 0
        if config.kind == "latent":
            self.net = LatentResNet(config.latent_channels, config.channels, emb)
        elif config.arch == "unet":
            self.net = MelPostNet(config.channels, emb)
        else:
            self.net = MelTCN(config.n_mels, config.channels, emb)
        if config.conditional:
            self.embedding = nn.Embedding(len(config.categories), config.emb_dim)
            in_ch = 1 if config.kind == "mel" else config.latent_channels
            self.classifier = TypeClassifier(in_ch, len(config.categories))
        else:
            self.embedding = self.classifier = None

    @property
    def kind(self) -> str:
        return self.config.kind

    def _norm(self, x):
        if self.config.kind == "mel":
            return (x - self.config.mel_mean) / self.config.mel_std
        return x

    def type_probs(self, x: torch.Tensor) -> torch.Tensor:
        """Audio-type probabilities ``(B, K)`` inferred from the decoded mel (mel kind) or latent (latent kind)."""
        if self.classifier is None:
            raise RestorerError("this restorer is not conditional: it has no type classifier")
        return torch.softmax(self.classifier(self._norm(x.float())), dim=-1)

    def _cond_weights(self, x, category) -> torch.Tensor | None:
        """``(B, K)`` weights of the type embeddings: one-hot for a label, classifier probabilities for auto."""
        if self.embedding is None:
            return None
        k = len(self.config.categories)
        if category is None or (isinstance(category, str) and category == "auto"):
            return self.type_probs(x)
        if isinstance(category, torch.Tensor):
            if category.ndim == 2:  # given probabilities / weights
                return category.to(x.device, torch.float32)
            idx = category.to(x.device).long().reshape(-1)
        else:
            names = [category] if isinstance(category, (str, int, np.integer)) else list(category)
            idx = torch.tensor([self._category_index(c) for c in names], device=x.device)
        if idx.numel() == 1 and x.shape[0] > 1:
            idx = idx.expand(x.shape[0])
        return F.one_hot(idx, k).float()

    def _category_index(self, c) -> int:
        cats = self.config.categories
        if isinstance(c, str):
            if c not in cats:
                raise RestorerError(f"unknown audio type {c!r}; accepted: auto, {', '.join(cats)}")
            return cats.index(c)
        c = int(c)
        if not 0 <= c < len(cats):
            raise RestorerError(f"audio type index {c} out of range; accepted: 0..{len(cats) - 1} ({', '.join(cats)})")
        return c

    def forward(self, x, category=None):
        w = self._cond_weights(x, category)
        emb = None if w is None else w @ self.embedding.weight
        out = self.net(self._norm(x), emb)
        return out * self.config.mel_std if self.config.kind == "mel" else out

    @torch.no_grad()
    def restore(self, x: torch.Tensor, strength: float = 1.0, category=None) -> torch.Tensor:
        """``x + strength · f(x)`` for a log-mel ``(B, 1, T, M)`` (mel kind) or scaled latent (latent kind).

        ``strength=0`` returns ``x.clone()`` (bit-exact plain VAE output). ``x`` is never modified. ``category``:
        ``None``/``"auto"`` (inferred), a type name or index, or ``(B, K)`` weights (conditional restorers only).
        """
        strength = float(strength)
        if not 0.0 <= strength <= 1.0:
            raise RestorerError(f"strength must be in [0, 1], got {strength:g}")
        if not isinstance(x, torch.Tensor) or x.ndim != 4:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise RestorerError(f"restore takes a 4-D tensor (batch, channels, time, freq), got {shape}")
        if self.embedding is None and not (category is None or (isinstance(category, str) and category == "auto")):
            raise RestorerError("this restorer is not conditional; pass no category")
        if strength == 0.0:
            return x.clone()
        p = next(self.parameters())
        if p.device != x.device:
            self.to(x.device)
        self.eval()
        xf = x.float()
        out = xf + strength * self(xf, category)
        if self.config.kind == "mel" and self.config.mel_floor is not None:
            out = out.clamp(min=self.config.mel_floor)
        return out.to(x.dtype)


def restorer_loss(est: torch.Tensor, ref: torch.Tensor, hf_mask: torch.Tensor, hf_weight: float = 3.0,
                  lsd_weight: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """Band-weighted L1 on log-mel plus a per-frame high-band RMS term (see the module docstring).

    ::

        loss = Σ w_m |d| / Σ w_m  +  lsd_weight · mean_{b,t} sqrt( mean_{m ∈ HF} d² + eps ),   d = est − ref

    Parameters
    ----------
    est, ref : torch.Tensor
        Log-mels ``(B, 1, T, M)``.
    hf_mask : torch.Tensor
        Boolean ``(M,)``: bins at or above 4 kHz.
    """
    d = est - ref
    w = 1.0 + (hf_weight - 1.0) * hf_mask.to(d.dtype)
    l1 = (d.abs() * w).mean() / w.mean()
    if lsd_weight == 0 or not bool(hf_mask.any()):
        return l1
    hf = d[..., hf_mask]
    return l1 + lsd_weight * torch.sqrt(hf.pow(2).mean(-1) + eps).mean()


# --------------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------------
def augment_wave(x: np.ndarray, rng: np.random.Generator, sr: int = 16000, other: np.ndarray | None = None):
    """A randomly re-coloured copy of a normalised clip, for training-data diversity (seeded by ``rng``).

    1. spectral tilt: the spectrum times ``10^(s · log2(max(f, 100 Hz) / 2 kHz) / 20)``, ``s`` uniform in ±4 dB per
       octave (brighter or duller recordings);
    2. with probability 0.3, ``other`` (another clip) mixed in at −12…−3 dB;
    3. with probability 0.5, white or pink (1/f power) noise at 20…45 dB SNR;
    then the training normalisation again.
    """
    from .audio import normalize

    n = len(x)
    f = np.fft.rfftfreq(n, 1.0 / sr)
    tilt = rng.uniform(-4.0, 4.0)
    y = np.fft.irfft(np.fft.rfft(x) * 10 ** (tilt * np.log2(np.maximum(f, 100.0) / 2000.0) / 20), n)
    if other is not None and rng.random() < 0.3:
        o = np.resize(other, n) * 10 ** (rng.uniform(-12.0, -3.0) / 20)
        y = y + o * (np.sqrt(np.mean(y ** 2)) / (np.sqrt(np.mean(o ** 2)) + 1e-9))
    if rng.random() < 0.5:
        noise = rng.standard_normal(n)
        if rng.random() < 0.5:  # pink: 1/sqrt(f) amplitude
            noise = np.fft.irfft(np.fft.rfft(noise) / np.sqrt(np.maximum(f, 20.0)), n)
        snr = rng.uniform(20.0, 45.0)
        y = y + noise * np.sqrt(np.mean(y ** 2) / (np.mean(noise ** 2) + 1e-12) / 10 ** (snr / 10))
    return normalize(y.astype(np.float32))[0]


def _category_index(path, categories=CATEGORIES) -> int:
    """Index of :func:`category_of` ``path`` in ``categories``; the last one ("other") when it is not listed."""
    c = category_of(path)
    return categories.index(c) if c in categories else len(categories) - 1


def collect_pairs(files, vae, max_frames: int = 1024, progress: bool = True, categories=CATEGORIES,
                  augment: int = 0, seed: int = 0) -> list[dict]:
    """Run every clip through the frozen VAE once; return the training pairs.

    Each clip is normalised (mean removed, peak 0.5) and cut into windows of at most ``max_frames`` frames
    (the VAE's training length; each window is its own whole input to the VAE). Per window: ``name``,
    ``category`` (index into ``categories``, from :func:`category_of`), ``mel`` (input log-mel), ``dec`` (plain
    VAE decode) — ``(1, 1, T, M)`` float32 on the CPU — ``z`` (scaled latent) and ``aug`` (False). With
    ``augment=k``, each clip also yields ``k`` re-coloured copies (:func:`augment_wave`, seeded), marked
    ``aug=True`` (training only: :func:`split_holdout` never holds them out).
    """
    from tqdm.auto import tqdm

    from .audio import load_audio, normalize, pad_to_multiple, wav_to_mel

    cfg = vae.mel_config
    step = max_frames * cfg.hop_length
    rng = np.random.default_rng(seed)
    loaded = []
    for path in list(files):
        try:
            loaded.append((path, normalize(load_audio(path, sr=cfg.sr))[0]))
        except Exception as exc:  # one bad file must not lose the others
            sys.stderr.write(f"warning: skipped {Path(path).name}: {one_line(exc, 160)}\n")
    out = []
    for path, x0 in tqdm(loaded, desc="encode/decode", disable=not progress, leave=False):
        cat = _category_index(path, categories)
        versions = [x0] + [augment_wave(x0, rng, cfg.sr, loaded[rng.integers(len(loaded))][1])
                           for _ in range(augment)]
        for v, x in enumerate(versions):
            pieces = [x[i:i + step] for i in range(0, len(x), step)] if len(x) > step else [x]
            for k, piece in enumerate(pieces):
                if len(piece) < 16 * cfg.hop_length and k:
                    continue
                piece = pad_to_multiple(normalize(piece)[0], cfg)  # each window is one whole, normalised VAE input
                mel = wav_to_mel(torch.from_numpy(np.ascontiguousarray(piece)).to(vae.device), cfg)
                z = vae.encode(mel)
                dec = vae.decode(z)
                name = Path(path).stem + (f"#{k}" if len(pieces) > 1 else "") + (f"~aug{v}" if v else "")
                out.append({"name": name, "path": str(path), "category": cat, "mel": mel.float().cpu(),
                            "dec": dec.float().cpu(), "z": z.float().cpu(), "aug": bool(v)})
    if not out:
        raise RestorerError("no readable audio among the training files")
    return out


def split_holdout(items: list[dict], fraction: float, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Seeded split of whole source files into (train, held-out), stratified by audio type.

    Windows of one file stay together. At least one file is kept for training; with a single file nothing is
    held out.
    """
    if not 0.0 <= fraction < 1.0:
        raise RestorerError(f"--holdout must be in [0, 1), got {fraction:g}")
    rng = np.random.default_rng(seed)
    paths = sorted({it["path"] for it in items})
    cat = {it["path"]: it["category"] for it in items}
    held = set()
    for c in sorted(set(cat.values())):
        group = [p for p in paths if cat[p] == c]
        n = int(round(fraction * len(group)))
        if n and len(group) > 1:
            held.update(rng.permutation(group)[:min(n, len(group) - 1)].tolist())
    if len(held) >= len(paths):
        held = set(list(held)[:-1])
    train = [it for it in items if it["path"] not in held]
    return train, [it for it in items if it["path"] in held and not it.get("aug")]


# --------------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------------
@torch.no_grad()
def _restored_mel(restorer: Restorer, item: dict, vae=None, strength: float = 1.0, category=None):
    if restorer.kind == "mel":
        return restorer.restore(item["dec"], strength, category)
    if vae is None:
        raise RestorerError("a latent restorer needs the VAE to decode its output")
    z = restorer.restore(item["z"].to(vae.device), strength, category)
    return vae.decode(z).float().cpu()


def evaluate_restorer(restorer: Restorer, items: list[dict], vae=None, category="label", cfg=None) -> dict:
    """Score a restorer on (input, decoded) pairs: mel LSD-HF, mel LSD and mel L1 of plain VAE vs restored.

    ``category="label"`` conditions a conditional restorer on each clip's label; ``"auto"`` lets it infer the
    type. Returns ``{"per_clip": [...], "mean": {...}}`` with ``*_vae``, ``*_restored`` and ``*_change`` (relative,
    negative = better) for ``lsd_hf``, ``lsd`` and ``l1``; ``type_accuracy`` for conditional restorers.
    """
    from . import metrics
    from .audio import MelConfig

    c = restorer.config
    cfg = cfg or MelConfig(sr=int(c.sr), n_fft=int(c.n_fft), win_length=int(c.n_fft), hop_length=min(160, c.n_fft),
                           n_mels=int(c.n_mels), fmin=float(c.fmin), fmax=float(c.fmax))
    band = (c.high_band_hz, c.sr / 2 + 1)
    rows, hits = [], []
    for it in items:
        cat = None
        if restorer.embedding is not None:
            cat = it["category"] if category == "label" else "auto"
            x = it["dec"] if restorer.kind == "mel" else it["z"]
            hits.append(int(restorer.type_probs(x.to(next(restorer.parameters()).device)).argmax()) == it["category"])
        est = _restored_mel(restorer, it, vae, 1.0, cat)
        row = {"clip": it["name"], "category": c.categories[it["category"]]}
        for key, fn in (("lsd_hf", lambda a, b: metrics.mel_lsd(a, b, band=band, cfg=cfg)),
                        ("lsd", lambda a, b: metrics.mel_lsd(a, b)), ("l1", metrics.mel_l1)):
            row[f"{key}_vae"] = fn(it["mel"], it["dec"])
            row[f"{key}_restored"] = fn(it["mel"], est)
        rows.append(row)
    mean = {}
    if rows:
        for key in ("lsd_hf", "lsd", "l1"):
            a = float(np.mean([r[f"{key}_vae"] for r in rows]))
            b = float(np.mean([r[f"{key}_restored"] for r in rows]))
            mean.update({f"{key}_vae": a, f"{key}_restored": b, f"{key}_change": b / a - 1.0 if a else 0.0})
        mean["clips"] = len(rows)
        if hits:
            mean["type_accuracy"] = float(np.mean(hits))
    return {"per_clip": rows, "mean": mean}


@torch.no_grad()
def score_methods(items: list[dict], vae, methods: dict, cfg=None, seed: int = 0) -> list[dict]:
    """Score enhancers of every stage on (input, decoded) pairs in the mel domain (no vocoder).

    Parameters
    ----------
    items : list of dict
        From :func:`collect_pairs` (``mel``, ``dec``, ``z``, ``name``, ``category``).
    vae : vaelib.models.LatentVAE
        Decodes the latent-stage variants.
    methods : dict
        ``{label: (method, params)}`` (as :func:`vaelib.pipeline.parse_enhancers` returns; ``None`` or
        ``("none", {})`` is the plain VAE). For ``learned_cond``, ``params["category"] = "label"`` uses each clip's
        own type.

    Returns
    -------
    list of dict
        One row per (clip, label): ``clip``, ``category``, ``label``, ``lsd_hf`` (mel LSD over bins ≥ 4 kHz),
        ``lsd`` (all bins), ``l1`` (mel L1), each against the input log-mel.
    """
    from . import enhance, metrics
    from .audio import MelConfig

    cfg = cfg or vae.mel_config or MelConfig.audioldm2()
    band = (metrics.HIGH_BAND_HZ, cfg.sr / 2 + 1)
    rows = []
    for it in items:
        specs = {}
        for label, spec in methods.items():
            method, params = spec if spec is not None else ("none", {})
            params = dict(params)
            if params.get("category") == "label":
                params["category"] = float(it["category"])
            specs[label] = (method, params)
        on_latent = [lab for lab, (m, _) in specs.items() if m != "none" and enhance.get(m).stage == "latent"]
        ests = {}
        if on_latent:  # one batched decode per clip for every latent-stage candidate
            z = it["z"].to(vae.device)
            zs = torch.cat([enhance.apply(specs[lab][0], z, specs[lab][1], seed=seed) for lab in on_latent])
            dec = vae.decode(zs).float().cpu()
            ests = {lab: dec[i:i + 1] for i, lab in enumerate(on_latent)}
        for label, (method, params) in specs.items():
            if method == "none":
                est = it["dec"]
            elif label in ests:
                est = ests[label]
            else:
                est = enhance.apply(method, it["dec"], params, seed=seed)
            rows.append({"clip": it["name"], "category": CATEGORIES[it["category"]], "label": label,
                         "lsd_hf": metrics.mel_lsd(it["mel"], est, band=band, cfg=cfg),
                         "lsd": metrics.mel_lsd(it["mel"], est), "l1": metrics.mel_l1(it["mel"], est)})
    return rows


# --------------------------------------------------------------------------------------------------
# saving / loading (safetensors only)
# --------------------------------------------------------------------------------------------------
def save_restorer(restorer: Restorer, folder, extra: dict | None = None) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``folder`` (created)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().float().cpu().contiguous() for k, v in restorer.state_dict().items()}
    save_file(state, str(folder / WEIGHTS), metadata={"format": FORMAT})
    cfg = dataclasses.asdict(restorer.config)
    cfg["categories"] = list(cfg["categories"])
    (folder / "config.json").write_text(json.dumps({"format": FORMAT, "version": 1, "restorer": cfg,
                                                    **(extra or {})}, indent=2) + "\n")
    return folder


def load_restorer(folder, device=None) -> Restorer:
    """Load a restorer written by :func:`save_restorer` / ``vaelib train-restorer`` (safetensors only).

    Raises :class:`RestorerError` (one line) for a missing folder, pickle-only weights or a foreign config.
    """
    from safetensors.torch import load_file

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise RestorerError(f"restorer folder not found: {folder}")
    cfg_path, weights = folder / "config.json", folder / WEIGHTS
    if not weights.is_file():
        pickles = [p.name for p in folder.iterdir() if p.suffix in _PICKLE_SUFFIXES]
        if pickles:
            raise RestorerError(f"refusing to load pickle weights {pickles} in {folder}: unpickling can execute "
                                f"code; only {WEIGHTS} is loaded")
        raise RestorerError(f"no {WEIGHTS} in {folder}; pass a folder written by `vaelib train-restorer`")
    try:
        meta = json.loads(cfg_path.read_text())
    except (OSError, ValueError) as exc:
        raise RestorerError(f"cannot read {cfg_path}: {one_line(exc, 120)}") from None
    if meta.get("format") != FORMAT:
        raise RestorerError(f"{cfg_path} is not a vaelib restorer config (format {meta.get('format')!r})")
    known = {f.name for f in dataclasses.fields(RestorerConfig)}
    config = RestorerConfig(**{k: v for k, v in meta["restorer"].items() if k in known})
    model = Restorer(config)
    try:
        model.load_state_dict(load_file(str(weights)))
    except RuntimeError as exc:
        raise RestorerError(f"{weights} does not match its config.json: {one_line(exc, 160)}") from None
    model.eval()
    if device is not None:
        model.to(device)
    return model


def bundled_dir(name: str = "learned") -> Path:
    """Folder of a bundled restorer (``vaelib/assets/restorers/<name>``) for the bundled tiny VAE."""
    from .assets import ASSETS

    return ASSETS / "restorers" / name


@functools.cache
def bundled_restorer(name: str = "learned") -> Restorer:
    """The bundled restorer ``name`` (``"learned"`` or ``"learned_cond"``), loaded once and cached."""
    folder = bundled_dir(name)
    if not (folder / WEIGHTS).is_file():
        raise RestorerError(f"bundled restorer {name!r} missing in {folder}; reinstall vaelib or train one with "
                            "`vaelib train-restorer`")
    return load_restorer(folder)


def training_log(name: str = "learned") -> list[dict]:
    """Rows of a bundled restorer's ``training_log.csv`` (``step``, ``loss``, ``heldout_lsd_hf_change``, ...)."""
    with open(bundled_dir(name) / "training_log.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def card_info(name: str = "learned") -> dict:
    """The ``training`` block of a bundled restorer's ``config.json`` and its held-out means (``eval.json``)."""
    folder = bundled_dir(name)
    info = json.loads((folder / "config.json").read_text()).get("training", {})
    ev = json.loads((folder / "eval.json").read_text())
    held = (ev.get("heldout") or {}).get("mean", {})
    return {"name": name, **{k: info.get(k) for k in ("parameters", "steps", "seconds", "cpu_seconds", "threads",
                                                        "train_seconds_audio", "command")},
            "train_files": len(info.get("train_clips", [])), "heldout_files": len(info.get("heldout_clips", [])),
            **{f"heldout_{k}": v for k, v in held.items()}}


def register(folder, name: str | None = None) -> str:
    """Register a trained restorer folder as an enhancer (stage ``mel`` or ``latent`` by its kind); return its name.

    Afterwards ``vaelib.reconstruct(wave, vae, vocoder, enhancers=[name])`` applies it like any enhancer, with a
    ``strength`` parameter (and ``category`` for conditional ones).
    """
    from . import enhance

    model = load_restorer(folder)
    name = name or Path(folder).name
    if name in enhance.ENHANCERS and not getattr(enhance.ENHANCERS[name], "restorer", False):
        raise RestorerError(f"enhancer name {name!r} is taken by a built-in method; choose another name")
    enhance.register_restorer(name, model)
    return name


# --------------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class TrainOptions:
    """Training hyper-parameters (defaults: the bundled restorer's run)."""

    steps: int = 2000
    minutes: float | None = None
    batch_size: int = 8
    crop_frames: int = 128
    lr: float = 2e-3
    lr_min: float = 1e-4
    hf_weight: float = 3.0
    lsd_weight: float = 1.0
    cls_weight: float = 0.2
    holdout: float = 0.15
    holdout_files: list[str] | None = None
    seed: int = 0
    threads: int | None = 2
    eval_every: int = 250
    log_every: int = 25
    ckpt_every: int = 250
    max_frames: int = 1024
    augment: int = 0
    mel_floor: bool = True
    ema: float = 0.0


def _lr_at(frac: float, opts: TrainOptions) -> float:
    """Cosine schedule from ``lr`` to ``lr_min`` over the run (``frac`` = step or time fraction)."""
    frac = min(max(frac, 0.0), 1.0)
    return opts.lr_min + 0.5 * (opts.lr - opts.lr_min) * (1 + math.cos(math.pi * frac))


def _mel_batch(items, rng, batch: int, crop: int):
    mels, decs, cats = [], [], []
    for _ in range(batch):
        it = items[rng.integers(len(items))]
        t = it["mel"].shape[2]
        s = int(rng.integers(0, t - crop + 1))
        mels.append(it["mel"][..., s:s + crop, :])
        decs.append(it["dec"][..., s:s + crop, :])
        cats.append(it["category"])
    return torch.cat(mels), torch.cat(decs), torch.tensor(cats)


def _save_checkpoint(folder: Path, model, opt, step, elapsed, rng, rows, best, ema=None):
    from safetensors.torch import save_file

    ck = folder / "checkpoint"
    ck.mkdir(parents=True, exist_ok=True)
    tmp = ck / "state.json.tmp"
    state = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    params = [p for g in opt.param_groups for p in g["params"]]
    for i, p in enumerate(params):
        st = opt.state.get(p, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in st:
                state[f"opt.{i}.{key}"] = st[key].detach().cpu().contiguous()
        if "step" in st:
            state[f"opt.{i}.step"] = torch.as_tensor(st["step"], dtype=torch.float32).reshape(1).cpu()
    for i, e in enumerate(ema or []):
        state[f"ema.{i}"] = e.detach().cpu().contiguous()
    save_file(state, str(ck / "state.safetensors"))
    tmp.write_text(json.dumps({"step": step, "elapsed": elapsed, "rng": rng.bit_generator.state, "rows": rows,
                               "best": best}))
    tmp.replace(ck / "state.json")


def _load_checkpoint(folder: Path, model, opt, rng, ema=None):
    from safetensors.torch import load_file

    ck = folder / "checkpoint"
    meta = json.loads((ck / "state.json").read_text())
    state = load_file(str(ck / "state.safetensors"))
    model.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("model.")})
    params = [p for g in opt.param_groups for p in g["params"]]
    for i, p in enumerate(params):
        if f"opt.{i}.exp_avg" in state:
            opt.state[p] = {"step": state[f"opt.{i}.step"].reshape(()).clone(),
                            "exp_avg": state[f"opt.{i}.exp_avg"].to(p.device),
                            "exp_avg_sq": state[f"opt.{i}.exp_avg_sq"].to(p.device)}
    for i, e in enumerate(ema or []):
        if f"ema.{i}" not in state:
            raise RestorerError(f"{folder} was trained without --ema; resume it with the same arguments")
        e.copy_(state[f"ema.{i}"])
    rng.bit_generator.state = meta["rng"]
    return meta["step"], meta["elapsed"], meta["rows"], meta.get("best")


_DEFAULT_WIDTH = {"tcn": 128, "unet": 16, "latent": 64}


def train_restorer(vae, files, out, kind: str = "mel", conditional: bool = False, opts: TrainOptions | None = None,
                   channels: int | None = None, arch: str = "tcn", resume: bool = False, progress: bool = True,
                   command: str = "", echo=print, pairs: list[dict] | None = None) -> dict:
    """Train a restorer for the frozen ``vae`` on ``files`` and write it to the new folder ``out``.

    Writes ``model.safetensors``, ``config.json``, ``MODEL_CARD.md``, ``training_log.csv``,
    ``training_curve.png``, ``eval.json`` (held-out clips) and ``checkpoint/`` (resumable with ``resume=True``).
    Refuses a non-empty ``out`` unless resuming an unfinished run there. Seeded: the same seed, data and thread
    count give the same weights. Returns ``{"folder", "eval", "steps", "seconds"}``.
    """
    from tqdm.auto import tqdm


    opts = opts or TrainOptions()
    out = Path(out).expanduser()
    if resume:
        if not (out / "checkpoint" / "state.json").is_file():
            raise RestorerError(f"nothing to resume in {out}: no checkpoint/state.json there")
        if (out / WEIGHTS).is_file():
            raise RestorerError(f"{out} holds a finished restorer ({WEIGHTS}); nothing to resume")
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RestorerError(f"output folder {out} exists and is not empty; pass a new folder (or --resume)")
    if opts.steps < 1 and not opts.minutes:
        raise RestorerError("--steps must be a positive integer")
    if opts.threads:
        torch.set_num_threads(int(opts.threads))
    torch.manual_seed(opts.seed)
    if opts.holdout_files:  # a fixed held-out set: never trained on, never mixed into augmented copies
        fixed = {str(Path(f).resolve()) for f in opts.holdout_files}
        files = [f for f in files if str(Path(f).resolve()) not in fixed]
        if pairs is not None:
            pairs = [it for it in pairs if str(Path(it["path"]).resolve()) not in fixed]
        if (pairs is None and not files) or (pairs is not None and not pairs):
            raise RestorerError("every training file is also in --holdout-files: nothing left to train on")
    held_files = opts.holdout_files
    if pairs is None and not held_files and opts.augment:
        # split the files before collecting pairs, so that held-out audio is never a mixing partner of an augmented
        # training copy (the split is the one split_holdout makes on the pairs: same seed, same files)
        listed = [{"path": str(f), "category": _category_index(f)} for f in files]
        kept, held_listed = split_holdout(listed, opts.holdout, opts.seed)
        files, held_files = [Path(it["path"]) for it in kept], [Path(it["path"]) for it in held_listed]
    items = pairs if pairs is not None else collect_pairs(files, vae, opts.max_frames, progress,
                                                          augment=opts.augment, seed=opts.seed)
    if held_files:
        train_items = items
        try:
            held = collect_pairs(held_files, vae, opts.max_frames, progress=False, seed=opts.seed)
        except RestorerError:
            raise RestorerError("no readable audio among the held-out files") from None
    else:
        train_items, held = split_holdout(items, opts.holdout, opts.seed)
    allmel = torch.cat([it["mel"].flatten() for it in train_items])
    mc = vae.mel_config
    channels = channels or _DEFAULT_WIDTH["latent" if kind == "latent" else arch]
    config = RestorerConfig(kind=kind, conditional=conditional, arch=arch, channels=channels, n_mels=mc.n_mels,
                            latent_channels=vae.latent_channels, mel_mean=round(float(allmel.mean()), 4),
                            mel_std=round(float(allmel.std()), 4), sr=mc.sr, n_fft=mc.n_fft, fmin=mc.fmin,
                            fmax=mc.fmax,
                            mel_floor=math.log(LOG_CLAMP) if kind == "mel" and opts.mel_floor else None)
    device = vae.device
    model = Restorer(config).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=opts.lr)
    rng = np.random.default_rng(opts.seed)
    hf = torch.from_numpy(config.hf_mask()).to(device)
    crop = min(opts.crop_frames, min(it["mel"].shape[2] for it in train_items))
    crop -= crop % 4
    step, elapsed, rows, best = 0, 0.0, [], None
    # exponential moving average of the weights (Polyak averaging); decay warmed up as min(d, (1 + n) / (10 + n))
    ema = [q.detach().clone() for q in model.parameters()] if opts.ema else None
    out.mkdir(parents=True, exist_ok=True)
    if resume:
        step, elapsed, rows, best = _load_checkpoint(out, model, opt, rng, ema)
        echo(f"resuming at step {step} ({elapsed:.0f} s done)")
    budget = opts.minutes * 60 if opts.minutes else None
    total = int(budget) if budget else opts.steps
    if kind == "latent":
        for p in vae.model.parameters():
            p.requires_grad_(False)
    sf = vae.scaling_factor

    def swap_ema():  # exchange the live weights with their average (twice = back)
        with torch.no_grad():
            for q, e in zip(model.parameters(), ema, strict=True):
                tmp = q.detach().clone()
                q.copy_(e)
                e.copy_(tmp)

    def heldout_metric():
        if not held:
            return None
        model.eval()
        if ema:
            swap_ema()
        ev = evaluate_restorer(model, held, vae)["mean"]
        if ema:
            swap_ema()
        model.train()
        return ev["lsd_hf_change"]

    cpu0 = time.process_time() - (rows[-1].get("cpu_seconds", 0.0) if rows else 0.0)
    bar = tqdm(total=total, initial=int(elapsed) if budget else step, disable=not progress, desc=f"train {kind}",
               unit="s" if budget else "step", dynamic_ncols=True)
    t0 = time.time() - elapsed
    acc, last_eval = [], rows[-1].get("heldout_lsd_hf_change") if rows else None
    model.train()
    while True:
        now = time.time() - t0
        if (budget is not None and now >= budget) or (budget is None and step >= opts.steps):
            break
        frac = now / budget if budget else step / opts.steps
        for g in opt.param_groups:
            g["lr"] = _lr_at(frac, opts)
        if kind == "mel":
            mel, dec, cats = _mel_batch(train_items, rng, opts.batch_size, crop)
            mel, dec, cats = mel.to(device), dec.to(device), cats.to(device)
            est = dec + model(dec, cats if conditional else None)
            if config.mel_floor is not None:  # the clamp of Restorer.restore, straight-through for the gradient
                est = est + (est.clamp(min=config.mel_floor) - est).detach()
            src = dec
        else:
            it = train_items[rng.integers(len(train_items))]
            mel, z, cats = it["mel"].to(device), it["z"].to(device), torch.tensor([it["category"]], device=device)
            z2 = z + model(z, cats if conditional else None)
            est = vae.model.decode((z2 / sf).to(vae.dtype)).sample.float()
            src = z
        loss = restorer_loss(est, mel, hf, opts.hf_weight, opts.lsd_weight)
        total_loss = loss
        if conditional:
            ce = F.cross_entropy(model.classifier(model._norm(src)), cats)
            total_loss = loss + opts.cls_weight * ce
        opt.zero_grad(set_to_none=True)
        total_loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if ema:
            d = min(opts.ema, (1 + step) / (10 + step))
            with torch.no_grad():
                for q, e in zip(model.parameters(), ema, strict=True):
                    e.lerp_(q.detach(), 1 - d)
        acc.append(loss.item())
        done_now = time.time() - t0
        if step % opts.eval_every == 0:
            last_eval = heldout_metric()
        if step % opts.log_every == 0 or step == 1:
            rows.append({"step": step, "loss": float(np.mean(acc)), "lr": opt.param_groups[0]["lr"],
                         "heldout_lsd_hf_change": last_eval, "seconds": round(done_now, 1),
                         "cpu_seconds": round(time.process_time() - cpu0, 1)})
            acc = []
        post = {"loss": f"{loss.item():.4f}"}
        if last_eval is not None:
            post["heldout LSD-HF"] = f"{100 * last_eval:+.1f}%"
        bar.set_postfix(post, refresh=False)
        bar.update(int(done_now) - bar.n if budget else 1)
        if step % opts.ckpt_every == 0:
            _save_checkpoint(out, model, opt, step, done_now, rng, rows, best, ema)
    bar.close()
    seconds = time.time() - t0
    if acc:
        rows.append({"step": step, "loss": float(np.mean(acc)), "lr": opt.param_groups[0]["lr"],
                     "heldout_lsd_hf_change": last_eval, "seconds": round(seconds, 1),
                     "cpu_seconds": round(time.process_time() - cpu0, 1)})
    _save_checkpoint(out, model, opt, step, seconds, rng, rows, best, ema)
    if ema:  # the averaged weights are the result
        swap_ema()
    model.eval()
    result_eval = {"heldout": evaluate_restorer(model, held, vae) if held else None}
    if conditional and held:
        result_eval["heldout_auto"] = evaluate_restorer(model, held, vae, category="auto")
    train_info = {
        "vae": "bundled" if getattr(vae, "bundled", False) else str(getattr(vae, "source", "")),
        "scaling_factor": sf, "kind": kind, "conditional": conditional,
        "parameters": n_params, "steps": step, "seconds": round(seconds, 1),
        "cpu_seconds": round(time.process_time() - cpu0, 1), "threads": torch.get_num_threads(),
        "device": str(device), "options": dataclasses.asdict(opts), "command": command,
        "train_clips": sorted({Path(it["path"]).name for it in train_items}),
        "heldout_clips": sorted({Path(it["path"]).name for it in held}),
        "train_seconds_audio": round(sum(it["mel"].shape[2] for it in train_items) * mc.hop_length / mc.sr, 1),
    }
    save_restorer(model, out, {"training": train_info})
    _write_log(out / "training_log.csv", rows)
    save_json(out / "eval.json", result_eval)
    _plot_curve(out / "training_curve.png", rows)
    (out / "MODEL_CARD.md").write_text(model_card(train_info, result_eval, rows))
    return {"folder": out, "eval": result_eval, "steps": step, "seconds": seconds}


def _write_log(path: Path, rows: list[dict]):
    if not rows:
        return
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)




def _plot_curve(path: Path, rows: list[dict]):
    """Training loss and held-out LSD-HF change against step (Agg canvas; never switches the backend)."""
    if not rows:
        return
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 2, 1)
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows])
    ax.set(xlabel="step", ylabel="training loss", title="loss")
    ax2 = fig.add_subplot(1, 2, 2)
    ev = [(r["step"], 100 * r["heldout_lsd_hf_change"]) for r in rows if r.get("heldout_lsd_hf_change") is not None]
    if ev:
        ax2.plot(*zip(*ev, strict=True), marker="o")
    ax2.axhline(0, color="grey", lw=0.8)
    ax2.set(xlabel="step", ylabel="% vs plain VAE", title="held-out mel LSD-HF change")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def model_card(info: dict, ev: dict, rows: list[dict]) -> str:
    """Markdown model card: data, exact command, numbers (held-out, per type), curve."""
    from .markup import md_code, md_text

    kind = "mel post-net `r' = r + s·f(r)`" if info["kind"] == "mel" else "latent residual net `z' = z + s·g(z)`"
    lines = [
        f"# vaelib restorer ({'conditional ' if info['conditional'] else ''}{info['kind']})", "",
        f"A learned high-band restorer for the frozen VAE {md_code(info['vae'])}: {kind}"
        + (", FiLM-conditioned on the audio type (speech / music / percussion / other), with a type classifier "
           "for unlabelled audio" if info["conditional"] else "") + ".", "",
        "| | |", "|---|---|",
        f"| parameters | {info['parameters']:,} |",
        f"| training | {info['steps']} steps, {info['seconds'] / 60:.1f} min wall, {info['cpu_seconds'] / 60:.1f} min "
        f"CPU time (all threads), {info['threads']} threads, device {md_text(info['device'])} |",
        f"| data | {len(info['train_clips'])} training files ({info['train_seconds_audio']:.0f} s of audio), "
        f"{len(info['heldout_clips'])} held out ("
        + ("a fixed set, `--holdout-files`" if info["options"].get("holdout_files")
           else f"a seeded {100 * info['options'].get('holdout', 0.15):g} % split stratified by type") + ") |",
        f"| loss | band-weighted L1 on log-mel (×{info['options']['hf_weight']:g} at ≥ 4 kHz) + "
        f"{info['options']['lsd_weight']:g} × per-frame high-band RMS log-ratio (see `vaelib.restore`) |",
        f"| augmentation | {info['options'].get('augment', 0)} re-coloured cop(ies) per training clip |",
        *([f"| weights | exponential moving average, decay {info['options']['ema']:g} |"]
          if info["options"].get("ema") else []), "",
        "## Command", "", "```bash", info.get("command") or "(library call)", "```", "",
    ]
    held = (ev or {}).get("heldout")
    if held and held["mean"]:
        m = held["mean"]
        lines += ["## Held-out clips (never trained on)", "",
                  "| metric | plain VAE | restored | change |", "|---|---|---|---|"]
        for key, label in (("lsd_hf", "mel LSD ≥ 4 kHz"), ("lsd", "mel LSD"), ("l1", "mel L1")):
            lines.append(f"| {label} | {m[f'{key}_vae']:.4f} | {m[f'{key}_restored']:.4f} | "
                         f"{100 * m[f'{key}_change']:+.1f} % |")
        if "type_accuracy" in m:
            lines.append(f"| type classifier accuracy | | {m['type_accuracy']:.2f} | |")
        if ev.get("heldout_auto"):
            a = ev["heldout_auto"]["mean"]
            lines.append(f"| mel LSD ≥ 4 kHz, type inferred (auto) | {a['lsd_hf_vae']:.4f} | "
                         f"{a['lsd_hf_restored']:.4f} | {100 * a['lsd_hf_change']:+.1f} % |")
        cats = sorted({r["category"] for r in held["per_clip"]})
        lines += ["", "| audio type | clips | LSD-HF change | L1 change |", "|---|---|---|---|"]
        for c in cats:
            sel = [r for r in held["per_clip"] if r["category"] == c]
            d_hf = np.mean([r["lsd_hf_restored"] for r in sel]) / np.mean([r["lsd_hf_vae"] for r in sel]) - 1
            d_l1 = np.mean([r["l1_restored"] for r in sel]) / np.mean([r["l1_vae"] for r in sel]) - 1
            lines.append(f"| {c} | {len(sel)} | {100 * d_hf:+.1f} % | {100 * d_l1:+.1f} % |")
        lines += ["", "| clip | type | LSD-HF VAE | LSD-HF restored | L1 VAE | L1 restored |",
                  "|---|---|---|---|---|---|"]
        for r in held["per_clip"]:
            lines.append(f"| {md_text(r['clip'])} | {r['category']} | {r['lsd_hf_vae']:.4f} | "
                         f"{r['lsd_hf_restored']:.4f} | {r['l1_vae']:.4f} | {r['l1_restored']:.4f} |")
    else:
        lines += ["No held-out clips (too few files): the numbers above are not measured.", ""]
    lines += ["", "Training curve: `training_curve.png`, `training_log.csv`. Held-out scores: `eval.json`.", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------------
_EPILOG = """\
Trains with the VAE frozen. Audio types for --conditional come from file names (speech_*, music_*, drums_*;
else other) or a parent folder named speech/music/percussion. Writes model.safetensors, config.json,
MODEL_CARD.md, training_log.csv/png, eval.json and checkpoint/ into a new --out folder.
examples:
  vaelib train-restorer --model bundled --audio clips/ --out runs/r1 --steps 2000
  vaelib train-restorer --model cvssp/audioldm2 --audio my.lst --out runs/ldm --minutes 30 --device cuda
  vaelib train-restorer --out runs/r1 --resume ...      (continue an interrupted run)
"""


def add_parser(subparsers, parser_class=None):
    """Register ``vaelib train-restorer``."""
    import argparse

    p = subparsers.add_parser("train-restorer", help="train a learned high-band restorer for a frozen VAE",
                              description="Train a learned high-band restorer (mel post-net or latent residual "
                                          "net) for a frozen VAE.",
                              epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="auto", metavar="auto|bundled|ID|PATH", help="the VAE (default: auto)")
    p.add_argument("--audio", required=True, nargs="+", metavar="PATH",
                   help="training audio: files, folders, .lst lists, or 'demo-train' (the bundled train split)")
    p.add_argument("--out", required=True, metavar="DIR", help="new output folder (refused if not empty)")
    p.add_argument("--kind", choices=("mel", "latent"), default="mel", help="mel post-net or latent residual net")
    p.add_argument("--conditional", action="store_true", help="FiLM-condition on the audio type")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, default=None, help="training steps (default 2000)")
    g.add_argument("--minutes", type=float, default=None, help="train for this wall time instead of --steps")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--dtype", default=None, choices=("float32", "bfloat16"),
                   help="VAE weights dtype (bfloat16: faster pairs / latent training on a GPU; the restorer trains in "
                        "float32)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue the unfinished run in --out")
    p.add_argument("--arch", choices=("tcn", "unet"), default="tcn",
                   help="mel kind: temporal conv net over mel bins (default) or 2-D U-Net")
    p.add_argument("--channels", type=int, default=None, help="width (default: tcn 128, unet 16, latent 64)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--crop-frames", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--augment", type=int, default=None,
                   help="re-coloured copies per training clip (spectral tilt, mixing, noise; default 0)")
    p.add_argument("--hf-weight", type=float, default=None, help="L1 weight of the bins >= 4 kHz (default 3)")
    p.add_argument("--lsd-weight", type=float, default=None, help="weight of the high-band RMS term (default 1)")
    p.add_argument("--holdout", type=float, default=None, help="fraction of files held out (default 0.15)")
    p.add_argument("--holdout-files", nargs="+", default=None, metavar="PATH",
                   help="a fixed held-out set instead of --holdout: files, folders or .lst lists, never trained on "
                        "(compare runs on different training data on the same clips)")
    p.add_argument("--ema", type=float, default=None,
                   help="keep an exponential moving average of the weights with this decay (e.g. 0.999) and ship "
                        "it (default 0: off)")
    p.add_argument("--no-mel-floor", action="store_true",
                   help="mel kind: do not clamp the restored log-mel at the front end's floor log(1e-5)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default 2; 0 = torch default)")
    p.add_argument("--eval-every", type=int, default=None)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_main)
    return p


def _err(msg) -> int:
    sys.stderr.write(f"error: {one_line(msg, 400)}\n")
    return 2


def _main(args) -> int:
    import shlex

    from .audio import find_audio
    from .models import ModelLoadError, load_vae

    opts = TrainOptions()
    for name in ("steps", "minutes", "batch_size", "crop_frames", "lr", "holdout", "threads", "eval_every", "seed",
                 "hf_weight", "lsd_weight", "augment", "ema"):
        v = getattr(args, name, None)
        if v is not None:
            setattr(opts, name, v)
    opts.mel_floor = not getattr(args, "no_mel_floor", False)
    if opts.minutes is not None and not opts.minutes > 0:
        return _err(f"--minutes must be positive, got {opts.minutes:g}")
    if opts.minutes:
        opts.steps = 0
    for name in ("steps", "batch_size", "crop_frames", "eval_every"):
        if name == "steps" and opts.minutes:
            continue
        if getattr(opts, name) < 1:
            return _err(f"--{name.replace('_', '-')} must be a positive integer")
    if opts.augment < 0:
        return _err("--augment must be >= 0")
    if not 0 <= opts.ema < 1:
        return _err(f"--ema must be in [0, 1), got {opts.ema:g}")
    if opts.hf_weight < 0 or opts.lsd_weight < 0:
        return _err("--hf-weight and --lsd-weight must be >= 0")
    if args.channels is not None and args.channels < 1:
        return _err("--channels must be a positive integer")
    if opts.crop_frames < 8:
        return _err("--crop-frames must be at least 8")
    try:
        sources = []
        for a in args.audio:
            sources.extend(find_audio("demo", demo_split="train") if a == "demo-train" else find_audio(a))
        files = sorted(dict.fromkeys(sources))
        if args.holdout_files:
            if args.holdout is not None:
                return _err("pass --holdout or --holdout-files, not both")
            opts.holdout_files = [str(f) for a in args.holdout_files for f in find_audio(a)]
    except (FileNotFoundError, ValueError) as exc:
        return _err(exc)
    demo_eval = set()
    try:
        demo_eval = {p.resolve() for p in find_audio("demo", demo_split="eval")}
    except FileNotFoundError:
        pass
    if any(f.resolve() in demo_eval for f in files):
        sys.stderr.write("warning: training on bundled demo *eval* clips: their scores are no longer held out\n")
    try:
        vae = load_vae(args.model, device=args.device, dtype=args.dtype)
    except ModelLoadError as exc:
        return _err(exc)
    command = "vaelib train-restorer " + " ".join(shlex.quote(a) for a in sys.argv[2:]) \
        if len(sys.argv) > 1 and sys.argv[1] == "train-restorer" else ""
    try:
        res = train_restorer(vae, files, args.out, kind=args.kind, conditional=args.conditional, opts=opts,
                             channels=args.channels, arch=args.arch, resume=args.resume, progress=not args.no_progress,
                             command=command)
    except RestorerError as exc:
        return _err(exc)
    except KeyboardInterrupt:
        _err(f"interrupted; resume with --resume --out {args.out}")
        return 130
    held = (res["eval"] or {}).get("heldout")
    print(f"restorer: {res['folder']} ({res['steps']} steps, {res['seconds'] / 60:.1f} min)")
    if held and held["mean"]:
        m = held["mean"]
        print(f"held-out ({m['clips']} clips): mel LSD-HF {m['lsd_hf_vae']:.4f} -> {m['lsd_hf_restored']:.4f} "
              f"({100 * m['lsd_hf_change']:+.1f} %), mel L1 {m['l1_vae']:.4f} -> {m['l1_restored']:.4f} "
              f"({100 * m['l1_change']:+.1f} %)")
    return 0
