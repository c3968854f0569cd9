"""Multi-scale enhancers (vaelib.multiscale): pyramid hand cases, registry, identity, exactness at level 0."""

import numpy as np
import pytest
import torch

import vaelib
from vaelib import enhance, multiscale
from vaelib.enhance import ENHANCERS, apply

NAMES = ("multiscale_frequency", "multiscale_frequency_axis", "multiscale_mel_unsharp")
BASE = {"multiscale_frequency": ("frequency", "gain"), "multiscale_frequency_axis": ("frequency_axis", "gain"),
        "multiscale_mel_unsharp": ("mel_unsharp", "amount")}


@pytest.fixture
def z():
    return torch.randn(2, 8, 25, 16, generator=torch.Generator().manual_seed(0))  # odd time: (T/4) may be odd


@pytest.fixture
def mel():
    return torch.randn(2, 1, 24, 64, generator=torch.Generator().manual_seed(1)) - 4.0


def _x(name, z, mel):
    return mel if ENHANCERS[name].stage == "mel" else z


def test_registered_with_formula_and_stage():
    assert set(NAMES) <= set(ENHANCERS)
    assert "x'  = x + sum_k  c_k * M ⊙ U_k( D(G_k) )" in multiscale.__doc__
    for name in NAMES:
        e = ENHANCERS[name]
        assert e.stage == ENHANCERS[BASE[name][0]].stage
        assert [p.name for p in e.params] == [BASE[name][1]] + [f"{BASE[name][1]}{k}" for k in (1, 2)]
        assert name in enhance.describe()


@pytest.mark.parametrize("name", NAMES)
def test_shape_input_untouched_deterministic(name, z, mel):
    x = _x(name, z, mel)
    before = x.clone()
    a, b = apply(name, x, seed=3), apply(name, x, seed=3)
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(x, before) and torch.equal(a, b)
    assert not torch.equal(a, x)  # the defaults do something


@pytest.mark.parametrize("name", NAMES)
def test_identity_everywhere_is_the_plain_input_bit_for_bit(name, z, mel):
    x = _x(name, z, mel)
    neutral = {p.name: p.neutral for p in ENHANCERS[name].params}
    out = apply(name, x, neutral)
    assert torch.equal(out, x) and out is not x


@pytest.mark.parametrize("name", NAMES)
def test_level_zero_alone_is_the_single_scale_method_exactly(name, z, mel):
    x = _x(name, z, mel)
    base, pname = BASE[name]
    v = 1.7 if pname == "gain" else 0.6
    neutral = ENHANCERS[name].params[1].neutral
    out = apply(name, x, {pname: v, f"{pname}1": neutral, f"{pname}2": neutral})
    assert torch.equal(out, apply(base, x, {pname: v}))


def test_downsample_replicates_an_odd_edge_by_hand():
    x = torch.tensor([[[[1.0, 2.0, 3.0]]]])  # (1, 1, 1, 3): padded to [[1,2,3,3],[1,2,3,3]]
    torch.testing.assert_close(multiscale.downsample(x), torch.tensor([[[[1.5, 3.0]]]]))
    up = multiscale.upsample(torch.tensor([[[[1.0, 2.0]]]]), 2, (1, 3))
    torch.testing.assert_close(up, torch.tensor([[[[1.0, 1.0, 2.0]]]]))


def test_laplacian_pyramid_of_a_constant_and_its_inverse():
    c = torch.full((1, 2, 8, 16), 3.0)
    bands = multiscale.laplacian_pyramid(c, 3)
    assert [tuple(b.shape[-2:]) for b in bands] == [(8, 16), (4, 8), (2, 4)]
    assert all(torch.equal(b, torch.zeros_like(b)) for b in bands[:-1]) and torch.equal(bands[-1], c[..., :2, :4])
    x = torch.randn(1, 8, 25, 16, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(multiscale.collapse_laplacian_pyramid(multiscale.laplacian_pyramid(x, 3)), x)


def test_multiscale_frequency_on_a_constant_latent_by_hand():
    # G_1 of a constant 1 (8×8) is a constant 1 (4×4); its zero-padded 8-neighbour Laplacian is 8 - (number of
    # in-bounds neighbours): 5 at the corners, 3 on the other border cells, 0 inside. Upsampled 2× (2×2 blocks),
    # times (gain1 - 1) = 1, added to the input.
    z = torch.ones(1, 1, 8, 8)
    lap1 = np.array([[5, 3, 3, 5], [3, 0, 0, 3], [3, 0, 0, 3], [5, 3, 3, 5]], dtype=np.float32)
    expected = 1.0 + np.kron(lap1, np.ones((2, 2), dtype=np.float32))
    out = apply("multiscale_frequency", z, gain=1.0, gain1=2.0, gain2=1.0)
    np.testing.assert_allclose(out[0, 0].numpy(), expected)
    # level 2 (2×2 of ones): every cell is a corner, 8 - 3 = 5, upsampled 4×, times (gain2 - 1) = -0.5
    out2 = apply("multiscale_frequency", z, gain=1.0, gain1=1.0, gain2=0.5)
    np.testing.assert_allclose(out2[0, 0].numpy(), np.full((8, 8), 1.0 - 2.5, dtype=np.float32))


def test_multiscale_mel_unsharp_acts_on_the_high_band_only(mel):
    out = apply("multiscale_mel_unsharp", mel, amount=0.0, amount1=0.5, amount2=0.5)
    high = enhance.mel_band_mask(64, 4000.0)
    assert torch.equal(out[..., ~high], mel[..., ~high]) and not torch.equal(out[..., high], mel[..., high])


def test_parameters_are_range_checked():
    with pytest.raises(ValueError, match="gain1=9 is out of range"):
        apply("multiscale_frequency", torch.zeros(1, 8, 4, 16), gain1=9.0)


def test_usable_in_reconstruct(tiny_snapshot):
    vae = vaelib.load_vae(str(tiny_snapshot), device="cpu")
    wave = 0.3 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000).astype(np.float32)
    spec = {"ms": ("multiscale_frequency", {"gain": 1.2, "gain1": 1.1, "gain2": 1.0}),
            "msu": ("multiscale_mel_unsharp", {"amount": 0.0, "amount1": 0.3, "amount2": 0.0})}
    rec = vaelib.reconstruct(wave, vae, enhancers=spec, vocode=False)
    z = rec.latent
    direct = vae.decode(apply("multiscale_frequency", z, spec["ms"][1]))[0, 0].numpy()
    np.testing.assert_allclose(rec["ms"].mel, direct, atol=1e-5)
    plain = torch.from_numpy(rec["vae"].mel)[None, None]
    np.testing.assert_allclose(rec["msu"].mel, apply("multiscale_mel_unsharp", plain, spec["msu"][1])[0, 0].numpy(),
                               atol=1e-6)
