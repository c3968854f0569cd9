"""vaelib.attach / detach on real diffusers pipelines (tiny, random, offline): what reaches the decoder and the
vocoder is checked against vaelib.enhance.apply on the plain pipeline's own tensors."""

import contextlib

import numpy as np
import pytest
import tiny_pipes
import torch

import vaelib
from vaelib import enhance
from vaelib.generate.hook import attached, hook_of, run_stage

PROMPT = "a dog barks"
STEPS = 2


@pytest.fixture
def tiny_pipe():
    return tiny_pipes.audioldm2()


@pytest.fixture
def tiny_ldm():
    return tiny_pipes.audioldm()


@pytest.fixture(autouse=True)
def _no_hook_left():
    yield
    tiny_pipes.unhook_all()


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _run(pipe, prompt=PROMPT, seed=0, **kw):
    return pipe(prompt, num_inference_steps=STEPS, generator=_gen(seed), **kw).audios


@contextlib.contextmanager
def _spy(pipe):
    """Record what the decoder (``vae.post_quant_conv``: the first module of ``AutoencoderKL.decode``) and the
    vocoder receive, and what the vocoder returns, with forward hooks below any vaelib wrapper."""
    seen = {"decoder_in": [], "vocoder_in": [], "vocoder_out": []}
    hooks = [
        pipe.vae.post_quant_conv.register_forward_pre_hook(lambda m, a: seen["decoder_in"].append(a[0].clone())),
        pipe.vocoder.register_forward_pre_hook(lambda m, a: seen["vocoder_in"].append(a[0].clone())),
        pipe.vocoder.register_forward_hook(lambda m, a, out: seen["vocoder_out"].append(out.clone())),
    ]
    try:
        yield seen
    finally:
        for h in hooks:
            h.remove()


def _plain(pipe, **kw):
    """Audio, decoder input and vocoder input of the never-attached pipeline."""
    assert hook_of(pipe) is None
    with _spy(pipe) as seen:
        audio = _run(pipe, **kw)
    return audio, seen


def test_strength_zero_and_no_enhancers_are_the_plain_pipeline_bit_for_bit(tiny_pipe):
    plain, _ = _plain(tiny_pipe)
    for enhancers in ({"learned": {"strength": 0}}, None, [], {"frequency": {"gain": 1}},
                      {"learned_cond": {"strength": 0, "category": "music"}}, "none",
                      {"quiet": ("noise", {"level": 0})}):
        vaelib.attach(tiny_pipe, enhancers)
        # nothing at its identity setting is wrapped: the pipeline's own methods run
        assert "decode" not in tiny_pipe.vae.__dict__
        assert "mel_spectrogram_to_waveform" not in tiny_pipe.__dict__
        if enhancers in ({"learned": {"strength": 0}}, {"frequency": {"gain": 1}}):
            assert np.array_equal(_run(tiny_pipe), plain), enhancers
        vaelib.detach(tiny_pipe)


def test_learned_vocoder_receives_apply_learned_of_the_decoded_mel(tiny_pipe):
    plain, ref = _plain(tiny_pipe)
    mel = ref["vocoder_in"][0][:, None]  # (B, T, 64) as the vocoder gets it -> (B, 1, T, 64)
    # gate off: the plumbing is under test here (tests/restore/test_gate.py tests the gate)
    assert vaelib.attach(tiny_pipe, {"learned": {"gate": "off"}}) is tiny_pipe  # chains
    with _spy(tiny_pipe) as seen:
        audio = _run(tiny_pipe)
    want = enhance.apply("learned", mel, gate="off")[:, 0]
    assert torch.equal(seen["decoder_in"][0], ref["decoder_in"][0])  # the latent path is untouched
    assert torch.equal(seen["vocoder_in"][0], want)
    assert not torch.equal(want, ref["vocoder_in"][0])  # the restorer did change the mel
    assert not np.array_equal(audio, plain)


def test_frequency_decoder_receives_apply_frequency_of_the_scaled_latent(tiny_pipe):
    z = _run(tiny_pipe, output_type="latent")  # the scaled latent, before the pipeline divides by s
    s = tiny_pipe.vae.config.scaling_factor
    vaelib.attach(tiny_pipe, {"frequency": {"gain": 1.5}})
    with _spy(tiny_pipe) as seen:
        _run(tiny_pipe)
    want = enhance.apply("frequency", z, gain=1.5) / s
    got = seen["decoder_in"][0]
    # z is recovered as x * s from what the pipeline hands vae.decode: equal up to float rounding (a float32 ulp
    # of |z| <= 8 is 1e-6; the Laplacian's taps add up to 16, times (g - 1) / s ~ 0.9: a few 1e-6 at worst)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=2e-5)
    assert (got - z / s).abs().max() > 1e-2  # and it is not the plain latent


