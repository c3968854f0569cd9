"""Latent-space enhancers, exactly as the seed experiment defined them (docs/reference.md §3).

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

Every enhancer has a ``stage``: ``"latent"`` (the four above and ``frequency_axis``: a function of the scaled latent,
decoded afterwards) or ``"mel"`` (a function of the *decoded* log-mel ``(B, 1, T, M)``, natural log, applied after
one decode of the plain latent). One registry, one calling convention (:func:`apply`) for both:

============== ====== ================================================================== ==================
method         stage  definition                                                         neutral value
============== ====== ================================================================== ==================
frequency_axis latent ``z + (g - 1) * L_f(z)``, ``L_f(z)[f] = 2 z[f] - z[f-1] - z[f+1]``     ``gain=1``
                      (the seed's Laplacian restricted to the latent frequency axis, zero
                      padding)
mel_shelf      mel    ``L + shelf_db * ln(10) / 20`` on mel bins centred at or above 4 kHz    ``shelf_db=0``
                      (a high shelf of ``shelf_db`` dB magnitude gain; restores energy, not
                      detail)
mel_unsharp    mel    ``L + a * (L - box3x3(L))`` on mel bins centred at or above 4 kHz,      ``amount=0``
                      box over (time, mel) with edge replication (unsharp mask: sharpens
                      the smoothed high band)
learned        mel    ``max(r + s * f(r), ln 1e-5)`` for ``s > 0``: the bundled learned        ``strength=0``
                      restorer (:mod:`vaelib.restore`), clamped at the front end's floor
                      (``RestorerConfig.mel_floor``); ``s = 0`` returns ``r`` unchanged
learned_cond   mel    as ``learned``, FiLM-conditioned on the audio type ``category``          ``strength=0``
                      (``auto`` = inferred from the mel, or speech / music / percussion /
                      other)
============== ====== ================================================================== ==================

The learned entries exist for the bundled tiny VAE; a restorer trained for another VAE with
``vaelib train-restorer`` is added with :func:`vaelib.restore.register` and found here by name. One adapter
(:func:`restorer_enhancer`) wraps every restorer, bundled or registered.

Parameters are validated once per call path: :func:`parse` (and :func:`apply` given a name) validate and return
:class:`Spec` objects; everything below the entry points (``reconstruct``, ``vaelib eval``, the reports, the
windowed round trip) passes the parsed specs on and :func:`apply` runs a :class:`Spec` as it is.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F

__all__ = ["ENHANCERS", "PRESETS", "Param", "Enhancer", "Spec", "apply", "laplacian", "laplacian_freq",
           "validate_params", "parse", "describe", "enhancer_params", "get", "mel_band_mask", "restorer_enhancer",
           "restorer_names", "register", "check_restorers", "restorer_fits", "STAGES", "STAGE_NAMES"]

#: Where an enhancer acts: on the scaled latent (then decoded) or on the decoded log-mel.
STAGES = ("latent", "mel")


@dataclasses.dataclass(frozen=True)
class Param:
    """A tunable enhancer parameter: default, neutral (identity) value and accepted range (inclusive).

    ``choices`` names the values ``lo, lo + 1, ...`` (e.g. ``category``: ``auto`` = -1, ``speech`` = 0, ...);
    :func:`validate_params` accepts either the name or the number and returns the number.
    """

    name: str
    default: float
    neutral: float
    lo: float
    hi: float
    help: str
    choices: tuple = ()


@dataclasses.dataclass(frozen=True)
class Enhancer:
    """A registered enhancer. ``restorer``: it is a learned restorer; ``wraps``: the name of the learned restorer it
    applies, for enhancers built around one (e.g. ``adaptive_learned``) — both are checked against the VAE
    (:func:`check_restorers`)."""

    name: str
    fn: Callable
    params: tuple[Param, ...]
    uses_seed: bool
    doc: str
    stage: str = "latent"
    restorer: bool = False
    wraps: str = ""

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


_LAPLACE_F = torch.tensor([[-1.0, 2.0, -1.0]])


def laplacian_freq(z: torch.Tensor) -> torch.Tensor:
    """Per-channel Laplacian along the last (frequency) axis: ``2 z[f] - z[f-1] - z[f+1]``, zero padding."""
    c = z.shape[1]
    kernel = _LAPLACE_F.to(z.device, z.dtype).expand(c, 1, 1, 3)
    return F.conv2d(z, kernel, padding=(0, 1), groups=c)


def _frequency_axis(z, *, gain=1.5, seed=None):
    return z + (gain - 1.0) * laplacian_freq(z)


def mel_band_mask(n_mels: int, lo: float, hi: float = float("inf")) -> torch.Tensor:
    """Boolean ``(n_mels,)`` mask of the mel bins centred in ``[lo, hi)`` Hz, for AudioLDM's front ends.

    64 bins: AudioLDM2 16 kHz (:meth:`vaelib.audio.MelConfig.audioldm2`); 256 bins: the 48 kHz variant.
    """
    from .audio import MelConfig

    cfgs = {64: MelConfig.audioldm2(), 256: MelConfig.audioldm_48k()}
    if n_mels not in cfgs:
        raise ValueError(f"mel-stage enhancers know 64-bin (16 kHz) and 256-bin (48 kHz) log-mels, got {n_mels} bins")
    return torch.from_numpy(cfgs[n_mels].band_mask(lo, hi))


def _high_mask(mel: torch.Tensor) -> torch.Tensor:
    from .metrics import HIGH_BAND_HZ

    return mel_band_mask(mel.shape[-1], HIGH_BAND_HZ).to(mel.device)


def _mel_shelf(mel, *, shelf_db=3.0, seed=None):
    if shelf_db == 0:
        return mel.clone()
    gain = torch.zeros(mel.shape[-1], dtype=mel.dtype, device=mel.device)
    gain[_high_mask(mel)] = shelf_db * math.log(10.0) / 20.0
    return mel + gain


def _mel_unsharp(mel, *, amount=1.0, seed=None):
    if amount == 0:
        return mel.clone()
    blur = F.avg_pool2d(F.pad(mel, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    mask = _high_mask(mel).to(mel.dtype)
    return mel + amount * (mel - blur) * mask


def _restorer_fn(name: str) -> Callable:
    """``fn(x, *, strength, category, seed)`` of the restorer ``name`` (looked up at call time, so that registering
    a name again takes effect): ``x`` unchanged (a copy) at strength 0, else ``Restorer.run``."""

    def fn(x, *, strength=1.0, category=-1.0, gate=1.0, seed=None):
        if strength == 0:
            return x.clone()
        from .restore.model import registered

        model = registered(name)
        cat = None if category < 0 or model.embedding is None else int(category)
        return model.run(x, strength, cat, gate=gate >= 1.0)

    return fn


_GAIN = Param("gain", 1.5, 1.0, 0.0, 4.0, "Laplacian boost g: z + (g-1)·L(z)")
_LEVEL = Param("level", 0.1, 0.0, 0.0, 1.0, "noise level (× channel std, box-smoothed)")
_FACTOR = Param("factor", 1.3, 1.0, 0.0, 4.0, "contrast c around the channel mean")
_SHELF = Param("shelf_db", 3.0, 0.0, -24.0, 24.0, "high-shelf gain in dB on the mel bins at or above 4 kHz")
_AMOUNT = Param("amount", 1.0, 0.0, 0.0, 4.0, "unsharp-mask amount a: L + a·(L - box3x3(L)) at or above 4 kHz")
_STRENGTH = Param("strength", 1.0, 0.0, 0.0, 1.0, "blend: 0 = plain VAE output (exactly), 1 = fully restored")
_CATEGORY = Param("category", -1.0, -1.0, -1.0, 3.0, "audio type: auto (inferred from the mel), speech, music, "
                  "percussion, other", choices=("auto", "speech", "music", "percussion", "other"))

_GATE = Param("gate", 1.0, 1.0, 0.0, 1.0, "consistency gate: scale each window's correction by the factor the "
               "VAE's own round trip agrees with (vaelib.restore.gate), or apply it as is (off)",
               choices=("off", "consistency"))

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
        Enhancer("frequency_axis", _frequency_axis, (_GAIN,), False,
                 "Laplacian boost along the latent frequency axis only"),
        Enhancer("mel_shelf", _mel_shelf, (_SHELF,), False, "high shelf on the decoded log-mel (≥ 4 kHz)",
                 stage="mel"),
        Enhancer("mel_unsharp", _mel_unsharp, (_AMOUNT,), False, "unsharp mask on the decoded log-mel (≥ 4 kHz)",
                 stage="mel"),
        Enhancer("learned", _restorer_fn("learned"), (_STRENGTH, _GATE), False,
                 "bundled learned restorer (mel post-net)", stage="mel", restorer=True),
        Enhancer("learned_cond", _restorer_fn("learned_cond"), (_STRENGTH, _CATEGORY, _GATE), False,
                 "bundled learned restorer conditioned on the audio type", stage="mel", restorer=True),
    )
}

#: The seed report's settings, as ``(method, params)``.
PRESETS: dict[str, tuple[str, dict]] = {
    "seed_frequency": ("frequency", {"gain": 1.5}),
    "seed_noise": ("noise", {"level": 0.1}),
    "seed_contrast": ("contrast", {"factor": 1.3}),
    "seed_hybrid": ("hybrid", {"gain": 1.4, "level": 0.04, "factor": 1.2}),
}


#: Names of the round trip's own stages, which no enhancer label may take.
STAGE_NAMES = ("input", "mel_projection", "vae")


def restorer_enhancer(name: str, model) -> Enhancer:
    """The one adapter that makes a :class:`vaelib.restore.Restorer` an enhancer named ``name``.

    Stage = the restorer's kind (``mel`` or ``latent``); parameters ``strength`` (identity 0), for a conditional
    restorer ``category``, and for a mel restorer ``gate`` (default: the restorer config's ``gate``). The restorer
    itself is looked up by name when the enhancer runs.
    """
    params = (_STRENGTH, _CATEGORY) if model.embedding is not None else (_STRENGTH,)
    if model.kind == "mel":
        on = 1.0 if model.config.gate == "consistency" else 0.0
        params += (dataclasses.replace(_GATE, default=on, neutral=on),)
    return Enhancer(name, _restorer_fn(name), params, False, f"trained restorer ({model.kind})", stage=model.kind,
                    restorer=True)


#: name -> the registered restorer object its adapter in ENHANCERS was built for
_ADAPTED: dict = {}


def _sync_registered() -> None:
    """Give every restorer registered with :func:`vaelib.restore.register` its adapter in :data:`ENHANCERS`
    (built once per registration: :func:`get` runs this on every call)."""
    from .restore.model import REGISTRY

    for name, model in REGISTRY.items():
        if _ADAPTED.get(name) is not model or name not in ENHANCERS:
            ENHANCERS[name] = restorer_enhancer(name, model)
            _ADAPTED[name] = model


def describe() -> str:
    """One line per method with its parameters and accepted ranges."""
    _sync_registered()
    lines = []
    for e in ENHANCERS.values():
        ps = ", ".join(f"{p.name} in [{p.lo:g}, {p.hi:g}] (default {p.default:g}, identity {p.neutral:g})"
                       + (f" ({', '.join(f'{c}={p.lo + i:g}' for i, c in enumerate(p.choices))})" if p.choices else "")
                       for p in e.params)
        lines.append(f"{e.name} [{e.stage}]: {e.doc}" + (f"; {ps}" if ps else ""))
    return "\n".join(lines)


def get(method: str) -> Enhancer:
    """The :class:`Enhancer` registered as ``method``; one-line ``ValueError`` listing accepted names."""
    _sync_registered()
    if method not in ENHANCERS:
        raise ValueError(f"unknown enhancement method {method!r}; accepted: {', '.join(ENHANCERS)}")
    return ENHANCERS[method]


def restorer_names() -> list[str]:
    """The learned restorers among the enhancers: the bundled ones and any added with ``restore.register``."""
    _sync_registered()
    return [name for name, e in ENHANCERS.items() if e.restorer]


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
        if p.choices and isinstance(value, str):
            if value not in p.choices:
                raise ValueError(f"{method}.{name}={value!r} is not accepted; accepted: {', '.join(p.choices)}")
            value = p.lo + p.choices.index(value)
        if isinstance(value, bool):
            raise ValueError(f"{method}.{name} must be a number in [{p.lo:g}, {p.hi:g}], got {value!r}")
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{method}.{name} must be a number in [{p.lo:g}, {p.hi:g}], got {value!r}") from None
        if not (p.lo <= value <= p.hi):
            raise ValueError(f"{method}.{name}={value:g} is out of range; accepted: [{p.lo:g}, {p.hi:g}]")
        if p.choices and value != int(value):
            raise ValueError(f"{method}.{name} must be one of {', '.join(p.choices)} (or {p.lo:g}..{p.hi:g}), "
                             f"got {value:g}")
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


class Spec(NamedTuple):
    """A parsed enhancer: ``method`` and its complete, validated parameter dict.

    Made only by :func:`parse` (or :func:`apply` given a name); every layer below an entry point takes specs and
    runs them without validating again. It unpacks like the ``(method, params)`` pair it replaces.
    """

    method: str
    params: dict


def parse(enhancers) -> dict[str, Spec]:
    """Parse and validate the ``enhancers`` argument once: ``{label: Spec}``.

    Accepts ``None``, a method or preset name, a list of them, or a dict ``{label: (method, params)}`` /
    ``{label: Spec}`` / ``{method: params}`` / ``{name: None}`` (a method or preset with its defaults). Entries that
    are already :class:`Spec` are kept as they are (not validated again). One-line ``ValueError`` on a bad name,
    label or value.
    """
    if enhancers is None:
        return {}
    if isinstance(enhancers, str):
        enhancers = [enhancers]
    items = enhancers.items() if isinstance(enhancers, dict) else ((name, None) for name in enhancers)
    out = {}
    for label, spec in items:
        if isinstance(spec, Spec):  # parsed before, labels included
            out[label] = spec
            continue
        if label in STAGE_NAMES:
            raise ValueError(f"enhancer label {label!r} clashes with a stage name; choose another label")
        if spec is None:
            method, params = PRESETS.get(label, (label, {}))
        elif isinstance(spec, dict):
            method, params = label, spec
        else:
            method, params = spec
        out[label] = Spec(method, validate_params(method, params))
    return out


def apply(method, x: torch.Tensor, params: dict | None = None, *, seed: int = 0, **kw) -> torch.Tensor:
    """Apply an enhancer to its stage's tensor; returns a new tensor, input untouched.

    ``method`` is a registry name (its parameters are validated here, as a dict ``apply("noise", z, {"level": 0.1})``
    or keywords ``apply("noise", z, level=0.1)``) or a :class:`Spec` from :func:`parse` (run as it is). ``x`` is the
    scaled latent ``(B, C, T, F)`` for ``stage="latent"`` methods and the decoded log-mel ``(B, 1, T, M)`` for
    ``stage="mel"`` ones (``get(method).stage`` says which). ``seed`` drives the noise of ``noise``/``hybrid``.
    """
    if isinstance(method, Spec):
        if params or kw:
            raise ValueError(f"a parsed Spec of {method.method} carries its parameters; pass no others")
        spec = method
    else:
        spec = Spec(method, validate_params(method, {**(params or {}), **kw}))
    enh = get(spec.method)
    what = "latent" if enh.stage == "latent" else "log-mel"
    layout = "(batch, channels, time, freq)" if enh.stage == "latent" else "(batch, 1, time, n_mels)"
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or (enh.stage == "mel" and x.shape[1] != 1):
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{spec.method} acts on the {what}: it must be a 4-D tensor {layout}, got {shape}")
    with torch.no_grad():
        return enh.fn(x, seed=seed, **spec.params)


def check_restorers(specs, vae, allow_foreign: bool = False) -> None:
    """Refuse, in one line, any restorer among ``specs`` that was trained for another VAE than ``vae``.

    ``specs``: parsed (:func:`parse`) or any form :func:`parse` takes; ``vae``: a :class:`vaelib.models.LatentVAE`
    or a diffusers ``AutoencoderKL``. Called once by the entry points (``reconstruct``, ``vaelib eval``, the
    notebooks, the pipeline hook); ``allow_foreign=True`` is the explicit override. Raises ``ValueError``
    (:class:`vaelib.restore.RestorerError`).
    """
    from .restore.model import check_vae, registered

    for spec in parse(specs).values():
        enh = get(spec.method)
        if enh.restorer or enh.wraps:  # check_vae also binds the VAE for the restorer's consistency gate
            check_vae(registered(enh.wraps or spec.method), vae, spec.method, allow_foreign)


def restorer_fits(name: str, vae) -> bool:
    """Whether the restorer ``name`` may be applied to ``vae`` (:func:`check_restorers` would accept it)."""
    try:
        check_restorers([name], vae)
    except ValueError:
        return False
    return True


def register(enhancer: Enhancer) -> Enhancer:
    """Add ``enhancer`` to :data:`ENHANCERS` under its name (the hook of :mod:`vaelib.adaptive` and
    :mod:`vaelib.multiscale`, which import this module, never the other way round). Refuses a name in use."""
    if enhancer.name in ENHANCERS and ENHANCERS[enhancer.name] is not enhancer:
        raise ValueError(f"an enhancer named {enhancer.name!r} is already registered")
    if enhancer.stage not in STAGES:
        raise ValueError(f"enhancer stage must be one of {', '.join(STAGES)}, got {enhancer.stage!r}")
    ENHANCERS[enhancer.name] = enhancer
    from .restore.model import RESERVED_NAMES

    RESERVED_NAMES.add(enhancer.name)  # a trained restorer may not take its name either
    return enhancer


def _reserve_names() -> None:
    """Tell :func:`vaelib.restore.register` which names belong to built-in methods (a restorer may not take them)."""
    from .restore.model import RESERVED_NAMES

    RESERVED_NAMES.update(n for n, e in ENHANCERS.items() if not e.restorer)


_reserve_names()
