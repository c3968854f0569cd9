"""The round trip with stage attribution: what the vocoder loses vs. what the VAE loses.

``reconstruct`` encodes once and returns every stage:

* ``input``          — the normalised waveform and its log-mel (the reference);
* ``mel_projection`` — input log-mel straight into the vocoder: the vocoder-only ceiling;
* ``vae``            — encode → decode → vocoder: the VAE round trip (the seed's "VAE-only");
* ``<enhancer>``     — decode of each enhanced latent (all from the one latent) → vocoder, or, for a mel-stage
  enhancer (``vaelib.enhance``: ``mel_shelf``, ``mel_unsharp``, ``learned``, ...), the plain VAE's decoded log-mel
  enhanced → vocoder (the latent is decoded once).

Comparing ``vae`` with ``mel_projection`` isolates the VAE's loss from the vocoder's; comparing decoded mels with
the input mel measures the VAE without any vocoder at all.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from . import enhance as _enhance
from .audio import MelConfig, normalize, pad_to_multiple, wav_to_mel

__all__ = ["Stage", "Reconstruction", "reconstruct", "parse_enhancers", "vocode"]


@dataclasses.dataclass
class Stage:
    """One stage's output: log-mel ``(T, n_mels)`` and waveform, both numpy float32 on the CPU."""

    name: str
    mel: np.ndarray
    wave: np.ndarray | None
    params: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Reconstruction:
    """Result of :func:`reconstruct` for one clip.

    Attributes
    ----------
    wave : numpy.ndarray
        The normalised, padded input waveform (the reference for every metric).
    gain : float
        Gain :func:`vaelib.audio.normalize` applied.
    latent : torch.Tensor
        The scaled latent ``(1, C, T/4, M/4)`` (CPU).
    stages : dict of str to Stage
        ``input``, ``mel_projection``, ``vae`` and one entry per enhancer.
    sr : int
    """

    wave: np.ndarray
    gain: float
    latent: torch.Tensor
    stages: dict
    sr: int

    @property
    def input_mel(self) -> np.ndarray:
        return self.stages["input"].mel

    def __getitem__(self, name) -> Stage:
        return self.stages[name]


def parse_enhancers(enhancers) -> dict[str, tuple[str, dict]]:
    """Normalise the ``enhancers`` argument to ``{label: (method, params)}``.

    Accepts ``None``, a list of method or preset names, or a dict ``{label: (method, params)}`` /
    ``{method: params}``. Parameters are validated (one-line error on a bad name or value).
    """
    if enhancers is None:
        return {}
    if isinstance(enhancers, str):
        enhancers = [enhancers]
    out = {}
    if isinstance(enhancers, dict):
        items = enhancers.items()
    else:
        items = ((name, None) for name in enhancers)
    for label, spec in items:
        if spec is None:
            method, params = _enhance.PRESETS.get(label, (label, {}))
        elif isinstance(spec, dict):
            method, params = label, spec
        else:
            method, params = spec
        if label in ("input", "mel_projection", "vae"):
            raise ValueError(f"enhancer label {label!r} clashes with a stage name; choose another label")
        out[label] = (method, _enhance.validate_params(method, params))
    return out


def _to_wave_np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"reconstruct takes one mono waveform (samples,), got shape {x.shape}")
    if x.size == 0 or not np.isfinite(x).all():
        raise ValueError("waveform is empty or holds NaN/Inf samples")
    return x


