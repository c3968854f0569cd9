"""Whole-file metrics of long recordings in flat memory: the same numbers as :func:`vaelib.metrics.score` and
:func:`vaelib.metrics.score_mel`, computed segment by segment.

Every metric of :mod:`vaelib.metrics` is a mean over frames, a ratio of sums, or a function of sums, so it can
be accumulated over segments *exactly*: each segment's STFT frames are cut from the same (padded) signal the
whole-file function would see, so frames at segment boundaries are the very frames of the one-piece
computation. Tested against :func:`vaelib.metrics.score` / :func:`~vaelib.metrics.score_mel` on whole signals
(``tests/test_longaudio.py``); only float rounding differs (relative 1e-9 or better).

Memory: one segment (default 30 s) of spectrograms at a time instead of the whole file's — the one-piece
functions hold several GB for a 30-minute file (float64 complex STFTs at 4 resolutions).

Per metric (definitions and sources in :mod:`vaelib.metrics`):

* ``snr_db``, ``correlation``, ``si_sdr``: from the sums ``Σo, Σr, Σo², Σr², Σor, Σ(o−r)²`` (Pearson and SI-SDR
  expanded around the means: ``<o−ō, r−r̄> = Σor − ΣoΣr/n`` etc.);
* ``lsd``, ``lsd_lf``, ``lsd_hf``: per-frame terms of ``librosa.stft(center=True, pad_mode="constant")`` frames
  cut from the zero-padded signal, summed;
* ``mrstft*``: per resolution ``Σ(|T|−|E|)²``, ``Σ|T|²``, ``Σ|log|T| − log|E||`` over frames cut from the
  reflect-padded signal (``torch.stft(center=True)``'s padding);
* ``ber_*``, ``hf_flatness*``, ``added_hf_flatness``: the Welch PSD as the sum of its segments' periodograms;
* ``mel_err_db_*``: per-frame log-mel differences of the training front end (:func:`vaelib.audio.wav_to_mel`);
* the seed report's retention: it reads the first 8192 samples only, so it is computed on those.
"""

from __future__ import annotations

import math

import numpy as np

from . import metrics as _m

__all__ = ["score_long", "score_long_many", "score_mel_long"]

_LN10 = math.log(10.0)


def _retention():
    """The seed report's retention function and its key prefix (renamed across versions of vaelib.metrics)."""
    if hasattr(_m, "band_retention_claims"):
        return _m.band_retention_claims, "claims_ret_"
    return _m.band_retention_seed, "seed_ret_"


def _frames(x: np.ndarray, t0: int, t1: int, hop: int, n_fft: int, pad: int, mode: str) -> np.ndarray:
    """Samples ``y[t0*hop : (t1-1)*hop + n_fft]`` of ``y = pad(x, pad)`` (``mode`` "constant" or "reflect"),
    as float64, without padding the whole signal."""
    n = x.shape[0]
    a = t0 * hop - pad
    b = (t1 - 1) * hop + n_fft - pad
    idx = np.arange(a, b)
    if mode == "reflect":
        idx = np.abs(idx)
        idx = np.where(idx >= n, 2 * (n - 1) - idx, idx)
        return x[idx].astype(np.float64)
    out = np.zeros(b - a, dtype=np.float64)
    lo, hi = max(a, 0), min(b, n)
    if hi > lo:
        out[lo - a:hi - a] = x[lo:hi]
    return out


def _segments(total: int, step: int):
    for t0 in range(0, total, step):
        yield t0, min(total, t0 + step)


def score_long(ref, est, sr: int = 16000, cfg=None, segment_s: float = 30.0) -> dict[str, float]:
    """:func:`vaelib.metrics.score` (``lsd=True, extended=True``) of two long waveforms, segment by segment.

    Parameters
    ----------
    ref, est : numpy.ndarray
        Original and reconstruction, 1-D (float32 is fine; each segment is converted to float64); truncated to
        the common length, which must be at least 2048 samples (the largest mrSTFT window).
    sr : int
        Sample rate in Hz; must equal ``cfg.sr``.
    cfg : vaelib.audio.MelConfig, optional
        Front end for the mel errors.
    segment_s : float
        Seconds of signal whose spectrograms are held at once.

    Returns
    -------
    dict
        The keys and values of :func:`vaelib.metrics.score` (up to float rounding).
    """
    return score_long_many(ref, {"est": est}, sr=sr, cfg=cfg, segment_s=segment_s)["est"]


