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


@pytest.mark.parametrize("method", list(ENHANCERS))
def test_shape_dtype_and_input_untouched(z, method):
    before = z.clone()
    out = apply(method, z, seed=1)
    assert out.shape == z.shape and out.dtype == z.dtype and out.device == z.device
    torch.testing.assert_close(z, before)


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