def test_latent_and_mel_stages_chain_in_order(tiny_pipe):
    z = _run(tiny_pipe, output_type="latent")
    s = tiny_pipe.vae.config.scaling_factor
    specs = {"mel_shelf": {"shelf_db": 6.0}, "frequency": {"gain": 1.3}, "learned": {"strength": 0.5, "gate": "off"}}
    vaelib.attach(tiny_pipe, specs)
    with _spy(tiny_pipe) as seen:
        _run(tiny_pipe)
    torch.testing.assert_close(seen["decoder_in"][0], enhance.apply("frequency", z, gain=1.3) / s, rtol=1e-5,
                               atol=2e-5)
    # the decoder's own output (what the plain vocoder would get) through mel_shelf, then learned
    vaelib.detach(tiny_pipe)
    with _spy(tiny_pipe) as ref:
        out = tiny_pipe.vae.decode(seen["decoder_in"][0]).sample
    want = enhance.apply("learned", enhance.apply("mel_shelf", out, shelf_db=6.0), strength=0.5, gate="off")[:, 0]
    torch.testing.assert_close(seen["vocoder_in"][0], want, rtol=1e-5, atol=1e-5)
    assert ref["decoder_in"]


def test_detach_gives_back_the_plain_pipeline_bit_for_bit(tiny_pipe):
    plain, _ = _plain(tiny_pipe)
    cls_decode = type(tiny_pipe.vae).decode
    vaelib.attach(tiny_pipe, ["seed_hybrid", "learned"])
    assert not np.array_equal(_run(tiny_pipe), plain)
    assert vaelib.detach(tiny_pipe) is tiny_pipe
    assert hook_of(tiny_pipe) is None
    assert "decode" not in tiny_pipe.vae.__dict__ and "mel_spectrogram_to_waveform" not in tiny_pipe.__dict__
    assert tiny_pipe.vae.decode.__func__ is cls_decode
    assert np.array_equal(_run(tiny_pipe), plain)
    vaelib.detach(tiny_pipe)  # detaching an unhooked pipeline is a no-op


def test_attaching_twice_replaces_never_stacks(tiny_pipe):
    plain, ref = _plain(tiny_pipe)
    vaelib.attach(tiny_pipe, {"frequency": {"gain": 2.0}})
    vaelib.attach(tiny_pipe, {"mel_shelf": {"shelf_db": 3.0}})
    assert list(hook_of(tiny_pipe).specs) == ["mel_shelf"]
    with _spy(tiny_pipe) as seen:
        _run(tiny_pipe)
    assert torch.equal(seen["decoder_in"][0], ref["decoder_in"][0])  # no frequency left over
    want = enhance.apply("mel_shelf", ref["vocoder_in"][0][:, None], shelf_db=3.0)[:, 0]
    assert torch.equal(seen["vocoder_in"][0], want)  # applied once, not twice
    vaelib.attach(tiny_pipe, {"mel_shelf": {"shelf_db": 3.0}})
    with _spy(tiny_pipe) as again:
        _run(tiny_pipe)
    assert torch.equal(again["vocoder_in"][0], want)
    vaelib.detach(tiny_pipe)
    assert np.array_equal(_run(tiny_pipe), plain)


def test_context_manager_restores_the_previous_hook(tiny_pipe):
    plain, _ = _plain(tiny_pipe)
    with attached(tiny_pipe, "learned") as p:
        assert p is tiny_pipe and list(hook_of(tiny_pipe).specs) == ["learned"]
    assert hook_of(tiny_pipe) is None
    assert np.array_equal(_run(tiny_pipe), plain)
    vaelib.attach(tiny_pipe, {"mel_shelf": {"shelf_db": 2.0}}, seed=3)
    with attached(tiny_pipe, "frequency"):
        assert list(hook_of(tiny_pipe).specs) == ["frequency"]
    hook = hook_of(tiny_pipe)
    assert list(hook.specs) == ["mel_shelf"] and hook.specs["mel_shelf"].params == {"shelf_db": 2.0}
    assert hook.seed == 3
    with pytest.raises(RuntimeError), attached(tiny_pipe, "learned"):
        raise RuntimeError("boom")
    assert list(hook_of(tiny_pipe).specs) == ["mel_shelf"]


