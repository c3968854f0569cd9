import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vaelib import enhance
from vaelib.enhance import ENHANCERS, PRESETS, apply


@pytest.fixture
def z():
    return torch.randn(2, 8, 25, 16, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("method,params", [("frequency", {"gain": 1.0}), ("noise", {"level": 0.0}),
                                           ("contrast", {"factor": 1.0}),
                                           ("hybrid", {"gain": 1.0, "level": 0.0, "factor": 1.0}),
                                           ("none", {})])
def test_identity_at_neutral_value(z, method, params):
    out = apply(method, z, params)
    torch.testing.assert_close(out, z)
    assert out is not z


@pytest.fixture
def mel():
    """A decoded-log-mel-like input (B, 1, T, 64)."""
    return torch.randn(2, 1, 24, 64, generator=torch.Generator().manual_seed(1)) - 4.0


def _input_for(method, z, mel):
    return mel if ENHANCERS[method].stage == "mel" else z


@pytest.mark.parametrize("method", list(ENHANCERS))
def test_shape_dtype_and_input_untouched(z, mel, method):
    x = _input_for(method, z, mel)
    before = x.clone()
    out = apply(method, x, seed=1)
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert torch.equal(x, before)


@pytest.mark.parametrize("method", list(ENHANCERS))
def test_every_parameter_is_identity_at_its_neutral_value(z, mel, method):
    x = _input_for(method, z, mel)
    neutral = {p.name: p.neutral for p in ENHANCERS[method].params if not p.choices}
    out = apply(method, x, neutral, seed=1)
    assert out is not x
    if method in ("contrast", "hybrid"):  # mu + (z - mu) * 1 rounds; the seed's formula is kept as it is
        torch.testing.assert_close(out, x)
    else:
        assert torch.equal(out, x)  # bit-exact


def test_stages_are_declared():
    assert {e.stage for e in ENHANCERS.values()} == set(enhance.STAGES)
    assert [m for m, e in ENHANCERS.items() if e.stage == "mel" and not m.startswith(("adaptive_", "multiscale_"))
            ] == ["mel_shelf", "mel_unsharp", "learned", "learned_cond"]


def test_frequency_axis_is_the_laplacian_along_frequency_only(z):
    # hand-made: one channel, a single 1 at frequency index 2 -> L_f = [0, -1, 2, -1, 0]
    x = torch.zeros(1, 8, 3, 5)
    x[0, 0, 1, 2] = 1.0
    out = apply("frequency_axis", x, gain=2.0)
    torch.testing.assert_close(out[0, 0, 1], torch.tensor([0.0, -1.0, 3.0, -1.0, 0.0]))
    assert out[0, 0, 0].eq(0).all() and out[0, 0, 2].eq(0).all()  # no mixing along time
    # independent computation on a random latent, zero padding at the frequency edges
    lap = 2 * z - F.pad(z, (1, 0))[..., :-1] - F.pad(z, (0, 1))[..., 1:]
    torch.testing.assert_close(apply("frequency_axis", z, gain=1.5), z + 0.5 * lap)


def test_mel_shelf_formula():
    from vaelib.audio import MelConfig

    x = torch.zeros(1, 1, 4, 64)
    out = apply("mel_shelf", x, shelf_db=20.0)
    high = torch.from_numpy(MelConfig.audioldm2().band_mask(4000.0, 1e9))
    assert 10 <= int(high.sum()) <= 20  # 64 Slaney bins: the top ones are centred at or above 4 kHz
    # +20 dB of magnitude = ×10: exp(L') = 10 · exp(L) on the high bins, unchanged below
    torch.testing.assert_close(torch.exp(out[..., high]), torch.full_like(out[..., high], 10.0))
    assert out[..., ~high].eq(0).all()
    torch.testing.assert_close(apply("mel_shelf", x, shelf_db=-6.0)[..., high],
                               torch.full_like(out[..., high], -6.0 * math.log(10) / 20))


def test_mel_unsharp_formula():
    high = enhance.mel_band_mask(64, 4000.0)
    m = int(torch.nonzero(high)[3])  # an interior high-band bin
    x = torch.zeros(1, 1, 5, 64)
    x[0, 0, 2, m] = 9.0
    out = apply("mel_unsharp", x, amount=0.5)
    # box3x3 mean at the spike = 1, at its 8 neighbours = 1: L + a·(L − box)
    assert out[0, 0, 2, m].item() == pytest.approx(9 + 0.5 * 8)
    assert out[0, 0, 1, m].item() == pytest.approx(-0.5) and out[0, 0, 2, m + 1].item() == pytest.approx(-0.5)
    # a constant log-mel is unchanged (edge replication), and low bins are never touched
    const = torch.full((1, 1, 6, 64), -3.0)
    assert torch.equal(apply("mel_unsharp", const, amount=2.0), const)
    noisy = torch.randn(1, 1, 10, 64, generator=torch.Generator().manual_seed(2))
    assert torch.equal(apply("mel_unsharp", noisy, amount=1.0)[..., ~high], noisy[..., ~high])


def test_new_parameter_ranges_and_choices(mel, z):
    with pytest.raises(ValueError, match=r"shelf_db=30 is out of range; accepted: \[-24, 24\]"):
        apply("mel_shelf", mel, shelf_db=30)
    with pytest.raises(ValueError, match=r"out of range; accepted: \[0, 4\]"):
        apply("mel_unsharp", mel, amount=-1)
    with pytest.raises(ValueError, match=r"strength=1.5 is out of range; accepted: \[0, 1\]"):
        apply("learned", mel, strength=1.5)
    with pytest.raises(ValueError, match="accepted: auto, speech, music, percussion, other"):
        enhance.validate_params("learned_cond", {"category": "noise"})
    with pytest.raises(ValueError, match="must be one of"):
        enhance.validate_params("learned_cond", {"category": 0.5})
    assert enhance.validate_params("learned_cond", {"category": "music"}) == {"strength": 1.0, "category": 1.0,
                                                                                "gate": 1.0}
    assert enhance.validate_params("learned_cond", {})["category"] == -1.0  # auto
    with pytest.raises(ValueError, match="acts on the log-mel"):
        apply("mel_shelf", z)
    assert enhance.enhancer_params("mel_shelf", gain=2.0, shelf_db=6) == {"shelf_db": 6.0}
    assert enhance.enhancer_params("frequency_axis", gain=2.0) == {"gain": 2.0}
    assert "[mel]" in enhance.describe() and "speech=0" in enhance.describe()


def test_frequency_equals_independent_laplacian_conv(z):
    kernel = torch.tensor([[-1.0, -1, -1], [-1, 8, -1], [-1, -1, -1]])
    lap = torch.cat([F.conv2d(z[:, c:c + 1], kernel[None, None], padding=1) for c in range(z.shape[1])], dim=1)
    torch.testing.assert_close(apply("frequency", z, gain=1.5), z + 0.5 * lap)
    # a constant latent has zero Laplacian away from the zero-padded border
    const = torch.ones(1, 8, 6, 6)
    assert apply("frequency", const, gain=3.0)[..., 1:-1, 1:-1].eq(1).all()


def test_noise_seeded_and_scaled(z):
    a, b = apply("noise", z, level=0.1, seed=7), apply("noise", z, level=0.1, seed=7)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, apply("noise", z, level=0.1, seed=8))
    # the added noise scales linearly with level
    d1, d2 = apply("noise", z, level=0.1, seed=7) - z, apply("noise", z, level=0.2, seed=7) - z
    torch.testing.assert_close(d2, 2 * d1)
    # std floor 0.1: on a near-constant latent the noise is level * 0.1 * box(randn)
    flat = torch.zeros(1, 8, 20, 16)
    n = apply("noise", flat, level=1.0, seed=0)
    assert 0.01 < n.std().item() < 0.1


