"""The restorers' networks: residual nets whose zero-initialised output layer makes the untrained model the identity.

* :class:`MelTCN` — temporal conv net over time with the mel bins as channels (the default mel post-net);
* :class:`MelPostNet` — a small 2-D U-Net on the log-mel;
* :class:`LatentResNet` — a residual net on the scaled latent;
* :class:`TypeClassifier` — audio-type logits from a mel or latent (the conditional restorer's type inference).

Residual blocks are FiLM-modulated (Perez et al. 2018: ``h · (1 + γ(e)) + β(e)``) by an audio-type embedding ``e``
when ``emb_dim > 0``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MelPostNet", "MelTCN", "LatentResNet", "TypeClassifier"]


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
