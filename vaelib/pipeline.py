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
import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from . import enhance as _enhance
from .audio import MelConfig, normalize, pad_to_multiple, wav_to_mel

__all__ = ["Stage", "Reconstruction", "Encoded", "RoundTripCache", "reconstruct", "encode_decode", "decode_latents",
           "score_variants", "parse_enhancers", "vocode"]


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


#: Parse and validate enhancers once (:func:`vaelib.enhance.parse`): ``{label: Spec}``.
parse_enhancers = _enhance.parse


def _to_wave_np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"reconstruct takes one mono waveform (samples,), got shape {x.shape}")
    if x.size == 0 or not np.isfinite(x).all():
        raise ValueError("waveform is empty or holds NaN/Inf samples")
    return x


@dataclasses.dataclass
class Encoded:
    """The front half of the round trip for one clip (:func:`encode_decode`).

    Attributes
    ----------
    wave : numpy.ndarray
        The (normalised) waveform, padded to a multiple of 4 frames: the reference of every metric.
    gain : float
        Gain :func:`vaelib.audio.normalize` applied (1 without normalisation).
    mel : torch.Tensor
        Input log-mel ``(1, 1, T, M)`` on the VAE's device.
    latent : torch.Tensor
        The scaled latent ``(1, C, T/4, M/4)``.
    decoded : dict of str to torch.Tensor
        ``"vae"`` (the plain decode) and each latent-stage enhancer's label: decoded log-mels ``(1, 1, T, M)``.
    """

    wave: np.ndarray
    gain: float
    mel: torch.Tensor
    latent: torch.Tensor
    decoded: dict

    def pair(self) -> dict:
        """``{"mel", "dec", "z"}``: input log-mel, plain decode and latent, float32 on the CPU (a training pair)."""
        return {"mel": self.mel.float().cpu(), "dec": self.decoded["vae"].float().cpu(),
                "z": self.latent.float().cpu()}


def decode_latents(vae, z: torch.Tensor, enhancers=None, *, seed: int = 0, plain: bool = True) -> dict:
    """Decode the latent ``z`` and every latent-stage enhanced version of it in one decoder call.

    Parameters
    ----------
    vae : vaelib.models.LatentVAE
    z : torch.Tensor
        Scaled latent ``(1, C, T/4, M/4)``.
    enhancers : dict, list or None
        Parsed specs (:func:`parse_enhancers`; anything else is parsed here); mel-stage ones are skipped.
    plain : bool
        Also decode ``z`` itself, as ``"vae"`` (first in the batch).

    Returns
    -------
    dict of str to torch.Tensor
        Label → decoded log-mel ``(1, 1, T, M)``, ``"vae"`` first.
    """
    specs = parse_enhancers(enhancers)
    labels = [n for n, spec in specs.items() if _enhance.get(spec.method).stage == "latent"]
    zs = ([z] if plain else []) + [_enhance.apply(specs[n], z, seed=seed) for n in labels]
    if not zs:
        return {}
    decoded = vae.decode(torch.cat(zs))
    names = (["vae"] if plain else []) + labels
    return {n: decoded[i:i + 1] for i, n in enumerate(names)}


