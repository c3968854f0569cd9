import numpy as np
import pytest
import torch

from vaelib.audio import normalize, pad_to_multiple, wav_to_mel
from vaelib.enhance import apply
from vaelib.models import load_vae, load_vocoder
from vaelib.pipeline import parse_enhancers, reconstruct


@pytest.fixture(scope="module")
def models(tiny_snapshot):
    return load_vae(str(tiny_snapshot), device="cpu"), load_vocoder("griffinlim", device="cpu", n_iter=4)


def test_reconstruct_returns_every_stage(models, tone_wave):
    vae, voc = models
    rec = reconstruct(tone_wave, vae, voc, enhancers=["seed_frequency", "noise"], seed=5)
    assert list(rec.stages) == ["input", "mel_projection", "vae", "seed_frequency", "noise"]
    x = pad_to_multiple(normalize(tone_wave)[0])
    np.testing.assert_allclose(rec.wave, x)
    mel = wav_to_mel(x)
    np.testing.assert_allclose(rec.input_mel, mel[0, 0].numpy(), atol=1e-6)
    np.testing.assert_allclose(rec["mel_projection"].mel, rec.input_mel)  # projection = input mel → vocoder
    z = vae.encode(mel)
    torch.testing.assert_close(rec.latent, z)
    np.testing.assert_allclose(rec["vae"].mel, vae.decode(z)[0, 0].numpy(), atol=1e-4, rtol=1e-3)
    boosted = vae.decode(apply("frequency", z, gain=1.5))[0, 0].numpy()
    np.testing.assert_allclose(rec["seed_frequency"].mel, boosted, atol=1e-4, rtol=1e-3)
    noisy = vae.decode(apply("noise", z, level=0.1, seed=5))[0, 0].numpy()
    np.testing.assert_allclose(rec["noise"].mel, noisy, atol=1e-4, rtol=1e-3)
    assert rec["seed_frequency"].params == {"method": "frequency", "gain": 1.5}
    for name in ("mel_projection", "vae", "noise"):
        assert rec[name].wave.shape == x.shape
    np.testing.assert_allclose(rec["mel_projection"].wave, voc(mel)[0].numpy(), atol=1e-5)


def test_reconstruct_without_vocoder(models, tone_wave):
    rec = reconstruct(tone_wave, models[0], None, vocode=False)
    assert rec["vae"].wave is None and rec["vae"].mel.shape == rec.input_mel.shape
    with pytest.raises(ValueError, match="needs a vocoder"):
        reconstruct(tone_wave, models[0], None)


def test_parse_enhancers_forms_and_errors():
    assert parse_enhancers(["seed_contrast"]) == {"seed_contrast": ("contrast", {"factor": 1.3})}
    assert parse_enhancers({"frequency": {"gain": 2}}) == {"frequency": ("frequency", {"gain": 2.0})}
    assert parse_enhancers({"boost": ("frequency", {"gain": 2})}) == {"boost": ("frequency", {"gain": 2.0})}
    with pytest.raises(ValueError, match="unknown enhancement method"):
        parse_enhancers(["sharpen"])
    with pytest.raises(ValueError, match="clashes"):
        parse_enhancers({"vae": ("frequency", {})})
    with pytest.raises(ValueError, match="mono"):
        reconstruct(np.zeros((2, 1600)), None, None)