def test_batched_prompts_and_waveforms_per_prompt_clap_sees_the_enhanced_audio(tiny_pipe):
    prompts = ["a dog barks", "rain on the roof"]
    kw = {"num_waveforms_per_prompt": 2}
    plain, ref = _plain(tiny_pipe, prompt=prompts, **kw)
    assert plain.shape[0] == 4
    scored = []
    original_score = tiny_pipe.score_waveforms

    def score(text, audio, *a, **k):  # record what the CLAP re-ranking is handed, then rank as diffusers does
        scored.append(audio.clone())
        return original_score(text, audio, *a, **k)

    tiny_pipe.score_waveforms = score
    try:
        vaelib.attach(tiny_pipe, "learned")
        with _spy(tiny_pipe) as seen:
            audio = _run(tiny_pipe, prompt=prompts, **kw)
    finally:
        del tiny_pipe.score_waveforms
    mel = ref["vocoder_in"][0][:, None]
    assert mel.shape[0] == 4
    assert torch.equal(seen["vocoder_in"][0], enhance.apply("learned", mel)[:, 0])
    n = audio.shape[1]
    enhanced = seen["vocoder_out"][0][:, :n].cpu().float()
    assert len(scored) == 1 and torch.equal(scored[0], enhanced)  # CLAP ranks the enhanced waveforms
    # every output row is one of the enhanced waveforms, picked by CLAP (diffusers ranks each prompt's text against
    # all generated waveforms of the batch)
    assert audio.shape == (4, n)
    assert all(any(np.array_equal(a, e) for e in enhanced.numpy()) for a in audio)


def test_audioldm_pipeline_latent_and_mel_stages(tiny_ldm):
    seen_z = []
    original = tiny_ldm.decode_latents
    tiny_ldm.decode_latents = lambda z: (seen_z.append(z.clone()), original(z))[1]
    try:
        plain, ref = _plain(tiny_ldm)
    finally:
        del tiny_ldm.decode_latents
    z, s = seen_z[0], tiny_ldm.vae.config.scaling_factor
    vaelib.attach(tiny_ldm, {"frequency": {"gain": 1.5}, "learned": {"strength": 1.0}})
    with _spy(tiny_ldm) as seen:
        _run(tiny_ldm)
    # AudioLDM's decode_latents gets the scaled latent itself: exact, written as the pipeline writes it
    assert torch.equal(seen["decoder_in"][0], 1 / s * enhance.apply("frequency", z, gain=1.5))
    vaelib.detach(tiny_ldm)
    dec = tiny_ldm.vae.decode(seen["decoder_in"][0]).sample
    assert torch.equal(seen["vocoder_in"][0], enhance.apply("learned", dec)[:, 0])
    assert np.array_equal(_run(tiny_ldm), plain)
    vaelib.attach(tiny_ldm, {"learned": {"strength": 0}})
    assert np.array_equal(_run(tiny_ldm), plain)


def test_other_pipelines_and_bad_enhancers_are_refused_in_one_line(tiny_pipe):
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 8), layers_per_block=1,
                       down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2, norm_num_groups=4)
    for other in (DDPMPipeline(unet=unet, scheduler=DDPMScheduler()), object()):
        with pytest.raises(TypeError) as err:
            vaelib.attach(other, "learned")
        msg = str(err.value)
        assert "\n" not in msg and "AudioLDM2Pipeline, AudioLDMPipeline, MusicLDMPipeline" in msg
        assert type(other).__name__ in msg
    for bad in ("nonexistent", {"frequency": {"gain": 9}}, {"learned": {"strength": 2}}):
        with pytest.raises(ValueError) as err:
            vaelib.attach(tiny_pipe, bad)
        assert "\n" not in str(err.value)
    assert hook_of(tiny_pipe) is None  # a refused attach leaves the pipeline as it was


def test_a_failed_attach_keeps_the_previous_hook(tiny_pipe):
    vaelib.attach(tiny_pipe, {"mel_shelf": {"shelf_db": 3.0}})
    with pytest.raises(ValueError):
        vaelib.attach(tiny_pipe, "nonexistent")
    assert list(hook_of(tiny_pipe).specs) == ["mel_shelf"]


