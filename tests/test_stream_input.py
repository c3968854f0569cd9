"""Streamer input: integer PCM scaled as soundfile reads it, multichannel and non-finite blocks refused, gain
checked — each refusal one line."""

import numpy as np
import pytest

from vaelib.longaudio import Windowing
from vaelib.stream import Streamer, as_mono_block

SR = 16000
SMALL = Windowing(window=64, overlap=16, fade=8)


@pytest.fixture(scope="module")
def models():
    from vaelib import load_vae, load_vocoder

    return load_vae("bundled", device="cpu"), load_vocoder("griffinlim", device="cpu", n_iter=4)


def _signal(seconds=1.0):
    rng = np.random.default_rng(5)
    t = np.arange(int(seconds * SR)) / SR
    return (0.4 * np.sin(2 * np.pi * 500 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def _run(s, blocks):
    return np.concatenate([s.process(b) for b in blocks] + [s.flush()])


def test_int16_stream_equals_the_float_stream_soundfile_would_read(models, tmp_path):
    """int16 blocks give the same output as the float32 blocks soundfile reads from the same 16-bit WAV (x/32768):
    peak near the input's, not ~32768 times it."""
    import soundfile as sf

    vae, voc = models
    x16 = np.round(_signal() * 32767).astype(np.int16)
    sf.write(tmp_path / "x.wav", x16, SR, subtype="PCM_16")
    xf, _ = sf.read(tmp_path / "x.wav", dtype="float32")
    np.testing.assert_array_equal(as_mono_block(x16), xf)
    got = _run(Streamer(vae, voc, windowing=SMALL), [x16[i:i + 3000] for i in range(0, x16.size, 3000)])
    want = _run(Streamer(vae, voc, windowing=SMALL), [xf[i:i + 3000] for i in range(0, xf.size, 3000)])
    np.testing.assert_array_equal(got, want)
    assert np.abs(got).max() < 2.0  # was 867 when int16 values were read as raw floats


@pytest.mark.parametrize("dtype, value, want", [(np.int8, -128, -1.0), (np.int16, 16384, 0.5),
                                                (np.int32, -(2 ** 30), -0.5), (np.uint8, 192, 0.5),
                                                (np.uint8, 128, 0.0), (np.float64, 0.25, 0.25)])
def test_integer_pcm_scaling(dtype, value, want):
    got = as_mono_block(np.full(4, value, dtype=dtype))
    assert got.dtype == np.float32 and got.shape == (4,) and np.all(got == np.float32(want))


def test_shapes_mono_accepted_multichannel_refused(models):
    x = _signal(0.2)
    np.testing.assert_array_equal(as_mono_block(x[:, None]), x)
    np.testing.assert_array_equal(as_mono_block(x[None, :]), x)
    vae, voc = models
    s = Streamer(vae, voc, windowing=SMALL)
    for bad in (np.stack([x, x]), np.stack([x, x], axis=1), x.reshape(2, 5, -1)):
        with pytest.raises(ValueError, match="mono") as e:
            s.process(bad)
        assert "\n" not in str(e.value) and str(bad.shape) in str(e.value)
    assert s.flush().size == 0  # nothing refused was pushed


@pytest.mark.parametrize("block, exc, msg", [(np.array([0.1, np.nan]), ValueError, "NaN"),
                                             (np.array([0.1, np.inf], np.float32), ValueError, "NaN"),
                                             (np.array([1e300, 0.0]), ValueError, "overflow"),
                                             (np.array([True, False]), TypeError, "bool"),
                                             (np.array([1 + 1j]), TypeError, "complex"),
                                             (np.array([1, 2], np.uint16), TypeError, "ambiguous"),
                                             (np.array(["a"]), TypeError, "dtype")])
def test_bad_blocks_refused_in_one_line(models, block, exc, msg):
    vae, voc = models
    with pytest.raises(exc, match=msg) as e:
        Streamer(vae, voc, windowing=SMALL).process(block)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("gain", [float("inf"), float("nan"), True, False, -1.0, 0, "2", None, np.inf])
def test_bad_gain_refused(models, gain):
    vae, voc = models
    with pytest.raises(ValueError, match="gain must be a finite positive number") as e:
        Streamer(vae, voc, gain=gain)
    assert "\n" not in str(e.value)


def test_numpy_gain_accepted(models):
    vae, voc = models
    assert Streamer(vae, voc, gain=np.float32(2.0), windowing=SMALL).gain == 2.0
