import json

import numpy as np
import pytest
import torch

import vaelib
from vaelib.assets import bundled_model_dir
from vaelib.tiny_vae import (
    CropSampler,
    TinyVAEConfig,
    TrainConfig,
    evaluate,
    latent_roughness,
    make_tiny_vae,
    naive_codec,
    set_scaling_factor,
    train,
)

SMALL = TinyVAEConfig(block_out_channels=(4, 8, 8), norm_num_groups=4)


def _waves():
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    return [0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size),
            0.2 * np.sin(2 * np.pi * 1500 * t) * (t < 0.5)]


def test_training_loss_falls(tmp_path):
    model = make_tiny_vae(SMALL, seed=0)
    sampler = CropSampler(_waves(), crop_frames=16, seed=0)
    cfg = TrainConfig(steps=40, batch_size=4, crop_frames=16, lr=3e-3, log_every=5, threads=1)
    rows = train(model, sampler, cfg, log_path=tmp_path / "log.csv", progress=False)
    assert rows[-1]["l1"] < 0.6 * rows[0]["l1"]
    lines = (tmp_path / "log.csv").read_text().splitlines()
    assert lines[0].startswith("step,loss,l1,kl") and len(lines) == len(rows) + 1


def test_crop_sampler_is_seeded_and_shaped():
    a = CropSampler(_waves(), crop_frames=16, seed=3).batch(4)
    b = CropSampler(_waves(), crop_frames=16, seed=3).batch(4)
    assert a.shape == (4, 1, 16, 64)
    torch.testing.assert_close(a, b)


def test_scaling_factor_is_inverse_latent_std():
    model = make_tiny_vae(SMALL, seed=0)
    sampler = CropSampler(_waves(), crop_frames=16, seed=0)
    sf = set_scaling_factor(model, sampler, n=8)
    assert model.config.scaling_factor == pytest.approx(sf)
    with torch.no_grad():
        z = model.encode(CropSampler(_waves(), crop_frames=16, seed=0).batch(8)).latent_dist.mode()
    assert (z * sf).std().item() == pytest.approx(1.0, rel=1e-4)


def test_naive_codec_pools_and_upsamples():
    const = torch.full((1, 1, 8, 64), -3.0)
    torch.testing.assert_close(naive_codec(const), const)
    ramp = torch.arange(8.0).repeat_interleave(4)[None, None, :, None].expand(1, 1, 32, 64)
    out = naive_codec(ramp)
    assert out.shape == ramp.shape
    assert out[0, 0, 2:-2, 0].sub(ramp[0, 0, 2:-2, 0]).abs().max() <= 0.5  # piecewise-constant → smooth


bundled = pytest.mark.skipif(not (bundled_model_dir() / "vae" / "config.json").exists(),
                             reason="bundled weights not built (python scripts/train_tiny_vae.py)")


@bundled
def test_bundled_weights_load_offline_in_hf_layout():
    vae = vaelib.load_vae("bundled", device="cpu")
    assert vae.bundled and vae.latent_channels == 8
    files = sorted((bundled_model_dir() / "vae").iterdir())
    assert [p.name for p in files] == ["config.json", "diffusion_pytorch_model.safetensors"]
    assert sum(p.stat().st_size for p in files) < 10e6
    assert json.loads((bundled_model_dir() / "vae" / "config.json").read_text())["scaling_factor"] != 1.0
    mel = vaelib.wav_to_mel(np.zeros(6400, np.float32) + 0.01 * np.random.default_rng(0).standard_normal(6400))
    assert vae.encode(mel).shape == (1, 8, 10, 16)
    choice = vaelib.resolve_models("auto", "auto")  # conftest isolates the HF cache: nothing real is there
    assert choice.bundled and choice.vocoder == "griffinlim"


@bundled
def test_bundled_model_beats_naive_codec_on_one_eval_clip():
    vae = vaelib.load_vae("bundled", device="cpu")
    res = evaluate(vae, vaelib.find_audio("demo")[:1])
    m = res["mean"]
    assert m["mel_l1_vae"] < m["mel_l1_naive"]
    for band in ("below_4k", "above_4k"):
        assert m[f"err_vs_naive_{band}"] == pytest.approx(m[f"mel_err_db_{band}"] / m[f"naive_err_db_{band}"])


@bundled
def test_committed_eval_numbers_are_those_of_the_committed_weights():
    """eval.json and the model card must not go stale when the weights change (rerun scripts/eval_tiny_vae.py)."""
    saved = json.loads((bundled_model_dir() / "eval.json").read_text())
    first = vaelib.find_audio("demo", demo_split="eval")[0]
    row = evaluate(vaelib.load_vae("bundled", device="cpu"), [first])["per_clip"][0]
    (ref,) = [r for r in saved["per_clip"] if r["clip"] == first.stem]
    for key in ("mel_l1_vae", "mel_l1_naive", "mel_err_db_below_4k", "mel_err_db_above_4k"):
        assert row[key] == pytest.approx(ref[key], rel=1e-3, abs=1e-4), key
    card = (bundled_model_dir() / "MODEL_CARD.md").read_text()
    m = saved["mean"]
    assert f"**{m['mel_l1_vae']:.3f}**" in card and f"**{m['mel_err_db_above_4k']:.2f}**" in card


