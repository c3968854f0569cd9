"""Train and evaluate the bundled tiny mel VAE (a diffusers ``AutoencoderKL`` of AudioLDM2's layout).

The model: in 1 / out 1 channel, 8 latent channels, three levels (two 2× downsamplings), so a log-mel
``(B, 1, T, 64)`` maps to a latent ``(B, 8, T/4, 16)`` exactly like AudioLDM2's VAE and every enhancer applies
unchanged. It is ~100× smaller than AudioLDM2's (55.4 M parameters) and trained on the bundled demo corpus only.

Training objective (per batch of log-mel crops ``x`` made by :func:`vaelib.audio.wav_to_mel`)::

    loss = mean |x - decode(z)| + kl_weight * KL(q(z|x) || N(0, I)) / latent_size,   z ~ q(z|x)

and, with ``latent_noise = a > 0``, the decoder fed ``z + σ·std(z)·ε`` instead of ``z`` (``σ ~ U(0, a)`` per crop,
``ε ~ N(0, I)``, ``std(z)`` the crop's latent standard deviation, not back-propagated): latent noise augmentation;
with ``smooth_weight = w > 0``, ``+ w · R(μ)``, the Laplacian roughness of the posterior mean latent
(:func:`latent_roughness`, ``mean(L(μ)²) / mean(μ²)``): a smoothness prior on the latent.

Why both exist (measured 2026-12-02, MODEL_CARD.md "Sensitivity"): the bundled latent is rough at the pixel scale
(``R ≈ 25``; white noise is 72), so the seed's Laplacian boost ``z + 0.5·L(z)`` moves it by about 3× its own
standard deviation and the decode explodes (SNR −60 dB vs VAE only). The smoothness term alone makes the latent
smooth (``R`` 0.15–0.7) but the decoder then amplifies what the encoder never produces (its answer to a white
perturbation grows 8–16×); latent noise alone lets the encoder roughen again. Both together bring the seed's four
settings to −0.0 … −10.8 dB at a mel-L1 cost: the bundled weights are still the plain run, as no candidate yet
keeps both the SNR bound and the mel-L1 bar.

Waveform augmentation before the front end: random crops, random gain (±12 dB before the
training normalisation's peak 0.5 is undone), and mixes of two clips. After training, ``scaling_factor`` is set
to ``1 / std(z)`` over latents of training crops, as the latent-diffusion VAEs do (Rombach et al. 2022, §G;
AudioLDM sets it from the first batch).
"""

from __future__ import annotations

import csv
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .audio import LOG_CLAMP, MelConfig, load_audio, normalize, pad_to_multiple, wav_to_mel

__all__ = ["TinyVAEConfig", "TrainConfig", "make_tiny_vae", "CropSampler", "train", "set_scaling_factor",
           "naive_codec", "evaluate", "latent_sensitivity", "latent_roughness"]


@dataclasses.dataclass
class TinyVAEConfig:
    """Architecture of the bundled VAE (diffusers ``AutoencoderKL`` arguments)."""

    block_out_channels: tuple = (16, 32, 64)
    layers_per_block: int = 1
    norm_num_groups: int = 8
    latent_channels: int = 8


@dataclasses.dataclass
class TrainConfig:
    """Training hyper-parameters (defaults: the run that produced the bundled weights)."""

    steps: int = 3000
    batch_size: int = 8
    crop_frames: int = 64
    lr: float = 2e-3
    lr_min: float = 1e-4
    kl_weight: float = 1e-3
    latent_noise: float = 0.0
    smooth_weight: float = 0.0
    mix_prob: float = 0.3
    gain_db: float = 12.0
    seed: int = 0
    threads: int = 2
    log_every: int = 25


def make_tiny_vae(cfg: TinyVAEConfig | None = None, seed: int = 0):
    """A freshly initialised (seeded) ``AutoencoderKL`` with AudioLDM2's latent layout."""
    from diffusers import AutoencoderKL

    cfg = cfg or TinyVAEConfig()
    torch.manual_seed(seed)
    n = len(cfg.block_out_channels)
    return AutoencoderKL(
        in_channels=1, out_channels=1, latent_channels=cfg.latent_channels,
        down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(cfg.block_out_channels), layers_per_block=cfg.layers_per_block,
        norm_num_groups=cfg.norm_num_groups, sample_size=1024, scaling_factor=1.0,
    )


