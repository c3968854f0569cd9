"""Latent-space enhancers, exactly as the seed experiment defined them (REFERENCE §3).

Each enhancer is a pure function ``f(latent, *, params, seed) -> latent`` of the same shape, dtype and device,
working on the *scaled* latent ``(batch, channels, time, freq)`` that :meth:`vaelib.models.LatentVAE.encode`
returns. Call them through :func:`apply`::

    z2 = apply("frequency", z, gain=1.5)
    method, params = PRESETS["seed_hybrid"]   # the seed's settings
    z3 = apply(method, z, params, seed=0)

========= ======================================================================== =================
method    definition                                                               neutral value
========= ======================================================================== =================
frequency ``z + (g - 1) * L(z)``, L = per-channel 3×3 conv with the 8-neighbour      ``gain=1``
          Laplacian ``[[-1,-1,-1],[-1,8,-1],[-1,-1,-1]]``, zero padding 1
noise     ``z + box3x3(randn * level) * max(std_c(z), 0.1)``, std over (time, freq)   ``level=0``
contrast  ``mu_c + (z - mu_c) * c``, mu_c = channel mean over (time, freq)           ``factor=1``
hybrid    frequency(g) → noise(level) → contrast(c); seed: g 1.4, level 0.04, c 1.2  all neutral
none      identity
========= ======================================================================== =================
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["ENHANCERS", "PRESETS", "Param", "apply", "laplacian", "validate_params", "describe", "enhancer_params"]


@dataclasses.dataclass(frozen=True)
class Param:
    """A tunable enhancer parameter: default, neutral (identity) value and accepted range (inclusive)."""

    name: str
    default: float
    neutral: float
    lo: float
    hi: float
    help: str


@dataclasses.dataclass(frozen=True)
class Enhancer:
    name: str
    fn: Callable
    params: tuple[Param, ...]
    uses_seed: bool
    doc: str

    @property
    def main_param(self) -> str | None:
        return self.params[0].name if self.params else None


_LAPLACE = torch.tensor([[-1.0, -1.0, -1.0], [-1.0, 8.0, -1.0], [-1.0, -1.0, -1.0]])


def laplacian(z: torch.Tensor) -> torch.Tensor:
    """Per-channel 8-neighbour Laplacian ``L(z)``: depthwise 3×3 convolution, zero padding 1."""
    c = z.shape[1]
    kernel = _LAPLACE.to(z.device, z.dtype).expand(c, 1, 3, 3)
    return F.conv2d(z, kernel, padding=1, groups=c)


def _frequency(z, *, gain=1.5, seed=None):
    return z + (gain - 1.0) * laplacian(z)


def _noise(z, *, level=0.1, seed=0):
    if level == 0:
        return z.clone()
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    n = torch.randn(z.shape, generator=gen, dtype=torch.float32).to(z.device, z.dtype) * level
    c = z.shape[1]
    box = torch.full((c, 1, 3, 3), 1.0 / 9.0, device=z.device, dtype=z.dtype)
    n = F.conv2d(n, box, padding=1, groups=c)
    std = z.std(dim=(2, 3), keepdim=True).clamp(min=0.1)
    return z + n * std


def _contrast(z, *, factor=1.3, seed=None):
    mu = z.mean(dim=(2, 3), keepdim=True)
    return mu + (z - mu) * factor


def _hybrid(z, *, gain=1.4, level=0.04, factor=1.2, seed=0):
    return _contrast(_noise(_frequency(z, gain=gain), level=level, seed=seed), factor=factor)


def _none(z, *, seed=None):
    return z.clone()


_GAIN = Param("gain", 1.5, 1.0, 0.0, 4.0, "Laplacian boost g: z + (g-1)·L(z)")
_LEVEL = Param("level", 0.1, 0.0, 0.0, 1.0, "noise level (× channel std, box-smoothed)")
_FACTOR = Param("factor", 1.3, 1.0, 0.0, 4.0, "contrast c around the channel mean")

#: Registry of enhancers by name.
ENHANCERS: dict[str, Enhancer] = {
    e.name: e
    for e in (
        Enhancer("none", _none, (), False, "identity"),
        Enhancer("frequency", _frequency, (_GAIN,), False, "Laplacian high-frequency boost in the latent"),
        Enhancer("noise", _noise, (_LEVEL,), True, "smoothed Gaussian noise injection"),
        Enhancer("contrast", _contrast, (_FACTOR,), False, "per-channel contrast around the mean"),
        Enhancer(
            "hybrid",
            _hybrid,
            (dataclasses.replace(_GAIN, default=1.4), dataclasses.replace(_LEVEL, default=0.04),
             dataclasses.replace(_FACTOR, default=1.2)),
            True,
            "frequency boost, then noise, then contrast",
        ),
    )
}

#: The seed report's settings, as ``(method, params)``.
PRESETS: dict[str, tuple[str, dict]] = {
    "seed_frequency": ("frequency", {"gain": 1.5}),
    "seed_noise": ("noise", {"level": 0.1}),
    "seed_contrast": ("contrast", {"factor": 1.3}),
    "seed_hybrid": ("hybrid", {"gain": 1.4, "level": 0.04, "factor": 1.2}),
}


def describe() -> str:
    """One line per method with its parameters and accepted ranges."""
    lines = []
    for e in ENHANCERS.values():
        ps = ", ".join(f"{p.name} in [{p.lo:g}, {p.hi:g}] (default {p.default:g}, identity {p.neutral:g})"
                       for p in e.params)
        lines.append(f"{e.name}: {e.doc}" + (f"; {ps}" if ps else ""))
    return "\n".join(lines)


def get(method: str) -> Enhancer:
    """The :class:`Enhancer` registered as ``method``; one-line ``ValueError`` listing accepted names."""
    if method not in ENHANCERS:
        raise ValueError(f"unknown enhancement method {method!r}; accepted: {', '.join(ENHANCERS)}")
    return ENHANCERS[method]


def validate_params(method: str, params: dict | None = None) -> dict:
    """Fill defaults, coerce to float and range-check ``params`` for ``method``.

    Returns the complete parameter dict. Raises ``ValueError`` (one line) naming the accepted parameters and
    ranges for unknown names, non-numbers and out-of-range values.
    """
    enh = get(method)
    params = dict(params or {})
    known = {p.name: p for p in enh.params}
    unknown = sorted(set(params) - set(known))
    if unknown:
        accepted = ", ".join(f"{p.name} [{p.lo:g}, {p.hi:g}]" for p in enh.params) or "none"
        raise ValueError(f"{method} takes no parameter {', '.join(unknown)}; accepted: {accepted}")
    out = {}
    for name, p in known.items():
        value = params.get(name, p.default)
        if isinstance(value, bool):
            raise ValueError(f"{method}.{name} must be a number in [{p.lo:g}, {p.hi:g}], got {value!r}")
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{method}.{name} must be a number in [{p.lo:g}, {p.hi:g}], got {value!r}") from None
        if not (p.lo <= value <= p.hi):
            raise ValueError(f"{method}.{name}={value:g} is out of range; accepted: [{p.lo:g}, {p.hi:g}]")
        out[name] = value
    return out


def enhancer_params(method: str, gain=None, level=None, factor=None, **others) -> dict:
    """The validated parameter dict of ``method`` from flat keyword values (the notebooks' ``gain``/``level``/...).

    Only the parameters ``method`` takes are used (frequency: gain; noise: level; contrast: factor; hybrid: all
    three; none: nothing); ``None`` means the method's default. Raises a one-line ``ValueError`` for an unknown
    method or an out-of-range value.
    """
    given = {"gain": gain, "level": level, "factor": factor, **others}
    enh = get(method)
    params = {p.name: given[p.name] for p in enh.params if given.get(p.name) is not None}
    return validate_params(method, params)


def apply(method: str, latent: torch.Tensor, params: dict | None = None, *, seed: int = 0, **kw) -> torch.Tensor:
    """Apply enhancer ``method`` to a scaled latent ``(B, C, T, F)``; returns a new tensor, input untouched.

    Parameters may be given as a dict (``apply("noise", z, {"level": 0.1})``) or keywords
    (``apply("noise", z, level=0.1)``). ``seed`` drives the noise of ``noise``/``hybrid``.
    """
    merged = {**(params or {}), **kw}
    full = validate_params(method, merged)
    if not isinstance(latent, torch.Tensor) or latent.ndim != 4:
        shape = tuple(latent.shape) if isinstance(latent, torch.Tensor) else type(latent).__name__
        raise ValueError(f"latent must be a 4-D tensor (batch, channels, time, freq), got {shape}")
    enh = ENHANCERS[method]
    with torch.no_grad():
        out = enh.fn(latent, seed=seed, **full)
    return out