def score_long_many(ref, ests: dict, sr: int = 16000, cfg=None, segment_s: float = 30.0) -> dict[str, dict]:
    """:func:`score_long` of one reference against several estimates (``{name: waveform}``): each segment of the
    reference is analysed once for all of them, as :func:`vaelib.metrics.score_many` does for short signals.

    Returns ``{name: dict}``, each equal to ``score_long(ref, ests[name])``. Every estimate is truncated to its
    common length with ``ref`` separately.
    """
    sr = _m._check_sr(sr)
    cfg = _m._cfg_for(cfg, sr)
    o_all = np.asarray(ref).reshape(-1)
    groups: dict[int, list] = {}  # common length -> names (the reference's analysis depends on it)
    sigs = {}
    for name, est in ests.items():
        r = np.asarray(est).reshape(-1)
        n = min(o_all.shape[0], r.shape[0])
        if n < 2048:
            raise ValueError(f"signals too short for score_long: {n} samples, need >= 2048 (use metrics.score)")
        if not (np.isfinite(o_all[:n]).all() and np.isfinite(r[:n]).all()):
            raise ValueError("ref or est holds NaN or Inf samples")
        sigs[name] = r[:n]
        groups.setdefault(n, []).append(name)
    seg = max(int(segment_s * sr), 4096)
    out: dict[str, dict] = {name: {} for name in ests}
    for n, names in groups.items():
        o = o_all[:n]
        rs = [sigs[k] for k in names]
        parts = [out[k] for k in names]
        _sums(o, rs, parts, n, seg)
        _lsd(o, rs, parts, n, seg, sr)
        _mrstft(o, rs, parts, n, seg)
        _welch_terms(o, rs, parts, n, seg, sr)
        _mel_errors(o, rs, parts, n, seg, cfg)
        fn, prefix = _retention()
        for r, part in zip(rs, parts, strict=True):
            for key, v in fn(o[:8192].astype(np.float64), r[:8192].astype(np.float64), sr=sr).items():
                part[f"{prefix}{key}"] = v
    return out


def _sums(o, rs, parts, n, seg):
    """SNR, Pearson correlation, SI-SDR from the sums ``Σo, Σr, Σo², Σr², Σor, Σ(o−r)²`` (no BLAS: see
    :func:`vaelib.metrics._dot_no_blas`)."""
    k = len(rs)
    s_o = s_oo = 0.0
    s_r, s_rr, s_or, s_dd = [0.0] * k, [0.0] * k, [0.0] * k, [0.0] * k
    o_min, o_max = math.inf, -math.inf
    r_min, r_max = [math.inf] * k, [-math.inf] * k
    for a, b in _segments(n, seg):
        x = o[a:b].astype(np.float64)
        s_o += float(x.sum())
        s_oo += float(np.sum(x * x))
        o_min, o_max = min(o_min, float(x.min())), max(o_max, float(x.max()))
        for i, r in enumerate(rs):
            y = r[a:b].astype(np.float64)
            s_r[i] += float(y.sum())
            s_rr[i] += float(np.sum(y * y))
            s_or[i] += float(np.sum(x * y))
            d = x - y
            s_dd[i] += float(np.sum(d * d))
            r_min[i], r_max[i] = min(r_min[i], float(y.min())), max(r_max[i], float(y.max()))
    for i, part in enumerate(parts):
        part["snr_db"] = float(10.0 * np.log10((s_oo / n) / (s_dd[i] / n + 1e-10)))
        co = s_or[i] - s_o * s_r[i] / n
        vo = s_oo - s_o * s_o / n
        vr = s_rr[i] - s_r[i] * s_r[i] / n
        if o_max == o_min or r_max[i] == r_min[i]:
            part["correlation"] = 0.0
        else:
            part["correlation"] = float(np.clip(co / math.sqrt(vo * vr), -1.0, 1.0))
        eps = 1e-8
        alpha = (co + eps) / (vo + eps)
        target = alpha * alpha * vo
        noise = max(target - 2.0 * alpha * co + vr, 0.0)
        part["si_sdr"] = float(10.0 * np.log10((target + eps) / (noise + eps)))


