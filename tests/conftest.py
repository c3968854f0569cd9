"""Shared fixtures: tiny models written in the real AudioLDM2 layout, and test signals.

Tests never touch the network: the session sets ``HF_HUB_OFFLINE=1`` and points the HF cache at a temp dir.
"""

import json
import os

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

SR = 16000


def write_tiny_snapshot(root, with_vocoder=True, seed=0, safetensors=True):
    """Write a tiny random AutoencoderKL (and SpeechT5HifiGan) under ``root`` in the AudioLDM2 repo layout."""
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    root.mkdir(parents=True, exist_ok=True)
    vae = AutoencoderKL(
        in_channels=1, out_channels=1, latent_channels=8,
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(8, 16, 16), layers_per_block=1, norm_num_groups=4, sample_size=64,
        scaling_factor=0.5,
    )
    vae.save_pretrained(root / "vae", safe_serialization=safetensors)
    index = {"_class_name": "AudioLDM2Pipeline", "_diffusers_version": "0.30.0",
             "vae": ["diffusers", "AutoencoderKL"]}
    if with_vocoder:
        from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

        cfg = SpeechT5HifiGanConfig(
            model_in_dim=64, sampling_rate=SR, upsample_initial_channel=32, upsample_rates=[5, 4, 2, 2, 2],
            upsample_kernel_sizes=[16, 16, 8, 4, 4], resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1]],
            normalize_before=False,
        )
        SpeechT5HifiGan(cfg).save_pretrained(root / "vocoder", safe_serialization=safetensors)
        index["vocoder"] = ["transformers", "SpeechT5HifiGan"]
    (root / "model_index.json").write_text(json.dumps(index))
    return root


@pytest.fixture(scope="session")
def tiny_snapshot(tmp_path_factory):
    """Path of a tiny AudioLDM2-layout snapshot (``model_index.json``, ``vae/``, ``vocoder/``)."""
    return write_tiny_snapshot(tmp_path_factory.mktemp("snapshot") / "audioldm2-tiny")


@pytest.fixture(autouse=True)
def _isolated_hf_cache(tmp_path_factory, monkeypatch):
    """Point the HF cache at an empty temp dir so the user's cache never leaks into tests."""
    cache = tmp_path_factory.getbasetemp() / "hf_cache_empty"
    cache.mkdir(exist_ok=True)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("VAELIB_MODEL", raising=False)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def tone_wave():
    """1.28 s: 440 Hz + 3 kHz + 6 kHz tones and a little seeded noise, at 16 kHz."""
    t = np.arange(int(1.28 * SR)) / SR
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 3000 * t) + 0.05 * np.sin(2 * np.pi * 6000 * t)
    x += 0.01 * np.random.default_rng(1).standard_normal(t.size)
    return x.astype(np.float32)


# tiny random CLAP model (tests/metrics: embedding distances, eval --metrics embedding)

def write_tiny_clap(root, seed=0):
    """Write a tiny random ``ClapModel`` (+ its feature extractor) under ``root``, safetensors weights."""
    import torch
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel

    audio = dict(hidden_size=16, patch_embeds_hidden_size=8, depths=[1, 1], num_attention_heads=[2, 2],
                 window_size=8, spec_size=256, num_mel_bins=64, patch_size=4, patch_stride=[4, 4],
                 projection_dim=8, enable_fusion=False, intermediate_size=16)
    text = dict(vocab_size=99, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
                projection_dim=8, max_position_embeddings=64)
    torch.manual_seed(seed)
    model = ClapModel(ClapConfig(text_config=text, audio_config=audio, projection_dim=8))
    model.save_pretrained(root, safe_serialization=True)
    ClapFeatureExtractor().save_pretrained(root)
    return root


@pytest.fixture(scope="session")
def tiny_clap_dir(tmp_path_factory):
    """A folder holding a tiny random CLAP model (``config.json``, ``model.safetensors``, preprocessor config)."""
    return write_tiny_clap(tmp_path_factory.mktemp("clap") / "tiny-clap")