def test_contrast_keeps_channel_means(z):
    out = apply("contrast", z, factor=1.3)
    torch.testing.assert_close(out.mean(dim=(2, 3)), z.mean(dim=(2, 3)), atol=1e-5, rtol=0)
    centred = z - z.mean(dim=(2, 3), keepdim=True)
    torch.testing.assert_close(out - z.mean(dim=(2, 3), keepdim=True), 1.3 * centred)


def test_hybrid_is_the_seed_composition(z):
    expected = apply("contrast", apply("noise", apply("frequency", z, gain=1.4), level=0.04, seed=3), factor=1.2)
    method, params = PRESETS["seed_hybrid"]
    torch.testing.assert_close(apply(method, z, params, seed=3), expected)


def test_presets_are_the_seed_settings():
    assert PRESETS["seed_frequency"] == ("frequency", {"gain": 1.5})
    assert PRESETS["seed_noise"] == ("noise", {"level": 0.1})
    assert PRESETS["seed_contrast"] == ("contrast", {"factor": 1.3})
    assert PRESETS["seed_hybrid"] == ("hybrid", {"gain": 1.4, "level": 0.04, "factor": 1.2})


def test_errors_are_one_line_and_list_what_is_accepted(z):
    with pytest.raises(ValueError, match="accepted: none, frequency, noise, contrast, hybrid"):
        apply("sharpen", z)
    with pytest.raises(ValueError, match=r"out of range; accepted: \[0, 4\]"):
        apply("frequency", z, gain=9)
    with pytest.raises(ValueError, match="must be a number"):
        apply("frequency", z, gain="abc")
    with pytest.raises(ValueError, match="no parameter level"):
        apply("contrast", z, level=0.1)
    with pytest.raises(ValueError, match="4-D"):
        apply("frequency", z[0])
    assert "frequency" in enhance.describe()


