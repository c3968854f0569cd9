"""Low-latency streaming (``Streamer(..., low_latency=...)``): settings validated in one line, the stated latency
honoured and tight, any block split gives the same output, output length = input length, and a hand check of the
window / chunk bookkeeping with a local stub vocoder on the mel projection (which must then come out exactly)."""

import numpy as np
import pytest

from vaelib.audio import pad_to_multiple, wav_to_mel
from vaelib.longaudio import Windowing
from vaelib.stream import LOW_LATENCY_PRESETS, LowLatency, LowLatencyRoundTrip, Streamer, stream

SR, HOP = 16000, 160
LL = LowLatency(chunk=12, context=16, lookahead=8, fade=4, voc_context=8, voc_lookahead=4, voc_fade=4)


@pytest.fixture(scope="module")
def models():
    from vaelib import load_vae, load_vocoder

    return load_vae("bundled", device="cpu"), load_vocoder("griffinlim", device="cpu", n_iter=4)


def _signal(n=11111, seed=5):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    return (0.4 * np.sin(2 * np.pi * 500 * t) + 0.05 * rng.standard_normal(n)).astype(np.float32)


def _run(s, x, sizes):
    out, i = [], 0
    for n in sizes:
        out.append(s.process(x[i:i + n]))
        i += n
    out.append(s.process(x[i:]))
    out.append(s.flush())
    return np.concatenate(out)


class _StubVocoder:
    """Local vocoder: each frame's first mel bin repeated over its hop (a crossfade of equal estimates is exact)."""

    def __call__(self, mel):
        return mel[:, 0, :, 0].repeat_interleave(HOP, dim=1)


@pytest.mark.parametrize("kwargs, match", [
    ({"chunk": 10}, "multiples of 4"), ({"context": 6}, "multiples of 4"), ({"lookahead": 2}, "multiples of 4"),
    ({"chunk": 0}, "multiples of 4"), ({"fade": 3}, "fade"), ({"fade": 20, "lookahead": 8}, "fade"),
    ({"fade": 8, "context": 0}, "fade"), ({"voc_fade": 0}, "voc_fade"), ({"voc_fade": 10, "voc_lookahead": 4},
                                                                         "voc_fade"),
    ({"voc_context": 0, "voc_fade": 2, "voc_lookahead": 2}, "voc_context"), ({"chunk": 8}, "voc_lookahead"),
    ({"chunk": 20.0}, "integer"), ({"context": True}, "integer"), ({"lookahead": -4}, "non-negative")])
def test_bad_settings_refused_in_one_line(kwargs, match):
    with pytest.raises(ValueError, match=match) as e:
        LowLatency(**kwargs)
    assert "\n" not in str(e.value)


def test_streamer_refuses_bad_low_latency_arguments(models):
    vae, voc = models
    for bad in ("fast", 0.4, {"chunk": 20}):
        with pytest.raises(ValueError, match="low_latency must be") as e:
            Streamer(vae, voc, low_latency=bad)
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="not both"):
        Streamer(vae, voc, windowing=Windowing(64, 16, 8), low_latency="low")
    with pytest.raises(ValueError, match="stage"):
        Streamer(vae, voc, low_latency=LL, stage="nope")
    with pytest.raises(RuntimeError, match="keep_mel"):
        _ = Streamer(vae, voc, low_latency=LL).mel


def test_latency_formula_and_presets():
    """Hand count: chunk + lookahead + fade/2 + voc_lookahead + voc_fade/2 frames of 10 ms."""
    assert LowLatency().latency_frames == 20 + 8 + 4 + 4 + 4 == 40
    assert LL.latency_frames == 12 + 8 + 2 + 4 + 2
    assert all(p.latency_frames * HOP / SR <= 1.0 for p in LOW_LATENCY_PRESETS.values())
    assert LOW_LATENCY_PRESETS["low"] == LowLatency()


@pytest.mark.parametrize("block", [80, 37])
def test_stated_latency_honoured_and_tight(models, block):
    """Blocks pushed one by one, the number of samples pushed recorded when each output sample is emitted.
    After every block, every input sample older than latency_samples has its output (the stream's contract, any
    block size). Per sample (input sample i is in once i + 1 samples are): with 80-sample blocks every chunk
    boundary falls on a block end and the longest wait is exactly latency_samples - 1 (the stated latency is not
    loose); with other block sizes the output can only come with the block that completes a window, so the wait
    grows by less than one block."""
    vae, voc = models
    x = _signal(9000)
    s = Streamer(vae, voc, low_latency=LL)
    lat = s.latency_samples
    assert lat == LL.latency_frames * HOP and s.latency_s == lat / SR
    waits, n_out = [], 0
    for i in range(0, x.size, block):
        pushed = min(i + block, x.size)
        y = s.process(x[i:i + block])
        waits.extend(pushed - (np.arange(n_out, n_out + y.size) + 1))
        n_out += y.size
        assert n_out >= pushed - lat
    assert max(waits) <= lat - 1 + (block - 1) * (HOP % block != 0)
    if block == 80:
        assert max(waits) == lat - 1
    assert n_out + s.flush().size == x.size


