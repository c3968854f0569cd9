import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from vaelib import restore, study
from vaelib.restore import Restorer, RestorerConfig, RestorerError

SR = 16000


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory):
    """Five short clips whose names carry their audio type (1.5 s each, seeded)."""
    folder = tmp_path_factory.mktemp("restorer_audio")
    rng = np.random.default_rng(0)
    t = np.arange(int(1.5 * SR)) / SR
    for i, name in enumerate(("speech_a", "speech_b", "music_c", "drums_d", "noise_e")):
        x = 0.3 * np.sin(2 * np.pi * (200 + 150 * i) * t) + 0.05 * rng.standard_normal(t.size)
        sf.write(folder / f"{name}.wav", x.astype(np.float32), SR)
    return folder


@pytest.fixture(scope="module")
def vae(tiny_snapshot):
    from vaelib.models import load_vae

    return load_vae(str(tiny_snapshot), device="cpu")


@pytest.fixture(scope="module")
def pairs(vae, audio_dir):
    from vaelib.audio import find_audio

    return restore.collect_pairs(find_audio(audio_dir), vae, progress=False)


@pytest.fixture(scope="module")
def bundled_vae():
    """The bundled tiny VAE: the one VAE the bundled restorers may be applied to (their fingerprint)."""
    from vaelib.models import load_vae

    return load_vae("bundled", device="cpu")


@pytest.fixture(scope="module")
def bundled_pairs(bundled_vae, audio_dir):
    from vaelib.audio import find_audio

    return restore.collect_pairs(find_audio(audio_dir), bundled_vae, progress=False)


def _perturbed(config: RestorerConfig, seed: int = 0) -> Restorer:
    """A restorer whose residual is not zero (the fresh one is the identity by construction)."""
    torch.manual_seed(seed)
    model = Restorer(config)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def test_category_of():
    assert restore.category_of("a/speech_en_us.flac") == "speech"
    assert restore.category_of("music_band_rock.wav") == "music"
    assert restore.category_of("x/drums_hats16.flac") == "percussion"
    assert restore.category_of("chirp_log.flac") == "other"
    assert restore.category_of("/data/percussion/take1.wav") == "percussion"  # parent folder names the type


def test_loss_formula_on_hand_made_cases():
    hf = torch.zeros(64, dtype=torch.bool)
    hf[48:] = True  # 16 high bins
    ref = torch.zeros(1, 1, 4, 64)
    # a constant error c everywhere: weighted L1 = |c|, per-frame RMS over HF = |c|
    est = ref + 0.5
    got = restore.restorer_loss(est, ref, hf, hf_weight=3.0, lsd_weight=1.0, eps=0.0)
    assert got.item() == pytest.approx(0.5 + 0.5)
    # error 1 on the high bins only: L1 = 3·16 / (48 + 3·16) = 0.5; RMS term = 1 (× lsd_weight 2)
    est = ref.clone()
    est[..., 48:] = 1.0
    got = restore.restorer_loss(est, ref, hf, hf_weight=3.0, lsd_weight=2.0, eps=0.0)
    assert got.item() == pytest.approx(0.5 + 2.0)
    # LSD term is the mel LSD-HF up to ln(10)/2: metrics.mel_lsd = 2|d|/ln 10 per bin
    assert restore.restorer_loss(est, ref, hf, lsd_weight=0.0).item() == pytest.approx(0.5)


@pytest.mark.parametrize("kind,arch", [("mel", "tcn"), ("mel", "unet"), ("latent", "tcn")])
def test_fresh_restorer_is_identity_and_strength_zero_is_exact(kind, arch):
    cfg = RestorerConfig(kind=kind, arch=arch, channels=8)
    shape = (2, 1, 20, 64) if kind == "mel" else (2, 8, 5, 16)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0)) - 4
    assert torch.equal(Restorer(cfg).restore(x, 1.0), x)  # zero-initialised output layer
    model = _perturbed(cfg)
    before = x.clone()
    full, half, zero = model.restore(x, 1.0), model.restore(x, 0.5), model.restore(x, 0.0)
    assert torch.equal(x, before)  # the input is never changed
    assert torch.equal(zero, x) and zero is not x
    assert not torch.equal(full, x)
    torch.testing.assert_close(half - x, 0.5 * (full - x), atol=1e-5, rtol=1e-4)
    with pytest.raises(RestorerError, match=r"strength must be in \[0, 1\]"):
        model.restore(x, 1.2)
    with pytest.raises(RestorerError, match="4-D"):
        model.restore(x[0], 1.0)


