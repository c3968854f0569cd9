"""Multi-scale enhancers: the seed's Laplacian boost and the baselines applied at several resolutions.

The seed report's step 3 asks for "multi-scale enhancement" (apply the enhancement at several resolution levels).
Each ``multiscale_<method>`` applies the detail operator ``D`` of a single-scale enhancer to every level of a
Gaussian pyramid of its input and adds the upsampled results back with one gain per level::

    G_0 = x,   G_{k+1} = P(G_k)                       (k = 0 .. K-2, K = LEVELS = 3)
    x'  = x + sum_k  c_k * M ⊙ U_k( D(G_k) )

* ``P``: 2×2 average pooling with stride 2 over the last two axes (time, frequency), after replicating the last
  row / column when a size is odd (so every output cell averages exactly four values);
* ``U_k``: nearest-neighbour upsampling by ``2**k`` on both axes (each cell repeated), cropped to ``x``'s shape;
* ``c_k``: the level's coefficient in the base method's convention, ``c_k = g_k - 1`` for a gain (identity 1) and
  ``c_k = a_k`` for an amount (identity 0); levels at their identity value are skipped, so at identity everywhere
  the output equals the input bit for bit, and with only level 0 set it equals the single-scale enhancer exactly;
* ``M``: the high-band mask of a mel-stage base (bins centred at or above 4 kHz), 1 for latent bases.

========================= ====== ======================================================== =====================
method                    stage  ``D`` (the base method's detail operator)                 parameters (identity)
========================= ====== ======================================================== =====================
multiscale_frequency      latent ``L``: per-channel 3×3 8-neighbour Laplacian, zero padding   ``gain``, ``gain1``,
                                 (:func:`vaelib.enhance.laplacian`, the seed's)           ``gain2`` (1)
multiscale_frequency_axis latent ``L_f``: ``2 z[f] - z[f-1] - z[f+1]``, zero padding        ``gain``, ``gain1``,
                                 (:func:`vaelib.enhance.laplacian_freq`)                  ``gain2`` (1)
multiscale_mel_unsharp    mel    ``G - box3x3(G)``, box with edge replication, then the     ``amount``,
                                 ≥ 4 kHz mask ``M`` (:func:`vaelib.enhance` mel_unsharp)  ``amount1``,
                                                                                          ``amount2`` (0)
========================= ====== ======================================================== =====================

Level 0 is the input's own resolution (``gain`` / ``amount`` is exactly the single-scale method's parameter);
level 1 acts on details twice as coarse (a latent of ``(T/4, 16)`` pooled to ``(T/8, 8)``), level 2 four times.
``mel_shelf`` has no multi-scale form (a shelf is a constant per-bin offset: it has no detail to boost), nor do the
learned restorers (a network, not an operator).

Pyramid in the sense of Burt & Adelson (1983), "The Laplacian pyramid as a compact image code" (with a 2×2 box
instead of their 5-tap kernel, so that levels are hand-computable).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from . import enhance as _enhance

__all__ = ["LEVELS", "MULTISCALE", "downsample", "upsample", "gaussian_pyramid", "laplacian_pyramid",
           "collapse_laplacian_pyramid", "multiscale"]

#: Number of pyramid levels (level 0 = the input's resolution).
LEVELS = 3


def downsample(x: torch.Tensor) -> torch.Tensor:
    """``P(x)``: 2×2 mean over the last two axes, stride 2; an odd size first replicates its last row/column."""
    pad_t, pad_f = x.shape[-2] % 2, x.shape[-1] % 2
    if pad_t or pad_f:
        x = F.pad(x, (0, pad_f, 0, pad_t), mode="replicate")
    return F.avg_pool2d(x, 2, stride=2)


def upsample(x: torch.Tensor, factor: int, shape) -> torch.Tensor:
    """``U``: repeat every cell ``factor`` times along the last two axes, then crop to ``shape`` (time, freq)."""
    if factor == 1:
        return x[..., : shape[0], : shape[1]]
    out = x.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)
    return out[..., : shape[0], : shape[1]]


def gaussian_pyramid(x: torch.Tensor, levels: int = LEVELS) -> list[torch.Tensor]:
    """``[G_0, ..., G_{levels-1}]`` with ``G_0 = x`` and ``G_{k+1} = P(G_k)`` (:func:`downsample`)."""
    if levels < 1:
        raise ValueError(f"a pyramid needs at least one level, got {levels}")
    out = [x]
    for _ in range(levels - 1):
        out.append(downsample(out[-1]))
    return out


def laplacian_pyramid(x: torch.Tensor, levels: int = LEVELS) -> list[torch.Tensor]:
    """Band-pass levels ``B_k = G_k - U(G_{k+1})`` for ``k < levels-1`` and the residual ``G_{levels-1}``.

    ``U`` is 2× :func:`upsample` to ``G_k``'s shape. :func:`collapse_laplacian_pyramid` inverts it.
    """
    g = gaussian_pyramid(x, levels)
    bands = [g[k] - upsample(g[k + 1], 2, g[k].shape[-2:]) for k in range(levels - 1)]
    return bands + [g[-1]]


def collapse_laplacian_pyramid(bands: list[torch.Tensor]) -> torch.Tensor:
    """Invert :func:`laplacian_pyramid`: ``G_k = B_k + U(G_{k+1})`` from the residual down to level 0."""
    out = bands[-1]
    for b in reversed(bands[:-1]):
        out = b + upsample(out, 2, b.shape[-2:])
    return out


def _unsharp_detail(g: torch.Tensor) -> torch.Tensor:
    blur = F.avg_pool2d(F.pad(g, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return g - blur


def _high_mask(x: torch.Tensor) -> torch.Tensor:
    from .metrics import HIGH_BAND_HZ

    return _enhance.mel_band_mask(x.shape[-1], HIGH_BAND_HZ).to(x.device, x.dtype)


def multiscale(x: torch.Tensor, detail, coefs, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``x + sum_k coefs[k] * mask ⊙ U_k(detail(G_k))`` over the Gaussian pyramid of ``x`` (module docstring).

    ``coefs[k] == 0`` skips level ``k``; all zero returns ``x.clone()``. The input is never modified.
    """
    coefs = [float(c) for c in coefs]
    if not any(coefs):
        return x.clone()
    last = max(k for k, c in enumerate(coefs) if c)
    pyr = gaussian_pyramid(x, last + 1)
    out = x
    for k, c in enumerate(coefs):
        if not c:
            continue
        term = upsample(detail(pyr[k]), 2 ** k, x.shape[-2:])
        out = out + (c * term * mask if mask is not None else c * term)
    return out