def test_any_block_split_gives_the_same_output_and_input_length(models):
    vae, voc = models
    x = _signal()
    rng = np.random.default_rng(1)
    ref = _run(Streamer(vae, voc, low_latency=LL), x, [])
    assert ref.shape == x.shape and ref.dtype == np.float32 and np.isfinite(ref).all()
    for sizes in ([1000] * 11, list(rng.integers(1, 900, 30)), [1, 2, 3, 159, 161, 5000]):
        np.testing.assert_array_equal(_run(Streamer(vae, voc, low_latency=LL), x, sizes), ref)
    got = np.concatenate(list(stream([x[i:i + 700] for i in range(0, x.size, 700)], vae, voc, low_latency=LL)))
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("n", [1, 159, 640, 1921, 3200, 5555])
def test_output_length_equals_input_length(models, n):
    """Also inputs shorter than one chunk, than one frame, and lengths off the frame grid."""
    vae, voc = models
    x = _signal(n)
    s = Streamer(vae, voc, low_latency=LL, keep_mel=True)
    y = _run(s, x, [n // 3])
    assert y.shape == (n,) and np.isfinite(y).all()
    assert s.mel.shape == (pad_to_multiple(x).size // HOP, 64)


def test_hand_check_mel_projection_with_a_local_vocoder_is_exact(models):
    """Stage ``mel_projection`` (each window's own front end) and a vocoder that repeats each frame's first mel
    bin over its hop: every window's mel equals the whole signal's away from its edges (lookahead - fade/2 = 6
    frames > the front end's 2.7-frame reach), and the crossfade weights of the windows and of the vocoder
    chunks each sum to one, so the stream must give wav_to_mel of the whole signal, and its repetition, exactly
    (float rounding aside)."""
    vae, _ = models
    x = _signal(7777)
    want_mel = wav_to_mel(x)[0, 0].numpy()
    s = Streamer(vae, _StubVocoder(), low_latency=LL, stage="mel_projection", keep_mel=True, gain=2.0)
    y = _run(s, x / 2.0, [333] * 10)  # gain 2: the model sees x, the output comes back divided by 2
    np.testing.assert_allclose(s.mel, want_mel, rtol=0, atol=1e-5)
    want = np.repeat(want_mel[:, 0], HOP)[:x.size] / 2.0
    np.testing.assert_allclose(y, want, rtol=0, atol=1e-5)
    assert s._rt.n_windows == -(-want_mel.shape[0] // LL.chunk)


def test_vae_stage_near_the_mel_projection_and_processor_memory_flat(models):
    """The low-latency VAE stream stays close to its input (a sanity bound, not a quality claim) and the
    processor keeps a bounded amount of state while it runs."""
    vae, voc = models
    x = _signal(24000)
    rt = LowLatencyRoundTrip(vae, voc, LL, keep_mel=True)
    sizes = []
    for i in range(0, x.size, 800):
        rt.push(x[i:i + 800])
        sizes.append((rt._buf.size, rt._mel.shape[0], rt._wacc.size))
    rt.flush()
    ref = wav_to_mel(x)[0, 0].numpy()
    assert np.abs(rt.mel - ref).mean() < 1.0
    late = np.array(sizes[len(sizes) // 2:])
    assert (late[:, 0] <= (LL.window + 5) * HOP).all() and (late[:, 1] <= 2 * LL.window).all()


def test_enhancer_stage_streams_block_independently(models):
    """An enhancer's label can be the streamed stage (window k uses seed + k, whatever the block split)."""
    vae, voc = models
    x = _signal(6000)
    kw = {"low_latency": LL, "enhancers": ["seed_contrast"], "stage": "seed_contrast", "seed": 3}
    a = _run(Streamer(vae, voc, **kw), x, [])
    b = _run(Streamer(vae, voc, **kw), x, [500] * 11)
    np.testing.assert_array_equal(a, b)
    assert a.shape == x.shape and not np.array_equal(a, _run(Streamer(vae, voc, low_latency=LL), x, []))