def vocode(vocoder, mels) -> np.ndarray:
    """Vocode a batch of log-mels in one call and return the waveforms as a numpy array ``(B, samples)``.

    The one place vaelib batch-vocodes (pipeline, notebooks, sweeps, restorer evaluation, ``vaelib eval``).

    Parameters
    ----------
    vocoder : callable
        ``vocoder(mel) -> wave`` (:func:`vaelib.load_vocoder`: HiFi-GAN or Griffin-Lim), taking ``(B, 1, T, n_mels)``.
    mels : sequence of array_like or torch.Tensor
        Log-mels ``(T, n_mels)`` (or ``(1, T, n_mels)``) of equal length, or one tensor ``(B, 1, T, n_mels)``.
        Griffin-Lim starts every item from the same seeded initial phase, so a clip's output does not depend on
        the other clips of its batch.
    """
    if isinstance(mels, torch.Tensor) and mels.ndim == 4:
        batch = mels
    else:
        items = [torch.as_tensor(np.ascontiguousarray(m)) if not isinstance(m, torch.Tensor) else m for m in mels]
        if not items:
            return np.zeros((0, 0), dtype=np.float32)
        items = [m if m.ndim == 3 else m[None] for m in items]
        batch = torch.stack([m.detach().float().cpu() for m in items])
    with torch.inference_mode():  # the vocoders move the batch to their own device
        out = vocoder(batch.float())
    return out.detach().float().cpu().numpy()


_vocode_batch = vocode  # reconstruct's ``vocode`` flag shadows the function's name inside it


def reconstruct(wave, vae, vocoder=None, enhancers=None, *, cfg: MelConfig | None = None, seed: int = 0,
                normalise: bool = True, vocode: bool = True) -> Reconstruction:
    """Run the round trip once and return every stage.

    Parameters
    ----------
    wave : array_like
        Mono waveform at ``cfg.sr`` (e.g. from :func:`vaelib.load_audio`).
    vae : vaelib.models.LatentVAE
    vocoder : callable, optional
        ``vocoder(mel) -> wave``; needed when ``vocode`` is true.
    enhancers : list or dict, optional
        Methods / presets (see :func:`parse_enhancers`): latent-stage ones act on the latent before decoding,
        mel-stage ones (e.g. ``"learned"``, ``{"learned": {"strength": 0.5}}``) on the decoded log-mel.
    cfg : MelConfig, optional
        Front end (default: the VAE's).
    seed : int
        Seed for stochastic enhancers.
    normalise : bool
        Apply the training normalisation (mean removed, peak 0.5) first.
    vocode : bool
        Also synthesise waveforms (else only mels; ``Stage.wave`` is None).
    """
    x = _to_wave_np(wave)
    cfg = cfg or vae.mel_config
    gain = 1.0
    if normalise:
        x, gain = normalize(x)
    x = pad_to_multiple(x, cfg)
    mel = wav_to_mel(torch.from_numpy(x).to(vae.device), cfg)
    specs = parse_enhancers(enhancers)
    z = vae.encode(mel)
    on_latent = [n for n, (method, _) in specs.items() if _enhance.get(method).stage == "latent"]
    latents = [z] + [_enhance.apply(specs[n][0], z, specs[n][1], seed=seed) for n in on_latent]
    decoded = vae.decode(torch.cat(latents))  # one decode: the plain latent and every latent-stage variant
    by_name = {"vae": decoded[0], **{n: decoded[i + 1] for i, n in enumerate(on_latent)}}
    for n, (method, params) in specs.items():  # mel-stage enhancers act on the plain VAE's decoded log-mel
        if n not in by_name:
            by_name[n] = _enhance.apply(method, decoded[0:1], params, seed=seed)[0]
    mels = {"mel_projection": mel[0], "vae": by_name["vae"], **{n: by_name[n] for n in specs}}
    waves = {}
    if vocode:
        if vocoder is None:
            raise ValueError("vocode=True needs a vocoder (vaelib.load_vocoder('auto'))")
        out = _vocode_batch(vocoder, torch.stack([m.float() for m in mels.values()]))
        waves = {n: out[i] for i, n in enumerate(mels)}
    stages = {"input": Stage("input", mel[0, 0].float().cpu().numpy(), x)}
    for n, m in mels.items():
        params = {"method": specs[n][0], **specs[n][1]} if n in specs else {}
        stages[n] = Stage(n, m[0].float().cpu().numpy(), waves.get(n), params)
    return Reconstruction(wave=x, gain=float(gain), latent=z.detach().cpu(), stages=stages, sr=cfg.sr)