def test_mel_stage_enhancers_act_on_the_decoded_mel(models, tone_wave):
    from vaelib.enhance import apply as enhance_apply

    vae, voc = models
    x_before = tone_wave.copy()
    rec = reconstruct(tone_wave, vae, voc, enhancers={"mel_shelf": {"shelf_db": 6}, "frequency_axis": None,
                                                      "sharp": ("mel_unsharp", {"amount": 0})}, seed=1)
    assert np.array_equal(tone_wave, x_before)
    assert list(rec.stages) == ["input", "mel_projection", "vae", "mel_shelf", "frequency_axis", "sharp"]
    dec = torch.from_numpy(rec["vae"].mel)[None, None]
    np.testing.assert_allclose(rec["mel_shelf"].mel, enhance_apply("mel_shelf", dec, shelf_db=6)[0, 0].numpy())
    assert np.array_equal(rec["sharp"].mel, rec["vae"].mel)  # identity value: bit-exact plain VAE
    # the latent-stage one is decoded from the enhanced latent, unchanged numbers
    boosted = vae.decode(enhance_apply("frequency_axis", rec.latent, gain=1.5))[0, 0].numpy()
    np.testing.assert_allclose(rec["frequency_axis"].mel, boosted, atol=1e-4, rtol=1e-3)
    assert rec["mel_shelf"].params == {"method": "mel_shelf", "shelf_db": 6.0}
    assert rec["mel_shelf"].wave.shape == rec.wave.shape


def test_learned_restorer_through_reconstruct(tone_wave):
    from vaelib.restore import bundled_restorer

    vae = load_vae("bundled", device="cpu")
    rec = reconstruct(tone_wave, vae, None, vocode=False,
                      enhancers={"learned": ("learned", {"gate": "off"}), "off": ("learned", {"strength": 0.0}),
                                 "half": ("learned", {"strength": 0.5, "gate": "off"}), "gated": ("learned", {}),
                                 "cond": ("learned_cond", {"category": "music", "gate": "off"}),
                                 "learned_cond": ("learned_cond", {"gate": "off"})})
    assert np.array_equal(rec["off"].mel, rec["vae"].mel)  # strength 0 = plain VAE, exactly
    dec = torch.from_numpy(rec["vae"].mel)[None, None]
    expected = bundled_restorer("learned").restore(dec, 1.0)[0, 0].numpy()
    np.testing.assert_allclose(rec["learned"].mel, expected, atol=1e-5)
    assert not np.allclose(rec["learned"].mel, rec["vae"].mel, atol=1e-3)
    np.testing.assert_allclose(rec["half"].mel - rec["vae"].mel, 0.5 * (rec["learned"].mel - rec["vae"].mel),
                               atol=1e-4)
    # the default gate blends the same correction by the factor s* in [0, 1] (vaelib.restore.gate)
    s = float(bundled_restorer("learned").last_gate)
    assert 0.0 <= s <= 1.0
    np.testing.assert_allclose(rec["gated"].mel, np.maximum(rec["vae"].mel + s * (rec["learned"].mel - rec["vae"].mel),
                                                           bundled_restorer("learned").config.mel_floor), atol=1e-4)
    cond = bundled_restorer("learned_cond")
    np.testing.assert_allclose(rec["cond"].mel, cond.restore(dec, 1.0, category="music")[0, 0].numpy(), atol=1e-5)
    np.testing.assert_allclose(rec["learned_cond"].mel, cond.restore(dec, 1.0, category="auto")[0, 0].numpy(),
                               atol=1e-5)
    want = {"method": "learned_cond", "strength": 1.0, "category": 1.0, "gate": 0.0}
    assert rec["cond"].params == want


# ------------------------------------------------------------------------------------------------------
# RoundTripCache: what the report's notebooks share
# ------------------------------------------------------------------------------------------------------
def _same_encoded(a, b):
    assert np.array_equal(a.wave, b.wave) and a.gain == b.gain
    assert torch.equal(a.mel, b.mel) and torch.equal(a.latent, b.latent)
    assert list(a.decoded) == list(b.decoded)
    for k in a.decoded:
        assert torch.equal(a.decoded[k], b.decoded[k]), k


