"""The consistency gate (vaelib.restore.gate) and the high-band energy term of the restorer loss."""

import numpy as np
import pytest
import torch

from vaelib import restore
from vaelib.restore import RestorerError
from vaelib.restore.gate import consistency_factor, gated, round_trip

SR = 16000


@pytest.fixture(scope="module")
def bundled_vae():
    from vaelib.models import load_vae

    return load_vae("bundled", device="cpu")


@pytest.fixture(scope="module")
def clip(bundled_vae):
    """Input log-mel and plain decode of a seeded 2 s harmonic tone with a noisy high band."""
    from vaelib.pipeline import encode_decode

    rng = np.random.default_rng(3)
    t = np.arange(2 * SR) / SR
    x = 0.3 * np.sin(2 * np.pi * 330 * t) + 0.02 * rng.standard_normal(t.size)
    enc = encode_decode(x.astype(np.float32), bundled_vae)
    return enc.mel.float(), enc.decoded["vae"].float()


def test_consistency_factor_on_hand_made_cases():
    r = torch.zeros(2, 1, 3, 4)
    mask = torch.tensor([False, False, True, True])
    b = torch.ones(2, 1, 3, 4)
    a = torch.stack([-0.3 * b[0], 0.5 * b[1]])        # item 0: a = -0.3 b -> s* = 0.3; item 1: a = +0.5 b -> 0
    rt_r = r + a
    s = consistency_factor(r, rt_r, rt_r + b, mask)
    torch.testing.assert_close(s, torch.tensor([0.3, 0.0]))
    s = consistency_factor(r, r - 2 * b, r - b, mask)  # a = -2 b: s* = 2, clipped to 1
    assert s.tolist() == [1.0, 1.0]
    assert consistency_factor(r, r + 1, r + 1, mask).tolist() == [0.0, 0.0]  # b = 0: no evidence -> 0
    # only the masked bins count: a disagreement below 4 kHz does not move s*
    a2 = a.clone()
    a2[..., :2] = 100.0
    torch.testing.assert_close(consistency_factor(r, r + a2, r + a2 + b, mask), torch.tensor([0.3, 0.0]))


def test_the_true_input_is_fully_consistent(bundled_vae, clip):
    """Proposing the input itself (f = x - r) gives s* = 1: R(x) = r by definition of r, so b = -a exactly."""
    x, r = clip
    mask = restore.bundled_restorer("learned").hf_mask_tensor()
    out, s = gated(bundled_vae, r, x, mask)
    assert s.item() == pytest.approx(1.0, abs=1e-5)
    torch.testing.assert_close(out, x, atol=1e-4, rtol=0)


def test_a_wrong_correction_is_scaled_down_and_none_is_identity(bundled_vae, clip):
    x, r = clip
    mask = restore.bundled_restorer("learned").hf_mask_tensor()
    lifted = r.clone()
    lifted[..., mask] += 3.0                       # +3 nat over the whole high band: not what the input was
    out, s = gated(bundled_vae, r, lifted, mask)
    assert s.item() < 0.5
    err = lambda m: float((m - x)[..., mask].pow(2).mean())  # noqa: E731
    assert err(out) < err(lifted)
    same, s0 = gated(bundled_vae, r, r.clone(), mask)   # no correction: r exactly
    assert s0.item() == 0.0 and torch.equal(same, r)


def test_round_trip_takes_a_diffusers_autoencoder_too(bundled_vae, clip):
    _, r = clip
    torch.testing.assert_close(round_trip(bundled_vae.model, r), round_trip(bundled_vae, r), atol=1e-5, rtol=0)


def test_enhancer_gate_parameter(bundled_vae, clip):
    """``gate`` defaults to consistency for the bundled restorers; off applies the correction as is; the gated
    output is r + s*·(ungated - r) with the factor the restorer reports."""
    from vaelib import enhance

    _, r = clip
    enhance.check_restorers(["learned"], bundled_vae)   # binds the VAE, as every entry point does
    model = restore.bundled_restorer("learned")
    assert enhance.validate_params("learned", {})["gate"] == 1.0
    off = enhance.apply("learned", r, {"gate": "off"})
    on = enhance.apply("learned", r, {})
    s = float(model.last_gate)
    assert 0.0 <= s <= 1.0
    expect = (r + s * (off - r)).clamp(min=model.config.mel_floor)
    torch.testing.assert_close(on, expect, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="gate"):
        enhance.validate_params("learned", {"gate": "sometimes"})


def test_gate_without_its_vae_says_how_in_one_line():
    cfg = restore.RestorerConfig(vae_fingerprint="0123456789abcdef")
    model = restore.Restorer(cfg)
    with torch.no_grad():
        next(model.parameters()).add_(0.1)
    with pytest.raises(RestorerError, match="gate='off'") as info:
        model.run(torch.zeros(1, 1, 8, 64) - 5.0, 1.0, gate=True)
    assert "\n" not in str(info.value)


def test_energy_term_of_the_loss_on_a_hand_made_case():
    """est = ref + c on the high band only: L1 = c·(#HF/#bins) (hf_weight 1), energy term = c exactly."""
    ref = torch.randn(2, 1, 5, 8, generator=torch.Generator().manual_seed(0))
    hf = torch.tensor([False] * 6 + [True] * 2)
    c = 0.7
    est = ref.clone()
    est[..., hf] += c
    got = restore.restorer_loss(est, ref, hf, hf_weight=1.0, lsd_weight=0.0, energy_weight=1.0)
    assert got.item() == pytest.approx(c * 2 / 8 + c, rel=1e-6)
    assert restore.restorer_loss(est, ref, hf, hf_weight=1.0, lsd_weight=0.0).item() == pytest.approx(c * 2 / 8)


def test_a_withheld_correction_keeps_the_mel_floor(bundled_vae, clip):
    """s* = 0 withholds the learned correction, not the floor: r clamped at the floor, which cannot move any bin
    away from an input that is itself above the floor (every front-end log-mel is)."""
    x, r = clip
    mask = restore.bundled_restorer("learned").hf_mask_tensor()
    floor = float(x.min()) + 0.5                  # a floor some decoded bins fall under
    low = r.clone()
    low[..., 0, :] = floor - 2.0
    out, s = gated(bundled_vae, low, low.clone(), mask, floor=floor)
    assert s.item() == 0.0
    assert torch.equal(out, low.clamp(min=floor)) and not torch.equal(out, low)
    ref = x.clamp(min=floor)                       # an input above the floor
    assert bool(((out - ref).abs() <= (low - ref).abs()).all())
