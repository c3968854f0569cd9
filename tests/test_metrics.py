"""Analytic tests of vaelib.metrics: every expected value is derived by hand, none was copied from a run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.signal import butter, sosfiltfilt

from vaelib import metrics as M
from vaelib.audio import MelConfig, wav_to_mel

SR = 16000
N = 2 * SR  # 2 s clips: long enough for Welch / STFT averages, short enough to stay fast
DB_PER_NEPER_POWER = 20.0 / math.log(10.0)  # 10*log10(exp(2L)) = L * 20/ln 10


@pytest.fixture(scope="module")
def noise():
    """Loud white noise (std 0.5): mean square 0.25 -> identical signals score ~94 dB SNR; far from clamps."""
    return 0.5 * np.random.default_rng(0).standard_normal(N)


@pytest.fixture(scope="module")
def lowpassed(noise):
    """The same noise through a zero-phase 8th-order Butterworth low-pass at 2 kHz."""
    sos = butter(8, 2000, fs=SR, output="sos")
    return sosfiltfilt(sos, noise)


# ---------------------------------------------------------------------------------------------------------
# identities and analytic waveform cases
# ---------------------------------------------------------------------------------------------------------
def test_identical_signals(noise):
    x = noise
    expected_snr = 10 * math.log10(np.mean(x**2) / 1e-10)
    assert M.snr_db(x, x) == pytest.approx(expected_snr, abs=1e-9)
    assert M.snr_db(x, x) >= 90
    assert M.correlation(x, x) == pytest.approx(1.0, abs=1e-12)
    assert M.si_sdr(x, x) >= 90
    assert M.lsd(x, x) == pytest.approx(0.0, abs=1e-9)
    assert M.lsd_lf(x, x) == pytest.approx(0.0, abs=1e-9)
    assert M.lsd_hf(x, x) == pytest.approx(0.0, abs=1e-9)
    assert M.mrstft(x, x) == pytest.approx(0.0, abs=1e-12)
    for ratios in (M.band_energy_ratio(x, x), M.band_retention_claims(x, x, sr=SR)):
        assert set(ratios) == {"low", "mid", "high"}
        assert all(v == pytest.approx(1.0, rel=1e-12) for v in ratios.values())
    assert all(v == pytest.approx(0.0, abs=1e-12) for v in M.mel_band_error_db(x, x).values())


def test_lowpassed_noise_loses_the_high_band(noise, lowpassed):
    ber = M.band_energy_ratio(noise, lowpassed)
    assert ber["high"] < 1e-3  # Butterworth-8 at 2 kHz: >= 48 dB down at 4 kHz, filtered twice
    assert ber["low"] == pytest.approx(1.0, rel=1e-2)  # |H|^2 = 1 - O(1e-10) below 500 Hz
    assert 0.2 < ber["mid"] < 0.8  # 500-4000 Hz: about half the band is passed
    # LSD sees the damage in the stop band only: |H|^4 <= 1 / 65537^2 (-96 dB, 9.6 bels) above 4 kHz,
    # |H|^4 = 1 - O(1e-3) below 1.3 kHz
    assert M.lsd_hf(noise, lowpassed) > 8.0
    assert M.lsd(noise, lowpassed, band=(0, 1300)) < 0.05
    assert M.lsd_hf(noise, lowpassed) > M.lsd_lf(noise, lowpassed)


def test_half_gain(noise):
    est = 0.5 * noise
    ber = M.band_energy_ratio(noise, est)
    assert all(v == pytest.approx(0.25, rel=1e-6) for v in ber.values())
    assert M.si_sdr(noise, est) >= 90  # scale invariance
    assert M.snr_db(noise, est) == pytest.approx(10 * math.log10(4), abs=1e-6)  # error = o/2 -> power ratio 4
    mel_err = M.mel_band_error_db(noise, est)
    assert all(v == pytest.approx(20 * math.log10(2), abs=1e-4) for v in mel_err.values())
    # LSD: every bin's power ratio is exactly 4 -> log10(4)
    assert M.lsd(noise, est) == pytest.approx(math.log10(4), rel=1e-6)
    seed = M.band_retention_claims(noise, est, sr=SR)
    assert all(v == pytest.approx(0.5, rel=1e-9) for v in seed.values())  # magnitudes, not energies


def test_polarity_inversion(noise):
    est = -noise
    assert M.snr_db(noise, est) == pytest.approx(10 * math.log10(1 / 4), abs=1e-6)
    assert M.correlation(noise, est) == pytest.approx(-1.0, abs=1e-12)
    assert M.lsd(noise, est) < 1e-6
    assert M.mrstft(noise, est) < 1e-9


def test_one_sample_delay_is_why_waveform_snr_is_not_the_headline(noise):
    est = np.concatenate([[0.0], noise[:-1]])
    # white noise: o and its delayed copy are uncorrelated, so mean((o - r)^2) = 2 mean(o^2)
    assert M.snr_db(noise, est) == pytest.approx(10 * math.log10(1 / 2), abs=0.2)
    assert abs(M.correlation(noise, est)) < 0.05
    assert M.lsd(noise, est) < 0.02  # the magnitude spectrogram barely moves (measured 0.009 here)


def test_truncation_to_common_length_and_torch_input(noise):
    longer = np.concatenate([noise, np.ones(5000)])  # junk beyond the common length must not count
    assert M.snr_db(noise, longer) == pytest.approx(M.snr_db(noise, noise), rel=1e-12)
    assert M.lsd(longer, noise) == pytest.approx(0.0, abs=1e-9)
    t = torch.from_numpy(noise).float()
    assert M.correlation(t, noise) == pytest.approx(1.0, abs=1e-6)
    assert M.snr_db(t[None], t) >= 90  # (1, N) tensors are squeezed to 1-D


def test_correlation_of_constant_is_zero(noise):
    assert M.correlation(np.full(N, 0.3), noise) == 0.0
    assert M.correlation(noise, np.zeros(N)) == 0.0


# ---------------------------------------------------------------------------------------------------------
# seed retention
# ---------------------------------------------------------------------------------------------------------
def test_band_retention_claims_hand_case():
    n = 8192
    t = np.arange(3 * n) / SR
    # bins k*sr/n with n = 8192: 250 Hz = bin 128, 1000 Hz = bin 512, 6000 Hz = bin 3072 (periodic in n)
    low, mid, high = (np.cos(2 * np.pi * f * t) for f in (250.0, 1000.0, 6000.0))
    ref = 0.4 * low + 0.3 * mid + 0.2 * high
    est = 0.2 * low + 0.3 * mid  # low halved, high removed
    ret = M.band_retention_claims(ref, est, sr=SR, n=n)
    assert ret["low"] == pytest.approx(0.5, rel=1e-9)
    assert ret["mid"] == pytest.approx(1.0, rel=1e-9)
    assert ret["high"] == pytest.approx(0.0, abs=1e-9)
    # only the first n samples count: anything after them in est changes nothing
    junk = est.copy()
    junk[n:] += np.random.default_rng(0).standard_normal(junk.shape[0] - n)
    assert M.band_retention_claims(ref, junk, sr=SR, n=n) == pytest.approx(ret, rel=1e-12, abs=1e-15)


# ---------------------------------------------------------------------------------------------------------
# SI-SDR and mrSTFT
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("energy_ratio", [10.0, 2.0, 0.5])
def test_si_sdr_with_orthogonal_noise(energy_ratio):
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(N)
    ref -= ref.mean()
    n = rng.standard_normal(N)
    basis = np.stack([np.ones(N) / math.sqrt(N), ref / np.linalg.norm(ref)])  # orthonormal (ref is zero-mean)
    n -= basis.T @ (basis @ n)  # zero-mean and orthogonal to ref
    n *= math.sqrt(np.dot(ref, ref) / energy_ratio / np.dot(n, n))
    # alpha = <ref + n, ref> / ||ref||^2 = 1, so SI-SDR = 10 log10(||ref||^2 / ||n||^2)
    assert M.si_sdr(ref, ref + n) == pytest.approx(10 * math.log10(energy_ratio), abs=1e-9)


def test_mrstft_doubling_gives_exact_terms(noise):
    parts = M.mrstft(noise, 2 * noise, return_parts=True)
    assert parts["sc"] == pytest.approx(1.0, rel=1e-12)  # || |T| - 2|T| || / || |T| || = 1
    assert parts["mag"] == pytest.approx(math.log(2), rel=1e-9)  # |log|T| - log 2|T|| = ln 2
    assert parts["mrstft"] == pytest.approx(1 + math.log(2), rel=1e-9)
    assert M.mrstft(noise, 2 * noise) == pytest.approx(parts["mrstft"], rel=1e-12)


def _numpy_stft_mag(x, n_fft, hop):
    """Independent STFT: reflect-pad n_fft/2, periodic Hann, frames every hop, rfft."""
    xp = np.pad(x, n_fft // 2, mode="reflect")
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    n_frames = 1 + (xp.shape[0] - n_fft) // hop
    frames = np.stack([xp[i * hop : i * hop + n_fft] * win for i in range(n_frames)])
    return np.abs(np.fft.rfft(frames, axis=1))


def test_mrstft_matches_independent_stft(noise, lowpassed):
    # Parallel WaveGAN clamps the power at 1e-7 before both terms (the stop band of `lowpassed` hits it)
    t = np.maximum(_numpy_stft_mag(noise, 1024, 256), math.sqrt(1e-7))
    e = np.maximum(_numpy_stft_mag(lowpassed, 1024, 256), math.sqrt(1e-7))
    sc = np.linalg.norm(t - e) / np.linalg.norm(t)
    mag = np.mean(np.abs(np.log(t) - np.log(e)))
    parts = M.mrstft(noise, lowpassed, resolutions=((1024, 256),), return_parts=True)
    assert parts["sc"] == pytest.approx(sc, rel=1e-6)
    assert parts["mag"] == pytest.approx(mag, rel=1e-6)


# ---------------------------------------------------------------------------------------------------------
# spectral flatness: is "restored" high band content or noise?
# ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tonal_ref(lowpassed):
    t = np.arange(N) / SR
    hf_tones = 0.1 * sum(np.sin(2 * np.pi * f * t + p) for f, p in ((4500, 0.1), (5700, 1.0), (6900, 2.0)))
    return lowpassed + hf_tones, hf_tones


def test_hf_flatness(noise, tonal_ref):
    _, hf_tones = tonal_ref
    assert M.hf_flatness(noise) > 0.8
    assert M.hf_flatness(hf_tones) < 0.1
    assert math.isnan(M.hf_flatness(np.zeros(N)))


def test_added_hf_flatness(noise, tonal_ref):
    ref, _ = tonal_ref
    t = np.arange(N) / SR
    assert M.added_hf_flatness(ref, ref + 0.3 * noise) > 0.8  # added white noise: flat
    assert M.added_hf_flatness(ref, ref + 0.1 * np.sin(2 * np.pi * 5000 * t)) < 0.1  # added tone: not flat
    assert math.isnan(M.added_hf_flatness(ref, 0.5 * ref))  # nothing added


# ---------------------------------------------------------------------------------------------------------
# mel domain
# ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def logmel():
    return np.random.default_rng(0).normal(-3.0, 1.5, size=(1, 1, 40, 64))


def test_mel_l1_offset(logmel):
    assert M.mel_l1(logmel, logmel + 0.3) == pytest.approx(0.3, rel=1e-12)
    assert M.mel_l1(logmel, logmel) == 0.0


def test_mel_band_energy_ratio_offset(logmel):
    ratios = M.mel_band_energy_ratio(logmel, logmel + math.log(0.5))
    assert set(ratios) == {"low", "mid", "high"}
    assert all(v == pytest.approx(0.25, rel=1e-12) for v in ratios.values())


@pytest.mark.parametrize("c", [0.3, -1.2])
def test_mel_lsd_and_db_error_offset(logmel, c):
    assert M.mel_lsd(logmel, logmel + c) == pytest.approx(abs(2 * c / math.log(10)), rel=1e-6)
    hf = M.mel_lsd(logmel, logmel + c, band=(4000, 8001))
    assert hf == pytest.approx(abs(2 * c / math.log(10)), rel=1e-6)
    err = M.mel_band_error_db_logmel(logmel, logmel + c)
    assert all(v == pytest.approx(abs(c) * DB_PER_NEPER_POWER, rel=1e-12) for v in err.values())
    assert M.mel_lsd(logmel, logmel) == pytest.approx(0.0, abs=1e-9)


def test_mel_band_error_only_in_its_band(logmel):
    est = logmel.copy()
    est[..., MelConfig().band_mask(4000, 8000)] += 1.0  # raise only the high-band bins by 1 neper
    err = M.mel_band_error_db_logmel(logmel, est)
    assert err["low"] == 0.0 and err["mid"] == 0.0
    assert err["high"] == pytest.approx(DB_PER_NEPER_POWER, rel=1e-12)


def test_mel_shapes_and_time_crop(logmel):
    tm = torch.from_numpy(logmel).float()
    longer = np.concatenate([logmel, np.zeros((1, 1, 7, 64))], axis=2)  # extra frames must be cropped away
    assert M.mel_l1(logmel[0, 0], longer) == 0.0
    assert M.mel_l1(tm[0], logmel) == pytest.approx(0.0, abs=1e-6)
    assert M.mel_l1(tm, tm + 0.3) == pytest.approx(0.3, rel=1e-6)


def test_waveform_mel_error_uses_the_logmel_version(noise, lowpassed):
    direct = M.mel_band_error_db(noise, lowpassed)
    via = M.mel_band_error_db_logmel(wav_to_mel(noise), wav_to_mel(lowpassed))
    assert direct == pytest.approx(via, rel=1e-12)
    assert direct["high"] > direct["low"]


# ---------------------------------------------------------------------------------------------------------
# summaries
# ---------------------------------------------------------------------------------------------------------
SCORE_KEYS = {
    "snr_db", "correlation", "si_sdr", "lsd", "lsd_lf", "lsd_hf", "mrstft", "mrstft_sc", "mrstft_mag",
    "ber_low", "ber_mid", "ber_high", "hf_flatness", "hf_flatness_ref", "added_hf_flatness",
    "mel_err_db_low", "mel_err_db_mid", "mel_err_db_high", "claims_ret_low", "claims_ret_mid", "claims_ret_high",
}
SCORE_MEL_KEYS = {
    "mel_l1", "mel_lsd", "mel_lsd_lf", "mel_lsd_hf", "mel_ber_low", "mel_ber_mid", "mel_ber_high",
    "mel_err_db_low", "mel_err_db_mid", "mel_err_db_high",
}


def test_score_matches_the_individual_functions(noise, lowpassed):
    s = M.score(noise, lowpassed)
    assert set(s) == SCORE_KEYS
    assert all(isinstance(v, float) for v in s.values())
    assert s["snr_db"] == pytest.approx(M.snr_db(noise, lowpassed), rel=1e-12)
    # score's LSD STFT is a batched torch.stft, lsd's is librosa's: equal to float rounding (4e-12 relative here,
    # where the stop band of `lowpassed` sits 96 dB down); test_score_many_equals_the_single_metric_functions
    # checks every key on more signals
    assert s["lsd_hf"] == pytest.approx(M.lsd_hf(noise, lowpassed), rel=1e-9)
    assert s["lsd_lf"] == pytest.approx(M.lsd_lf(noise, lowpassed), rel=1e-9)
    assert s["mrstft"] == pytest.approx(M.mrstft(noise, lowpassed), rel=1e-12)
    assert s["ber_high"] == pytest.approx(M.band_energy_ratio(noise, lowpassed)["high"], rel=1e-12)
    assert s["hf_flatness"] == pytest.approx(M.hf_flatness(lowpassed), rel=1e-12)
    assert s["mel_err_db_mid"] == pytest.approx(M.mel_band_error_db(noise, lowpassed)["mid"], rel=1e-12)
    assert s["claims_ret_low"] == pytest.approx(M.band_retention_claims(noise, lowpassed)["low"], rel=1e-12)


def test_score_mel(logmel):
    s = M.score_mel(logmel, logmel + 0.3)
    assert set(s) == SCORE_MEL_KEYS
    assert s["mel_l1"] == pytest.approx(0.3, rel=1e-12)
    for key in ("mel_lsd", "mel_lsd_lf", "mel_lsd_hf"):
        assert s[key] == pytest.approx(0.6 / math.log(10), rel=1e-6)
    for band in ("low", "mid", "high"):
        assert s[f"mel_ber_{band}"] == pytest.approx(math.exp(0.6), rel=1e-12)
        assert s[f"mel_err_db_{band}"] == pytest.approx(0.3 * DB_PER_NEPER_POWER, rel=1e-12)


# ---------------------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------------------
def _raises_one_line(fn, *args, match=None, **kwargs):
    with pytest.raises(ValueError, match=match) as info:
        fn(*args, **kwargs)
    assert "\n" not in str(info.value)


def test_bad_input(noise, logmel):
    bad = noise.copy()
    bad[10] = np.nan
    _raises_one_line(M.snr_db, np.array([]), noise, match="empty")
    _raises_one_line(M.lsd, noise, bad, match="NaN")
    _raises_one_line(M.band_energy_ratio, noise, np.stack([noise, noise]), match="1-D")
    _raises_one_line(M.score, noise, noise, sr=22050, match="sample rates differ")
    _raises_one_line(M.band_energy_ratio, noise, noise, sr=0, match="sr")
    _raises_one_line(M.lsd, noise, noise, band=(5000, 4000), match="lo < hi")
    _raises_one_line(M.hf_flatness, noise, band=(9000, 9500), match="no Welch bins")
    _raises_one_line(M.mrstft, noise[:100], noise[:100], match="too short")
    _raises_one_line(M.mel_l1, logmel, np.zeros((40, 80)), match="shapes disagree")
    _raises_one_line(M.mel_band_error_db_logmel, logmel[..., :32], logmel[..., :32], match="n_mels")
    _raises_one_line(M.mel_l1, np.full((4, 64), np.inf), np.zeros((4, 64)), match="NaN or Inf")


@pytest.mark.parametrize("n, seg", [(16000, 1024), (5000, 1024), (700, 1024), (1025, 1024), (3001, 333)])
@pytest.mark.parametrize("detrend", ["constant", False, "linear"])
def test_welch_equals_scipy(n, seg, detrend):
    from scipy.signal import welch

    x = np.random.default_rng(n).standard_normal(n) + 0.3  # an offset, so detrending matters
    f_ref, p_ref = welch(x, fs=16000, window="hann", nperseg=min(seg, n), detrend=detrend)
    f, p = M._welch(x, 16000, seg, detrend)
    np.testing.assert_allclose(f, f_ref)
    np.testing.assert_allclose(p, p_ref, rtol=1e-12, atol=0)


def test_score_many_equals_score_per_estimate(noise, lowpassed):
    ests = {"low": lowpassed, "half": 0.5 * noise, "short": lowpassed[:-1000]}
    many = M.score_many(noise, ests)
    assert list(many) == list(ests)
    for name, est in ests.items():
        assert many[name] == M.score(noise, est)
    quick = M.score_many(noise, ests, extended=False)
    assert quick["low"] == M.score(noise, lowpassed, extended=False) and "mrstft" not in quick["low"]


def test_welch_in_chunks_equals_scipy(monkeypatch):
    from scipy.signal import welch

    monkeypatch.setattr(M, "_WELCH_CHUNK", 7)  # 30 segments in 5 chunks
    x = np.random.default_rng(5).standard_normal(16000) + 0.1
    np.testing.assert_allclose(M._welch(x, 16000, 1024, "constant")[1],
                               welch(x, fs=16000, window="hann", nperseg=1024)[1], rtol=1e-12, atol=0)


def test_score_refuses_signals_shorter_than_the_lsd_window():
    x = np.random.default_rng(0).standard_normal(700)  # < n_fft = 743 at 16 kHz
    with pytest.raises(ValueError, match="too short for LSD: 700 samples"):
        M.score(x, x)
    with pytest.raises(ValueError, match="too short for LSD"):
        M.score_many(x, {"a": x})
    assert "lsd" not in M.score(x, x, lsd=False, extended=False)


def _single_metric_scores(ref, est, extended=True):
    """score()'s keys computed by the public one-metric functions (the definitions score_many must equal)."""
    n = min(len(ref), len(est))
    out = {"snr_db": M.snr_db(ref, est), "correlation": M.correlation(ref, est)}
    if extended:
        out["si_sdr"] = M.si_sdr(ref, est)
    out.update(lsd=M.lsd(ref, est), lsd_lf=M.lsd_lf(ref, est), lsd_hf=M.lsd_hf(ref, est))
    if extended:
        parts = M.mrstft(ref, est, return_parts=True)
        out.update(mrstft=parts["mrstft"], mrstft_sc=parts["sc"], mrstft_mag=parts["mag"])
    out.update({f"ber_{k}": v for k, v in M.band_energy_ratio(ref, est).items()})
    out.update(hf_flatness=M.hf_flatness(est[:n]), hf_flatness_ref=M.hf_flatness(ref[:n]),
               added_hf_flatness=M.added_hf_flatness(ref, est))
    if extended:
        out.update({f"mel_err_db_{k}": v for k, v in M.mel_band_error_db(ref, est).items()})
    out.update({f"claims_ret_{k}": v for k, v in M.band_retention_claims(ref, est).items()})
    return out