def test_cache_serves_exactly_what_it_would_compute(models, tone_wave, tmp_path):
    from vaelib.pipeline import RoundTripCache, encode_decode

    vae = models[0]
    fresh = encode_decode(tone_wave, vae)
    cache = RoundTripCache(tmp_path / "c")
    first = encode_decode(tone_wave, vae, cache=cache)  # computed and kept
    assert (cache.hits, cache.misses) == (0, 2) and len(list((tmp_path / "c").glob("*.pt"))) == 2
    other = RoundTripCache(tmp_path / "c")  # another process: a new object on the same folder
    served = encode_decode(tone_wave.copy(), vae, cache=other)
    assert (other.hits, other.misses) == (2, 0)
    _same_encoded(fresh, first)
    _same_encoded(fresh, served)
    enc_only = encode_decode(tone_wave, vae, decode=False, cache=other)
    assert other.hits == 3 and enc_only.decoded == {} and torch.equal(enc_only.latent, fresh.latent)
    rec = reconstruct(tone_wave, vae, None, vocode=False, cache=other)
    np.testing.assert_array_equal(rec["vae"].mel, reconstruct(tone_wave, vae, None, vocode=False)["vae"].mel)


def test_cache_never_serves_a_decode_batched_with_enhanced_latents(models, tone_wave, tmp_path):
    from vaelib.pipeline import RoundTripCache, encode_decode

    vae = models[0]
    cache = RoundTripCache(tmp_path)
    with_enh = encode_decode(tone_wave, vae, ["seed_frequency"], cache=cache)
    assert not list(tmp_path.glob("*.dec.pt"))  # its "vae" decode shared a decoder call: not stored
    _same_encoded(with_enh, encode_decode(tone_wave, vae, ["seed_frequency"]))
    encode_decode(tone_wave, vae, cache=cache)  # a plain one is stored ...
    again = encode_decode(tone_wave, vae, ["seed_frequency"], cache=cache)  # ... and not used for a batched one
    _same_encoded(with_enh, again)
    mel_stage = encode_decode(tone_wave, vae, ["mel_shelf"], cache=cache)  # mel-stage only: the plain decode alone
    assert torch.equal(mel_stage.decoded["vae"], encode_decode(tone_wave, vae).decoded["vae"])


def test_cache_key_follows_everything_the_result_depends_on(models, tone_wave, tmp_path, tiny_snapshot):
    from vaelib.pipeline import RoundTripCache

    vae = models[0]
    cache = RoundTripCache(tmp_path)
    cfg = vae.mel_config
    base = cache.key(tone_wave, vae, cfg, True)
    assert cache.key(tone_wave.copy(), vae, cfg, True) == base
    changed = tone_wave.copy()
    changed[100] = np.nextafter(changed[100], np.float32(1))  # one sample, one ulp
    assert cache.key(changed, vae, cfg, True) != base
    assert cache.key(tone_wave, vae, cfg, False) != base
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(threads + 1)  # another summation order
        assert cache.key(tone_wave, vae, cfg, True) != base
    finally:
        torch.set_num_threads(threads)
    other = load_vae(str(tiny_snapshot), device="cpu")
    assert cache.key(tone_wave, other, cfg, True) == base  # the same weights loaded again
    with torch.no_grad():
        p = next(other.model.parameters())
        p.view(-1)[0] = torch.nextafter(p.view(-1)[0], torch.tensor(1.0))  # one weight, one ulp
    other.model._vaelib_exact_digest = None
    assert cache.key(tone_wave, other, cfg, True) != base


def test_an_unreadable_cache_file_is_a_miss(models, tone_wave, tmp_path):
    from vaelib.pipeline import RoundTripCache, encode_decode

    vae = models[0]
    cache = RoundTripCache(tmp_path)
    encode_decode(tone_wave, vae, cache=cache)
    for f in tmp_path.glob("*.pt"):
        f.write_bytes(b"truncated")
    again = RoundTripCache(tmp_path)
    _same_encoded(encode_decode(tone_wave, vae, cache=again), encode_decode(tone_wave, vae))
    assert again.hits == 0 and again.misses == 2
