"""Put vaelib's enhancers into diffusers' text-to-audio pipelines: :func:`attach`, :func:`detach`, :func:`attached`.

A diffusers AudioLDM2 / AudioLDM / MusicLDM pipeline ends the same way (``__call__``, step 8 "post-processing")::

    latents = 1 / pipe.vae.config.scaling_factor * latents     # the scaled latent z of the diffusion model
    mel = pipe.vae.decode(latents).sample                       # (B, 1, T, 64) natural-log mel
    audio = pipe.mel_spectrogram_to_waveform(mel)               # the vocoder (SpeechT5HifiGan)
    audio = audio[:, :original_waveform_length]                 # then CLAP re-ranking when num_waveforms > 1

(AudioLDM writes the first two lines as its method ``pipe.decode_latents(latents)``.) The hook changes exactly two
things on *this* pipeline object and nothing in its class or in diffusers:

* **latent stage** (``frequency``, ``noise``, ``contrast``, ``hybrid``, ``frequency_axis``, latent restorers): the
  decoder's input ``x = z / s`` becomes ``enhance(z) / s`` with ``s = vae.config.scaling_factor``. AudioLDM: a
  wrapper of the instance's ``decode_latents``, which receives ``z`` itself. AudioLDM2 and MusicLDM decode inline,
  so the wrapper sits on ``pipe.vae.decode`` (an instance attribute of that VAE module) and recovers the scaled
  latent as ``x * s``: the same ``z`` up to float rounding (three float32 roundings: relative error below
  2⁻²² per element; measured < 2⁻²³ with the bundled VAE's ``s``, a quarter of the elements differ at all; the
  enhancer then sees ``z`` to within that, and the decoder receives ``(1 / s) * enhance(z)``, the pipeline's own
  scaling written the pipeline's way). Because the wrapper lives on the VAE module, another pipeline sharing that
  module object, and direct calls of ``pipe.vae.decode``, are enhanced too while attached.
* **mel stage** (``learned``, ``learned_cond``, ``mel_shelf``, ``mel_unsharp``, mel restorers): a wrapper of the
  instance's ``pipe.mel_spectrogram_to_waveform`` applies them to the decoded log-mel ``(B, 1, T, 64)`` right
  before the vocoder. Everything after it (trimming, CLAP re-ranking of ``num_waveforms_per_prompt > 1``) sees the
  enhanced audio.

Several enhancers chain in the order given, the latent-stage ones before the decoder and the mel-stage ones after
it (the order within each stage is kept). An enhancer at its identity setting (``strength=0``, ``gain=1``,
``level=0``, ...: :class:`vaelib.enhance.Param` ``neutral``) is skipped, and a stage with nothing left to do is not
wrapped at all, so the pipeline's own code runs untouched and its audio is bit-identical to the plain pipeline's.

**dtype and device**: enhancers run on the tensor's device in float32 (an fp16/bf16 pipeline's latent or mel is
upcast, enhanced, and cast back to the pipeline's dtype before the decoder / vocoder); a restorer moves itself to
that device on first use. ``seed`` drives the stochastic enhancers (``noise``, ``hybrid``); it is independent of
the pipeline's ``generator``.
"""

from __future__ import annotations

import contextlib
import dataclasses

import torch

from .. import enhance as _enhance

__all__ = ["SUPPORTED_PIPELINES", "Hook", "plan", "attach", "detach", "attached", "hook_of", "pipeline_kind",
           "run_stage"]

#: Pipeline classes :func:`attach` accepts (all end in a 64-bin mel VAE and a SpeechT5HifiGan vocoder).
SUPPORTED_PIPELINES = ("AudioLDM2Pipeline", "AudioLDMPipeline", "MusicLDMPipeline")
_ATTR = "_vaelib_hook"
_MISSING = object()


