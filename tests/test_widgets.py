import base64
import io
import re

import numpy as np
import pytest
import soundfile as sf
from matplotlib.figure import Figure

from vaelib import enhance, study
from vaelib.models import load_vae, load_vocoder
from vaelib.widgets import RenderContext, RenderState, audio_html, build_widgets, display_outputs, render

SR = 16000


@pytest.fixture(scope="module")
def ctx(tiny_snapshot):
    vae = load_vae(str(tiny_snapshot), device="cpu")
    voc = load_vocoder("griffinlim", device="cpu", n_iter=4)
    rng = np.random.default_rng(0)
    t = np.arange(int(0.64 * SR)) / SR
    clips = [study.Clip("tone", None, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)),
             study.Clip("noise", None, (0.1 * rng.standard_normal(t.size)).astype(np.float32))]
    _, recs = study.run_round_trips(clips, vae, voc, show_progress=False)
    return RenderContext.from_reconstructions(recs, vae, voc)


def test_render_is_pure_and_matches_direct_calls(ctx):
    state = RenderState(method="frequency", gain=2.0)
    a, b = render(state, ctx), render(state, ctx)
    np.testing.assert_array_equal(a.mel, b.mel)
    np.testing.assert_array_equal(a.wave, b.wave)
    assert isinstance(a.figure, Figure) and a.title == "frequency(gain=2)"
    direct = ctx.vae.decode(enhance.apply("frequency", ctx.latents[0], gain=2.0))[0, 0].numpy()
    np.testing.assert_allclose(a.mel, direct, atol=1e-5)
    assert list(a.metrics.index) == ["VAE only", "enhanced"]
    q = study.quick_score(ctx.waves[0], a.wave)
    assert a.metrics.loc["enhanced", "LSD-HF"] == pytest.approx(q["lsd_hf"])
    assert a.metrics.loc["enhanced", "added-HF flatness"] == pytest.approx(q["added_hf_flatness"], nan_ok=True)
    assert a.audio_html.count("<audio") == 3
    assert a.params == {"gain": 2.0}
    with pytest.raises(ValueError, match="clip index 5 out of range"):
        render(RenderState(clip=5), ctx)
    with pytest.raises(ValueError, match="out of range"):
        render(RenderState(method="noise", level=3.0), ctx)


def test_render_without_vocoder_is_mel_only(ctx):
    silent = RenderContext(**{**ctx.__dict__, "vocoder": None})
    r = render(RenderState(method="contrast", factor=1.5), silent)
    assert r.wave is None and r.audio_html == ""
    assert list(r.metrics.columns) == ["mel LSD-HF", "mel L1", "mel energy 4-8k"]


def test_dropdown_and_slider_change_the_render(ctx):
    w = build_widgets(ctx, RenderState(method="frequency", gain=1.5), show=False)
    first = w.result
    assert first.state.method == "frequency" and first.params == {"gain": 1.5}
    assert w.gain.layout.display is None and w.level.layout.display == "none" and w.factor.layout.display == "none"

    w.gain.value = 2.5  # slider
    second = w.result
    assert second.params == {"gain": 2.5}
    assert not np.allclose(second.mel, first.mel)
    assert not second.metrics.loc["enhanced"].equals(first.metrics.loc["enhanced"])

    w.method.value = "contrast"  # dropdown
    third = w.result
    assert third.state.method == "contrast" and third.params == {"factor": w.factor.value}
    assert w.gain.layout.display == "none" and w.factor.layout.display is None
    assert not np.allclose(third.mel, second.mel)

    w.factor.value = 2.0
    assert w.result.params == {"factor": 2.0} and not np.allclose(w.result.mel, third.mel)

    w.method.value = "hybrid"
    assert set(w.result.params) == {"gain", "level", "factor"}
    assert all(getattr(w, n).layout.display is None for n in ("gain", "level", "factor"))

    w.clip.value = 1
    assert w.result.state.clip == 1 and w.result.mel.shape == ctx.input_mels[1].shape
    assert w.clip.options == (("tone", 0), ("noise", 1))


def test_widgets_render_into_the_output_area(ctx):
    w = build_widgets(ctx, RenderState(method="noise", level=0.2, seed=1), show=True)
    assert w.result.params == {"level": 0.2} and w.error is None
    outs = w.out.outputs
    assert [sorted(o["data"]) for o in outs] == [["image/png", "text/plain"], ["text/html", "text/plain"],
                                                 ["text/html", "text/plain"]]
    assert base64.b64decode(outs[0]["data"]["image/png"])[:4] == b"\x89PNG"
    assert "added-HF flatness" in outs[1]["data"]["text/html"] and outs[2]["data"]["text/html"].count("<audio") == 3
    before = w.result.mel
    w.seed.value = 2
    assert not np.allclose(w.result.mel, before)  # the noise seed matters
    assert w.out.outputs[1]["data"]["text/html"] != outs[1]["data"]["text/html"]
    assert w.out in w.children
    err = display_outputs(None, "gain=9 is out of range")
    assert len(err) == 1 and "out of range" in err[0]["data"]["text/html"]


def _played(page):
    blobs = re.findall(r'base64,([A-Za-z0-9+/=]+)', page)
    return [sf.read(io.BytesIO(base64.b64decode(b)))[0] for b in blobs]


def test_audio_html_matches_each_copy_to_the_inputs_rms():
    t = np.arange(1600) / SR
    ref = 0.1 * np.sin(2 * np.pi * 440 * t)
    quiet, loud = 0.5 * ref, 3.0 * ref  # -6 dB and +9.5 dB relative to the input
    page = audio_html([("input", ref), ("skip", None), ("quiet", quiet), ("loud", loud)])
    assert page.count("<audio") == 3 and "input (played" not in page
    assert "quiet (played at +6.0 dB)" in page and "loud (played at -9.5 dB)" in page
    rms = [float(np.sqrt(np.mean(x ** 2))) for x in _played(page)]
    assert rms == pytest.approx([rms[0]] * 3, rel=2e-3) and rms[0] == pytest.approx(0.1 / np.sqrt(2), rel=2e-3)
    assert "loudness-matched to the input" in page and "never the scored signal" in page
    # the scored signals are untouched
    assert np.abs(loud).max() == pytest.approx(0.3)


def test_audio_html_never_clips_a_matched_copy():
    ref = np.full(1600, 0.5, np.float32)
    spiky = np.zeros(1600, np.float32)
    spiky[::100] = 4.0  # RMS 0.4, peak 4: matching to RMS 0.5 would peak at 5
    page = audio_html([("input", ref), ("spiky", spiky)])
    played = _played(page)
    assert np.abs(played[1]).max() == pytest.approx(1.0, abs=1e-3)
    assert "spiky (played at -12.0 dB)" in page
    assert gains_of([("input", ref), ("spiky", spiky)]) == pytest.approx([1.0, 0.25])


def gains_of(items):
    from vaelib.widgets import player_gains

    return player_gains(items)


def test_audio_html_unmatched_attenuates_instead_of_clipping():
    loud = np.full(1600, 4.0, np.float32)
    out = audio_html([("quiet", loud / 8), ("loud", loud)], 16000, match=False)
    assert out.count("<audio") == 2
    assert "loud (attenuated 12 dB to avoid clipping)" in out
    assert "quiet (attenuated" not in out