class CropSampler:
    """Random, seeded training crops with augmentation, returned as log-mels ``(B, 1, crop_frames, n_mels)``.

    Each clip is normalised once with the training rule (:func:`vaelib.audio.normalize`). A crop is a random
    window of ``crop_frames * hop`` samples; with probability ``mix_prob`` a crop of another clip is added
    (scaled by a random factor in [0.3, 1]) and the sum renormalised to peak 0.5; then a random gain in
    ``±gain_db`` dB is applied.
    """

    def __init__(self, waves, cfg: MelConfig | None = None, crop_frames: int = 128, mix_prob: float = 0.3,
                 gain_db: float = 12.0, seed: int = 0):
        self.cfg = cfg or MelConfig.audioldm2()
        self.n = crop_frames * self.cfg.hop_length
        self.waves = [normalize(pad_to_multiple(np.asarray(w, np.float32), self.cfg))[0] for w in waves]
        self.waves = [np.pad(w, (0, max(0, self.n - len(w)))) for w in self.waves]
        if not self.waves:
            raise ValueError("CropSampler needs at least one clip")
        self.mix_prob, self.gain_db = mix_prob, gain_db
        self.rng = np.random.default_rng(seed)

    def _crop(self) -> np.ndarray:
        w = self.waves[self.rng.integers(len(self.waves))]
        start = self.rng.integers(0, len(w) - self.n + 1)
        return w[start:start + self.n]

    def batch(self, batch_size: int) -> torch.Tensor:
        out = []
        for _ in range(batch_size):
            x = self._crop()
            if self.rng.random() < self.mix_prob:
                x = normalize(x + self.rng.uniform(0.3, 1.0) * self._crop())[0]
            x = x * 10 ** (self.rng.uniform(-self.gain_db, self.gain_db) / 20)
            out.append(x.astype(np.float32))
        return wav_to_mel(np.stack(out), self.cfg)


def train(model, sampler: CropSampler, cfg: TrainConfig | None = None, log_path=None, progress: bool = True):
    """Train ``model`` in place with Adam and a cosine learning-rate schedule.

    Returns the list of logged rows (dicts with ``step``, ``loss``, ``l1``, ``kl``, ``roughness``, ``lr``,
    ``seconds``), also
    written to ``log_path`` (CSV) when given.
    """
    from tqdm.auto import tqdm

    cfg = cfg or TrainConfig()
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.steps), eta_min=cfg.lr_min)
    gen = torch.Generator().manual_seed(cfg.seed)
    model.train()
    rows, acc, t0 = [], [], time.time()
    log_file = open(log_path, "w", newline="") if log_path is not None else None  # noqa: SIM115
    writer = None
    for step in tqdm(range(1, cfg.steps + 1), desc="train", disable=not progress):
        x = sampler.batch(cfg.batch_size)
        post = model.encode(x).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=gen)
        if cfg.latent_noise > 0:  # decoder robustness: it must also decode latents near, not only on, q(z|x)
            scale = z.detach().flatten(1).std(dim=1).view(-1, 1, 1, 1)
            sigma = cfg.latent_noise * torch.rand((z.shape[0], 1, 1, 1), generator=gen)
            z = z + sigma * scale * torch.randn(z.shape, generator=gen)
        rec = model.decode(z).sample
        l1 = (rec - x).abs().mean()
        kl = post.kl().mean() / post.mean[0].numel()  # nats per latent element
        loss = l1 + cfg.kl_weight * kl
        if cfg.smooth_weight > 0:
            rough = latent_roughness(post.mean)
            loss = loss + cfg.smooth_weight * rough
        else:  # logged only: no graph, and the default run's arithmetic is the one of the committed weights
            rough = latent_roughness(post.mean.detach())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        acc.append((loss.item(), l1.item(), kl.item(), rough.item()))
        if step % cfg.log_every == 0 or step == cfg.steps or step == 1:
            m = np.mean(acc, axis=0)
            rows.append({"step": step, "loss": float(m[0]), "l1": float(m[1]), "kl": float(m[2]),
                         "roughness": float(m[3]),
                         "lr": float(sched.get_last_lr()[0]), "seconds": round(time.time() - t0, 1)})
            acc = []
            if log_file is not None:  # written as it goes, so a long run can be watched
                if writer is None:
                    writer = csv.DictWriter(log_file, fieldnames=list(rows[0]))
                    writer.writeheader()
                writer.writerow(rows[-1])
                log_file.flush()
    model.eval()
    if log_file is not None:
        log_file.close()
    return rows