@pytest.fixture(scope="module")
def vae():
    from vaelib.models import load_vae

    return load_vae("bundled", device="cpu")


# ------------------------------------------------------------------------------------------------------
# a parameter is validated once per call path (parsed specs go down, nothing below re-validates)
# ------------------------------------------------------------------------------------------------------
def _count_validations(monkeypatch):
    calls = []
    real = enhance.validate_params

    def counting(method, params=None):
        calls.append(method)
        return real(method, params)

    monkeypatch.setattr(enhance, "validate_params", counting)
    return calls


def test_reconstruct_validates_each_enhancer_once(monkeypatch, vae, tone_wave):
    from vaelib.pipeline import reconstruct

    calls = _count_validations(monkeypatch)
    rec = reconstruct(tone_wave, vae, None, enhancers={"learned": {"strength": 0.5}, "seed_frequency": None},
                      vocode=False)
    assert sorted(calls) == ["frequency", "learned"]
    assert rec["learned"].params == {"method": "learned", "strength": 0.5, "gate": 1.0}
    spec = enhance.parse({"l": ("learned", {"strength": 0.5})})
    calls.clear()
    assert enhance.parse(spec) == spec and calls == []  # parsed specs pass through untouched
    enhance.apply(spec["l"], torch.zeros(1, 1, 8, 64))
    assert calls == []
    with pytest.raises(ValueError, match="carries its parameters"):
        enhance.apply(spec["l"], torch.zeros(1, 1, 8, 64), strength=1.0)


def test_windowed_round_trip_validates_once_not_per_window(monkeypatch, vae):
    from vaelib.evaluate import parse_enhancer_spec
    from vaelib.longaudio import RoundTrip, Windowing

    calls = _count_validations(monkeypatch)
    specs = parse_enhancer_spec("learned:strength=0.5")  # the eval entry point
    assert calls == ["learned"]
    rt = RoundTrip(vae, None, specs, windowing=Windowing(window=64, overlap=16, fade=8))
    x = np.random.default_rng(0).standard_normal(160 * 300).astype(np.float32) * 0.1
    rt.push(x)
    rt.flush()
    assert rt.n_windows >= 3 and calls == ["learned"]