def test_mel_floor_clamps_the_restored_mel_only():
    import math

    floor = math.log(1e-5)
    x = torch.full((1, 1, 16, 64), -5.0)
    x[..., 40:] = floor - 1.0  # a decoded mel below the front end's floor
    plain = _perturbed(RestorerConfig(channels=8))
    clamped = _perturbed(RestorerConfig(channels=8, mel_floor=floor))
    a, b = plain.restore(x, 1.0), clamped.restore(x, 1.0)
    assert float(a.min()) < floor and float(b.min()) >= floor
    torch.testing.assert_close(b, a.clamp(min=floor))
    assert torch.equal(clamped.restore(x, 0.0), x)  # strength 0 stays the exact plain VAE output


def test_conditional_categories():
    model = _perturbed(RestorerConfig(conditional=True, channels=8))
    x = torch.randn(1, 1, 16, 64, generator=torch.Generator().manual_seed(1)) - 4
    outs = {c: model.restore(x, 1.0, category=c) for c in restore.CATEGORIES}
    assert not torch.equal(outs["speech"], outs["music"])
    torch.testing.assert_close(model.restore(x, 1.0, category=0), outs["speech"])
    probs = model.type_probs(x)
    assert probs.shape == (1, 4) and probs.sum().item() == pytest.approx(1.0, abs=1e-5)
    torch.testing.assert_close(model.restore(x, 1.0, category="auto"), model.restore(x, 1.0, category=probs))
    with pytest.raises(RestorerError, match="accepted: auto, speech, music, percussion, other"):
        model.restore(x, 1.0, category="birdsong")
    plain = _perturbed(RestorerConfig(channels=8))
    with pytest.raises(RestorerError, match="not conditional"):
        plain.restore(x, 1.0, category="speech")


