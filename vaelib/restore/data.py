"""Training data of the restorers: audio types, augmentation, (input, decoded) pairs, the held-out split."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .._util import one_line
from ..categories import CATEGORIES, category_index
from .model import RestorerError

__all__ = ["augment_wave", "collect_pairs", "split_holdout"]


def augment_wave(x: np.ndarray, rng: np.random.Generator, sr: int = 16000, other: np.ndarray | None = None):
    """A randomly re-coloured copy of a normalised clip, for training-data diversity (seeded by ``rng``).

    1. spectral tilt: the spectrum times ``10^(s · log2(max(f, 100 Hz) / 2 kHz) / 20)``, ``s`` uniform in ±4 dB per
       octave (brighter or duller recordings);
    2. with probability 0.3, ``other`` (another clip) mixed in at −12…−3 dB;
    3. with probability 0.5, white or pink (1/f power) noise at 20…45 dB SNR;
    then the training normalisation again.
    """
    from ..audio import normalize

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

    from ..audio import load_audio, normalize
    from ..pipeline import encode_decode

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
        cat = category_index(path, categories)
        versions = [x0] + [augment_wave(x0, rng, cfg.sr, loaded[rng.integers(len(loaded))][1])
                           for _ in range(augment)]
        for v, x in enumerate(versions):
            pieces = [x[i:i + step] for i in range(0, len(x), step)] if len(x) > step else [x]
            for k, piece in enumerate(pieces):
                if len(piece) < 16 * cfg.hop_length and k:
                    continue
                enc = encode_decode(piece, vae, cfg=cfg)  # each window is one whole, normalised VAE input
                name = Path(path).stem + (f"#{k}" if len(pieces) > 1 else "") + (f"~aug{v}" if v else "")
                out.append({"name": name, "path": str(path), "category": cat, **enc.pair(), "aug": bool(v)})
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