def test_latent_noise_training_is_seeded_and_changes_the_run():
    """latent_noise > 0 feeds the decoder z + σ·std(z)·ε: the same seed gives the same weights, and the run
    differs from the noise-free one (the noise is drawn, not ignored)."""
    def run(noise):
        model = make_tiny_vae(SMALL, seed=0)
        cfg = TrainConfig(steps=3, batch_size=2, crop_frames=16, log_every=1, threads=1, latent_noise=noise)
        train(model, CropSampler(_waves(), crop_frames=16, seed=0), cfg, progress=False)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    a, b, c = run(1.0), run(1.0), run(0.0)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_latent_roughness_hand_cases():
    """R = mean(L(z)²) / mean(z²) with the 8-neighbour Laplacian, zero padding: an interior impulse gives
    8² + 8·1² = 72; R is scale-free and per channel; a block of ones matches the stencil written out; white
    noise gives ≈ 72 and a smooth map that vanishes at the border far less."""
    z = torch.zeros(1, 1, 5, 5)
    z[0, 0, 2, 2] = 1.0
    assert float(latent_roughness(z)) == pytest.approx(72.0)
    assert float(latent_roughness(3.0 * z)) == pytest.approx(72.0)
    two = torch.cat([z, 2.0 * z], dim=1)  # channels are filtered separately: same ratio
    assert float(latent_roughness(two)) == pytest.approx(72.0)
    # 3x3 ones inside a 5x5 zero map: centre L = 0, edge centres 8 - 5 = 3, corners 8 - 3 = 5; the whole map
    # checked against the stencil written out by hand
    ones = torch.zeros(1, 1, 5, 5)
    ones[0, 0, 1:4, 1:4] = 1.0
    padded = torch.nn.functional.pad(ones[0, 0], (1, 1, 1, 1))
    lap = torch.zeros(5, 5)
    for i in range(5):
        for j in range(5):
            lap[i, j] = 9 * padded[i + 1, j + 1] - padded[i:i + 3, j:j + 3].sum()
    assert lap[2, 2] == 0 and lap[1, 2] == 3 and lap[1, 1] == 5
    assert float(latent_roughness(ones)) == pytest.approx(float(lap.pow(2).sum() / 9.0))
    g = torch.Generator().manual_seed(0)
    white = torch.randn(1, 8, 64, 64, generator=g)
    t = torch.linspace(0, 1, 64)
    smooth = (torch.sin(torch.pi * t)[:, None] * torch.sin(torch.pi * t)[None, :]).expand(1, 8, 64, 64)
    assert float(latent_roughness(white)) == pytest.approx(72.0, rel=0.05)
    assert float(latent_roughness(smooth.contiguous())) < 0.5


def test_smoothness_term_is_logged_and_lowers_roughness():
    """smooth_weight > 0 adds w·R(mean latent) to the loss: the log carries ``roughness`` and, from the same
    seed, the penalised run ends with a smoother latent than the unpenalised one."""
    def run(w):
        model = make_tiny_vae(SMALL, seed=0)
        cfg = TrainConfig(steps=30, batch_size=4, crop_frames=16, lr=3e-3, log_every=5, threads=1, smooth_weight=w)
        rows = train(model, CropSampler(_waves(), crop_frames=16, seed=0), cfg, progress=False)
        return rows[-1]["roughness"]

    assert run(1.0) < 0.5 * run(0.0)


def test_latent_sensitivity_measures_the_seed_settings(tmp_path):
    """One clip through a small VAE: every setting gets its keys; a zero white perturbation changes nothing
    (gain 0, same peak as the plain decode); the energy ratio is averaged geometrically."""
    import soundfile as sf

    from vaelib.models import LatentVAE
    from vaelib.tiny_vae import SEED_SETTINGS, latent_sensitivity

    path = tmp_path / "tone.wav"
    sf.write(path, _waves()[0].astype(np.float32), 16000)
    vae = LatentVAE(make_tiny_vae(SMALL, seed=0).eval(), source="small")
    res = latent_sensitivity(vae, [path, path], white=0.0)
    row = res["per_clip"][0]
    for name in (*SEED_SETTINGS, "white"):
        for key in ("gain", "peak_excess", "floor_deficit", "ber_high"):
            assert np.isfinite(row[f"{name}_{key}"])
    assert row["white_gain"] == 0.0
    base = latent_sensitivity(vae, [path], settings=())["per_clip"][0]
    assert set(base) == {"clip", "white_gain", "white_peak_excess", "white_floor_deficit", "white_ber_high"}
    assert res["mean"]["seed_frequency_ber_high"] == pytest.approx(row["seed_frequency_ber_high"])
