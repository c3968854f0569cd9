"""Embedding distances on a CLAP audio model: per-clip cosine distance and the Fréchet Audio Distance (FAD).

No embedding model ships with vaelib: CLAP checkpoints are 150–800 MB (the package would grow a hundredfold),
they are not on a package registry, and no small CLAP trained for this purpose exists to bundle. The measures
run where the user has the weights, loaded the way vaelib loads VAEs (:mod:`vaelib.models`):

* ``"auto"`` — ``$VAELIB_CLAP``, else the first of :data:`CLAP_REPOS` whose weights are in the Hugging Face
  cache (an AudioLDM2 snapshot's ``text_encoder/`` is a full ``ClapModel``, so users with AudioLDM2 have one);
  never touches the network;
* a Hugging Face repo id (``"laion/clap-htsat-unfused"``), from the cache, downloaded only when
  ``HF_HUB_OFFLINE`` is not set;
* a local folder: a CLAP model (``config.json`` + ``model.safetensors``, optional ``preprocessor_config.json``)
  or an AudioLDM2 snapshot (``text_encoder/``, ``feature_extractor/``).

Only safetensors weights are loaded. A missing model fails in one line naming what to download.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from ..models import (
    AUDIOLDM2_REPOS,
    ModelLoadError,
    _cached_snapshot,
    _from_pretrained,
    _local_folder,
    _offline,
    check_device,
    hf_cache_dir,
    looks_like_repo_id,
)

__all__ = ["CLAP_REPOS", "ENV_CLAP", "ClapEmbedder", "find_clap", "load_clap", "embedding_distance", "fad",
           "EMBEDDING_KEYS"]

ENV_CLAP = "VAELIB_CLAP"
#: Repos searched by ``"auto"`` (the AudioLDM2 ones through their ``text_encoder/``), in this order.
CLAP_REPOS = ("laion/clap-htsat-unfused", "laion/larger_clap_general", "laion/larger_clap_music_and_speech",
              "laion/clap-htsat-fused") + AUDIOLDM2_REPOS
#: Keys of :func:`embedding_distance`.
EMBEDDING_KEYS = ("clap_cosine",)
#: CLAP's input window: longer clips are embedded in consecutive windows of this length and averaged.
WINDOW_S = 10.0
_HOW = ("download one on a connected machine (`huggingface-cli download laion/clap-htsat-unfused`) into the HF "
        "cache ({cache}), or pass a local folder (a CLAP model, or an AudioLDM2 snapshot with text_encoder/), or set "
        f"${ENV_CLAP}")


class ClapEmbedder:
    """A CLAP audio tower and its feature extractor: ``embed(wave, sr)`` → a unit-norm embedding.

    Parameters
    ----------
    model : transformers.ClapModel
    feature_extractor : transformers.ClapFeatureExtractor
    source : str
        Where the model came from (for table captions).
    """

    def __init__(self, model, feature_extractor, source: str):
        self.model = model.eval()
        self.feature_extractor = feature_extractor
        self.source = source
        self.sr = int(feature_extractor.sampling_rate)
        # deterministic inputs: no random crop (windows are never longer than the extractor's max length),
        # "fusion" only for models trained with it
        fused = bool(getattr(model.config.audio_config, "enable_fusion", False))
        self.feature_extractor.truncation = "fusion" if fused else "rand_trunc"

    @property
    def device(self):
        return next(self.model.parameters()).device

    def describe(self) -> str:
        return f"CLAP audio embeddings from {self.source}"

    def embed(self, wave, sr: int = 16000) -> np.ndarray:
        """Embedding of one mono waveform: the mean of the unit-norm embeddings of its 10 s windows, renormalised.

        ``wave`` is resampled to the extractor's rate (48 kHz for CLAP) with :func:`scipy.signal.resample_poly`;
        each window goes through ``ClapFeatureExtractor`` (log-mel, "repeatpad" to 10 s) and
        ``ClapModel.get_audio_features`` (HTS-AT encoder + projection, L2-normalised).
        """
        import torch
        from scipy.signal import resample_poly

        from .perceptual import _mono

        x = _mono(wave, "wave")
        if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
            raise ValueError(f"sr must be a positive integer sample rate in Hz, got {sr!r}")
        if sr != self.sr:
            g = math.gcd(int(sr), self.sr)
            x = resample_poly(x, self.sr // g, int(sr) // g)
        n = int(WINDOW_S * self.sr)
        windows = [x[i:i + n] for i in range(0, max(len(x), 1), n)]
        windows = [w for w in windows if len(w) >= self.sr // 10] or windows[:1]  # drop a tail under 0.1 s
        feats = self.feature_extractor([w.astype(np.float32) for w in windows], sampling_rate=self.sr,
                                       return_tensors="pt")
        with torch.no_grad():
            out = self.model.get_audio_features(input_features=feats["input_features"].to(self.device),
                                                is_longer=feats.get("is_longer").to(self.device)
                                                if feats.get("is_longer") is not None else None)
        emb = out if isinstance(out, torch.Tensor) else out.pooler_output  # transformers 4 / 5
        emb = emb.detach().cpu().double().numpy()
        emb = (emb / np.linalg.norm(emb, axis=-1, keepdims=True)).mean(0)
        return emb / np.linalg.norm(emb)


def _feature_extractor(root: Path):
    from transformers import ClapFeatureExtractor

    for folder in (root / "feature_extractor", root):
        if (folder / "preprocessor_config.json").is_file():
            return ClapFeatureExtractor.from_pretrained(str(folder), local_files_only=True)
    return ClapFeatureExtractor()  # its defaults are those of the LAION HTS-AT checkpoints (48 kHz, 64 mels)


def _load_local(folder: Path, device, source: str) -> ClapEmbedder:
    from transformers import ClapModel

    model = _from_pretrained(ClapModel, str(folder), "text_encoder")  # text_encoder/ or config.json at the root
    return ClapEmbedder(model.to(device), _feature_extractor(folder), source)


def _cached_clap(repo: str) -> Path | None:
    for sub in ("text_encoder", ""):
        snap = _cached_snapshot(repo, sub)
        if snap is not None:
            return snap
    return None


def find_clap(source: str = "auto") -> str:
    """The folder or repo id :func:`load_clap` would load, without loading it (a cheap check before a long run).

    Raises
    ------
    vaelib.models.ModelLoadError
        One line: nothing found offline, a pickle-only folder, or a source that is neither folder nor repo id.
    """
    how = _HOW.format(cache=hf_cache_dir())
    if source == "auto":
        env = os.environ.get(ENV_CLAP, "").strip()
        if env:
            return find_clap(env)
        for repo in CLAP_REPOS:
            if _cached_clap(repo) is not None:
                return repo
        raise ModelLoadError(f"no CLAP model found (no ${ENV_CLAP}, none of {', '.join(CLAP_REPOS[:2])}, ... in the "
                             f"HF cache): {how}")
    folder = Path(source).expanduser()
    if folder.exists():
        if not folder.is_dir():
            raise ModelLoadError(f"CLAP source {folder} is a file; pass the folder that holds config.json")
        _local_folder(folder, "text_encoder")  # text_encoder/ or config.json, safetensors only
        return str(folder)
    if not looks_like_repo_id(source):
        raise ModelLoadError(f"CLAP source {source!r} is neither an existing folder nor a Hugging Face repo id "
                             "like 'laion/clap-htsat-unfused'")
    if _cached_clap(source) is None and _offline():
        raise ModelLoadError(f"{source} is not in the Hugging Face cache and HF_HUB_OFFLINE=1 forbids downloading: "
                             f"{how}")
    return source


def load_clap(source: str = "auto", device: str = "cpu") -> ClapEmbedder:
    """Load a CLAP model for :func:`embedding_distance` and :func:`fad` (see the module docstring for sources).

    Raises
    ------
    vaelib.models.ModelLoadError
        One line: nothing found offline, a pickle-only folder, or a source that is neither folder nor repo id.
    """
    dev = check_device(device)
    name = find_clap(source)
    folder = Path(name).expanduser()
    if folder.is_dir():
        return _load_local(folder, dev, name)
    snap = _cached_clap(name)
    if snap is not None:
        return _load_local(snap, dev, name)
    from transformers import ClapFeatureExtractor, ClapModel

    try:
        model = ClapModel.from_pretrained(name, use_safetensors=True, cache_dir=str(hf_cache_dir()))
        fe = ClapFeatureExtractor.from_pretrained(name, cache_dir=str(hf_cache_dir()))
    except Exception as exc:
        msg = " ".join(str(exc).split())[:200]
        raise ModelLoadError(f"could not fetch {name}: {msg}; {_HOW.format(cache=hf_cache_dir())}") from None
    return ClapEmbedder(model.to(dev), fe, name)


def _cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return math.nan
    return float(1.0 - np.dot(a, b) / (na * nb))


def embedding_distance(ref, est, sr: int = 16000, embedder: ClapEmbedder | None = None) -> dict[str, float]:
    """Per-clip CLAP embedding cosine distance between ``ref`` and ``est``.

    ``clap_cosine = 1 − ⟨e_r, e_e⟩ / (‖e_r‖ ‖e_e‖)`` with ``e = ClapEmbedder.embed(x)`` (CLAP: Wu et al.,
    "Large-scale contrastive language-audio pretraining", ICASSP 2023; the per-clip cosine as in Codec-SUPERB
    and VERSA). Range [0, 2], 0 at identity, lower is better. Both signals are truncated to their common length.

    Parameters
    ----------
    ref, est : array_like
        Mono waveforms at ``sr``.
    sr : int
    embedder : ClapEmbedder, optional
        From :func:`load_clap`; ``load_clap("auto")`` when None.
    """
    from .perceptual import _mono

    r, e = _mono(ref, "ref"), _mono(est, "est")
    n = min(r.size, e.size)
    emb = embedder if embedder is not None else load_clap("auto")
    return {"clap_cosine": _cosine_distance(emb.embed(r[:n], sr), emb.embed(e[:n], sr))}


def fad(ref_embeddings, est_embeddings, eps: float = 1e-6) -> float:
    """Fréchet Audio Distance between two sets of embeddings (Kilgour et al., Interspeech 2019).

    ``FAD = ‖μ_r − μ_e‖² + Tr(Σ_r + Σ_e − 2 (Σ_r Σ_e)^{1/2})`` with the means ``μ`` and (unbiased, ``N − 1``)
    covariances ``Σ`` of the rows; the matrix square root by :func:`scipy.linalg.sqrtm`, its imaginary round-off
    dropped. When the product is singular (fewer clips than dimensions, the usual case for a small corpus)
    ``eps`` is added to both diagonals first, as in pytorch-fid / fadtk. 0 for identical sets; not comparable
    across embedding models or corpus sizes (FAD is biased in N: Gui et al., ICASSP 2024).

    Parameters
    ----------
    ref_embeddings, est_embeddings : array_like, shape (N, D) and (M, D)
        At least two rows each.
    """
    from scipy import linalg

    a = np.asarray(ref_embeddings, dtype=np.float64)
    b = np.asarray(est_embeddings, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"fad needs two (N, D) arrays with the same D, got shapes {a.shape} and {b.shape}")
    if min(a.shape[0], b.shape[0]) < 2:
        raise ValueError(f"fad needs at least 2 embeddings per set, got {a.shape[0]} and {b.shape[0]}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("fad: the embeddings hold NaN or Inf")
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    s_a, s_b = np.atleast_2d(s_a), np.atleast_2d(s_b)
    with np.errstate(all="ignore"):
        covmean = linalg.sqrtm(s_a @ s_b)
        if not np.isfinite(covmean).all() or np.abs(np.imag(covmean)).max() > 1e-3 * max(np.abs(covmean).max(), 1e-12):
            off = eps * np.eye(s_a.shape[0])
            covmean = linalg.sqrtm((s_a + off) @ (s_b + off))
    covmean = np.real(covmean)
    diff = mu_a - mu_b
    return float(max(diff @ diff + np.trace(s_a) + np.trace(s_b) - 2.0 * np.trace(covmean), 0.0))