@pytest.fixture(scope="module")
def varied_signals(noise, lowpassed, tonal_ref):
    """(ref, {name: est}) cases: noise, filtered, tonal, DC offset, digital silence, short and unequal lengths."""
    rng = np.random.default_rng(7)
    tonal, _ = tonal_ref
    silent_start = noise.copy()
    silent_start[:SR // 2] = 0.0  # half a second of digital silence in both (all-zero frames)
    gapped = lowpassed.copy()
    gapped[SR:SR + 4000] = 0.0
    speechy = sosfiltfilt(butter(4, [300, 3400], btype="band", fs=SR, output="sos"), rng.standard_normal(N))
    speechy *= np.repeat(rng.random(N // 1600) ** 2, 1600)  # a loud/quiet envelope every 0.1 s
    # as read from a 16-bit file: without the quantisation floor, filtfilt's far stop band in the quiet blocks
    # sits 140 dB below the frames' DC bin, at float64 FFT rounding, which two STFT implementations round
    # differently (1e-6 relative on lsd_hf there)
    speechy = np.round(speechy * 32767) / 32767
    return [
        (noise, {"low": lowpassed, "half": 0.5 * noise, "noisy": noise + 0.05 * rng.standard_normal(N),
                 "delay": np.concatenate([[0.0], noise[:-1]])}),
        (tonal, {"hf_noise": tonal + 0.01 * noise, "lp": lowpassed, "short": tonal[:-777] * 0.9}),
        (silent_start, {"same": silent_start, "gapped": np.concatenate([np.zeros(SR // 2), gapped[SR // 2:]])}),
        (speechy + 0.2, {"dc_kept": speechy + 0.2 + 0.01 * noise, "dc_lost": speechy}),
        (noise[:5000], {"short_a": lowpassed[:5000], "longer_b": lowpassed[:9000]}),  # shorter than _SEED_N
    ]


def test_score_many_equals_the_single_metric_functions(varied_signals):
    """score_many (batched, shared analyses) = the public one-metric functions, to float rounding."""
    for ref, ests in varied_signals:
        many = M.score_many(ref, ests)
        assert list(many) == list(ests)
        for name, est in ests.items():
            want = _single_metric_scores(ref, est)
            assert list(many[name]) == list(M.score(ref, est))  # same keys, same order
            assert set(many[name]) == SCORE_KEYS
            for key, v in want.items():
                assert many[name][key] == pytest.approx(v, rel=1e-6, abs=1e-9, nan_ok=True), (name, key)


def test_score_rows_of_a_batch_equal_rows_alone(varied_signals):
    """_Batch analyses rows independently: scoring stacked reconstructions gives each one's score."""
    ref, ests = varied_signals[0]
    a = M._Batch(ref[None], SR, MelConfig())
    rows = M._score_rows(a, M._Batch(np.stack(list(ests.values())), SR, MelConfig()), True, True)
    for row, (name, est) in zip(rows, ests.items(), strict=True):
        assert row == pytest.approx(M.score(ref, est), rel=1e-12, abs=1e-15, nan_ok=True), name
    quick = M.score_many(ref, ests, extended=False, lsd=False)
    for name, est in ests.items():
        want = _single_metric_scores(ref, est, extended=False)
        del want["lsd"], want["lsd_lf"], want["lsd_hf"]
        assert quick[name] == pytest.approx(want, rel=1e-6, abs=1e-9, nan_ok=True)


def test_logmel_equals_wav_to_mel(noise, lowpassed):
    cfg = MelConfig()
    for x in (noise, lowpassed[:-333], np.zeros(5000)):  # exact frames, padded to a multiple, digital silence
        np.testing.assert_allclose(M._logmel(x[None], cfg)[0], wav_to_mel(x, cfg)[0].numpy(), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="too short for the front end"):
        M._logmel(np.zeros((1, 100)), MelConfig(time_multiple=1))


@pytest.mark.parametrize("n_fft, hop", [(743, 160), (1024, 256), (9, 4)])
def test_lsd_power_equals_librosa_stft(noise, lowpassed, n_fft, hop):
    onset = np.concatenate([np.zeros(N // 2 + 7), noise[:N // 2 - 7]])  # silence, then loud: frames paired across
    x = np.stack([noise, lowpassed, onset, np.zeros(N)])
    for rows in (x, x[:, :-hop]):  # an even and an odd number of frames
        p = M._lsd_power(rows, n_fft, hop)
        for row, sig in zip(p, rows, strict=True):
            mag = M._lsd_mag(sig, n_fft, hop, "constant")  # librosa, (bins, frames)
            assert row.shape == mag.T.shape
            np.testing.assert_allclose(np.sqrt(row.T), mag, rtol=0, atol=1e-12 * mag.max(initial=1.0))
            np.testing.assert_array_equal(row.T == 0, mag == 0)  # digital silence exactly zero, as librosa's
        assert not p[3].any()


def test_welch_of_rows_equals_welch_of_each_row(noise, lowpassed):
    f, p = M._welch(np.stack([noise, lowpassed]), SR, 1024, "constant")
    for row, sig in zip(p, (noise, lowpassed), strict=True):
        np.testing.assert_array_equal(row, M._welch(sig, SR, 1024, "constant")[1])