def _lsd(o, rs, parts, n, seg, sr):
    """LSD over frames of ``librosa.stft(center=True, pad_mode="constant")`` cut from the zero-padded signal
    (:func:`vaelib.metrics._lsd_power_padded`: the same power spectra, two real frames per complex FFT)."""
    n_fft, hop = _m._lsd_defaults(sr, None, None)
    freqs = np.fft.rfftfreq(n_fft, d=1.0 / sr)
    masks = {"lsd": None,
             "lsd_lf": _m._band_mask(freqs, 0.0, _m.HIGH_BAND_HZ, sr / 2, "STFT bins"),
             "lsd_hf": _m._band_mask(freqs, _m.HIGH_BAND_HZ, sr / 2 + 1, sr / 2, "STFT bins")}
    n_frames = 1 + (n + 2 * (n_fft // 2) - n_fft) // hop
    sums = [dict.fromkeys(masks, 0.0) for _ in rs]
    for t0, t1 in _segments(n_frames, max(seg // hop, 1)):
        pt = _m._lsd_power_padded(_frames(o, t0, t1, hop, n_fft, n_fft // 2, "constant")[None], n_fft, hop)[0]
        for i, r in enumerate(rs):
            pe = _m._lsd_power_padded(_frames(r, t0, t1, hop, n_fft, n_fft // 2, "constant")[None], n_fft, hop)[0]
            d = np.log10(pt / (np.sqrt(pe) + 1e-12) ** 2 + 1e-12) ** 2  # (frames, bins)
            for key, m in masks.items():
                dm = d if m is None else d[:, m]
                sums[i][key] += float(np.sqrt(dm.mean(axis=1)).sum())
    for part, s in zip(parts, sums, strict=True):
        for key in masks:
            part[key] = s[key] / n_frames


def _mrstft(o, rs, parts, n, seg):
    """Multi-resolution STFT terms per resolution: ``Σ(|T|−|E|)²``, ``Σ|T|²``, ``Σ|log|T| − log|E||`` over frames
    of ``torch.stft(center=True)`` (reflect padding) cut from the padded signal."""
    import torch

    k = len(rs)
    sc_all, mag_all = [[] for _ in rs], [[] for _ in rs]
    for n_fft_r, hop_r in _m.MRSTFT_RESOLUTIONS:
        window = torch.hann_window(n_fft_r, periodic=True, dtype=torch.float64)
        frames = 1 + n // hop_r
        s_diff, s_log = [0.0] * k, [0.0] * k
        s_ref = 0.0
        count = 0
        for t0, t1 in _segments(frames, max(seg // hop_r, 1)):
            x = np.stack([_frames(sig, t0, t1, hop_r, n_fft_r, n_fft_r // 2, "reflect") for sig in (o, *rs)])
            spec = torch.stft(torch.from_numpy(x), n_fft=n_fft_r, hop_length=hop_r, win_length=n_fft_r,
                              window=window, center=False, return_complex=True)
            mag = torch.sqrt(torch.clamp(spec.real**2 + spec.imag**2, min=1e-7)).numpy()
            tm = mag[0]
            log_t = np.log(tm)
            s_ref += float(np.sum(tm**2))
            count += tm.size
            for i in range(k):
                em = mag[i + 1]
                s_diff[i] += float(np.sum((tm - em) ** 2))
                s_log[i] += float(np.sum(np.abs(log_t - np.log(em))))
        for i in range(k):
            sc_all[i].append(math.sqrt(s_diff[i]) / math.sqrt(s_ref))
            mag_all[i].append(s_log[i] / count)
    for i, part in enumerate(parts):
        part["mrstft"] = float(np.mean(np.add(sc_all[i], mag_all[i])))
        part["mrstft_sc"] = float(np.mean(sc_all[i]))
        part["mrstft_mag"] = float(np.mean(mag_all[i]))


def _welch_terms(o, rs, parts, n, seg, sr):
    """Welch PSD as the sum of its segments' periodograms: band energy ratios and flatness."""
    nper, step = 1024, 512
    k_total = (n - nper) // step + 1
    p_o, p_r = None, [None] * len(rs)
    f = None
    for k0, k1 in _segments(k_total, max(seg // step, 1)):
        a, b = k0 * step, (k1 - 1) * step + nper
        f, po = _m._welch(o[a:b].astype(np.float64), sr, nper, "constant")
        p_o = po * (k1 - k0) if p_o is None else p_o + po * (k1 - k0)
        for i, r in enumerate(rs):
            _, pr = _m._welch(r[a:b].astype(np.float64), sr, nper, "constant")
            p_r[i] = pr * (k1 - k0) if p_r[i] is None else p_r[i] + pr * (k1 - k0)
    p_o = p_o / k_total
    high = _m.BANDS["high"]
    mh = _m._band_mask(f, *high, sr / 2, "Welch bins")
    for part, pr in zip(parts, p_r, strict=True):
        pr = pr / k_total
        for name, v in _m._ber_from_psd(f, p_o, pr, sr, _m.BANDS).items():
            part[f"ber_{name}"] = v
        part["hf_flatness"] = _m._flatness(pr[mh], 1e-12)
        part["hf_flatness_ref"] = _m._flatness(p_o[mh], 1e-12)
        part["added_hf_flatness"] = _m._added_flatness_from_psd(f, p_o, pr, sr, high, 1e-12)


def _mel_errors(o, rs, parts, n, seg, cfg):
    """Per-band log-mel error of the training front end (frames of :func:`vaelib.audio.wav_to_mel`)."""
    import torch

    from .audio import mel_basis

    mel_frames = -(-n // cfg.hop_length)
    mel_frames = max(cfg.time_multiple, -(-mel_frames // cfg.time_multiple) * cfg.time_multiple)
    padded = mel_frames * cfg.hop_length
    basis = mel_basis(cfg, dtype=torch.float64)
    win = torch.hann_window(cfg.win_length, periodic=True, dtype=torch.float64)
    band_masks = {name: cfg.band_mask(lo, hi) for name, (lo, hi) in _m.BANDS.items()}
    err = [dict.fromkeys(band_masks, 0.0) for _ in rs]

    def logmel(sig, t0, t1):
        # frames of wav_to_mel: zero-pad to `padded` samples, reflect-pad cfg.pad, center=False
        z = sig if sig.shape[0] == padded else np.concatenate([sig, np.zeros(padded - sig.shape[0], sig.dtype)])
        y = torch.from_numpy(_frames(z, t0, t1, cfg.hop_length, cfg.n_fft, cfg.pad, "reflect"))
        spec = torch.stft(y, n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length, window=win,
                          center=False, return_complex=True).abs()
        return torch.log(torch.clamp(basis @ spec, min=1e-5)).numpy()  # (n_mels, frames)

    for t0, t1 in _segments(mel_frames, max(seg // cfg.hop_length, 1)):
        lo = logmel(o, t0, t1)
        for i, r in enumerate(rs):
            d = np.abs(lo - logmel(r, t0, t1)) * (20.0 / _LN10)
            for name, m in band_masks.items():
                err[i][name] += float(d[m].sum())
    for part, e in zip(parts, err, strict=True):
        for name, m in band_masks.items():
            part[f"mel_err_db_{name}"] = e[name] / (mel_frames * int(m.sum()))


def score_mel_long(ref_logmel, est_logmel, cfg=None, segment_frames: int = 6000) -> dict[str, float]:
    """:func:`vaelib.metrics.score_mel` of two long log-mels ``(T, n_mels)``, segment by segment.

    ``mel_l1``, ``mel_lsd*`` and ``mel_err_db_*`` are means over frames (segment means weighted by their frame
    counts); ``mel_ber_*`` are ratios of sums accumulated per segment.
    """
    cfg = _m._cfg_for(cfg)
    a_all = np.asarray(ref_logmel)
    b_all = np.asarray(est_logmel)
    a_all = a_all.reshape(-1, a_all.shape[-1])
    b_all = b_all.reshape(-1, b_all.shape[-1])
    t = min(a_all.shape[0], b_all.shape[0])
    keys_mean = None
    sums: dict[str, float] = {}
    ber_num = dict.fromkeys(_m.BANDS, 0.0)
    ber_den = dict.fromkeys(_m.BANDS, 0.0)
    masks = {name: _m._mel_mask(cfg, a_all.shape[1], lo, hi) for name, (lo, hi) in _m.BANDS.items()}
    for t0, t1 in _segments(t, segment_frames):
        a = a_all[t0:t1].astype(np.float64)
        b = b_all[t0:t1].astype(np.float64)
        w = t1 - t0
        part = {"mel_l1": _m.mel_l1(a, b), "mel_lsd": _m.mel_lsd(a, b),
                "mel_lsd_lf": _m.mel_lsd(a, b, band=(0.0, _m.HIGH_BAND_HZ), cfg=cfg),
                "mel_lsd_hf": _m.mel_lsd(a, b, band=(_m.HIGH_BAND_HZ, cfg.sr / 2 + 1), cfg=cfg)}
        for name, v in _m.mel_band_error_db_logmel(a, b, cfg=cfg).items():
            part[f"mel_err_db_{name}"] = v
        keys_mean = list(part)
        for k, v in part.items():
            sums[k] = sums.get(k, 0.0) + v * w
        for name, m in masks.items():
            ber_num[name] += float(np.exp(2.0 * b[:, m]).sum())
            ber_den[name] += float(np.exp(2.0 * a[:, m]).sum())
    out = {k: sums[k] / t for k in keys_mean[:4]}
    for name in _m.BANDS:
        out[f"mel_ber_{name}"] = _m._ratio(ber_num[name], ber_den[name])
    for k in keys_mean[4:]:
        out[k] = sums[k] / t
    return out