def pipeline_kind(pipe) -> str:
    """The supported diffusers class ``pipe`` is an instance of (by MRO name); one-line ``TypeError`` otherwise."""
    names = [c.__name__ for c in type(pipe).__mro__]
    for name in SUPPORTED_PIPELINES:
        if name in names:
            return name
    raise TypeError(f"vaelib.attach supports diffusers' {', '.join(SUPPORTED_PIPELINES)}; got "
                    f"{type(pipe).__name__}")


def _active(spec: _enhance.Spec) -> bool:
    """False when ``spec`` is the identity: ``none``, a restorer at strength 0, or every parameter at its neutral."""
    enh = _enhance.get(spec.method)
    if enh.restorer:
        return spec.params.get("strength", 0.0) != 0.0
    return any(spec.params[p.name] != p.neutral for p in enh.params)


def run_stage(specs, x: torch.Tensor, *, seed: int = 0) -> torch.Tensor:
    """Run parsed ``specs`` (a sequence of :class:`vaelib.enhance.Spec`, one stage) on ``x`` in the given order.

    ``x`` is a scaled latent ``(B, C, T, F)`` or a log-mel ``(B, 1, T, M)`` (``(B, T, M)`` is accepted and returned
    as such). The work is done in float32 on ``x``'s device and the result has ``x``'s dtype. With no specs, ``x``
    itself is returned (not a copy).
    """
    if not specs:
        return x
    squeeze = x.ndim == 3
    y = (x[:, None] if squeeze else x).float()
    for spec in specs:
        y = _enhance.apply(spec, y, seed=seed)
    y = y.to(x.dtype)
    return y[:, 0] if squeeze else y


@dataclasses.dataclass
class Hook:
    """What :func:`attach` installed on one pipeline (``pipe._vaelib_hook``).

    Attributes
    ----------
    specs : dict of str to vaelib.enhance.Spec
        All enhancers as parsed, in the given order (identity ones included).
    latent, mel : list of Spec
        The active enhancers of each stage, in order (what actually runs).
    seed : int
    kind : str
        The pipeline class (:data:`SUPPORTED_PIPELINES`).
    saved : dict
        ``(object, attribute) -> previous instance attribute`` for everything replaced (absent ones as a
        sentinel), restored by :func:`detach`.
    """

    specs: dict
    latent: list
    mel: list
    seed: int
    kind: str
    allow_foreign_restorer: bool = False
    saved: dict = dataclasses.field(default_factory=dict)

    @property
    def enhancers(self) -> dict:
        """``{label: (method, params)}``: what ``attach(pipe, enhancers=...)`` would take to install this again."""
        return {label: (s.method, dict(s.params)) for label, s in self.specs.items()}


def hook_of(pipe) -> Hook | None:
    """The :class:`Hook` attached to ``pipe``, or ``None``."""
    return getattr(pipe, _ATTR, None)


def _replace(hook: Hook, obj, name: str, value) -> None:
    hook.saved[(id(obj), name)] = (obj, name, obj.__dict__.get(name, _MISSING))
    object.__setattr__(obj, name, value)


def plan(pipe, enhancers=None, *, seed: int = 0, allow_foreign_restorer: bool = False) -> Hook:
    """What :func:`attach` would install on ``pipe``, without installing it: the pipeline checked
    (:func:`pipeline_kind`), ``enhancers`` parsed once and split by stage (identity settings dropped), restorers
    checked against ``pipe.vae`` (:func:`vaelib.enhance.check_restorers`). Same arguments and errors as
    :func:`attach`; ``vaelib generate`` decodes with it (:func:`vaelib.generate.run.decode`)."""
    kind = pipeline_kind(pipe)
    specs = _enhance.parse(enhancers)
    _enhance.check_restorers(specs, pipe.vae, allow_foreign=allow_foreign_restorer)
    stages = {"latent": [], "mel": []}
    for spec in specs.values():
        if _active(spec):
            stages[_enhance.get(spec.method).stage].append(spec)
    return Hook(specs=specs, latent=stages["latent"], mel=stages["mel"], seed=int(seed), kind=kind,
                allow_foreign_restorer=allow_foreign_restorer)