def _ms_frequency(z, *, gain=1.5, gain1=1.5, gain2=1.5, seed=None):
    return multiscale(z, _enhance.laplacian, (gain - 1.0, gain1 - 1.0, gain2 - 1.0))


def _ms_frequency_axis(z, *, gain=1.5, gain1=1.5, gain2=1.5, seed=None):
    return multiscale(z, _enhance.laplacian_freq, (gain - 1.0, gain1 - 1.0, gain2 - 1.0))


def _ms_mel_unsharp(mel, *, amount=1.0, amount1=1.0, amount2=1.0, seed=None):
    if not (amount or amount1 or amount2):
        return mel.clone()
    return multiscale(mel, _unsharp_detail, (amount, amount1, amount2), mask=_high_mask(mel))


def _levels(base: _enhance.Param, what: str) -> tuple[_enhance.Param, ...]:
    out = [dataclasses.replace(base, help=f"{base.help} — level 0 (full resolution)")]
    for k in range(1, LEVELS):
        out.append(dataclasses.replace(base, name=f"{base.name}{k}",
                                       help=f"{what} at pyramid level {k} (details {2 ** k}× coarser)"))
    return tuple(out)


_GAIN = _enhance.get("frequency").params[0]
_AMOUNT = _enhance.get("mel_unsharp").params[0]

#: The multi-scale enhancers, registered in :data:`vaelib.enhance.ENHANCERS` on import.
MULTISCALE: dict[str, _enhance.Enhancer] = {
    e.name: _enhance.register(e)
    for e in (
        _enhance.Enhancer("multiscale_frequency", _ms_frequency, _levels(_GAIN, "Laplacian boost g"), False,
                          "the seed's Laplacian boost at 3 pyramid levels of the latent, one gain each"),
        _enhance.Enhancer("multiscale_frequency_axis", _ms_frequency_axis, _levels(_GAIN, "frequency-axis boost g"),
                          False, "the frequency-axis Laplacian boost at 3 pyramid levels of the latent"),
        _enhance.Enhancer("multiscale_mel_unsharp", _ms_mel_unsharp, _levels(_AMOUNT, "unsharp amount a"), False,
                          "unsharp mask (≥ 4 kHz) at 3 pyramid levels of the decoded log-mel", stage="mel"),
    )
}