class RoundTripCache:
    """A folder of :func:`encode_decode` results that several processes share: each clip is encoded (and its plain
    decode computed) once per report run instead of once per notebook.

    Content-addressed: an entry's name is a BLAKE2 digest of everything the result depends on — the waveform's
    bytes, ``normalise``, the front end (:class:`vaelib.audio.MelConfig`), a digest of the VAE's exact weights and
    config, its device and dtype, and torch's thread count (which moves float rounding) — so a hit is the result the
    same computation would give, bit for bit, never a near match. Two kinds of entry: the encoding (normalised
    waveform, gain, log-mel, latent) and the plain decode, stored only when it came from a decoder call of that
    latent alone (a decode batched with enhanced latents rounds differently, so it is never stored or served).
    Files are written atomically (temporary name, then ``os.replace``); an unreadable one is a miss.
    """

    def __init__(self, folder):
        self.folder = Path(folder)
        self.hits = 0
        self.misses = 0

    def key(self, wave: np.ndarray, vae, cfg: MelConfig, normalise: bool) -> str:
        from .models import weights_digest

        h = hashlib.blake2b(digest_size=20)
        h.update(np.ascontiguousarray(wave, dtype=np.float32).tobytes())
        h.update(repr((bool(normalise), cfg, weights_digest(vae, exact=True), str(vae.device), str(vae.dtype),
                       torch.get_num_threads())).encode())
        return h.hexdigest()

    def _path(self, key: str, kind: str) -> Path:
        return self.folder / f"{key}.{kind}.pt"

    def get(self, key: str, kind: str):
        need = {"enc": {"wave", "gain", "mel", "latent"}, "dec": {"vae"}}[kind]
        try:
            out = torch.load(self._path(key, kind), map_location="cpu", weights_only=True)
        except Exception:  # missing, truncated or foreign: computed again
            out = None
        if not (isinstance(out, dict) and need <= set(out) and all(isinstance(out[k], torch.Tensor) for k in need)):
            self.misses += 1
            return None
        self.hits += 1
        return out

    def put(self, key: str, kind: str, value: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        final = self._path(key, kind)
        tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
        torch.save(value, tmp)
        os.replace(tmp, final)


def encode_decode(wave, vae, enhancers=None, *, cfg: MelConfig | None = None, seed: int = 0,
                  normalise: bool = True, decode: bool = True, cache: RoundTripCache | None = None) -> Encoded:
    """The front half of the round trip, the one place it is written: normalise → pad → log-mel → encode → decode.

    ``wave`` is normalised (mean removed, peak 0.5: the training rule) unless ``normalise=False``, padded to a
    multiple of 4 frames *in the waveform* (:func:`vaelib.audio.pad_to_multiple`), turned into the training-matched
    log-mel (:func:`vaelib.audio.wav_to_mel`), encoded once, and the latent decoded together with every latent-stage
    enhancer of ``enhancers`` (:func:`decode_latents`, one decoder call). ``decode=False`` stops after encoding
    (``decoded`` holds only the latent-stage enhancers' decodes, if any). ``cache``: a :class:`RoundTripCache`
    that serves (and keeps) the encoding and the plain decode — the same numbers, computed once.
    """
    x = _to_wave_np(wave)
    cfg = cfg or vae.mel_config
    key = cache.key(x, vae, cfg, normalise) if cache is not None else None
    hit = cache.get(key, "enc") if cache is not None else None
    if hit is not None:
        x, gain = hit["wave"].numpy(), float(hit["gain"])
        mel, z = hit["mel"].to(vae.device), hit["latent"].to(vae.device)
    else:
        gain = 1.0
        if normalise:
            x, gain = normalize(x)
        x = pad_to_multiple(x, cfg)
        mel = wav_to_mel(torch.from_numpy(np.ascontiguousarray(x)).to(vae.device), cfg)
        z = vae.encode(mel)
        if cache is not None:
            cache.put(key, "enc", {"wave": torch.from_numpy(np.ascontiguousarray(x)), "gain": torch.tensor(float(gain)),
                                   "mel": mel.cpu(), "latent": z.cpu()})
    specs = parse_enhancers(enhancers)
    alone = decode and not any(_enhance.get(sp.method).stage == "latent" for sp in specs.values())
    plain = cache.get(key, "dec") if cache is not None and alone else None
    if plain is not None:
        decoded = {"vae": plain["vae"].to(vae.device)}
    else:
        decoded = decode_latents(vae, z, specs, seed=seed, plain=decode)
        if cache is not None and alone:
            cache.put(key, "dec", {"vae": decoded["vae"].cpu()})
    return Encoded(wave=x, gain=float(gain), mel=mel, latent=z, decoded=decoded)


@torch.no_grad()
def score_variants(items: list[dict], vae, methods: dict, cfg: MelConfig | None = None, seed: int = 0,
                   keep=(), outputs: dict | None = None) -> list[dict]:
    """Score enhancers of every stage on (input, decoded) pairs in the mel domain (no vocoder).

    Parameters
    ----------
    items : list of dict
        Training-style pairs (:func:`vaelib.restore.collect_pairs`, :meth:`Encoded.pair`): ``mel``, ``dec``, ``z``,
        ``name``, ``category`` (index into :data:`vaelib.categories.CATEGORIES`).
    vae : vaelib.models.LatentVAE
        Decodes the latent-stage variants (one decoder call per clip, :func:`decode_latents`).
    methods : dict
        ``{label: (method, params)}`` or parsed specs; ``None`` or ``("none", {})`` is the plain VAE. A
        ``params["category"] == "label"`` gives a conditional restorer each clip's own type.
    keep, outputs : iterable of labels, dict
        With ``outputs``, ``outputs[clip name][label]`` receives the output log-mel ``(1, 1, T, M)`` of each label
        in ``keep`` (e.g. to plot or vocode the learned restorers without running them again).

    Returns
    -------
    list of dict
        One row per (clip, label): ``clip``, ``category``, ``label``, ``lsd_hf`` (mel LSD over bins ≥ 4 kHz,
        :func:`vaelib.metrics.mel_lsd`), ``lsd`` (all bins), ``l1`` (:func:`vaelib.metrics.mel_l1`), each against
        the input log-mel, and ``ber_high`` (the 4–8 kHz mel energy ratio, output over input,
        :func:`vaelib.metrics.mel_band_energy_ratio`).
    """
    from . import metrics
    from .categories import CATEGORIES

    cfg = cfg or vae.mel_config or MelConfig.audioldm2()
    band = (metrics.HIGH_BAND_HZ, cfg.sr / 2 + 1)
    by_label, fixed = {}, {}
    for label, spec in methods.items():
        method, params = spec if spec is not None else ("none", {})
        by_label[label] = params.get("category") == "label"
        fixed[label] = (method, {k: v for k, v in params.items() if not (k == "category" and v == "label")})
    # row labels are free here ("vae" is the plain VAE): parse under positional labels, keep the caller's
    parsed = dict(zip(fixed, parse_enhancers({str(i): spec for i, spec in enumerate(fixed.values())}).values(),
                      strict=True))
    _enhance.check_restorers(parsed, vae)
    rows = []
    for it in items:
        specs = {lab: _enhance.Spec(sp.method, {**sp.params, "category": float(it["category"])}) if by_label[lab]
                 else sp for lab, sp in parsed.items()}
        ests = decode_latents(vae, it["z"].to(vae.device), specs, seed=seed, plain=False)
        for label, spec in specs.items():
            if spec.method == "none":
                est = it["dec"]
            elif label in ests:
                est = ests[label].float().cpu()
            else:
                est = _enhance.apply(spec, it["dec"], seed=seed)
            if outputs is not None and label in keep:
                outputs.setdefault(it["name"], {})[label] = est
            rows.append({"clip": it["name"], "category": CATEGORIES[it["category"]], "label": label,
                         "lsd_hf": metrics.mel_lsd(it["mel"], est, band=band, cfg=cfg),
                         "lsd": metrics.mel_lsd(it["mel"], est), "l1": metrics.mel_l1(it["mel"], est),
                         "ber_high": metrics.mel_band_energy_ratio(it["mel"], est, cfg=cfg)["high"]})
    return rows


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
                normalise: bool = True, vocode: bool = True, allow_foreign_restorer: bool = False,
                cache: RoundTripCache | None = None) -> Reconstruction:
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
    allow_foreign_restorer : bool
        Apply a restorer trained for another VAE anyway (refused by default: :func:`vaelib.enhance.check_restorers`).
    cache : RoundTripCache, optional
        Serve and keep the encoding and plain decode (:func:`encode_decode`).
    """
    specs = parse_enhancers(enhancers)
    _enhance.check_restorers(specs, vae, allow_foreign_restorer)
    enc = encode_decode(wave, vae, specs, cfg=cfg, seed=seed, normalise=normalise, cache=cache)
    cfg = cfg or vae.mel_config
    x, mel, z = enc.wave, enc.mel, enc.latent
    by_name = {n: d[0] for n, d in enc.decoded.items()}
    for n, spec in specs.items():  # mel-stage enhancers act on the plain VAE's decoded log-mel
        if n not in by_name:
            by_name[n] = _enhance.apply(spec, enc.decoded["vae"], seed=seed)[0]
    mels = {"mel_projection": mel[0], "vae": by_name["vae"], **{n: by_name[n] for n in specs}}
    waves = {}
    if vocode:
        if vocoder is None:
            raise ValueError("vocode=True needs a vocoder (vaelib.load_vocoder('auto'))")
        out = _vocode_batch(vocoder, torch.stack([m.float() for m in mels.values()]))
        waves = {n: out[i] for i, n in enumerate(mels)}
    # C-contiguous copies: numpy's pairwise sums depend on the memory layout, and the windowed path
    # (vaelib.longaudio) hands out contiguous mels; the same numbers either way, to the last bit
    stages = {"input": Stage("input", np.ascontiguousarray(mel[0, 0].float().cpu().numpy()), x)}
    for n, m in mels.items():
        params = {"method": specs[n].method, **specs[n].params} if n in specs else {}
        stages[n] = Stage(n, np.ascontiguousarray(m[0].float().cpu().numpy()), waves.get(n), params)
    return Reconstruction(wave=x, gain=enc.gain, latent=z.detach().cpu(), stages=stages, sr=cfg.sr)
