"""``vaelib generate`` end to end from a save_pretrained folder of a tiny AudioLDM2 pipeline, and the generation
functions under it: one diffusion run per prompt, plain = the pipeline's own output, enhanced = the attached
pipeline's output, an inert page."""

import json

import numpy as np
import pytest
import soundfile as sf
import tiny_pipes
import torch

import vaelib
from vaelib.cli import main
from vaelib.generate.run import GenerateError, generate, generate_run, read_prompts
from vaelib.report.html import find_active_content

HOSTILE = "<img src=x onerror=alert(1)> & $\\frac{a}{$ \"quoted\""


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


@pytest.fixture(scope="module")
def saved_pipe(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pipes") / "tiny-audioldm2"
    tiny_pipes.audioldm2().save_pretrained(folder, safe_serialization=True)
    return folder


def _count_unet_calls(pipe):
    calls = []
    handle = pipe.unet.register_forward_pre_hook(lambda m, a: calls.append(1))
    return calls, handle


def _pipe_audio(pipe, prompt, steps=2, seed=0):
    return pipe(prompt, num_inference_steps=steps, guidance_scale=3.5, generator=torch.Generator().manual_seed(seed)
                ).audios[0]


def test_generate_diffuses_once_and_decodes_plain_and_enhanced_like_the_pipeline(tiny_pipe):
    calls, handle = _count_unet_calls(tiny_pipe)
    try:
        # gate off: on this tiny random pipeline's output the consistency gate (rightly) withholds the correction
        gens = generate(tiny_pipe, ["a dog barks", "rain on the roof"], {"learned": {"gate": "off"}}, steps=2)
    finally:
        handle.remove()
    assert len(calls) == 2 * 2  # 2 steps per prompt (guidance batched into one UNet call): one diffusion each
    for g in gens:
        assert np.array_equal(g.plain, _pipe_audio(tiny_pipe, g.prompt))  # the pipeline's own decode
        vaelib.attach(tiny_pipe, {"learned": {"gate": "off"}})
        assert np.array_equal(g.enhanced, _pipe_audio(tiny_pipe, g.prompt))  # what the attached pipeline returns
        vaelib.detach(tiny_pipe)
        assert not np.array_equal(g.plain, g.enhanced)
        assert g.plain_mel.shape == g.enhanced_mel.shape == (32, 64)
        assert set(g.seconds) == {"diffusion", "decode_plain", "decode_enhanced"}


def test_generate_latent_stage_matches_the_attached_pipeline_and_keeps_a_users_hook(tiny_pipe):
    vaelib.attach(tiny_pipe, {"mel_shelf": {"shelf_db": 2.0}})
    (g,) = generate(tiny_pipe, ["a dog barks"], {"frequency": {"gain": 1.5}}, steps=2)
    assert list(vaelib.generate.hook_of(tiny_pipe).specs) == ["mel_shelf"]  # put back afterwards
    vaelib.attach(tiny_pipe, {"frequency": {"gain": 1.5}})
    attached_audio = _pipe_audio(tiny_pipe, "a dog barks")
    vaelib.detach(tiny_pipe)
    # generate enhances the exact latent; the hook on AudioLDM2 recovers it as x * s: equal up to rounding
    np.testing.assert_allclose(g.enhanced, attached_audio, rtol=1e-4, atol=1e-6 * np.abs(attached_audio).max())
    assert not np.array_equal(g.enhanced, g.plain)


def test_generate_with_audioldm_stops_before_decoding(tiny_ldm):
    calls, handle = _count_unet_calls(tiny_ldm)
    try:
        (g,) = generate(tiny_ldm, ["a dog barks"], {"frequency": {"gain": 1.5}}, steps=2)
    finally:
        handle.remove()
    assert len(calls) == 2
    assert "decode_latents" not in tiny_ldm.__dict__
    assert np.array_equal(g.plain, _pipe_audio(tiny_ldm, "a dog barks"))
    vaelib.attach(tiny_ldm, {"frequency": {"gain": 1.5}})
    assert np.array_equal(g.enhanced, _pipe_audio(tiny_ldm, "a dog barks"))  # AudioLDM: exact latent both ways


def test_vaelib_generate_end_to_end_writes_an_inert_page(saved_pipe, tmp_path, capsys):
    out = tmp_path / "run"
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# a comment\nrain on the roof\n\n", encoding="utf-8")
    rc = main(["generate", "--model", str(saved_pipe), "--prompt", HOSTILE, "--prompts", str(prompts),
               "--enhancers", "learned:strength=0.8,mel_shelf:shelf_db=3", "--steps", "2", "--seed", "0",
               "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    page = (out / "index.html").read_text(encoding="utf-8")
    assert find_active_content(page) == []
    assert "<script" not in page.lower() and 'http-equiv="Content-Security-Policy"' in page
    assert "&lt;img src=x onerror=alert(1)&gt; &amp;" in page and "<img src=x" not in page
    assert page.count("<audio controls") == 4 and page.count('src="data:image/png;base64,') == 2
    run = json.loads((out / "run.json").read_text())
    assert [p["prompt"] for p in run["prompts"]] == [HOSTILE, "rain on the roof"]
    assert run["pipeline"] == "AudioLDM2Pipeline" and run["steps"] == 2
    assert run["enhancers"] == {"learned:strength=0.8": {"method": "learned", "strength": 0.8, "gate": 1.0},
                                "mel_shelf:shelf_db=3": {"method": "mel_shelf", "shelf_db": 3.0}}
    for folder in ("001", "002"):
        for name in ("plain.wav", "enhanced.wav"):
            wave, sr = sf.read(out / folder / name)
            assert sr == 16000 and wave.shape == (5120,)
        assert (out / folder / "comparison.png").stat().st_size > 10_000
    assert (out / "001" / "prompt.txt").read_text(encoding="utf-8") == HOSTILE + "\n"
    assert "page:" in capsys.readouterr().out


def test_vaelib_generate_refuses_bad_input_in_one_line(saved_pipe, tmp_path, capsys):
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    no_index = tmp_path / "vae_only"
    (no_index / "vae").mkdir(parents=True)
    cases = [
        (["--model", str(saved_pipe), "--prompt", "a", "--enhancers", "learned", "--out", str(full)], "not empty"),
        (["--model", str(no_index), "--prompt", "a", "--enhancers", "learned"], "model_index.json"),
        (["--model", str(saved_pipe), "--enhancers", "learned"], "no prompt"),
        (["--model", str(saved_pipe), "--prompt", "a", "--enhancers", "nonexistent"], "nonexistent"),
        (["--model", str(saved_pipe), "--prompts", str(tmp_path / "missing.txt"), "--enhancers", "learned"],
         "cannot read"),
        (["--model", "cvssp/audioldm2", "--prompt", "a", "--enhancers", "learned"], "HF_HUB_OFFLINE=1"),
        (["--model", str(saved_pipe), "--prompt", "a", "--enhancers", "learned", "--steps", "0"], "--steps"),
    ]
    for argv, needle in cases:
        assert main(["generate", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and needle in err, (argv, err)
    assert (full / "keep.txt").read_text() == "mine" and sorted(p.name for p in full.iterdir()) == ["keep.txt"]


def test_generate_refuses_a_foreign_restorer_before_diffusing(tmp_path):
    from vaelib.generate.compat import fix_language_model
    from vaelib.generate.tiny import tiny_audioldm2

    pipe = tiny_audioldm2(vae="random")
    fix_language_model(pipe)
    calls, handle = _count_unet_calls(pipe)
    try:
        with pytest.raises(GenerateError) as err:
            generate_run("tiny-random", ["a dog barks"], "learned", out=tmp_path / "a", steps=2, pipe=pipe)
        assert "\n" not in str(err.value) and "allow_foreign_restorer=True" in str(err.value)
        assert calls == [] and not (tmp_path / "a").exists()
        page = generate_run("tiny-random", ["a dog barks"], "learned", out=tmp_path / "b", steps=2, pipe=pipe,
                            allow_foreign_restorer=True)
    finally:
        handle.remove()
    assert page.is_file() and len(calls) == 2


def test_read_prompts():
    assert read_prompts(["a", " "]) == ["a"]
    with pytest.raises(GenerateError):
        read_prompts([])