def latent_roughness(z: torch.Tensor) -> torch.Tensor:
    """Laplacian energy of a latent relative to its energy: ``R(z) = mean(L(z)²) / mean(z²)``.

    ``L`` is :func:`vaelib.enhance.laplacian`, the 8-neighbour Laplacian ``[[-1,-1,-1],[-1,8,-1],[-1,-1,-1]]``
    per channel with zero padding, the operator of the seed's frequency boost (a
    discrete second derivative: the thin-plate / Tikhonov smoothness prior, e.g. Terzopoulos 1986; zero padding =
    the latent prior's mean outside the map). ``R`` is scale-free; it is small for a map that varies slowly and
    vanishes at the border, ``8² + 8 = 72`` in expectation for white noise, and ``(g - 1)² R`` is the relative
    energy the seed's frequency boost of gain ``g`` adds (``z' = z + (g - 1) L(z)``: ``0.25 R`` at the seed's 1.5).
    The bundled VAE before this term: ``R ≈ 25`` on the demo eval clips.
    """
    from .enhance import laplacian

    return laplacian(z).pow(2).mean() / z.pow(2).mean().clamp_min(1e-12)


@torch.no_grad()
def set_scaling_factor(model, sampler: CropSampler, n: int = 64) -> float:
    """Set ``model.config.scaling_factor = 1 / std(mode latents)`` over ``n`` training crops; return it."""
    z = model.encode(sampler.batch(n)).latent_dist.mode()
    sf = float(1.0 / z.std())
    model.register_to_config(scaling_factor=sf)
    return sf


def naive_codec(mel: torch.Tensor, factor: int = 4) -> torch.Tensor:
    """Baseline codec: average-pool the log-mel ``factor × factor`` and upsample back (bilinear)."""
    small = F.avg_pool2d(mel, factor)
    return F.interpolate(small, size=mel.shape[-2:], mode="bilinear", align_corners=False)


def evaluate(vae, files, vocoder=None, cfg: MelConfig | None = None) -> dict:
    """Score a :class:`vaelib.models.LatentVAE` on whole clips in the mel domain (and optionally vocoded).

    For each clip (normalised, padded): ``mel_l1`` of the VAE round trip and of :func:`naive_codec`, per-band
    mel error in dB (:func:`vaelib.metrics.mel_band_error_db_logmel`) of both, and with a vocoder the LSD of
    *VAE + vocoder* and *mel projection + vocoder* against the input (a listening proxy).

    The naive codec treats every mel bin alike, so its per-band error measures how much fine structure the
    front end puts in each band; ``mean["err_vs_naive_<band>"] = err_vae / err_naive`` is the share of that
    error the VAE still makes (lower = the band is kept better).
    """
    from . import metrics
    from .pipeline import encode_decode

    cfg = cfg or vae.mel_config
    rows = []
    for path in files:
        enc = encode_decode(load_audio(path, sr=cfg.sr), vae, cfg=cfg)
        x, mel, dec = enc.wave, enc.mel.float().cpu(), enc.decoded["vae"].float().cpu()
        naive = naive_codec(mel)
        row = {"clip": Path(path).stem, "mel_l1_vae": metrics.mel_l1(mel, dec),
               "mel_l1_naive": metrics.mel_l1(mel, naive)}
        cut = metrics.HIGH_BAND_HZ
        bands = {**metrics.BANDS, "below_4k": (0.0, cut), "above_4k": (cut, cfg.sr / 2 + 1)}
        for band, v in metrics.mel_band_error_db_logmel(mel, dec, cfg=cfg, bands=bands).items():
            row[f"mel_err_db_{band}"] = v
        naive_err = metrics.mel_band_error_db_logmel(mel, naive, cfg=cfg, bands=bands)
        for band in ("below_4k", "above_4k"):
            row[f"naive_err_db_{band}"] = naive_err[band]
        for band, v in metrics.mel_band_energy_ratio(mel, dec, cfg=cfg).items():
            row[f"mel_ber_{band}"] = v
        if vocoder is not None:
            from .pipeline import vocode

            waves = vocode(vocoder, torch.cat([mel, dec]))
            row["lsd_projection"] = metrics.lsd(x, waves[0], sr=cfg.sr)
            row["lsd_vae"] = metrics.lsd(x, waves[1], sr=cfg.sr)
        rows.append(row)
    keys = [k for k in rows[0] if k != "clip"]
    mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    mean["l1_reduction_vs_naive"] = 1.0 - mean["mel_l1_vae"] / mean["mel_l1_naive"]
    mean["hf_error_exceeds_lf"] = bool(mean["mel_err_db_above_4k"] > mean["mel_err_db_below_4k"])
    for band in ("below_4k", "above_4k"):  # share of the band-agnostic baseline's error the VAE still makes
        mean[f"err_vs_naive_{band}"] = mean[f"mel_err_db_{band}"] / mean[f"naive_err_db_{band}"]
    return {"per_clip": rows, "mean": mean}


