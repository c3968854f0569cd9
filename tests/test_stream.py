"""Streaming: block-wise output equals the whole-signal windowed round trip; the stated latency holds."""

import numpy as np
import pytest

from vaelib.longaudio import Windowing, reconstruct_long
from vaelib.stream import Streamer, stream

SR = 16000
SMALL = Windowing(window=64, overlap=16, fade=8)


@pytest.fixture(scope="module")
def models():
    from vaelib import load_vae, load_vocoder

    return load_vae("bundled", device="cpu"), load_vocoder("griffinlim", device="cpu", n_iter=4)


def _signal(seconds=1.3):
    rng = np.random.default_rng(5)
    t = np.arange(int(seconds * SR)) / SR
    return (0.4 * np.sin(2 * np.pi * 500 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def test_stream_equals_offline_and_latency_holds(models):
    """Random block sizes: concatenated output == reconstruct_long(normalise=False)'s stage, sample for sample;
    after every block, everything older than the stated latency has been returned."""
    vae, voc = models
    x = _signal()
    ref = reconstruct_long(x, vae, voc, windowing=SMALL, normalise=False)["vae"].wave
    s = Streamer(vae, voc, windowing=SMALL)
    assert s.latency_samples == (SMALL.window + SMALL.hop) * 160
    rng = np.random.default_rng(0)
    out, pushed, i, lag = [], 0, 0, 0
    while i < x.size:
        n = int(rng.integers(1, 2500))
        out.append(s.process(x[i:i + n]))
        i += n
        pushed = min(i, x.size)
        assert sum(o.size for o in out) >= pushed - s.latency_samples
        lag = max(lag, pushed - sum(o.size for o in out))
    assert lag > s.latency_samples - 3000  # the bound is tight: some block boundary came close to it
    out.append(s.flush())
    got = np.concatenate(out)
    np.testing.assert_array_equal(got, ref)


def test_stream_generator_gain_and_stage(models):
    """``stream`` yields the same samples; ``gain`` scales the model input and undoes itself on the output;
    an enhancer's stage can be streamed."""
    vae, voc = models
    x = _signal(1.0)
    blocks = [x[i:i + 4000] for i in range(0, x.size, 4000)]
    got = np.concatenate(list(stream(blocks, vae, voc, windowing=SMALL, gain=2.0, stage="seed_contrast",
                                     enhancers=["seed_contrast"])))
    ref = reconstruct_long(2.0 * x, vae, voc, ["seed_contrast"], windowing=SMALL, normalise=False)
    np.testing.assert_allclose(got, ref["seed_contrast"].wave / 2.0, rtol=1e-6, atol=1e-7)


def test_streamer_rejects_bad_arguments(models):
    vae, voc = models
    with pytest.raises(ValueError, match="stage"):
        Streamer(vae, voc, stage="nope")
    with pytest.raises(ValueError, match="gain"):
        Streamer(vae, voc, gain=0)
    with pytest.raises(ValueError, match="vocoder"):
        Streamer(vae, None)
