"""vaelib.metrics._gammatone: the faster gammatone kernel gives exactly the port's numbers.

Exact equality (``np.array_equal``, ``==`` on scores), not a tolerance: the swap is only honest if ViSQOL cannot
tell. Real ERB filter coefficients from visqol-python, real demo audio, both ViSQOL modes.
"""

import numpy as np
import pytest

pytest.importorskip("visqol")
pytest.importorskip("numba")

import visqol.gammatone as vg  # noqa: E402
import visqol.numba_accel as na  # noqa: E402

import vaelib  # noqa: E402
from vaelib.metrics import _gammatone, perceptual  # noqa: E402

PORT = na._gammatone_spectrogram_numba  # the port's own kernel (install() replaces only gammatone.py's name)


def _demo(name, seconds, sr=16000):
    path = next(f for f in vaelib.find_audio("demo", demo_split="eval") if name in str(f))
    return vaelib.load_audio(path)[: int(seconds * sr)].astype(np.float64)


@pytest.mark.parametrize("sr, bands, speech", [(48000, 32, False), (16000, 32, True)])
def test_kernel_is_bit_identical_on_real_filters(sr, bands, speech, monkeypatch):
    from visqol.analysis_window import AnalysisWindow
    from visqol.audio_utils import AudioSignal

    x = np.random.default_rng(1).standard_normal(sr) * np.hanning(sr) * 0.3
    window = AnalysisWindow(sr, 0.5, 0.08)
    builder = vg.GammatoneSpectrogramBuilder(bands, 50.0, speech_mode=speech)
    out = {}
    for name, kernel in (("port", PORT), ("fast", _gammatone.gammatone_spectrogram)):
        monkeypatch.setattr(vg, "_gammatone_spectrogram_numba", kernel)
        out[name] = builder.build(AudioSignal(x, sr), window).data
    assert out["port"].shape[0] == bands and out["port"].shape[1] > 10
    assert np.array_equal(out["port"], out["fast"])


@pytest.mark.parametrize("mode", ["visqol", "visqol_speech"])
def test_every_spectrogram_of_a_visqol_call_is_equal(mode, monkeypatch):
    """Both kernels on every spectrogram one ViSQOL call builds (the signals, each patch); then the scores."""
    ref = _demo("speech_en_us_f4", 3.0)
    est = ref + 0.01 * np.random.default_rng(0).standard_normal(ref.size)
    perceptual(ref, ref, sr=16000, kinds=mode)  # the API is created (and install() run) before the spy goes in
    same = []

    def both(*args):
        port = PORT(*args)
        same.append(np.array_equal(port, _gammatone.gammatone_spectrogram(*args)))
        return port

    monkeypatch.setattr(vg, "_gammatone_spectrogram_numba", both)
    port = perceptual(ref, est, sr=16000, kinds=mode)[mode]
    assert len(same) > 4 and all(same)
    assert _gammatone.install.__wrapped__()
    fast = perceptual(ref, est, sr=16000, kinds=mode)[mode]
    assert np.isfinite(port) and 1.0 < port < 5.0
    # the port itself varies in the 14th digit between calls in one process (not in the kernel: checked above)
    assert fast == pytest.approx(port, rel=1e-12, abs=0)


def test_install_refuses_unchecked_versions_and_mismatches(monkeypatch):
    install = _gammatone.install.__wrapped__  # uncached: each call checks again
    monkeypatch.setattr(vg, "_gammatone_spectrogram_numba", PORT)
    monkeypatch.setenv("VAELIB_FAST_GAMMATONE", "0")
    assert install() is False and vg._gammatone_spectrogram_numba is PORT
    monkeypatch.delenv("VAELIB_FAST_GAMMATONE")
    monkeypatch.setattr(_gammatone, "CHECKED_VERSIONS", ("0.0.1",))
    assert install() is False and vg._gammatone_spectrogram_numba is PORT
    monkeypatch.setattr(_gammatone, "CHECKED_VERSIONS", (_gammatone.importlib.metadata.version("visqol-python"),))
    monkeypatch.setattr(vg, "_gammatone_spectrogram_numba", lambda *a: PORT(*a) + 1e-12)  # a port that changed
    assert install() is False
    monkeypatch.setattr(vg, "_gammatone_spectrogram_numba", PORT)
    assert install() is True and vg._gammatone_spectrogram_numba is _gammatone.gammatone_spectrogram