def test_save_load_roundtrip_and_safetensors_only(tmp_path):
    model = _perturbed(RestorerConfig(conditional=True, channels=8))
    restore.save_restorer(model, tmp_path / "r")
    loaded = restore.load_restorer(tmp_path / "r")
    x = torch.randn(1, 1, 12, 64) - 4
    torch.testing.assert_close(loaded.restore(x, 1.0, "music"), model.restore(x, 1.0, "music"))
    bad = tmp_path / "pickled"
    bad.mkdir()
    (bad / "config.json").write_text((tmp_path / "r" / "config.json").read_text())
    torch.save(model.state_dict(), bad / "model.bin")
    with pytest.raises(RestorerError, match="refusing to load pickle weights"):
        restore.load_restorer(bad)
    other = tmp_path / "other"
    other.mkdir()
    (other / "model.safetensors").write_bytes((tmp_path / "r" / "model.safetensors").read_bytes())
    (other / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKL"}))
    with pytest.raises(RestorerError, match="not a vaelib restorer config"):
        restore.load_restorer(other)
    with pytest.raises(RestorerError, match="not found"):
        restore.load_restorer(tmp_path / "missing")


def test_split_holdout_keeps_files_together_and_is_seeded(pairs):
    train, held = restore.split_holdout(pairs, 0.5, seed=0)
    assert {p["path"] for p in train}.isdisjoint({p["path"] for p in held})
    assert len(held) == 1 and restore.category_of(held[0]["path"]) == "speech"  # the only type with 2 files
    assert restore.split_holdout(pairs, 0.5, seed=0)[1][0]["path"] == held[0]["path"]
    assert restore.split_holdout(pairs, 0.0)[1] == []


def _opts(**kw):
    base = dict(steps=3, batch_size=2, crop_frames=32, eval_every=2, log_every=1, ckpt_every=2, holdout=0.5,
                threads=None)
    return restore.TrainOptions(**{**base, **kw})


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def _interrupted_run(monkeypatch, vae, pairs, folder, opts):
    """Train into ``folder`` until the step-2 checkpoint is written, then stop as a Ctrl-C would."""
    from vaelib.restore import train as restore_train

    real = restore_train._save_checkpoint

    def save_then_stop(folder, model, opt, step, *args):
        real(folder, model, opt, step, *args)
        if step == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(restore_train, "_save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        restore.train_restorer(vae, None, folder, opts=opts, channels=8, pairs=pairs, progress=False)
    monkeypatch.setattr(restore_train, "_save_checkpoint", real)


def test_same_seed_same_weights_and_resume(vae, pairs, tmp_path, monkeypatch):
    a = restore.train_restorer(vae, None, tmp_path / "a", opts=_opts(steps=4), channels=8, pairs=pairs,
                               progress=False)
    restore.train_restorer(vae, None, tmp_path / "b", opts=_opts(steps=4), channels=8, pairs=pairs, progress=False)
    restore.train_restorer(vae, None, tmp_path / "c", opts=_opts(steps=4, seed=1), channels=8, pairs=pairs,
                           progress=False)
    wa, wb, wc = _weights(tmp_path / "a"), _weights(tmp_path / "b"), _weights(tmp_path / "c")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)
    assert a["steps"] == 4
    # interrupted after the step-2 checkpoint, then resumed: same weights as the uninterrupted run
    _interrupted_run(monkeypatch, vae, pairs, tmp_path / "d", _opts(steps=4))
    restore.train_restorer(vae, None, tmp_path / "d", opts=_opts(steps=4), channels=8, pairs=pairs, progress=False,
                           resume=True, echo=lambda s: None)
    wd = _weights(tmp_path / "d")
    assert all(torch.equal(wa[k], wd[k]) for k in wa)


def test_weight_average_ships_and_resumes_bit_exact(vae, pairs, tmp_path, monkeypatch):
    plain = _weights(Path(restore.train_restorer(vae, None, tmp_path / "p", opts=_opts(steps=4), channels=8,
                                                 pairs=pairs, progress=False)["folder"]))
    ema = _weights(Path(restore.train_restorer(vae, None, tmp_path / "e", opts=_opts(steps=4, ema=0.5), channels=8,
                                               pairs=pairs, progress=False)["folder"]))
    assert not all(torch.equal(plain[k], ema[k]) for k in plain)  # the average, not the last weights, is shipped
    cfg = json.loads((tmp_path / "e" / "config.json").read_text())
    assert cfg["training"]["options"]["ema"] == 0.5
    _interrupted_run(monkeypatch, vae, pairs, tmp_path / "r", _opts(steps=4, ema=0.5))
    restore.train_restorer(vae, None, tmp_path / "r", opts=_opts(steps=4, ema=0.5), channels=8, pairs=pairs,
                           progress=False, resume=True, echo=lambda s: None)
    resumed = _weights(tmp_path / "r")
    assert all(torch.equal(ema[k], resumed[k]) for k in ema)
    # a run interrupted without the average cannot be resumed with it: a clear error, not a KeyError
    _interrupted_run(monkeypatch, vae, pairs, tmp_path / "n", _opts(steps=4))
    with pytest.raises(RestorerError, match="ema 0.0 -> 0.5"):  # the resume check names the difference
        restore.train_restorer(vae, None, tmp_path / "n", opts=_opts(steps=4, ema=0.5), channels=8, pairs=pairs,
                               progress=False, resume=True, echo=lambda s: None)


def test_latent_and_conditional_kinds_train(vae, pairs, tmp_path):
    res = restore.train_restorer(vae, None, tmp_path / "lat", kind="latent", conditional=True,
                                 opts=_opts(steps=2), channels=8, pairs=pairs, progress=False)
    model = restore.load_restorer(tmp_path / "lat")
    assert model.kind == "latent" and model.embedding is not None
    held = res["eval"]["heldout"]["mean"]
    assert held["clips"] == 1 and math.isfinite(held["lsd_hf_change"]) and 0 <= held["type_accuracy"] <= 1


def test_cli_train_restorer_end_to_end(tiny_snapshot, audio_dir, tmp_path, capsys):
    from vaelib.cli import main

    out = tmp_path / "run"
    argv = ["train-restorer", "--model", str(tiny_snapshot), "--audio", str(audio_dir), "--out", str(out),
            "--steps", "3", "--device", "cpu", "--channels", "8", "--crop-frames", "32", "--batch-size", "2",
            "--holdout", "0.5", "--eval-every", "2", "--no-progress", "--seed", "3"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "held-out (1 clips)" in printed and "mel LSD-HF" in printed
    for name in ("model.safetensors", "config.json", "MODEL_CARD.md", "training_log.csv", "training_curve.png",
                 "eval.json", "checkpoint/state.safetensors"):
        assert (out / name).is_file(), name
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["training"]["steps"] == 3 and cfg["training"]["options"]["seed"] == 3
    assert len(cfg["training"]["heldout_clips"]) == 1
    model = restore.load_restorer(out)
    assert model.config.channels == 8
    card = (out / "MODEL_CARD.md").read_text()
    assert "Held-out clips" in card and "mel LSD ≥ 4 kHz" in card
    assert "Per clip" in card and card.count(" of ") >= 2 and "worst clip" in card  # distributions, not only means
    assert "energy |log-ratio|" not in card  # no energy term in this run's loss
    before = (out / "model.safetensors").read_bytes()
    assert main(argv) == 2  # refuses to overwrite
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not empty" in err and err.count("\n") == 1
    assert (out / "model.safetensors").read_bytes() == before
    assert main([*argv, "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert main(["train-restorer", "--audio", str(tmp_path / "nope"), "--out", str(tmp_path / "x")]) == 2
    assert "not found" in capsys.readouterr().err


def test_held_out_audio_is_never_mixed_into_training_copies(vae, audio_dir, tmp_path, monkeypatch):
    from vaelib.audio import find_audio, load_audio, normalize
    from vaelib.restore import data as restore_data

    partners = []
    real = restore_data.augment_wave

    def spy(x, rng, sr=16000, other=None):
        partners.append(None if other is None else np.asarray(other).copy())
        return real(x, rng, sr, other)

    monkeypatch.setattr(restore_data, "augment_wave", spy)
    res = restore.train_restorer(vae, find_audio(audio_dir), tmp_path / "r", opts=_opts(steps=2, augment=3),
                                 channels=8, progress=False)
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())["training"]
    held = cfg["heldout_clips"]
    assert held and not set(held) & set(cfg["train_clips"]) and res["eval"]["heldout"]["mean"]["clips"] == len(held)
    assert len(partners) == 3 * len(cfg["train_clips"])
    for name in held:
        h = normalize(load_audio(audio_dir / name, sr=SR))[0]
        assert not any(o is not None and o.shape == h.shape and np.allclose(o, h) for o in partners), name
    # the split is the one split_holdout makes without augmentation: same held-out files
    restore.train_restorer(vae, find_audio(audio_dir), tmp_path / "p", opts=_opts(steps=2), channels=8,
                           progress=False)
    assert json.loads((tmp_path / "p" / "config.json").read_text())["training"]["heldout_clips"] == held


def test_cli_fixed_holdout_files(tiny_snapshot, audio_dir, tmp_path, capsys):
    from vaelib.audio import write_audio_list
    from vaelib.cli import main

    held = write_audio_list(tmp_path / "held.lst", [str(audio_dir / "music_c.wav")])
    out = tmp_path / "fixed"
    base = ["train-restorer", "--model", str(tiny_snapshot), "--audio", str(audio_dir), "--device", "cpu",
            "--steps", "2", "--channels", "8", "--crop-frames", "32", "--batch-size", "2", "--eval-every", "2",
            "--no-progress", "--augment", "1"]
    assert main([*base, "--out", str(out), "--holdout-files", str(held)]) == 0
    assert "held-out (1 clips)" in capsys.readouterr().out
    cfg = json.loads((out / "config.json").read_text())["training"]
    assert cfg["heldout_clips"] == ["music_c.wav"]
    assert "music_c.wav" not in cfg["train_clips"] and len(cfg["train_clips"]) == 4
    assert cfg["options"]["holdout_files"] == [str(audio_dir / "music_c.wav")]
    # both ways of holding out at once, or nothing left to train on: one-line errors, nothing written
    assert main([*base, "--out", str(tmp_path / "x"), "--holdout", "0.2", "--holdout-files", str(held)]) == 2
    assert "not both" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "y"), "--holdout-files", str(audio_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nothing left to train on" in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists() and not (tmp_path / "y" / "model.safetensors").exists()


def test_registered_restorer_is_an_enhancer(tiny_snapshot, vae, pairs, tmp_path, tone_wave):
    from vaelib import enhance
    from vaelib.pipeline import reconstruct

    folder = tmp_path / "mine"
    restore.train_restorer(vae, None, folder, opts=_opts(steps=2), channels=8, pairs=pairs, progress=False)
    name = restore.register(folder, "my_restorer")
    try:
        assert enhance.get(name).stage == "mel"
        rec = reconstruct(tone_wave, vae, None, enhancers={"r0": (name, {"strength": 0}), name: None}, vocode=False)
        assert np.array_equal(rec["r0"].mel, rec["vae"].mel)
        model = restore.load_restorer(folder)
        dec = torch.from_numpy(rec["vae"].mel)[None, None]
        np.testing.assert_allclose(rec[name].mel, model.restore(dec, 1.0)[0, 0].numpy(), atol=1e-5)
        with pytest.raises(RestorerError, match="taken by a built-in"):
            restore.register(folder, "mel_shelf")
    finally:
        restore.model.REGISTRY.pop(name, None)
        enhance.ENHANCERS.pop(name, None)


def test_augment_wave_is_seeded_and_normalised(vae, audio_dir):
    from vaelib.audio import find_audio

    x = np.sin(2 * np.pi * 440 * np.arange(8000) / SR).astype(np.float32) * 0.5
    a = restore.augment_wave(x, np.random.default_rng(3), SR, other=x[::-1].copy())
    b = restore.augment_wave(x, np.random.default_rng(3), SR, other=x[::-1].copy())
    assert np.array_equal(a, b) and not np.allclose(a, x, atol=1e-3)
    assert np.abs(a).max() == pytest.approx(0.5, rel=1e-4) and abs(float(a.mean())) < 1e-6
    files = find_audio(audio_dir)[:2]
    items = restore.collect_pairs(files, vae, progress=False, augment=1, seed=0)
    assert [it["aug"] for it in items] == [False, True, False, True]
    assert items[1]["path"] == items[0]["path"] and items[1]["name"].endswith("~aug1")
    train, held = restore.split_holdout(items, 0.5, seed=0)
    assert not any(it["aug"] for it in held)


def test_compare_verdict_and_summary(bundled_vae, bundled_pairs):
    vae, pairs = bundled_vae, bundled_pairs
    res = study.compare_restorers(pairs, vae, restorers=("learned", "learned_cond"))
    t = res["table"]
    assert t.index[0] == "plain VAE" and t.loc["plain VAE", "lsd_hf_change_%"] == 0
    assert [r.split(":")[0] for r in t.index[1:5]] == ["best seed setting", "baseline", "baseline", "baseline"]
    assert list(t.index[5:]) == ["learned: learned", "learned: learned_cond(auto)", "learned: learned_cond(label)"]
    rows = [r for r in res["rows"] if r["label"] == "vae"]
    assert t.loc["plain VAE", "lsd_hf"] == pytest.approx(np.mean([r["lsd_hf"] for r in rows]))
    # the chosen setting of each group is the one with the lowest mean LSD-HF among its candidates
    means = {}
    for r in res["rows"]:
        means.setdefault(r["label"], []).append(r["lsd_hf"])
    seed_best = min(study.SEED_CANDIDATES, key=lambda lab: np.mean(means[lab]))
    assert res["chosen"]["seed"] == seed_best
    lines = study.verdict(res)
    best = min((r for r in t.index if r.startswith("learned: ")), key=lambda r: t.loc[r, "lsd_hf"])
    assert f"{abs(t.loc[best, 'lsd_hf_change_%']):.0f} %" in lines[0] and best[9:] in lines[0]
    summary = study.summary_numbers(res)
    assert summary["vae_mel_lsd_hf"] == pytest.approx(t.loc["plain VAE", "lsd_hf"])
    assert summary["learned_mel_lsd_hf_rel_change"] == pytest.approx(t.loc["learned: learned", "lsd_hf_change_%"] / 100)
    assert summary["learned_cond_mel_l1"] == pytest.approx(t.loc["learned: learned_cond(auto)", "l1"])
    assert summary["n_clips"] == len(pairs) and all(isinstance(v, float) for k, v in summary.items() if k != "n_clips")
    ext = study.extremes(res)
    assert ext["change"][ext["best"]] <= ext["change"][ext["worst"]]
    labels = ["learned", "learned_cond(auto)", "learned_cond(label)"]
    mels = study.variant_mels(pairs[0], labels)
    assert [m[0] for m in mels] == ["input", "VAE only", *labels]
    # the comparison keeps each restorer's output: the same arrays, not computed again
    assert set(res["mels"]) == {it["name"] for it in pairs} and set(res["mels"][pairs[0]["name"]]) == set(labels)
    kept = study.variant_mels(pairs[0], labels, res["mels"])
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(mels, kept, strict=True))
    assert np.shares_memory(kept[2][1], res["mels"][pairs[0]["name"]]["learned"].numpy())
    no_learned = study.compare_restorers(pairs[:1], vae, restorers=())
    assert "No learned restorer" in study.verdict(no_learned)[0]


def test_render_restorer_and_figures(vae, pairs):
    from vaelib import plots, widgets

    items = pairs[:2]
    ctx = widgets.RenderContext(names=[it["name"] for it in items], waves=[None] * 2,
                                input_mels=[it["mel"][0, 0].numpy() for it in items],
                                latents=[it["z"] for it in items], vae_mels=[it["dec"][0, 0].numpy() for it in items],
                                vae_waves=[None] * 2, vae=vae, vocoder=None)
    off = widgets.render_restorer(widgets.RestorerState("learned", 0.0, clip=1), ctx)
    assert np.array_equal(off.mel, ctx.vae_mels[1]) and off.wave is None and off.audio_html == ""
    on = widgets.render_restorer(widgets.RestorerState("learned_cond", 1.0, "music", clip=0), ctx)
    assert list(on.metrics.index) == ["VAE only", "restored"]
    assert on.params == {"strength": 1.0, "category": 1.0, "gate": 1.0}
    assert on.title == "learned_cond(strength=1, category=1, gate=1)"
    with pytest.raises(ValueError, match="out of range"):
        widgets.render_restorer(widgets.RestorerState("learned", 2.0), ctx)
    with pytest.raises(ValueError, match="unknown restorer"):
        widgets.render_restorer(widgets.RestorerState("mel_shelf", 1.0), ctx)
    fig = plots.restorer_comparison_figure([("input", ctx.input_mels[0]), ("VAE only", ctx.vae_mels[0]),
                                            ("restored", on.mel)])
    assert len(fig.axes) == 7  # 2 x 3 panels and the colour bar of the shared, clipped log-mel scale
    logs = {"a": [{"step": "1", "loss": "0.5", "heldout_lsd_hf_change": ""},
                  {"step": "2", "loss": "0.4", "heldout_lsd_hf_change": "-0.1"}]}
    assert len(plots.training_curves_figure(logs).axes) == 2


def test_crash_inside_a_checkpoint_write_keeps_the_previous_one(vae, pairs, tmp_path, monkeypatch):
    """A crash injected between writing the step-4 checkpoint and renaming it into place leaves the complete step-2
    checkpoint (weights, optimiser, RNG and counters together); the resumed run equals an uninterrupted one."""
    import os

    from vaelib.restore import train as restore_train

    ref = tmp_path / "ref"
    restore.train_restorer(vae, None, ref, opts=_opts(steps=6), channels=8, pairs=pairs, progress=False)
    real_replace = os.replace

    def crash_at_step_4(src, dst):
        done = tmp_path / "x" / "checkpoint" / restore_train.CHECKPOINT
        if str(dst) == str(done) and done.exists() and restore_train.read_checkpoint_meta(tmp_path / "x")["step"] == 2:
            raise KeyboardInterrupt  # the step-4 file is written, not yet renamed into place
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_at_step_4)
    with pytest.raises(KeyboardInterrupt):
        restore.train_restorer(vae, None, tmp_path / "x", opts=_opts(steps=6), channels=8, pairs=pairs, progress=False)
    monkeypatch.setattr(os, "replace", real_replace)
    ck = tmp_path / "x" / "checkpoint"
    assert sorted(p.name for p in ck.iterdir()) == [restore_train.CHECKPOINT]  # no temp file left behind
    assert restore_train.read_checkpoint_meta(tmp_path / "x")["step"] == 2
    out = []
    restore.train_restorer(vae, None, tmp_path / "x", opts=_opts(steps=6), channels=8, pairs=pairs, progress=False,
                           resume=True, echo=out.append)
    assert out[0].startswith("resuming at step 2 ")
    wr, wx = _weights(ref), _weights(tmp_path / "x")
    assert all(torch.equal(wr[k], wx[k]) for k in wr)


def test_resume_with_other_arguments_is_refused_in_one_line(vae, pairs, tmp_path, monkeypatch):
    folder = tmp_path / "r"
    _interrupted_run(monkeypatch, vae, pairs, folder, _opts(steps=4))
    before = _ckpt_bytes(folder)
    for kw, extra, fragment in ((dict(seed=1), {}, "seed 0 -> 1"), (dict(lr=1e-3), {}, "lr 0.002 -> 0.001"),
                                (dict(steps=6), {}, "--extend-steps"), ({}, dict(channels=16), "channels 8 -> 16"),
                                ({}, dict(kind="latent"), "kind 'mel' -> 'latent'")):
        with pytest.raises(RestorerError, match=re.escape(fragment)) as info:
            restore.train_restorer(vae, None, folder, opts=_opts(**{"steps": 4, **kw}), pairs=pairs, progress=False,
                                   resume=True, echo=lambda s: None, **{"channels": 8, **extra})
        assert "\n" not in str(info.value)
    with pytest.raises(RestorerError, match="data"):  # other training data
        restore.train_restorer(vae, None, folder, opts=_opts(steps=4), channels=8, pairs=pairs[:-1], progress=False,
                               resume=True, echo=lambda s: None)
    assert _ckpt_bytes(folder) == before  # a refused resume writes nothing
    # a longer run is accepted with extend_steps, and the card says so
    restore.train_restorer(vae, None, folder, opts=_opts(steps=6), channels=8, pairs=pairs, progress=False,
                           resume=True, echo=lambda s: None, extend_steps=True)
    cfg = json.loads((folder / "config.json").read_text())["training"]
    assert cfg["steps"] == 6 and cfg["extended_from_steps"] == 4
    assert "extended to 6" in (folder / "MODEL_CARD.md").read_text()


def _ckpt_bytes(folder):
    return {p.name: p.read_bytes() for p in (folder / "checkpoint").iterdir()}


# ------------------------------------------------------------------------------------------------------
# restorers know their VAE
# ------------------------------------------------------------------------------------------------------
def test_bundled_restorer_on_another_vae_is_refused_in_one_line(vae, tone_wave):
    """The bundled restorers record the bundled tiny VAE's fingerprint; a VAE with other weights is refused (one
    line naming both and the override) unless the override is given; the bundled VAE in bfloat16 is the same VAE."""
    from vaelib import enhance
    from vaelib.models import load_vae, vae_fingerprint
    from vaelib.pipeline import reconstruct

    bundled = load_vae("bundled", device="cpu")
    assert restore.bundled_restorer("learned").config.vae_fingerprint == vae_fingerprint(bundled)
    assert vae_fingerprint(load_vae("bundled", device="cpu", dtype="bfloat16")) == vae_fingerprint(bundled)
    assert vae_fingerprint(vae) != vae_fingerprint(bundled)
    for name in ("learned", "learned_cond"):
        want = rf"trained for VAE {vae_fingerprint(bundled)} .* not for this VAE"
        with pytest.raises(RestorerError, match=want) as info:
            reconstruct(tone_wave, vae, None, enhancers=[name], vocode=False)
        msg = str(info.value)
        assert "\n" not in msg and vae_fingerprint(vae) in msg and "allow_foreign_restorer=True" in msg
        assert not enhance.restorer_fits(name, vae) and enhance.restorer_fits(name, bundled)
    rec = reconstruct(tone_wave, vae, None, enhancers=["learned"], vocode=False, allow_foreign_restorer=True)
    assert rec["learned"].mel.shape == rec["vae"].mel.shape
    reconstruct(tone_wave, bundled, None, enhancers=["learned", "mel_shelf"], vocode=False)  # its own VAE: fine


def test_trained_restorer_records_its_vae(vae, pairs, tmp_path):
    from vaelib.models import vae_fingerprint

    folder = tmp_path / "fp"
    restore.train_restorer(vae, None, folder, opts=_opts(steps=1), channels=8, pairs=pairs, progress=False)
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["restorer"]["vae_fingerprint"] == vae_fingerprint(vae) == cfg["training"]["vae_fingerprint"]
    assert vae_fingerprint(vae) in (folder / "MODEL_CARD.md").read_text()
    model = restore.load_restorer(folder)
    restore.model.check_vae(model, vae)  # its own VAE
    from vaelib.models import load_vae

    with pytest.raises(RestorerError, match="not for this VAE"):
        restore.model.check_vae(model, load_vae("bundled", device="cpu"), "fp")


def test_two_trainings_on_one_folder_the_second_stops_naming_the_first(vae, pairs, tmp_path):
    """One writer per run folder: while a process holds ``--out`` (a real second process here), training into it
    stops in one line naming that process; once it is gone, its stale lock never blocks."""
    import time

    from conftest import lock_held_elsewhere

    folder = tmp_path / "locked"
    folder.mkdir()
    with lock_held_elsewhere(folder) as pid:
        with pytest.raises(RestorerError, match=rf"in use by process {pid}") as info:
            restore.train_restorer(vae, None, folder, opts=_opts(steps=1), channels=8, pairs=pairs, progress=False)
        assert "\n" not in str(info.value)
    time.sleep(0.1)
    restore.train_restorer(vae, None, folder, opts=_opts(steps=1), channels=8, pairs=pairs, progress=False)
    assert (folder / "model.safetensors").is_file()


def test_card_states_the_energy_term_of_the_loss(tiny_snapshot, audio_dir, tmp_path):
    """A restorer trained with --energy-weight says so in its card's loss line."""
    from vaelib.cli import main

    out = tmp_path / "energy"
    assert main(["train-restorer", "--model", str(tiny_snapshot), "--audio", str(audio_dir), "--out", str(out),
                 "--steps", "2", "--device", "cpu", "--channels", "8", "--crop-frames", "32", "--batch-size", "2",
                 "--holdout", "0.5", "--no-progress", "--energy-weight", "0.5"]) == 0
    loss = next(line for line in (out / "MODEL_CARD.md").read_text().splitlines() if line.startswith("| loss |"))
    assert "+ 0.5 × clip high-band energy |log-ratio|" in loss


def test_init_starts_from_a_restorers_weights_and_normalisation(vae, pairs, tiny_snapshot, audio_dir, tmp_path,
                                                                capsys):
    """--init: zero steps from a restorer gives back its function (weights and input normalisation); a source of
    another shape or for another VAE is refused in one line; the card names the source."""
    from vaelib.cli import main

    src = tmp_path / "src"
    restore.train_restorer(vae, None, src, opts=_opts(steps=4), channels=8, pairs=pairs, progress=False)
    a = restore.load_restorer(src)
    # the pairs' statistics differ from a smaller subset's: the normalisation must come from the source
    sub = pairs[: max(1, len(pairs) // 3)]
    out = tmp_path / "fine"
    restore.train_restorer(vae, None, out, opts=_opts(steps=1, lr=1e-12, lr_min=1e-12, init=str(src)), channels=8,
                           pairs=sub, progress=False)
    b = restore.load_restorer(out)
    assert (b.config.mel_mean, b.config.mel_std) == (a.config.mel_mean, a.config.mel_std)
    x = pairs[0]["dec"]
    torch.testing.assert_close(b.restore(x), a.restore(x), atol=1e-5, rtol=0)
    assert "| initialised from |" in (out / "MODEL_CARD.md").read_text()
    with pytest.raises(restore.RestorerError, match="--init restorer differs in channels"):
        restore.train_restorer(vae, None, tmp_path / "wide", opts=_opts(steps=1, init=str(src)), channels=16,
                               pairs=pairs, progress=False)
    with pytest.raises(restore.RestorerError, match="trained for the VAE"):  # the bundled one is for the bundled VAE
        restore.train_restorer(vae, None, tmp_path / "other", opts=_opts(steps=1, init="learned"), channels=128,
                               pairs=pairs, progress=False)
    capsys.readouterr()
    assert main(["train-restorer", "--model", str(tiny_snapshot), "--audio", str(audio_dir), "--out",
                 str(tmp_path / "cli"), "--steps", "1", "--device", "cpu", "--channels", "16", "--crop-frames", "32",
                 "--batch-size", "2", "--holdout", "0.5", "--no-progress", "--init", str(src)]) == 2
    err = capsys.readouterr().err.strip()
    assert "--init restorer differs in channels (8 vs 16)" in err and len(err.splitlines()) == 1
