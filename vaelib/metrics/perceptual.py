"""Perceptual quality measures the field reports: ViSQOL, STOI / ESTOI, PESQ (wide band) and DNSMOS.

:func:`perceptual` wraps four optional libraries (the ``vaelib[perceptual]`` extra), each imported only when a
measure asks for it. A measure whose library is not installed, or that does not apply to the pair (PESQ finds no
utterance, STOI has too few speech frames), is ``NaN`` — never a silent 0. Wrong input (stereo, a sample rate
below 16 kHz, two signals whose lengths betray a sample-rate mix-up, NaN samples) raises a one-line
:class:`ValueError`.

=================  =============================================  =============  ================================
key                measure (source)                               range          library (licence)
=================  =============================================  =============  ================================
``visqol``         ViSQOL v3 audio mode, 48 kHz, SVR mapping       1 - 5 (≈4.73   ``visqol-python`` (Apache-2.0),
                   (Hines et al. 2015; Chinen et al. 2020)        at identity)   a port of google/visqol
``visqol_speech``  ViSQOL v3 speech mode, 16 kHz, lattice mapping 1 - 5 (≈4.5    same, + ``ai-edge-litert``
                   (Chinen et al. 2020, conformance v333)         at identity)   (Apache-2.0) for the lattice
``stoi``           STOI (Taal et al. 2011)                        0 - 1          ``pystoi`` (MIT)
``estoi``          extended STOI (Jensen & Taal 2016)             0 - 1          ``pystoi`` (MIT)
``pesq_wb``        PESQ, ITU-T P.862.2 wide band, MOS-LQO         1.0 - 4.64     ``pesq`` (MIT wrapper; the ITU
                                                                                 C code is evaluation-only)
``dnsmos_ovrl``    DNSMOS P.835 overall, no reference, on ``est``  1 - 5          ``speechmos`` (MIT) +
``dnsmos_sig``     ... speech signal quality                      1 - 5          ``onnxruntime`` (MIT)
``dnsmos_bak``     ... background-noise quality                   1 - 5
=================  =============================================  =============  ================================

Higher is better for every key. STOI, ESTOI, PESQ and DNSMOS were designed for **speech**: on music or
synthetic signals they are numbers without a validated meaning (the notebooks show them for speech clips only);
ViSQOL's audio mode was fitted to music and general audio, its speech mode to speech. docs/perceptual.md holds
the formulas, the validation of the ViSQOL port against Google's published conformance values, and the
licences.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import math
import threading
import warnings

import numpy as np

__all__ = ["PERCEPTUAL_KEYS", "PERCEPTUAL_KINDS", "MEASURES", "perceptual", "perceptual_available",
           "perceptual_versions", "SPEECH_ONLY", "visqol", "visqol_speech", "stoi", "estoi", "pesq_wb", "dnsmos"]

#: Every key :func:`perceptual` returns, in table order.
PERCEPTUAL_KEYS = ("visqol", "visqol_speech", "stoi", "estoi", "pesq_wb", "dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak")

#: ``kinds`` accepted by :func:`perceptual` and the keys each one fills.
PERCEPTUAL_KINDS: dict[str, tuple[str, ...]] = {
    "visqol": ("visqol",),
    "visqol_speech": ("visqol_speech",),
    "stoi": ("stoi", "estoi"),
    "pesq": ("pesq_wb",),
    "dnsmos": ("dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak"),
}

#: The keys whose measure was designed and validated for speech only.
SPEECH_ONLY = ("visqol_speech", "stoi", "estoi", "pesq_wb", "dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak")

#: Per key: a short label, its valid range, and the distributions that provide it (for version columns).
MEASURES: dict[str, dict] = {
    "visqol": {"label": "ViSQOL (audio, 48 kHz)", "range": (1.0, 5.0), "packages": ("visqol-python",)},
    "visqol_speech": {"label": "ViSQOL (speech, 16 kHz)", "range": (1.0, 5.0),
                      "packages": ("visqol-python", "ai-edge-litert")},
    "stoi": {"label": "STOI", "range": (0.0, 1.0), "packages": ("pystoi",)},
    "estoi": {"label": "ESTOI", "range": (0.0, 1.0), "packages": ("pystoi",)},
    "pesq_wb": {"label": "PESQ-WB", "range": (1.0, 4.64), "packages": ("pesq",)},
    "dnsmos_ovrl": {"label": "DNSMOS OVRL", "range": (1.0, 5.0), "packages": ("speechmos", "onnxruntime")},
    "dnsmos_sig": {"label": "DNSMOS SIG", "range": (1.0, 5.0), "packages": ("speechmos", "onnxruntime")},
    "dnsmos_bak": {"label": "DNSMOS BAK", "range": (1.0, 5.0), "packages": ("speechmos", "onnxruntime")},
}

#: The Python modules each kind needs.
_MODULES = {"visqol": ("visqol",), "visqol_speech": ("visqol", "ai_edge_litert"), "stoi": ("pystoi",),
            "pesq": ("pesq",), "dnsmos": ("speechmos", "onnxruntime")}

#: Sample rate of the speech measures (PESQ-WB, DNSMOS, ViSQOL speech mode) and of ViSQOL's audio mode.
SPEECH_SR = 16000
AUDIO_SR = 48000
#: Largest accepted ``max(len) / min(len)`` of the two signals; beyond it they cannot be the same clip at ``sr``.
_MAX_LENGTH_RATIO = 1.1
#: Shortest accepted clip in seconds: below it ViSQOL has no full patch and STOI no 384 ms segment.
_MIN_SECONDS = 0.5

# The wrapped C / TFLite code keeps state per process: one call at a time per library (eval's metric threads).
_LOCKS = {kind: threading.Lock() for kind in PERCEPTUAL_KINDS}


# ----------------------------------------------------------------------------------------------------------
# availability and versions
# ----------------------------------------------------------------------------------------------------------
@functools.cache
def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except Exception:  # ImportError, or a broken binary wheel: the measure is unavailable, not an error
        return False
    return True


def perceptual_available(kind: str | None = None) -> bool | dict[str, bool]:
    """Whether the libraries of ``kind`` (a key of :data:`PERCEPTUAL_KINDS`) import; all kinds when None."""
    if kind is None:
        return {k: perceptual_available(k) for k in PERCEPTUAL_KINDS}
    if kind not in _MODULES:
        raise ValueError(f"unknown perceptual kind {kind!r}; use one of {sorted(_MODULES)}")
    return all(_importable(m) for m in _MODULES[kind])


def perceptual_versions() -> dict[str, str | None]:
    """Installed version of every distribution the measures use (None when absent), for table captions."""
    names = sorted({p for m in MEASURES.values() for p in m["packages"]})
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


# ----------------------------------------------------------------------------------------------------------
# input handling
# ----------------------------------------------------------------------------------------------------------
def _mono(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().double().numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real numeric array, got {type(x).__name__}") from None
    if arr.ndim > 1 and sorted(arr.shape)[-2] > 1:
        raise ValueError(f"{name} has shape {arr.shape}: perceptual() takes mono 1-D waveforms; mix down first "
                         "(e.g. x.mean(axis=0) for channels-first stereo)")
    arr = arr.reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds NaN or Inf samples")
    return arr


def _check_rate(sr) -> int:
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)):
        raise ValueError(f"sr must be an integer sample rate in Hz, got {sr!r}")
    if sr < SPEECH_SR:
        raise ValueError(f"sr={sr}: the perceptual measures need wide-band audio at >= {SPEECH_SR} Hz "
                         "(PESQ-WB, DNSMOS and ViSQOL speech mode run at 16 kHz)")
    return int(sr)


def _resample(x: np.ndarray, sr: int, target: int) -> np.ndarray:
    if sr == target:
        return x
    from scipy.signal import resample_poly

    g = math.gcd(sr, target)
    return resample_poly(x, target // g, sr // g)


def _kinds(kinds) -> list[str]:
    if kinds is None or kinds == "all":
        return list(PERCEPTUAL_KINDS)
    if isinstance(kinds, str):
        kinds = [k.strip() for k in kinds.split(",") if k.strip()]
    kinds = list(kinds)
    bad = [k for k in kinds if k not in PERCEPTUAL_KINDS]
    if bad or not kinds:
        raise ValueError(f"unknown perceptual kinds {bad or kinds!r}; use any of {list(PERCEPTUAL_KINDS)} or 'all'")
    return kinds


# ----------------------------------------------------------------------------------------------------------
# the measures (each returns floats; exceptions of "not applicable" become NaN in perceptual())
# ----------------------------------------------------------------------------------------------------------
@functools.cache
def _visqol_api(mode: str):
    import logging

    from visqol import VisqolApi

    from ._gammatone import install

    install()  # the same numbers, ≈ 1.7× faster ViSQOL (vaelib.metrics._gammatone)
    # the port logs a warning per call for inputs above 16 kHz in speech mode and for length mismatches
    logging.getLogger("visqol").setLevel(logging.ERROR)
    api = VisqolApi()
    if mode == "speech":
        api.create(mode="speech", use_lattice_model=True)
    else:
        api.create(mode="audio")
    return api


def _visqol(ref: np.ndarray, est: np.ndarray, sr: int, mode: str) -> float:
    target = SPEECH_SR if mode == "speech" else AUDIO_SR
    r, e = _resample(ref, sr, target), _resample(est, sr, target)
    with _LOCKS["visqol_speech" if mode == "speech" else "visqol"], warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return float(_visqol_api(mode).measure_from_arrays(r, e, target).moslqo)
        except ValueError as exc:  # e.g. "Reference spectrum size (27) smaller than minimum patch size (45)"
            if "patch" in str(exc):
                return math.nan  # too short for one ViSQOL patch (~1 s in audio mode): not applicable
            raise


def _stoi(ref: np.ndarray, est: np.ndarray, sr: int) -> tuple[float, float]:
    from pystoi import stoi

    if not np.abs(ref).max() > 0:
        return math.nan, math.nan  # a silent reference has no intelligibility to keep
    out = []
    for extended in (False, True):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            v = float(stoi(ref, est, sr, extended=extended))
        # pystoi returns 1e-5 with a warning when fewer than 30 speech frames remain: not applicable
        out.append(math.nan if any("Not enough STFT frames" in str(w.message) for w in caught) else v)
    return out[0], out[1]


def _pesq_wb(ref: np.ndarray, est: np.ndarray, sr: int) -> float:
    from pesq import pesq

    r, e = _resample(ref, sr, SPEECH_SR), _resample(est, sr, SPEECH_SR)
    if not (np.abs(r).max() > 0 and np.abs(e).max() > 0):
        return math.nan  # digital silence: the C code divides by the peak
    with _LOCKS["pesq"]:
        try:
            return float(pesq(SPEECH_SR, r, e, "wb"))
        except Exception as exc:  # NoUtterancesError, BufferTooShortError: no speech to score
            if type(exc).__name__ in ("NoUtterancesError", "BufferTooShortError"):
                return math.nan
            raise


def _dnsmos(est: np.ndarray, sr: int) -> tuple[float, float, float]:
    from speechmos import dnsmos

    e = np.clip(_resample(est, sr, SPEECH_SR), -1.0, 1.0).astype(np.float32)
    with _LOCKS["dnsmos"], warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = dnsmos.run(e, sr=SPEECH_SR)
    return float(res["ovrl_mos"]), float(res["sig_mos"]), float(res["bak_mos"])


def perceptual(ref, est, sr: int = 16000, kinds="all") -> dict[str, float]:
    """Perceptual quality of ``est`` against ``ref``: ViSQOL, STOI/ESTOI, PESQ-WB and DNSMOS.

    Every key of :data:`PERCEPTUAL_KEYS` is returned; the kinds not asked for, not installed or not applicable
    are ``NaN``. Higher is better everywhere. Not applicable: a silent reference (every reference-based key), a
    clip too short for one ViSQOL patch (about 1 s in audio mode), PESQ finding no utterance, STOI keeping fewer
    than 30 frames.

    * ``visqol`` — **ViSQOL v3, audio mode** (Hines et al., "ViSQOL: an objective speech quality model", EURASIP
      JASMP 2015; Chinen et al., "ViSQOL v3", QoMEX 2020). Both signals are resampled to 48 kHz (polyphase,
      :func:`scipy.signal.resample_poly`); a gammatone spectrogram (32 bands from 50 Hz to Nyquist, 80 ms
      frames, 25 % overlap) of the reference is cut into 30-frame patches, each aligned to the degraded signal
      and compared with the neurogram similarity index NSIM (a structural similarity of spectrogram patches:
      ``NSIM = (2 μr μd + C1)(σrd + C2) / ((μr² + μd² + C1)(σr σd + C2))``, averaged); the per-band mean
      similarities (the "FVNSIM") are mapped to MOS-LQO in [1, 5] by the support-vector regression model that
      google/visqol ships (``libsvm_nu_svr_model.txt``, fitted to TCDAudio14 and AACvOpus15 codec listening
      tests). Identity ≈ 4.73, not 5 (the SVR's ceiling).
    * ``visqol_speech`` — **ViSQOL v3, speech mode** at 16 kHz: 20-frame patches chosen by voice activity, NSIM
      over 21 gammatone bands from 50 Hz to 8 kHz, the mean NSIM mapped to MOS-LQO by the deep-lattice model of
      conformance v333 (identity ≈ 4.5).
    * ``stoi`` — **STOI** (Taal et al., IEEE TASLP 19(7) 2011): both signals resampled to 10 kHz, silent frames
      (40 dB below the loudest) removed, one-third-octave envelopes over 384 ms segments;
      ``d = mean_{j,m} corr(x_{j,m}, clip(α·y_{j,m}))``, the clip bounding the signal-to-distortion ratio at
      −15 dB. Range [0, 1] in practice; 1 at identity.
    * ``estoi`` — **extended STOI** (Jensen & Taal, IEEE TASLP 24(11) 2016): the same segments, rows and
      columns normalised, ``d = mean_m ‖X̄_m ∘ Ȳ_m‖ / N`` (a spectral correlation), sensitive to modulated noise.
    * ``pesq_wb`` — **PESQ, ITU-T P.862.2 wide band**, at 16 kHz: level alignment, IRS-like input filter, time
      alignment of utterances, a Bark-scale loudness model with symmetric and asymmetric disturbance, mapped by
      P.862.2's ``MOS-LQO = 0.999 + 4 / (1 + exp(−1.3669·PESQ + 3.8224))``; range ≈ [1.0, 4.64] (raw scores
      −0.5 … 4.5 map to 1.04 … 4.64; heavier noise goes slightly below 1.04), 4.64 at identity.
      NaN when the C code finds no utterance (silence, non-speech).
    * ``dnsmos_ovrl`` / ``dnsmos_sig`` / ``dnsmos_bak`` — **DNSMOS P.835** (Reddy et al., ICASSP 2022), no
      reference: a CNN on 9.01 s windows (hop 1 s, shorter clips repeated to 9.01 s) of ``est`` predicts the
      P.835 overall, speech-signal and background-noise MOS, each passed through the published cubic
      calibration; the clip's value is the mean over windows. ``est`` is clipped to [-1, 1] first (the model's
      input contract). ``ref`` is not used.

    Parameters
    ----------
    ref, est : array_like
        Mono waveforms at ``sr`` (1-D; singleton axes are squeezed). They are truncated to their common length,
        as every vaelib metric is.
    sr : int
        Sample rate of both, >= 16 000 Hz; the speech measures run on a 16 kHz resampling, ViSQOL's audio mode
        on a 48 kHz one.
    kinds : str or iterable of str
        Any of ``"visqol"``, ``"visqol_speech"``, ``"stoi"``, ``"pesq"``, ``"dnsmos"`` (or a comma-separated
        string of them), or ``"all"``.

    Returns
    -------
    dict
        ``{key: float}`` for every key of :data:`PERCEPTUAL_KEYS`.

    Raises
    ------
    ValueError
        One line, for stereo or empty input, NaN/Inf samples, ``sr`` below 16 kHz or not an integer, lengths
        that differ by more than 10 % (a sample-rate mix-up), clips shorter than 0.5 s, or an unknown kind.
    """
    kinds = _kinds(kinds)
    sr = _check_rate(sr)
    r, e = _mono(ref, "ref"), _mono(est, "est")
    ratio = max(r.size, e.size) / min(r.size, e.size)
    if ratio > _MAX_LENGTH_RATIO:
        raise ValueError(f"ref has {r.size} samples and est {e.size} (ratio {ratio:.2f}): not the same clip at "
                         f"sr={sr}; resample both to the same rate first")
    n = min(r.size, e.size)
    if n < _MIN_SECONDS * sr:
        raise ValueError(f"clips of {n / sr:.3f} s are too short for the perceptual measures "
                         f"(need >= {_MIN_SECONDS} s)")
    r, e = r[:n], e[:n]
    out = dict.fromkeys(PERCEPTUAL_KEYS, math.nan)
    silent_ref = not np.abs(r).max() > 0
    for kind in kinds:
        if not perceptual_available(kind):
            continue
        if silent_ref and kind != "dnsmos":
            continue  # a silent reference has nothing to compare with: NaN, not the libraries' arbitrary values
        if kind == "visqol":
            out["visqol"] = _visqol(r, e, sr, "audio")
        elif kind == "visqol_speech":
            out["visqol_speech"] = _visqol(r, e, sr, "speech")
        elif kind == "stoi":
            out["stoi"], out["estoi"] = _stoi(r, e, sr)
        elif kind == "pesq":
            out["pesq_wb"] = _pesq_wb(r, e, sr)
        elif kind == "dnsmos":
            out["dnsmos_ovrl"], out["dnsmos_sig"], out["dnsmos_bak"] = _dnsmos(e, sr)
    return out


# ----------------------------------------------------------------------------------------------------------
# one measure at a time (the glossary's definitions are these first docstring lines)
# ----------------------------------------------------------------------------------------------------------
def visqol(ref, est, sr: int = 16000) -> float:
    """ViSQOL v3 audio mode at 48 kHz (SVR mapping of gammatone-patch NSIM): MOS-LQO 1–5, ≈4.73 at identity.

    ``perceptual(ref, est, sr, kinds="visqol")["visqol"]``; see :func:`perceptual` for the algorithm.
    """
    return perceptual(ref, est, sr=sr, kinds="visqol")["visqol"]


def visqol_speech(ref, est, sr: int = 16000) -> float:
    """ViSQOL v3 speech mode at 16 kHz (voice-activity patches, lattice mapping): MOS-LQO 1–5, ≈4.5 at identity.

    ``perceptual(ref, est, sr, kinds="visqol_speech")["visqol_speech"]``; speech only.
    """
    return perceptual(ref, est, sr=sr, kinds="visqol_speech")["visqol_speech"]


def stoi(ref, est, sr: int = 16000) -> float:
    """STOI, short-time objective intelligibility (Taal et al. 2011): envelope correlation, 0–1, 1 at identity.

    ``perceptual(ref, est, sr, kinds="stoi")["stoi"]``; speech only.
    """
    return perceptual(ref, est, sr=sr, kinds="stoi")["stoi"]


def estoi(ref, est, sr: int = 16000) -> float:
    """Extended STOI (Jensen & Taal 2016): spectral correlation of normalised envelopes, 0–1, 1 at identity.

    ``perceptual(ref, est, sr, kinds="stoi")["estoi"]``; speech only.
    """
    return perceptual(ref, est, sr=sr, kinds="stoi")["estoi"]


def pesq_wb(ref, est, sr: int = 16000) -> float:
    """PESQ wide band (ITU-T P.862.2) at 16 kHz: MOS-LQO ≈1.0–4.64, 4.64 at identity.

    ``perceptual(ref, est, sr, kinds="pesq")["pesq_wb"]``; speech only; NaN when no utterance is found.
    """
    return perceptual(ref, est, sr=sr, kinds="pesq")["pesq_wb"]


def dnsmos(est, sr: int = 16000) -> dict[str, float]:
    """DNSMOS P.835 (Reddy et al. 2022), no reference: predicted overall / signal / background MOS, 1–5.

    ``{"dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak"}`` of ``perceptual(est, est, sr, kinds="dnsmos")``; speech only.
    """
    res = perceptual(est, est, sr=sr, kinds="dnsmos")
    return {k: res[k] for k in ("dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak")}
