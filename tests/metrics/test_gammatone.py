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
