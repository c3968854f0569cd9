"""Metrics for the AudioLDM2 VAE round trip (audio → log-mel → VAE → mel → vocoder → audio).

Two families live here:

* **Seed metrics** (:func:`snr_db`, :func:`correlation`, :func:`band_retention_claims`) reproduce the previous
  report's rules exactly. They are *phase-sensitive*: a vocoder re-creates phase, so a resynthesis that sounds
  identical can score ≈0 dB SNR and ≈0 correlation (docs/reference.md §3). They are kept for continuity only.
* **Magnitude metrics** the field uses (docs/reference.md §4): log-spectral distance (:func:`lsd`, :func:`lsd_lf`,
  :func:`lsd_hf`), multi-resolution STFT distance (:func:`mrstft`), scale-invariant SDR (:func:`si_sdr`),
  per-band energy ratios (:func:`band_energy_ratio`), per-band log-mel error in dB (:func:`mel_band_error_db`)
  and a noise-likeness check of "restored" high-band content (:func:`hf_flatness`,
  :func:`added_hf_flatness`). Mel-domain versions (no vocoder involved) take log-mels as produced by
  :func:`vaelib.audio.wav_to_mel`.

Conventions, for every waveform function:

* ``ref`` (the original) comes first, ``est`` (the reconstruction) second;
* inputs are 1-D numpy arrays or torch tensors (converted with ``x.detach().cpu()``; singleton axes are
  squeezed), computed in float64;
* both signals are **truncated to the common length** ``min(len(ref), len(est))`` before anything else
  (as the seed scripts and ssr_eval do);
* bad input (empty, NaN/Inf, not 1-D, mismatched sample rates, a band with no bins) raises a one-line
  :class:`ValueError`;
* results are Python floats, or dicts of floats keyed by band name.

The 16 kHz model has no content above 8 kHz anywhere in the chain, so the "high band" is 4–8 kHz
(:data:`BANDS`).
"""

from __future__ import annotations

import functools
import math

import numpy as np

__all__ = [
    "BANDS",
    "HIGH_BAND_HZ",
    "snr_db",
    "correlation",
    "band_retention_claims",
    "band_energy_ratio",
    "lsd",
    "lsd_lf",
    "lsd_hf",
    "mrstft",
    "si_sdr",
    "hf_flatness",
    "added_hf_flatness",
    "mel_band_error_db",
    "mel_l1",
    "mel_band_error_db_logmel",
    "mel_band_energy_ratio",
    "mel_lsd",
    "score",
    "score_many",
    "score_mel",
]

#: The cut-off between the "low" and the "high" band, in Hz: LSD-LF / LSD-HF, ``*_high`` metrics, plots and
#: restorer losses all split here. For the 16 kHz AudioLDM2 front end the high band is 4-8 kHz (nothing above
#: 8 kHz exists anywhere in the chain; ``docs/reference.md`` §4).
HIGH_BAND_HZ = 4000.0

#: Frequency bands in Hz, ``[lo, hi)``; a band whose ``hi`` reaches Nyquist also includes the Nyquist bin.
BANDS: dict[str, tuple[float, float]] = {
    "low": (0.0, 500.0),
    "mid": (500.0, HIGH_BAND_HZ),
    "high": (HIGH_BAND_HZ, 8000.0),
}

#: Default mrSTFT resolutions ``(n_fft, hop)`` (docs/reference.md §4).
MRSTFT_RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))

#: The seed's band edges for :func:`band_retention_claims`: ``<500``, ``500–4000``, ``>=4000`` Hz.
_SEED_EDGES = (500.0, HIGH_BAND_HZ)
#: Leading samples the seed's retention rule analyses (:func:`band_retention_claims`).
_SEED_N = 8192
#: Welch segments transformed at once by :func:`_welch`.
_WELCH_CHUNK = 2048