def _probe_args(seed=0, n=4800):
    rng = np.random.default_rng(seed)
    nb, ws, hop = 5, 96, 48
    sig = rng.standard_normal(n)
    b = rng.standard_normal((4, nb, 3)) * 0.1
    a = np.column_stack([np.ones(nb), rng.uniform(-1.9, -1.5, nb), rng.uniform(0.80, 0.95, nb)])
    return sig, np.hanning(ws), b, a, ws, hop, nb, 1 + (n - ws) // hop


def test_memo_returns_the_same_array_for_the_same_input_only(monkeypatch):
    monkeypatch.setattr(_gammatone, "_memo", _gammatone.collections.OrderedDict())
    monkeypatch.setattr(_gammatone, "_memo_stats", {"hits": 0, "misses": 0, "bytes": 0})
    args = _probe_args()
    first = _gammatone.gammatone_spectrogram(*args)
    assert np.array_equal(first, PORT(*args))
    first[0, 0] = -1.0  # a caller writing into its result cannot change what the next caller gets
    again = _gammatone.gammatone_spectrogram(*(a.copy() if isinstance(a, np.ndarray) else a for a in args))
    assert np.array_equal(again, PORT(*args)) and _gammatone.memo_info()["hits"] == 1
    sig, *rest = args
    other = sig.copy()
    other[2400] *= 1 + 1e-12  # one sample, a change in its 12th digit: computed, not remembered
    changed = _gammatone.gammatone_spectrogram(other, *rest)
    assert _gammatone.memo_info()["misses"] == 2
    assert np.array_equal(changed, PORT(other, *rest)) and not np.array_equal(changed, again)
    wider = _gammatone.gammatone_spectrogram(sig, rest[0], rest[1], rest[2], rest[3], rest[4] * 2, rest[5],
                                             1 + (sig.size - rest[3]) // (rest[4] * 2))  # another hop: a miss
    assert wider.shape[1] < again.shape[1] and _gammatone.memo_info()["misses"] == 3


def test_memo_keeps_at_most_its_byte_budget(monkeypatch):
    monkeypatch.setattr(_gammatone, "_memo", _gammatone.collections.OrderedDict())
    monkeypatch.setattr(_gammatone, "_memo_stats", {"hits": 0, "misses": 0, "bytes": 0})
    one = _gammatone.gammatone_spectrogram(*_probe_args(0)).nbytes
    monkeypatch.setattr(_gammatone, "MEMO_BYTES", 2 * one)
    for seed in (1, 2, 3):
        _gammatone.gammatone_spectrogram(*_probe_args(seed))
    info = _gammatone.memo_info()
    assert info["entries"] == 2 and info["bytes"] == 2 * one  # the oldest two were dropped
    _gammatone.gammatone_spectrogram(*_probe_args(3))  # the newest is still there
    assert _gammatone.memo_info()["hits"] == 1
    _gammatone.gammatone_spectrogram(*_probe_args(0))  # the first is gone: computed again
    assert _gammatone.memo_info()["misses"] == 5


def test_a_second_output_of_one_reference_reuses_its_spectrograms(monkeypatch):
    """What the memo is for: ViSQOL of one reference against two outputs rebuilds the reference's spectrograms."""
    monkeypatch.setattr(_gammatone, "_memo", _gammatone.collections.OrderedDict())
    monkeypatch.setattr(_gammatone, "_memo_stats", {"hits": 0, "misses": 0, "bytes": 0})
    ref = _demo("music_harpsichord", 3.0)
    noise = np.random.default_rng(0).standard_normal(ref.size)
    perceptual(ref, ref + 0.01 * noise, sr=16000, kinds="visqol")
    first = _gammatone.memo_info()
    perceptual(ref, ref + 0.02 * noise, sr=16000, kinds="visqol")
    second = _gammatone.memo_info()
    assert first["hits"] == 0 and first["misses"] > 4
    assert second["hits"] - first["hits"] >= 0.2 * (first["misses"])