#: The seed report's four latent settings (:data:`vaelib.enhance.PRESETS`), the perturbations the VAE must survive.
SEED_SETTINGS = ("seed_frequency", "seed_noise", "seed_contrast", "seed_hybrid")


@torch.no_grad()
def latent_sensitivity(vae, files, vocoder=None, settings=SEED_SETTINGS, white: float = 0.1, seed: int = 0,
                       cfg: MelConfig | None = None) -> dict:
    """How much the decoder answers a latent perturbation, per clip and setting (issue 23's VAE check).

    For each clip the scaled latent ``z`` is decoded plain (``D(z)``, "VAE only") and after each latent setting
    ``z' = e(z)`` (the seed's enhancers, :data:`SEED_SETTINGS`), plus a white perturbation
    ``z' = z + white·std(z)·ε`` (``ε ~ N(0, I)``, seeded). Per setting:

    * ``gain = rms(D(z') − D(z)) / rms(z' − z)``: decoded change (nat of log-mel) per unit of latent change — the
      decoder's local sensitivity (a Lipschitz-style ratio; 1 means a latent step of one scaled-std unit moves the
      log-mel by one nat RMS);
    * ``peak_excess = max D(z') − max mel``: how far the decoded log-mel peaks above the input's (nat; a decoder
      that stays in the front end's range keeps this near 0);
    * ``floor_deficit = ln(1e-5) − min D(z')``: how far it falls below the front end's floor (nat, ≤ 0 inside);
    * ``ber_high``: 4–8 kHz mel energy ratio, decoded over input (:func:`vaelib.metrics.mel_band_energy_ratio`);
    * with a ``vocoder``: ``snr_change_db = SNR(x, V(D(z'))) − SNR(x, V(D(z)))``, the seed report's waveform SNR
      (:func:`vaelib.metrics.snr_db`) of the setting minus that of VAE only — the number the seed reported
      (−0.02 to −3.6 dB on AudioLDM2's VAE).

    Returns ``{"per_clip": [rows], "mean": {f"{setting}_{key}": mean}}``; ratios (``ber_high``) are averaged
    geometrically, everything else arithmetically.
    """
    from . import enhance, metrics
    from .pipeline import encode_decode, vocode

    cfg = cfg or vae.mel_config
    gen = torch.Generator().manual_seed(seed)
    specs = enhance.parse(list(settings))
    rows = []
    for path in files:
        enc = encode_decode(load_audio(path, sr=cfg.sr), vae, cfg=cfg, decode=True)
        x, mel, z = enc.wave, enc.mel.float().cpu(), enc.latent
        base = enc.decoded["vae"].float().cpu()
        zs = {name: enhance.apply(spec, z, seed=seed) for name, spec in specs.items()}
        noise = torch.randn(z.shape, generator=gen).to(z.device, z.dtype)
        zs["white"] = z + white * z.float().std() * noise
        decs = {name: vae.decode(zz).float().cpu() for name, zz in zs.items()}
        waves = vocode(vocoder, torch.cat([base, *decs.values()])) if vocoder is not None else None
        row = {"clip": Path(path).stem}
        snr_vae = metrics.snr_db(x, waves[0]) if waves is not None else None
        for i, (name, dec) in enumerate(decs.items()):
            dz = (zs[name] - z).float().cpu()
            row[f"{name}_gain"] = float((dec - base).pow(2).mean().sqrt() / dz.pow(2).mean().sqrt().clamp_min(1e-12))
            row[f"{name}_peak_excess"] = float(dec.max() - mel.max())
            row[f"{name}_floor_deficit"] = float(np.log(LOG_CLAMP) - dec.min())
            row[f"{name}_ber_high"] = float(metrics.mel_band_energy_ratio(mel, dec, cfg=cfg)["high"])
            if waves is not None:
                row[f"{name}_snr_change_db"] = float(metrics.snr_db(x, waves[i + 1]) - snr_vae)
        rows.append(row)
    keys = [k for k in rows[0] if k != "clip"]
    mean = {}
    for k in keys:
        vals = np.asarray([r[k] for r in rows], dtype=float)
        mean[k] = float(np.exp(np.mean(np.log(vals)))) if k.endswith("_ber_high") else float(np.mean(vals))
    return {"per_clip": rows, "mean": mean}