# ----------------------------------------------------------------------------------------------------------
# input handling
# ----------------------------------------------------------------------------------------------------------
def _to_numpy(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor, without importing torch here
        x = x.detach().cpu().double().numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real numeric array, got {type(x).__name__}") from None
    return arr


def _as_1d(x, name: str) -> np.ndarray:
    arr = _to_numpy(x, name)
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    arr = arr.reshape(-1) if arr.ndim > 1 and max(arr.shape) == arr.size else arr
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D waveform, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds NaN or Inf samples")
    return arr


def _pair(ref, est) -> tuple[np.ndarray, np.ndarray]:
    """Validate both waveforms and truncate them to their common length."""
    r = _as_1d(ref, "ref")
    e = _as_1d(est, "est")
    n = min(r.shape[0], e.shape[0])
    return r[:n], e[:n]


def _check_sr(sr) -> int:
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise ValueError(f"sr must be a positive integer sample rate in Hz, got {sr!r}")
    return int(sr)


def _check_bands(bands) -> dict[str, tuple[float, float]]:
    if not isinstance(bands, dict) or not bands:
        raise ValueError(f"bands must be a non-empty dict name -> (lo, hi) in Hz, got {bands!r}")
    out = {}
    for name, edges in bands.items():
        try:
            lo, hi = (float(v) for v in edges)
        except (TypeError, ValueError):
            raise ValueError(f"band {name!r} must be a (lo, hi) pair in Hz, got {edges!r}") from None
        if not 0 <= lo < hi:
            raise ValueError(f"band {name!r} needs 0 <= lo < hi, got ({lo}, {hi})")
        out[name] = (lo, hi)
    return out


def _band_mask(freqs: np.ndarray, lo: float, hi: float, nyquist: float, what: str = "bins") -> np.ndarray:
    """Bins with ``lo <= f < hi``; when ``hi >= nyquist`` the Nyquist bin is included too."""
    mask = (freqs >= lo) & ((freqs < hi) | ((hi >= nyquist) & (freqs <= nyquist)))
    if not mask.any():
        raise ValueError(f"band ({lo:g}, {hi:g}) Hz holds no {what}")
    return mask


def _cfg_for(cfg, sr: int | None = None):
    from ..audio import MelConfig

    if cfg is None:
        cfg = MelConfig()
    elif not isinstance(cfg, MelConfig):
        raise ValueError(f"cfg must be a vaelib.audio.MelConfig, got {type(cfg).__name__}")
    if sr is not None and cfg.sr != sr:
        raise ValueError(f"sample rates differ: sr={sr} but cfg.sr={cfg.sr}; pass a MelConfig for sr={sr}")
    return cfg


def _ratio(num: float, den: float) -> float:
    """``num / den`` as a float; ``inf`` for x/0 with x > 0, ``nan`` for 0/0."""
    if den > 0:
        return float(num / den)
    return math.inf if num > 0 else math.nan


# ----------------------------------------------------------------------------------------------------------
# 1. seed metrics (phase-sensitive)
# ----------------------------------------------------------------------------------------------------------
def snr_db(ref, est) -> float:
    """Waveform SNR of the seed report, in dB. Phase-sensitive; kept for continuity with the seed report.

    ::

        SNR = 10 * log10( mean(o**2) / (mean((o - r)**2) + 1e-10) )

    with ``o = ref`` (original), ``r = est`` (reconstruction), means over samples after truncating both to the
    common length. Source: the seed author's scripts (docs/reference.md §3). Any vocoder re-creates phase, so a
    resynthesis that sounds identical scores ≈0 dB (a one-sample delay of white noise scores −3 dB); use
    :func:`lsd` / :func:`mrstft` as headline numbers.

    Parameters
    ----------
    ref, est : array_like or torch.Tensor
        Original and reconstructed waveform, 1-D.

    Returns
    -------
    float
        SNR in dB (``10 log10(mean(o²) / 1e-10)`` for identical signals).
    """
    o, r = _pair(ref, est)
    return float(10.0 * np.log10(np.mean(o**2) / (np.mean((o - r) ** 2) + 1e-10)))


def correlation(ref, est) -> float:
    """Pearson correlation of the waveforms. Phase-sensitive; kept for continuity with the seed report.

    ::

        rho = sum((o - mean(o)) * (r - mean(r))) / sqrt( sum((o - mean(o))**2) * sum((r - mean(r))**2) )

    after truncating both to the common length (``numpy.corrcoef``'s definition, as in the seed scripts,
    docs/reference.md §3). Returns ``0.0`` when either signal is constant (the coefficient is undefined there).

    Parameters
    ----------
    ref, est : array_like or torch.Tensor
        Original and reconstructed waveform, 1-D.

    Returns
    -------
    float
        Correlation in [-1, 1].
    """
    o, r = _pair(ref, est)
    return _correlation(o, r, np.dot)


def _correlation(o: np.ndarray, r: np.ndarray, dot) -> float:
    """:func:`correlation` of validated, equal-length signals, with inner products ``dot``."""
    if np.ptp(o) == 0.0 or np.ptp(r) == 0.0:  # test before centring: x - mean(x) of a constant need not be 0
        return 0.0
    o = o - o.mean()
    r = r - r.mean()
    den = math.sqrt(float(dot(o, o)) * float(dot(r, r)))
    return float(np.clip(dot(o, r) / den, -1.0, 1.0))


def _dot_no_blas(a: np.ndarray, b: np.ndarray) -> float:
    """``a · b`` by numpy's pairwise summation instead of BLAS (the same value to float rounding).

    What :func:`score` uses: OpenBLAS threads ``ddot`` on long vectors and leaves its threads spinning after the
    call; on a 2-core machine they take the cores from torch's threads, and :func:`score_many` ran about 2× slower
    with 2 threads than with one (``benchmarks/README.md``, "Metrics cost").
    """
    return float(np.sum(a * b))


def band_retention_claims(ref, est, sr: int = 16000, n: int = _SEED_N) -> dict[str, float]:
    """The seed report's band "retention" rule. Phase-sensitive; kept for continuity with the seed report.

    ::

        ret_b = sum_{k in b} |FFT(r[:n])_k|  /  sum_{k in b} |FFT(o[:n])_k|

    over the bands ``low`` (f < 500 Hz), ``mid`` (500 <= f < 4000 Hz) and ``high`` (f >= 4000 Hz), with
    ``o = ref``, ``r = est``, **magnitudes, not energies**, and only the first ``n`` samples (0.51 s at
    16 kHz) of the signals after truncation to the common length; shorter signals use all their samples.
    Source: the seed author's scripts (docs/reference.md §3). Implementation note: bins are those of
    ``numpy.fft.rfft`` (non-negative frequencies); a full two-sided FFT gives the same ratios up to the
    single-counted DC and Nyquist bins. It counts added noise as "retained" content and, looking at the
    first half-second only, is not a measure of the whole clip — see :func:`band_energy_ratio` and
    :func:`added_hf_flatness`.

    Parameters
    ----------
    ref, est : array_like or torch.Tensor
        Original and reconstructed waveform, 1-D.
    sr : int
        Sample rate in Hz.
    n : int
        Number of leading samples analysed (the seed used 8192).

    Returns
    -------
    dict
        ``{"low": ..., "mid": ..., "high": ...}`` ratios (1.0 = same summed magnitude; ``nan`` if the
        reference has nothing in a band).
    """
    sr = _check_sr(sr)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise ValueError(f"n must be a positive integer number of samples, got {n!r}")
    o, r = _pair(ref, est)
    o, r = o[:n], r[:n]
    return _retention_from_spectra(np.abs(np.fft.rfft(o)), np.abs(np.fft.rfft(r)), o.shape[0], sr)


def _retention_from_spectra(mo: np.ndarray, mr: np.ndarray, n: int, sr: int) -> dict[str, float]:
    """:func:`band_retention_claims` from the rfft magnitudes of the first ``n`` samples of both signals."""
    freqs = np.fft.rfftfreq(n, d=1.0 / sr)
    lo_edge, hi_edge = _SEED_EDGES
    masks = {
        "low": freqs < lo_edge,
        "mid": (freqs >= lo_edge) & (freqs < hi_edge),
        "high": freqs >= hi_edge,
    }
    return {k: _ratio(float(mr[m].sum()), float(mo[m].sum())) for k, m in masks.items()}


# ----------------------------------------------------------------------------------------------------------
# 2. honest waveform metrics
# ----------------------------------------------------------------------------------------------------------
def _welch(x: np.ndarray, sr: int, nperseg: int, detrend) -> tuple[np.ndarray, np.ndarray]:
    """``scipy.signal.welch(x, sr, "hann", nperseg, detrend=detrend)`` (50 % overlap, density, one-sided, mean).

    ``detrend`` ``"constant"`` or ``False`` is computed here in one vectorised pass (scipy detrends segment by
    segment in Python, the slowest step of :func:`score`); equal to scipy's to float rounding (tested). Any
    other ``detrend`` goes to scipy. ``x`` may also be ``(rows, samples)``: each row's PSD, as ``(rows, bins)``.
    """
    from scipy.signal import get_window, welch

    if isinstance(nperseg, bool) or not isinstance(nperseg, (int, np.integer)) or nperseg <= 0:
        raise ValueError(f"nperseg must be a positive integer, got {nperseg!r}")
    seg = min(int(nperseg), x.shape[-1])
    if not (detrend is False or (isinstance(detrend, str) and detrend == "constant")):
        return welch(x, fs=sr, window="hann", nperseg=seg, detrend=detrend, axis=-1)
    step = seg - seg // 2
    frames = np.lib.stride_tricks.sliding_window_view(x, seg, axis=-1)[..., ::step, :]
    win = get_window("hann", seg)
    acc = np.zeros(x.shape[:-1] + (seg // 2 + 1,))
    for a in range(0, frames.shape[-2], _WELCH_CHUNK):  # in chunks: memory stays flat for long signals
        part = frames[..., a:a + _WELCH_CHUNK, :]
        if detrend == "constant":
            part = part - part.mean(axis=-1, keepdims=True)
        spec = np.fft.rfft(part * win, axis=-1)
        acc += (spec.real**2 + spec.imag**2).sum(axis=-2)
    p = acc / (frames.shape[-2] * sr * float(np.sum(win**2)))
    p[..., 1:-1 if seg % 2 == 0 else None] *= 2.0
    return np.fft.rfftfreq(seg, d=1.0 / sr), p


def _ber_from_psd(freqs, p_ref, p_est, sr, bands) -> dict[str, float]:
    out = {}
    for name, (lo, hi) in bands.items():
        m = _band_mask(freqs, lo, hi, sr / 2, "Welch bins")
        out[name] = _ratio(float(p_est[m].sum()), float(p_ref[m].sum()))
    return out


def band_energy_ratio(ref, est, sr: int = 16000, bands=BANDS, nperseg: int = 1024,
                      detrend="constant") -> dict[str, float]:
    """Energy of ``est`` relative to ``ref`` per frequency band, over the whole clip.

    ::

        BER_b = sum_{f in b} P_est(f)  /  sum_{f in b} P_ref(f)

    where ``P`` is the Welch power spectral density (``scipy.signal.welch``, Hann window, ``nperseg`` samples,
    50 % overlap, ``detrend="constant"`` — scipy's default, which drops each segment's mean, i.e. DC offsets
    do not count) and ``b`` are the bins with ``lo <= f < hi`` (a band reaching Nyquist includes the Nyquist
    bin). Phase-blind and linear in power: ``est = g·ref`` gives ``g²`` in every band (white noise × 0.5 →
    0.25). Replaces the seed's first-half-second magnitude "retention" (:func:`band_retention_claims`). It still
    counts added noise as energy: read it together with :func:`added_hf_flatness`.

    Parameters
    ----------
    ref, est : array_like or torch.Tensor
        Original and reconstructed waveform, 1-D; truncated to the common length.
    sr : int
        Sample rate in Hz.
    bands : dict
        ``name -> (lo, hi)`` in Hz (default :data:`BANDS`).
    nperseg : int
        Welch segment length (reduced to the signal length for clips shorter than that).
    detrend : str or False
        Passed to ``scipy.signal.welch``.

    Returns
    -------
    dict
        Ratio per band name (``nan`` if both are silent in a band, ``inf`` if only ``ref`` is).
    """
    sr = _check_sr(sr)
    bands = _check_bands(bands)
    o, r = _pair(ref, est)
    f, po = _welch(o, sr, nperseg, detrend)
    _, pr = _welch(r, sr, nperseg, detrend)
    return _ber_from_psd(f, po, pr, sr, bands)


def _lsd_defaults(sr: int, n_fft, hop) -> tuple[int, int]:
    if n_fft is None:
        n_fft = int(2048 / (44100 / sr))  # ssr_eval's expression; = int(2048·sr/44100) = 743 at 16 kHz
    if hop is None:
        hop = int(sr / 100)
    for name, v in (("n_fft", n_fft), ("hop", hop)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return int(n_fft), int(hop)


def _lsd_spectra(o, r, sr, n_fft, hop, pad_mode):
    t = _lsd_mag(o, n_fft, hop, pad_mode)
    e = _lsd_mag(r, n_fft, hop, pad_mode)
    freqs = np.fft.rfftfreq(n_fft, d=1.0 / sr)
    return t, e, freqs


def _lsd_mag(x, n_fft: int, hop: int, pad_mode: str) -> np.ndarray:
    import librosa

    if x.shape[0] < n_fft:
        raise ValueError(f"signals too short for LSD: {x.shape[0]} samples, need >= n_fft={n_fft}")
    return np.abs(librosa.stft(x, n_fft=n_fft, hop_length=hop, window="hann", center=True, pad_mode=pad_mode))


def _lsd_power(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """``|librosa.stft(x, n_fft, hop, "hann", center=True, pad_mode="constant")|²`` of each row of ``x``.

    The frames and periodic Hann window of :func:`_lsd_mag` (zero padding ``n_fft // 2`` on both sides), for
    ``x`` ``(rows, samples)``; returns ``(rows, frames, bins)`` (frequency last, contiguous). The default
    ``n_fft`` (743 at 16 kHz) is prime, where a real FFT costs as much as a complex one of the same length, so
    each pair of adjacent frames ``u``, ``v`` is transformed as one complex signal ``z = u + i v`` and split
    with the conjugate symmetry of real input (Press et al., *Numerical Recipes*, §12.3, "FFT of two real
    functions simultaneously"):

    ::

        U_k = (Z_k + conj(Z_{N-k})) / 2,   V_k = (Z_k - conj(Z_{N-k})) / (2i)

    On this project's 2-core CPU (torch 2.13, MKL) 1.4× faster than one real FFT per frame and 1.7× faster than
    librosa (``benchmarks/bench_metrics.py``); equal to them to float rounding (tested), the rounding error of a
    frame being relative to the larger of the two frames' norms. A frame of digital silence is set to exactly
    zero, as a real FFT gives it (its partner's rounding would otherwise leak into it, and LSD's ``eps`` terms
    see the difference between 0 and 1e-17).
    """
    if x.shape[-1] < n_fft:
        raise ValueError(f"signals too short for LSD: {x.shape[-1]} samples, need >= n_fft={n_fft}")
    half = n_fft // 2
    return _lsd_power_padded(np.pad(x, [(0, 0)] * (x.ndim - 1) + [(half, half)]), n_fft, hop)


def _lsd_power_padded(xp: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """:func:`_lsd_power` of samples already padded: the frames ``xp[k*hop : k*hop + n_fft]`` (float64 rows), e.g. a
    segment of the padded signal (:mod:`vaelib.longscore`)."""
    import torch

    half = n_fft // 2
    frames = torch.from_numpy(xp).unfold(-1, n_fft, hop)  # (..., frames, n_fft), a view
    n_frames = frames.shape[-2]
    if n_frames % 2:
        frames = torch.cat([frames, frames.new_zeros(frames.shape[:-2] + (1, n_fft))], dim=-2)
    window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
    z = torch.fft.fft(torch.complex(frames[..., 0::2, :] * window, frames[..., 1::2, :] * window), dim=-1).numpy()
    a = z[..., :half + 1]
    b = np.empty_like(a)  # conj(Z_{N-k}), k = 0..N//2
    b[..., 0] = z[..., 0]
    b[..., 1:] = z[..., n_fft - 1:n_fft - half - 1:-1]
    np.conj(b, out=b)
    out = np.empty(frames.shape[:-1] + (half + 1,))
    u = a + b
    v = np.subtract(a, b, out=b)
    out[..., 0::2, :] = u.real**2 + u.imag**2
    out[..., 1::2, :] = v.real**2 + v.imag**2
    out *= 0.25
    out = out[..., :n_frames, :]
    nonzero = np.concatenate([np.zeros(xp.shape[:-1] + (1,), np.int64), np.cumsum(xp != 0, axis=-1)], axis=-1)
    starts = np.arange(n_frames) * hop
    silent = (nonzero[..., starts + n_fft] - nonzero[..., starts]) == 0
    out[silent] = 0.0
    return out


def _lsd_core(t: np.ndarray, e: np.ndarray, eps: float, axis_f: int) -> float:
    """``mean_t sqrt(mean_f (log10(T² / (E + eps)² + eps))²)`` for spectra with frequency on ``axis_f``."""
    d = np.log10(t**2 / (e + eps) ** 2 + eps) ** 2
    return float(np.mean(np.sqrt(np.mean(d, axis=axis_f))))


def _lsd_from_spec(t, e, freqs, sr, band, eps) -> float:
    if band is not None:
        lo, hi = _check_bands({"band": band})["band"]
        m = _band_mask(freqs, lo, hi, sr / 2, "STFT bins")
        t, e = t[m], e[m]
    return _lsd_core(t, e, eps, axis_f=0)


def lsd(ref, est, sr: int = 16000, n_fft: int | None = None, hop: int | None = None, band=None,
        eps: float = 1e-12, pad_mode: str = "constant") -> float:
    """Log-spectral distance (LSD) as NVSR / ssr_eval / audioldm_eval compute it.

    ::

        LSD = mean_t sqrt( mean_f ( log10( T(t,f)**2 / (E(t,f) + eps)**2 + eps ) )**2 )

    with ``S = |librosa.stft(x, n_fft, hop_length=hop, window="hann", center=True)|`` and
    ``epsilon = 1e-12``. Note the units: log10 of the *power ratio* (bels), not dB and not natural log — a
    uniform 20 dB gain error gives LSD = 2.0. Source: haoheliu/ssr_eval ``ssr_eval/metrics.py``
    (``AudioMetrics.lsd`` and ``wav_to_spectrogram``; the eps placement above was checked against that code:
    ``log10(target**2 / ((est + EPS) ** 2) + EPS)`` with ``EPS = 1e-12``), used by NVSR (Liu et al. 2022) and
    docs/reference.md §4. Defaults ``n_fft = int(2048 / (44100 / sr))`` (743 at 16 kHz) and ``hop = int(sr / 100)``
    (160) are ssr_eval's. Published LSD numbers disagree mainly through log base, n_fft and cutoff, hence
    the arguments.

    Padding: librosa >= 0.9 pads centred frames with zeros (``pad_mode="constant"``, the default here);
    earlier releases reflected (the change is noted in pytorch/pytorch#72550), and ssr_eval's setup.py does
    not pin librosa. Only the first and last one or two frames differ, but on short clips that matters
    (white noise delayed by one sample, 2 s at 16 kHz: LSD 0.009 with ``"constant"``, 0.019 with
    ``"reflect"``).

    Parameters
    ----------
    ref, est : array_like or torch.Tensor
        Target (original) and estimate, 1-D; truncated to the common length (ssr_eval does the same).
    sr : int
        Sample rate in Hz.
    n_fft, hop : int, optional
        STFT size and hop (defaults above).
    band : (float, float), optional
        Restrict the mean over frequency to bins with ``lo <= f < hi`` Hz (a band reaching Nyquist
        includes it). ``(0, 4000)`` gives LSD-LF and ``(4000, sr/2 + 1)`` LSD-HF (see :func:`lsd_lf`,
        :func:`lsd_hf`).
    eps : float
        The guard ``epsilon`` in the formula.
    pad_mode : str
        ``librosa.stft`` padding for the centred frames.

    Returns
    -------
    float
        LSD (0 for identical magnitudes; phase-blind).
    """
    sr = _check_sr(sr)
    n_fft, hop = _lsd_defaults(sr, n_fft, hop)
    o, r = _pair(ref, est)
    t, e, freqs = _lsd_spectra(o, r, sr, n_fft, hop, pad_mode)
    return _lsd_from_spec(t, e, freqs, sr, band, eps)


def lsd_lf(ref, est, sr: int = 16000, cutoff: float = HIGH_BAND_HZ, **kwargs) -> float:
    """LSD over the bins below ``cutoff``: ``lsd(ref, est, sr, band=(0, cutoff), **kwargs)``.

    See :func:`lsd` for the formula and source (docs/reference.md §4: LSD-LF with a 4 kHz cutoff at 16 kHz).
    """
    return lsd(ref, est, sr=sr, band=(0.0, cutoff), **kwargs)


def lsd_hf(ref, est, sr: int = 16000, cutoff: float = HIGH_BAND_HZ, **kwargs) -> float:
    """LSD over the bins from ``cutoff`` to Nyquist: ``lsd(ref, est, sr, band=(cutoff, sr/2 + 1), **kwargs)``.

    See :func:`lsd` for the formula and source (docs/reference.md §4: LSD-HF with a 4 kHz cutoff at 16 kHz — the
    band the project is about).
    """
    return lsd(ref, est, sr=sr, band=(cutoff, _check_sr(sr) / 2 + 1), **kwargs)


def mrstft(ref, est, resolutions=MRSTFT_RESOLUTIONS, eps: float = 1e-7, return_parts: bool = False):
    """Multi-resolution STFT distance (Yamamoto et al. 2020, Parallel WaveGAN).

    For each resolution ``(n_fft, hop)`` (or ``(n_fft, hop, win_length)``), with ``|T|``, ``|E|`` the STFT
    magnitudes of ``ref`` and ``est``:

    ::

        L_sc  = || |T| - |E| ||_F / || |T| ||_F
        L_mag = mean | log|T| - log|E| |

    and ``mrstft = mean over resolutions of (L_sc + L_mag)``. STFT: ``torch.stft`` with a periodic Hann
    window of ``win_length`` (default ``n_fft``), ``center=True`` with reflect padding; magnitudes are
    ``sqrt(max(re² + im², eps))`` — the power is clamped at ``eps`` (Parallel WaveGAN's ``stft`` helper,
    kan-bayashi/ParallelWaveGAN ``parallel_wavegan/losses/stft_loss.py``, ``eps = 1e-7``), i.e. the magnitude
    floor is ``sqrt(eps)`` (it applies to both terms). Resolutions are docs/reference.md §4's choice; Parallel
    WaveGAN itself used ``(n_fft, hop, win_length)`` = (1024, 120, 600), (2048, 240, 1200), (512, 50, 240).
    Phase-blind; 0 for identical signals; ``est = 2·ref`` gives ``L_sc = 1`` and ``L_mag = ln 2`` exactly
    (away from the floor).

    Parameters
    ----------
    ref, est : array_like or torch.Tensor
        Target and estimate, 1-D; truncated to the common length, which must exceed ``n_fft // 2`` for
        every resolution (reflect padding).
    resolutions : sequence of tuple
        ``(n_fft, hop)`` or ``(n_fft, hop, win_length)`` per resolution.
    eps : float
        Clamp on the power ``|X|²`` before the square root.
    return_parts : bool
        Also return the parts.

    Returns
    -------
    float or dict
        The distance; with ``return_parts=True`` a dict ``{"mrstft", "sc", "mag"}`` where ``sc`` and ``mag``
        are the resolution-averaged terms (``mrstft = sc + mag``).
    """
    o, r = _pair(ref, est)
    resolutions = _check_resolutions(resolutions, o.shape[0])
    return _mrstft_from_mags(_stft_mags(o, resolutions, eps), _stft_mags(r, resolutions, eps), return_parts)


def _check_resolutions(resolutions, n: int) -> list[tuple[int, int, int]]:
    if not resolutions:
        raise ValueError("resolutions must list at least one (n_fft, hop) pair")
    out = []
    for res in resolutions:
        if len(res) not in (2, 3) or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                             and v > 0 for v in res):
            raise ValueError(f"each resolution must be (n_fft, hop[, win_length]) positive ints, got {res!r}")
        n_fft, hop = int(res[0]), int(res[1])
        win = int(res[2]) if len(res) == 3 else n_fft
        if win > n_fft:
            raise ValueError(f"win_length {win} exceeds n_fft {n_fft}")
        if n <= n_fft // 2:
            raise ValueError(f"signals too short for mrstft: {n} samples, need > {n_fft // 2} for n_fft={n_fft}")
        out.append((n_fft, hop, win))
    return out


def _stft_mags(x: np.ndarray, resolutions, eps: float) -> list[np.ndarray]:
    """:func:`mrstft`'s clamped STFT magnitudes of one signal ``(samples,)`` or of each row of ``(rows, samples)``,
    one array ``(..., bins, frames)`` per (checked) resolution."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(x))
    mags = []
    for n_fft, hop, win in resolutions:
        window = torch.hann_window(win, periodic=True, dtype=torch.float64)
        spec = torch.stft(t, n_fft=n_fft, hop_length=hop, win_length=win, window=window, center=True,
                          pad_mode="reflect", return_complex=True)
        mags.append(torch.sqrt(torch.clamp(spec.real**2 + spec.imag**2, min=eps)).numpy())
    return mags


def _mrstft_from_mags(ref_mags, est_mags, return_parts: bool):
    sc_all = [float(np.linalg.norm(t - e) / np.linalg.norm(t)) for t, e in zip(ref_mags, est_mags, strict=True)]
    mag_all = [float(np.mean(np.abs(np.log(t) - np.log(e)))) for t, e in zip(ref_mags, est_mags, strict=True)]
    total = float(np.mean(np.add(sc_all, mag_all)))
    if return_parts:
        return {"mrstft": total, "sc": float(np.mean(sc_all)), "mag": float(np.mean(mag_all))}
    return total


def si_sdr(ref, est, eps: float = 1e-8) -> float:
    """Scale-invariant signal-to-distortion ratio in dB.

    Le Roux, Wisdom, Erdogan & Hershey, "SDR – half-baked or well done?", ICASSP 2019.

    Both signals are made zero-mean, then

    ::

        alpha  = (<est, ref> + eps) / (||ref||**2 + eps)
        SI-SDR = 10 * log10( (||alpha*ref||**2 + eps) / (||alpha*ref - est||**2 + eps) )

    The paper's formula has no ``epsilon``; it is placed as in torchmetrics'
    ``scale_invariant_signal_distortion_ratio`` so identical signals give a large finite value instead of
    ``inf``. Invariant to the gain of ``est`` but still phase-sensitive (a vocoder's phase changes count as
    distortion).

    Parameters
    ----------
    ref, est : array_like or torch.Tensor
        Reference and estimate, 1-D; truncated to the common length.
    eps : float
        Guard, see the formula.

    Returns
    -------
    float
        SI-SDR in dB.
    """
    o, r = _pair(ref, est)
    return _si_sdr(o, r, eps, np.dot)


def _si_sdr(o: np.ndarray, r: np.ndarray, eps: float, dot) -> float:
    """:func:`si_sdr` of validated, equal-length signals, with inner products ``dot``."""
    o = o - o.mean()
    r = r - r.mean()
    alpha = (float(dot(r, o)) + eps) / (float(dot(o, o)) + eps)
    target = alpha * o
    noise = target - r
    return float(10.0 * np.log10((dot(target, target) + eps) / (dot(noise, noise) + eps)))


def _flatness(p: np.ndarray, floor: float) -> float:
    """Geometric / arithmetic mean of ``p`` floored at ``floor·max(p)``; ``nan`` if ``p`` is all 0."""
    top = float(p.max()) if p.size else 0.0
    if top <= 0.0:
        return math.nan
    q = np.maximum(p, floor * top)
    return float(np.exp(np.mean(np.log(q))) / np.mean(q))


def hf_flatness(x, sr: int = 16000, band=(HIGH_BAND_HZ, 8000.0), nperseg: int = 1024, floor: float = 1e-12,
                detrend="constant") -> float:
    """Spectral flatness (Wiener entropy) of the Welch PSD of ``x`` inside ``band``.

    ::

        SF = exp( mean_k ln P_k ) / mean_k P_k

    over the Welch bins ``k`` with ``lo <= f < hi`` (a band reaching Nyquist includes it); ``P`` is floored
    at ``floor · max(P)`` to avoid ``log 0``. Definition: Gray & Markel (1974) / Johnston (1988) spectral
    flatness, as ``librosa.feature.spectral_flatness`` computes per frame; here on the whole-clip Welch PSD
    (Hann, ``nperseg``, 50 % overlap). ≈1 for white noise, ≈0 for a few sinusoids. docs/reference.md §4: a
    noise-likeness check for the high band.

    Parameters
    ----------
    x : array_like or torch.Tensor
        Waveform, 1-D.
    sr : int
        Sample rate in Hz.
    band : (float, float)
        Band in Hz (default the 4–8 kHz high band).
    nperseg : int
        Welch segment length.
    floor : float
        Relative floor on the PSD.
    detrend : str or False
        Passed to ``scipy.signal.welch``.

    Returns
    -------
    float
        Flatness in (0, 1]; ``nan`` if the band is digitally silent.
    """
    sr = _check_sr(sr)
    lo, hi = _check_bands({"band": band})["band"]
    f, p = _welch(_as_1d(x, "x"), sr, nperseg, detrend)
    return _flatness(p[_band_mask(f, lo, hi, sr / 2, "Welch bins")], floor)


def _added_flatness_from_psd(f, p_ref, p_est, sr, band, floor) -> float:
    lo, hi = band
    m = _band_mask(f, lo, hi, sr / 2, "Welch bins")
    added = np.maximum(p_est[m] - p_ref[m], 0.0)
    return _flatness(added, floor)


def added_hf_flatness(ref, est, sr: int = 16000, band=(HIGH_BAND_HZ, 8000.0), nperseg: int = 1024,
                      floor: float = 1e-12, detrend="constant") -> float:
    """Is "restored" high-band content or noise? Flatness of the PSD that ``est`` adds over ``ref``.

    ::

        A(f) = max(P_est(f) - P_ref(f), 0);   SF_added = exp( mean ln A ) / mean A

    over the Welch bins of ``band`` (``A`` floored at ``floor · max(A)``), see :func:`hf_flatness`.
    Near 1: what was added is spread evenly like white noise over the band (an enhancer that "restores"
    the high band by injecting noise, which the seed's retention counted as content). Near 0: the added
    energy sits in a few bins (tonal, or only part of the band) — bins where ``est`` has *less* energy than
    ``ref`` are floored and pull the value down too. docs/reference.md §4 ("a noise-likeness check for restored
    high band"); the definition is this project's.

    Read it only when ``est`` adds substantial high-band energy (``band_energy_ratio(...)["high"]`` well
    above 1): when ``est ≈ ref`` the PSD difference is estimation noise of both signs, half the bins are
    floored and the value is ≈0 whatever the signals are (white noise vs its one-sample delay: ~2e-6).

    Parameters
    ----------
    ref, est : array_like or torch.Tensor
        Original and reconstruction, 1-D; truncated to the common length.
    sr, band, nperseg, floor, detrend
        As in :func:`hf_flatness`.

    Returns
    -------
    float
        Flatness in (0, 1], or ``nan`` if ``est`` adds no energy anywhere in the band.
    """
    sr = _check_sr(sr)
    band = _check_bands({"band": band})["band"]
    o, r = _pair(ref, est)
    f, po = _welch(o, sr, nperseg, detrend)
    _, pr = _welch(r, sr, nperseg, detrend)
    return _added_flatness_from_psd(f, po, pr, sr, band, floor)


def mel_band_error_db(ref, est, cfg=None, bands=BANDS) -> dict[str, float]:
    """Mean absolute log-mel error in dB per frequency band, from waveforms.

    Computes ``L = wav_to_mel(x, cfg)`` for both waveforms (the training-matched AudioLDM2 front end,
    natural-log mel magnitudes, no waveform normalisation, truncated to the common length first) and returns
    :func:`mel_band_error_db_logmel` of them:

    ::

        err_b = mean_{t, m in b} | 10 log10 P_ref(t,m) - 10 log10 P_est(t,m) |,   10 log10 P = 20 L / ln 10

    over the mel bins whose centre frequency lies in the band. See :func:`mel_band_error_db_logmel` for the
    source and how it differs from AudioCraft's relative volume.

    Parameters
    ----------
    ref, est : array_like or torch.Tensor
        Waveforms at ``cfg.sr``, 1-D.
    cfg : vaelib.audio.MelConfig, optional
        Front end (AudioLDM2 16 kHz by default).
    bands : dict
        ``name -> (lo, hi)`` in Hz.

    Returns
    -------
    dict
        Error in dB per band name (0 for identical signals; a gain ``g`` gives ``|20 log10 g|``).
    """
    from ..audio import wav_to_mel

    cfg = _cfg_for(cfg)
    o, r = _pair(ref, est)
    return mel_band_error_db_logmel(wav_to_mel(o, cfg), wav_to_mel(r, cfg), cfg=cfg, bands=bands)


# ----------------------------------------------------------------------------------------------------------
# 3. mel-domain metrics (input log-mel vs decoded log-mel; no vocoder)
# ----------------------------------------------------------------------------------------------------------
def _as_logmel(x, name: str) -> np.ndarray:
    arr = _to_numpy(x, name)
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if arr.ndim == 4:
        if arr.shape[1] != 1:
            raise ValueError(f"{name} must be (batch, 1, time, n_mels), got shape {arr.shape}")
        arr = arr[:, 0]
    elif arr.ndim == 2:
        arr = arr[None]
    elif arr.ndim != 3:
        raise ValueError(f"{name} must be (B, 1, T, M), (1, T, M) or (T, M), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds NaN or Inf values")
    return arr


def _mel_pair(ref_logmel, est_logmel) -> tuple[np.ndarray, np.ndarray]:
    """Both log-mels as ``(B, T, M)`` float64, cropped to the common number of frames."""
    a = _as_logmel(ref_logmel, "ref_logmel")
    b = _as_logmel(est_logmel, "est_logmel")
    if a.shape[0] != b.shape[0] or a.shape[2] != b.shape[2]:
        raise ValueError(f"log-mel shapes disagree beyond time: ref (B, T, M) = {a.shape}, est = {b.shape}")
    t = min(a.shape[1], b.shape[1])
    return a[:, :t], b[:, :t]


def _mel_mask(cfg, n_mels: int, lo: float, hi: float) -> np.ndarray:
    if cfg.n_mels != n_mels:
        raise ValueError(f"log-mels have {n_mels} bins but cfg.n_mels = {cfg.n_mels}; pass the matching cfg")
    mask = cfg.band_mask(lo, hi)
    if not mask.any():
        raise ValueError(f"band ({lo:g}, {hi:g}) Hz holds no mel bin centre")
    return mask


def mel_l1(ref_logmel, est_logmel) -> float:
    """Mean absolute log-mel difference, in natural-log units.

    ::

        L1 = mean | L_ref - L_est |

    with ``L`` natural-log mel magnitudes (as :func:`vaelib.audio.wav_to_mel` gives; the VAE's input and
    output). The L1 reconstruction term of the AudioLDM VAE objective. Both are cropped to the common
    number of frames.

    Parameters
    ----------
    ref_logmel, est_logmel : array_like or torch.Tensor
        ``(B, 1, T, M)``, ``(1, T, M)`` or ``(T, M)``.

    Returns
    -------
    float
        Mean absolute difference (``c`` for ``L`` vs ``L + c``).
    """
    a, b = _mel_pair(ref_logmel, est_logmel)
    return float(np.mean(np.abs(a - b)))


def mel_band_error_db_logmel(ref_logmel, est_logmel, cfg=None, bands=BANDS) -> dict[str, float]:
    """Mean absolute log-mel error in dB per frequency band, from given log-mels.

    ::

        err_b = mean_{batch, t, m in b} | 10 log10 P_ref - 10 log10 P_est |
              = (20 / ln 10) * mean_{batch, t, m in b} | L_ref - L_est |

    where ``P = exp(2L)`` is the power of the mel magnitude ``exp(L)`` and ``b`` the mel bins whose centre
    frequency lies in ``[lo, hi)`` (``cfg.band_mask``). Source: docs/reference.md §4, after AudioCraft's
    relative-volume-per-band idea (facebookresearch/audiocraft ``audiocraft/metrics/rvm.py``,
    ``RelativeVolumeMel``). Differences from AudioCraft's RVM, deliberate: RVM measures the level of the
    *difference* ``|z_ref − z_est|`` relative to ``z_ref`` (clamped to ±25 dB, after normalising both by the
    reference RMS, on its own 80-mel power spectrogram, bands = equal chunks of mel bins); this is the
    simpler mean absolute level difference in dB on the VAE's own log-mel, with bands by centre frequency.
    The values floor where the front end clamped (``log(1e-5)``).

    Parameters
    ----------
    ref_logmel, est_logmel : array_like or torch.Tensor
        ``(B, 1, T, M)``, ``(1, T, M)`` or ``(T, M)`` natural-log mel magnitudes; cropped to the common T.
    cfg : vaelib.audio.MelConfig, optional
        Front end that produced them (for the bin centre frequencies; AudioLDM2 16 kHz by default).
    bands : dict
        ``name -> (lo, hi)`` in Hz.

    Returns
    -------
    dict
        Error in dB per band name.
    """
    cfg = _cfg_for(cfg)
    bands = _check_bands(bands)
    a, b = _mel_pair(ref_logmel, est_logmel)
    db = np.abs(a - b) * (20.0 / math.log(10.0))
    return {name: float(np.mean(db[..., _mel_mask(cfg, a.shape[2], lo, hi)]))
            for name, (lo, hi) in bands.items()}


def mel_band_energy_ratio(ref_logmel, est_logmel, cfg=None, bands=BANDS) -> dict[str, float]:
    """Mel-domain energy of ``est`` relative to ``ref`` per band.

    ::

        BER_b = sum_{t, m in b} exp(2 L_est(t,m))  /  sum_{t, m in b} exp(2 L_ref(t,m))

    (power of the mel magnitudes, summed over frames and the mel bins whose centre frequency lies in the
    band). The mel-domain counterpart of :func:`band_energy_ratio`; this project's definition.

    Parameters
    ----------
    ref_logmel, est_logmel : array_like or torch.Tensor
        ``(B, 1, T, M)``, ``(1, T, M)`` or ``(T, M)`` natural-log mel magnitudes; cropped to the common T.
    cfg : vaelib.audio.MelConfig, optional
        Front end that produced them (AudioLDM2 16 kHz by default).
    bands : dict
        ``name -> (lo, hi)`` in Hz.

    Returns
    -------
    dict
        Ratio per band name (``L`` vs ``L + ln g`` gives ``g²``).
    """
    cfg = _cfg_for(cfg)
    bands = _check_bands(bands)
    a, b = _mel_pair(ref_logmel, est_logmel)
    out = {}
    for name, (lo, hi) in bands.items():
        m = _mel_mask(cfg, a.shape[2], lo, hi)
        out[name] = _ratio(float(np.exp(2.0 * b[..., m]).sum()), float(np.exp(2.0 * a[..., m]).sum()))
    return out


def mel_lsd(ref_logmel, est_logmel, band=None, cfg=None, eps: float = 1e-12) -> float:
    """Log-spectral distance on mel magnitudes (same formula as :func:`lsd`).

    ::

        LSD_mel = mean_{batch, t} sqrt( mean_m ( log10( M_ref**2 / (M_est + eps)**2 + eps ) )**2 )

    with ``M = exp(L)`` the mel magnitudes, i.e. ≈ ``2 |L_ref − L_est| / ln 10`` per bin (log10 power
    ratio, bels). ``L`` vs ``L + c`` gives ``|2c / ln 10|``. Source of the formula: ssr_eval / NVSR (see
    :func:`lsd`); applying it to the VAE's 64-bin log-mel is this project's.

    Parameters
    ----------
    ref_logmel, est_logmel : array_like or torch.Tensor
        ``(B, 1, T, M)``, ``(1, T, M)`` or ``(T, M)`` natural-log mel magnitudes; cropped to the common T.
    band : (float, float), optional
        Restrict the mean to mel bins whose centre frequency lies in ``[lo, hi)`` Hz.
    cfg : vaelib.audio.MelConfig, optional
        Front end that produced them (needed only with ``band``; AudioLDM2 16 kHz by default).
    eps : float
        The guard ``epsilon``.

    Returns
    -------
    float
        Mel LSD.
    """
    a, b = _mel_pair(ref_logmel, est_logmel)
    if band is not None:
        cfg = _cfg_for(cfg)
        lo, hi = _check_bands({"band": band})["band"]
        m = _mel_mask(cfg, a.shape[2], lo, hi)
        a, b = a[..., m], b[..., m]
    return _lsd_core(np.exp(a), np.exp(b), eps, axis_f=-1)


# ----------------------------------------------------------------------------------------------------------
# 4. one-call summaries
# ----------------------------------------------------------------------------------------------------------
def score(ref, est, sr: int = 16000, cfg=None, lsd: bool = True, extended: bool = True) -> dict[str, float]:
    """All headline waveform metrics of one (original, reconstruction) pair, as one flat dict.

    Each STFT / PSD / log-mel is computed once and shared. Keys (stable; notebooks and reports use them):

    * phase-sensitive (seed continuity): ``snr_db``, ``correlation``, ``claims_ret_low``, ``claims_ret_mid``,
      ``claims_ret_high`` (:func:`snr_db`, :func:`correlation`, :func:`band_retention_claims`); ``si_sdr``
      (:func:`si_sdr`, gain-invariant but phase-sensitive);
    * magnitude: ``lsd``, ``lsd_lf``, ``lsd_hf`` (:func:`lsd`, 4 kHz cutoff), ``mrstft``, ``mrstft_sc``,
      ``mrstft_mag`` (:func:`mrstft`);
    * per band (:data:`BANDS`): ``ber_low``, ``ber_mid``, ``ber_high`` (:func:`band_energy_ratio`),
      ``mel_err_db_low``, ``mel_err_db_mid``, ``mel_err_db_high`` (:func:`mel_band_error_db`);
    * noise check: ``hf_flatness`` (of ``est``), ``hf_flatness_ref`` (of ``ref``), ``added_hf_flatness``
      (:func:`hf_flatness`, :func:`added_hf_flatness`; NaN when nothing is added, meaningful only when
      ``ber_high`` is well above 1).

    Parameters
    ----------
    ref, est : array_like or torch.Tensor
        Original and reconstruction, 1-D, at ``sr``; truncated to the common length.
    sr : int
        Sample rate in Hz; must equal ``cfg.sr``.
    cfg : vaelib.audio.MelConfig, optional
        Front end for the mel errors (AudioLDM2 16 kHz by default).
    lsd : bool
        Compute ``lsd``, ``lsd_lf``, ``lsd_hf`` (one STFT).
    extended : bool
        Compute ``si_sdr``, the ``mrstft*`` keys and the ``mel_err_db_*`` keys. ``extended=False`` keeps the
        seed metrics, band energy ratios and flatness only (about 3× cheaper; used by the comparison tables).

    Returns
    -------
    dict
        ``key -> float``.
    """
    sr = _check_sr(sr)
    cfg = _cfg_for(cfg, sr)
    o, r = _pair(ref, est)
    return _score_rows(_Batch(o[None], sr, cfg), _Batch(r[None], sr, cfg), lsd, extended)[0]


def score_many(ref, ests, sr: int = 16000, cfg=None, lsd: bool = True, extended: bool = True) -> dict[str, dict]:
    """:func:`score` of one original against several reconstructions, analysing the original once.

    Returns ``{name: score(ref, est, sr, cfg, lsd, extended) for name, est in ests.items()}`` — the same
    values (tested) — but the spectra, PSD, log-mel and mrSTFT logs of ``ref`` are computed once per distinct
    common length instead of once per reconstruction (a round trip scores two or more stages against one
    input). The reconstructions are analysed one at a time: stacking them into batched STFT calls was measured
    slower on CPU (1.0-1.6×: the stacked spectra fall out of cache; ``benchmarks/README.md``, "Metrics cost").

    Parameters
    ----------
    ref : array_like or torch.Tensor
        Original, 1-D.
    ests : mapping
        ``name -> reconstruction`` (1-D each; each pair is truncated to its common length).
    sr, cfg, lsd, extended
        As in :func:`score`.

    Returns
    -------
    dict
        ``name -> {key: float}``.
    """
    sr = _check_sr(sr)
    cfg = _cfg_for(cfg, sr)
    o = _as_1d(ref, "ref")
    refs: dict[int, _Batch] = {}
    out = {}
    for name, est in ests.items():
        r = _as_1d(est, "est")
        n = min(o.shape[0], r.shape[0])
        if n not in refs:
            refs[n] = _Batch(o[None, :n], sr, cfg)
        out[name] = _score_rows(refs[n], _Batch(r[None, :n], sr, cfg), lsd, extended)[0]
    return out


class _Batch:
    """The spectra :func:`score` uses, of equal-length signals stacked as the rows of ``x`` ``(rows, samples)``.

    Each analysis is computed on first use, for all rows in one call, and kept; row ``i`` of each is that of
    ``x[i]`` alone (the transforms work row by row). :func:`score_many` gives it one row at a time.
    """

    def __init__(self, x: np.ndarray, sr: int, cfg):
        self.x, self.sr, self.cfg = np.ascontiguousarray(x, dtype=np.float64), sr, cfg

    @functools.cached_property
    def welch(self) -> tuple[np.ndarray, np.ndarray]:
        """Bin frequencies and ``(rows, bins)`` Welch PSDs (:func:`band_energy_ratio`'s defaults)."""
        return _welch(self.x, self.sr, 1024, "constant")

    @functools.cached_property
    def lsd_power(self) -> np.ndarray:
        """``(rows, frames, bins)`` STFT power ``|X|²`` with :func:`lsd`'s defaults."""
        n_fft, hop = _lsd_defaults(self.sr, None, None)
        return _lsd_power(self.x, n_fft, hop)

    @functools.cached_property
    def mrstft_mags(self) -> list[np.ndarray]:
        """Per :data:`MRSTFT_RESOLUTIONS` entry, ``(rows, bins, frames)`` clamped magnitudes (:func:`mrstft`)."""
        return _stft_mags(self.x, _check_resolutions(MRSTFT_RESOLUTIONS, self.x.shape[-1]), 1e-7)

    @functools.cached_property
    def mrstft_logs(self) -> list[np.ndarray]:
        """Natural logs of :attr:`mrstft_mags` (the original's are shared by all its reconstructions)."""
        return [np.log(m) for m in self.mrstft_mags]

    @functools.cached_property
    def logmel(self) -> np.ndarray:
        """``(rows, 1, frames, n_mels)`` log-mels of the training front end (:func:`_logmel`)."""
        return _logmel(self.x, self.cfg)

    @functools.cached_property
    def head(self) -> np.ndarray:
        """``(rows, bins)`` rfft magnitudes of the first ``_SEED_N`` samples (:func:`band_retention_claims`)."""
        return np.abs(np.fft.rfft(self.x[:, :_SEED_N], axis=-1))


def _logmel(x: np.ndarray, cfg) -> np.ndarray:
    """:func:`vaelib.audio.wav_to_mel` of each row of ``x`` ``(rows, samples)``, float64, ``(rows, 1, frames, n_mels)``.

    The same steps — zero-pad to a multiple of ``cfg.time_multiple`` frames, reflect-pad ``cfg.pad``, periodic
    Hann ``torch.stft`` with ``center=False``, Slaney filter bank, ``log(max(·, 1e-5))`` — with the magnitude
    taken as ``sqrt(re² + im²)`` in numpy instead of torch's complex ``abs`` (``hypot``, 3× slower here) and the
    filter bank applied to ``(frames, bins)`` rows (no transposes); equal to ``wav_to_mel`` to float rounding
    (tested). The product stays in torch: numpy's (OpenBLAS) thread pool beside torch's oversubscribes two cores.
    """
    import torch

    from ..audio import LOG_CLAMP, mel_basis, pad_to_multiple

    x = pad_to_multiple(x, cfg)
    if x.shape[-1] <= cfg.pad:
        raise ValueError(f"wave too short for the front end: {x.shape[-1]} samples, need > {cfg.pad}")
    t = torch.nn.functional.pad(torch.from_numpy(x)[:, None], (cfg.pad, cfg.pad), mode="reflect")[:, 0]
    window = torch.hann_window(cfg.win_length, periodic=True, dtype=torch.float64)
    spec = torch.stft(t, n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length, window=window,
                      center=False, return_complex=True)
    s = spec.transpose(-2, -1).numpy()  # (rows, frames, bins), contiguous
    mel = (torch.from_numpy(np.sqrt(s.real**2 + s.imag**2)) @ mel_basis(cfg, dtype=torch.float64).T).numpy()
    np.maximum(mel, LOG_CLAMP, out=mel)
    return np.log(mel, out=mel)[:, None]


def _score_rows(a: _Batch, b: _Batch, lsd: bool, extended: bool) -> list[dict[str, float]]:
    """:func:`score` of the original ``a`` (one row) against each row of ``b`` (equal length), one dict per row.

    The parts below fill the dicts in :func:`score`'s key order; ``benchmarks/bench_metrics.py`` times each.
    """
    outs: list[dict[str, float]] = [{} for _ in range(b.x.shape[0])]
    _rows_seed(a, b, outs, extended)
    if lsd:
        _rows_lsd(a, b, outs)
    if extended:
        _rows_mrstft(a, b, outs)
    _rows_welch(a, b, outs)
    if extended:
        _rows_mel(a, b, outs)
    _rows_claims(a, b, outs)
    return outs


def _rows_seed(a: _Batch, b: _Batch, outs, extended: bool) -> None:
    """``snr_db``, ``correlation`` (and ``si_sdr``): :func:`snr_db`, :func:`correlation`, :func:`si_sdr`, their inner
    products without BLAS (:func:`_dot_no_blas`)."""
    o = a.x[0]
    for out, r in zip(outs, b.x, strict=True):
        out["snr_db"] = snr_db(o, r)
        out["correlation"] = _correlation(o, r, _dot_no_blas)
        if extended:
            out["si_sdr"] = _si_sdr(o, r, 1e-8, _dot_no_blas)


def _rows_lsd(a: _Batch, b: _Batch, outs) -> None:
    """``lsd``, ``lsd_lf``, ``lsd_hf``: :func:`lsd`'s per-bin term computed once, then averaged over all bins, the
    bins below 4 kHz and those from 4 kHz to Nyquist.

    ``mean_t sqrt(mean_f d)`` with ``d = (log10(T² / (E + eps)² + eps))²``, ``T² = |X_ref|²``, ``E = |X_est|``,
    ``eps = 1e-12`` (the formula and source in :func:`lsd`).
    """
    sr = a.sr
    freqs = np.fft.rfftfreq(_lsd_defaults(sr, None, None)[0], d=1.0 / sr)
    cols = {"lsd": slice(None),
            "lsd_lf": _band_mask(freqs, 0.0, HIGH_BAND_HZ, sr / 2, "STFT bins"),
            "lsd_hf": _band_mask(freqs, HIGH_BAND_HZ, sr / 2 + 1, sr / 2, "STFT bins")}
    eps = 1e-12
    e = np.sqrt(b.lsd_power)
    e += eps
    d = a.lsd_power[0] / (e * e)
    d += eps
    d = np.log10(d, out=d)
    d *= d
    for key, c in cols.items():
        vals = np.sqrt(np.mean(d[..., c], axis=-1)).mean(axis=-1)
        for out, v in zip(outs, vals, strict=True):
            out[key] = float(v)


def _rows_mrstft(a: _Batch, b: _Batch, outs) -> None:
    """``mrstft``, ``mrstft_sc``, ``mrstft_mag`` (:func:`mrstft`), the original's magnitudes and logs shared."""
    sc, mag = [], []
    for t, e, lt, le in zip(a.mrstft_mags, b.mrstft_mags, a.mrstft_logs, b.mrstft_logs, strict=True):
        diff = e - t
        diff *= diff
        sc.append(np.sqrt(diff.sum(axis=(-2, -1))) / np.sqrt(_dot_no_blas(t[0], t[0])))
        diff = np.subtract(le, lt, out=diff)
        mag.append(np.abs(diff, out=diff).mean(axis=(-2, -1)))
    sc, mag = np.array(sc), np.array(mag)  # (resolutions, rows)
    total = np.mean(sc + mag, axis=0)
    for i, out in enumerate(outs):
        out.update(mrstft=float(total[i]), mrstft_sc=float(np.mean(sc[:, i])), mrstft_mag=float(np.mean(mag[:, i])))


def _rows_welch(a: _Batch, b: _Batch, outs) -> None:
    """``ber_*``, ``hf_flatness``, ``hf_flatness_ref``, ``added_hf_flatness`` from the Welch PSDs."""
    sr = a.sr
    f, po = a.welch
    _, prs = b.welch
    po = po[0]
    high = BANDS["high"]
    mh = _band_mask(f, *high, sr / 2, "Welch bins")
    flat_ref = _flatness(po[mh], 1e-12)
    for out, pr in zip(outs, prs, strict=True):
        for name, v in _ber_from_psd(f, po, pr, sr, BANDS).items():
            out[f"ber_{name}"] = v
        out["hf_flatness"] = _flatness(pr[mh], 1e-12)
        out["hf_flatness_ref"] = flat_ref
        out["added_hf_flatness"] = _added_flatness_from_psd(f, po, pr, sr, high, 1e-12)


def _rows_mel(a: _Batch, b: _Batch, outs) -> None:
    """``mel_err_db_*`` (:func:`mel_band_error_db`) from the log-mels of the training front end."""
    ref = a.logmel[0]
    for out, est in zip(outs, b.logmel, strict=True):
        for name, v in mel_band_error_db_logmel(ref, est, cfg=a.cfg, bands=BANDS).items():
            out[f"mel_err_db_{name}"] = v


def _rows_claims(a: _Batch, b: _Batch, outs) -> None:
    """``claims_ret_*`` (:func:`band_retention_claims`) from the first ``_SEED_N`` samples' spectra."""
    n = min(a.x.shape[-1], _SEED_N)
    for out, h in zip(outs, b.head, strict=True):
        for name, v in _retention_from_spectra(a.head[0], h, n, a.sr).items():
            out[f"claims_ret_{name}"] = v


def score_mel(ref_logmel, est_logmel, cfg=None) -> dict[str, float]:
    """All mel-domain metrics of one (input log-mel, decoded log-mel) pair, as one flat dict.

    Keys (stable): ``mel_l1`` (:func:`mel_l1`), ``mel_lsd``, ``mel_lsd_lf``, ``mel_lsd_hf`` (:func:`mel_lsd`
    over all bins, bins centred below 4 kHz, bins centred at or above 4 kHz), ``mel_ber_low``,
    ``mel_ber_mid``, ``mel_ber_high`` (:func:`mel_band_energy_ratio`), ``mel_err_db_low``,
    ``mel_err_db_mid``, ``mel_err_db_high`` (:func:`mel_band_error_db_logmel`), bands from :data:`BANDS`.

    Parameters
    ----------
    ref_logmel, est_logmel : array_like or torch.Tensor
        ``(B, 1, T, M)``, ``(1, T, M)`` or ``(T, M)`` natural-log mel magnitudes; cropped to the common T.
    cfg : vaelib.audio.MelConfig, optional
        Front end that produced them (AudioLDM2 16 kHz by default).

    Returns
    -------
    dict
        ``key -> float``.
    """
    cfg = _cfg_for(cfg)
    a, b = _mel_pair(ref_logmel, est_logmel)
    out = {
        "mel_l1": mel_l1(a, b),
        "mel_lsd": mel_lsd(a, b),
        "mel_lsd_lf": mel_lsd(a, b, band=(0.0, HIGH_BAND_HZ), cfg=cfg),
        "mel_lsd_hf": mel_lsd(a, b, band=(HIGH_BAND_HZ, cfg.sr / 2 + 1), cfg=cfg),
    }
    for name, v in mel_band_energy_ratio(a, b, cfg=cfg).items():
        out[f"mel_ber_{name}"] = v
    for name, v in mel_band_error_db_logmel(a, b, cfg=cfg).items():
        out[f"mel_err_db_{name}"] = v
    return out


# ----------------------------------------------------------------------------------------------------------
# perceptual measures (optional libraries, imported lazily: vaelib[perceptual]) and embedding distances
# ----------------------------------------------------------------------------------------------------------
from .embedding import embedding_distance, fad  # noqa: E402
from .perceptual import (  # noqa: E402
    PERCEPTUAL_KEYS,
    dnsmos,
    estoi,
    perceptual,
    perceptual_available,
    perceptual_versions,
    pesq_wb,
    stoi,
    visqol,
    visqol_speech,
)

__all__ += ["PERCEPTUAL_KEYS", "perceptual", "perceptual_available", "perceptual_versions", "visqol",
            "visqol_speech", "stoi", "estoi", "pesq_wb", "dnsmos", "embedding_distance", "fad"]