def attach(pipe, enhancers=None, *, seed: int = 0, allow_foreign_restorer: bool = False):
    """Run ``enhancers`` inside ``pipe``'s generation: latent-stage ones before ``vae.decode``, mel-stage ones
    before the vocoder. Returns ``pipe`` (so ``pipe = vaelib.attach(AudioLDM2Pipeline.from_pretrained(...),
    "learned")`` chains).

    Parameters
    ----------
    pipe : diffusers.AudioLDM2Pipeline, AudioLDMPipeline or MusicLDMPipeline
    enhancers : str, list or dict, optional
        Exactly what :func:`vaelib.reconstruct` takes (names, presets, ``{"name": {params}}``), parsed and
        validated once here (:func:`vaelib.enhance.parse`). ``None`` / empty: nothing runs (the plain pipeline).
    seed : int
        Seed of the stochastic enhancers (``noise``, ``hybrid``); independent of the pipeline's generator.
    allow_foreign_restorer : bool
        Run a learned restorer although it was trained for another VAE than ``pipe.vae`` (refused otherwise).

    Attaching to a pipeline that already has a hook replaces it (never stacks). See the module docstring for
    where the hook acts, what it costs and the dtype behaviour; :func:`detach` restores the pipeline exactly.

    Raises
    ------
    TypeError
        ``pipe`` is not one of :data:`SUPPORTED_PIPELINES` (one line).
    ValueError
        A bad enhancer name / parameter, or a restorer trained for another VAE (one line, naming the override).
    """
    hook = plan(pipe, enhancers, seed=seed, allow_foreign_restorer=allow_foreign_restorer)
    kind = hook.kind
    detach(pipe)
    if hook.latent:
        if kind == "AudioLDMPipeline":  # decode_latents receives the scaled latent itself
            original = pipe.decode_latents

            def decode_latents(latents, *args, **kwargs):
                return original(run_stage(hook.latent, latents, seed=hook.seed), *args, **kwargs)

            _replace(hook, pipe, "decode_latents", decode_latents)
        else:  # AudioLDM2 / MusicLDM: ``vae.decode(1 / s * z)`` inline in __call__
            vae = pipe.vae
            original = vae.decode
            scale = float(vae.config.scaling_factor)

            def decode(x, *args, **kwargs):
                z = run_stage(hook.latent, x * scale, seed=hook.seed)
                return original(1 / scale * z, *args, **kwargs)

            _replace(hook, vae, "decode", decode)
    if hook.mel:
        original_m2w = pipe.mel_spectrogram_to_waveform

        def mel_spectrogram_to_waveform(mel_spectrogram, *args, **kwargs):
            return original_m2w(run_stage(hook.mel, mel_spectrogram, seed=hook.seed), *args, **kwargs)

        _replace(hook, pipe, "mel_spectrogram_to_waveform", mel_spectrogram_to_waveform)
    object.__setattr__(pipe, _ATTR, hook)
    return pipe


def detach(pipe):
    """Remove vaelib's hook from ``pipe`` (no-op without one) and return ``pipe``, restored exactly: every
    replaced instance attribute is put back as it was (or deleted where there was none), so the pipeline's output
    is bit-identical to a never-attached pipeline's."""
    hook = hook_of(pipe)
    if hook is None:
        return pipe
    for obj, name, previous in reversed(list(hook.saved.values())):
        if previous is _MISSING:
            obj.__dict__.pop(name, None)
        else:
            object.__setattr__(obj, name, previous)
    pipe.__dict__.pop(_ATTR, None)
    return pipe


@contextlib.contextmanager
def attached(pipe, enhancers=None, **kwargs):
    """``with vaelib.generate.attached(pipe, "learned"): audio = pipe(prompt).audios`` — :func:`attach` for the
    block; on exit the pipeline gets back the hook it had before (or none)."""
    before = hook_of(pipe)
    attach(pipe, enhancers, **kwargs)
    try:
        yield pipe
    finally:
        detach(pipe)
        if before is not None:
            attach(pipe, before.enhancers, seed=before.seed, allow_foreign_restorer=before.allow_foreign_restorer)