def test_bf16_pipeline_enhancers_upcast_and_cast_back():
    from vaelib.generate.compat import fix_language_model
    from vaelib.generate.tiny import tiny_audioldm2

    pipe = tiny_audioldm2().to(dtype=torch.bfloat16)
    fix_language_model(pipe)
    with _spy(pipe) as ref:
        plain = _run(pipe)
    vaelib.attach(pipe, {"frequency": None, "learned": {"gate": "off"}})
    with _spy(pipe) as seen:
        audio = _run(pipe)
    assert seen["decoder_in"][0].dtype == torch.bfloat16 and seen["vocoder_in"][0].dtype == torch.bfloat16
    assert np.isfinite(audio).all() and not np.array_equal(audio, plain)
    # the mel stage: the bf16 decoded mel upcast, restored in float32, cast back to bf16
    vaelib.detach(pipe)
    dec = pipe.vae.decode(seen["decoder_in"][0]).sample
    want = enhance.apply("learned", dec.float(), gate="off").to(torch.bfloat16)[:, 0]
    assert torch.equal(seen["vocoder_in"][0], want)
    assert np.array_equal(_run(pipe), plain)
    assert ref["vocoder_in"][0].dtype == torch.bfloat16


def test_run_stage_keeps_dtype_layout_and_returns_the_input_when_empty():
    x = torch.randn(2, 1, 8, 64)
    assert run_stage([], x) is x
    spec = enhance.parse({"mel_shelf": {"shelf_db": 6.0}})["mel_shelf"]
    three = run_stage([spec], x[:, 0])
    assert three.shape == (2, 8, 64) and torch.equal(three, enhance.apply(spec, x)[:, 0])
    half = run_stage([spec], x.to(torch.bfloat16))
    assert half.dtype == torch.bfloat16
    assert torch.equal(half, enhance.apply(spec, x.to(torch.bfloat16).float()).to(torch.bfloat16))


def test_a_restorer_trained_for_another_vae_is_refused_in_one_line():
    from vaelib.generate.compat import fix_language_model
    from vaelib.generate.tiny import tiny_audioldm2

    pipe = tiny_audioldm2(vae="random")  # the bundled VAE's config, other weights
    fix_language_model(pipe)
    plain = _run(pipe)
    for name in ("learned", "learned_cond"):
        with pytest.raises(ValueError) as err:
            vaelib.attach(pipe, [name, "frequency"])
        msg = str(err.value)
        assert "\n" not in msg and repr(name) in msg and "allow_foreign_restorer=True" in msg
        assert hook_of(pipe) is None
    assert np.array_equal(_run(pipe), plain)
    with pytest.raises(ValueError):  # named, it is checked even at strength 0 (as reconstruct does)
        vaelib.attach(pipe, {"learned": {"strength": 0}})
    vaelib.attach(pipe, "learned", allow_foreign_restorer=True)  # the override, named in the message, works
    with _spy(pipe) as seen:
        _run(pipe)
    assert not np.array_equal(_run(pipe), plain)
    assert seen["vocoder_in"]


def test_musicldm_pipeline_latent_and_mel_stages():
    from vaelib.generate.tiny import tiny_musicldm

    pipe = tiny_musicldm()
    # MusicLDM's text path does not run with transformers 5 (get_text_features returns an output object, which
    # diffusers 0.42 calls .to() on); CLAP embeddings passed directly, no guidance, avoid it
    embeds = torch.randn(2, 16, generator=_gen(1))
    kw = {"prompt_embeds": embeds, "guidance_scale": 1.0, "num_inference_steps": STEPS}
    z = pipe(generator=_gen(), output_type="latent", **kw).audios
    with _spy(pipe) as ref:
        plain = pipe(generator=_gen(), **kw).audios
    s = pipe.vae.config.scaling_factor
    vaelib.attach(pipe, {"frequency": {"gain": 1.5}, "mel_shelf": {"shelf_db": 4.0}})
    with _spy(pipe) as seen:
        pipe(generator=_gen(), **kw)
    torch.testing.assert_close(seen["decoder_in"][0], enhance.apply("frequency", z, gain=1.5) / s, rtol=1e-5,
                               atol=2e-5)
    vaelib.detach(pipe)
    dec = pipe.vae.decode(seen["decoder_in"][0]).sample
    assert torch.equal(seen["vocoder_in"][0], enhance.apply("mel_shelf", dec, shelf_db=4.0)[:, 0])
    assert torch.equal(ref["decoder_in"][0], 1 / s * z)
    assert np.array_equal(pipe(generator=_gen(), **kw).audios, plain)
