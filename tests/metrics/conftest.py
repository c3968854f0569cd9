"""Fixtures of the metrics tests: a tiny random CLAP model written with ``save_pretrained``."""

import pytest


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
