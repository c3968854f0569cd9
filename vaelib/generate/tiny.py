"""Tiny random diffusers pipelines built offline from config objects, the way diffusers' own pipeline tests do.

For the tests, the benchmark (``benchmarks/bench_generate.py``) and trying :func:`vaelib.attach` without
downloading anything: every component is a real diffusers / transformers class with random weights, except the
VAE, which is vaelib's bundled tiny VAE by default (so the bundled restorers accept it). Tokenizers are built in
memory from a small word-level vocabulary (any word outside it becomes ``<unk>``), so no tokenizer is fetched.
Nothing here is meant to sound like anything: it is the real code path at toy size.

``size="audioldm2"`` gives AudioLDM2's real UNet / VAE / vocoder widths (random weights) for timing on a GPU.
"""

from __future__ import annotations

import torch

__all__ = ["tiny_audioldm2", "tiny_audioldm", "tiny_musicldm", "tiny_vae", "tiny_vocoder", "WORDS"]

#: The word vocabulary of the tiny tokenizers (lower case; anything else is ``<unk>``).
WORDS = ("a", "dog", "barks", "the", "hammer", "hits", "wooden", "surface", "rain", "on", "roof", "piano", "music",
         "bird", "sings", "loud", "soft", "and", "of", "in")


def tiny_vae(source: str = "bundled", seed: int = 0):
    """``AutoencoderKL``: the bundled tiny VAE (``"bundled"``), a random one of the same config (``"random"``:
    other weights, so a bundled restorer refuses it), or a random one with AudioLDM2's VAE config
    (``"audioldm2"``, 128/256/512 channels, for timing)."""
    from diffusers import AutoencoderKL

    from ..assets import bundled_model_dir

    folder = bundled_model_dir()
    if source == "audioldm2":
        torch.manual_seed(seed)
        return AutoencoderKL(in_channels=1, out_channels=1, latent_channels=8,
                             down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
                             block_out_channels=(128, 256, 512), layers_per_block=2, norm_num_groups=32,
                             sample_size=1024, scaling_factor=0.4110932946205139).eval()
    if source == "bundled":
        return AutoencoderKL.from_pretrained(str(folder), subfolder="vae", use_safetensors=True,
                                             local_files_only=True).eval()
    if source != "random":
        raise ValueError(f"tiny_vae source must be 'bundled', 'random' or 'audioldm2', got {source!r}")
    torch.manual_seed(seed)
    return AutoencoderKL.from_config(AutoencoderKL.load_config(str(folder), subfolder="vae")).eval()


def tiny_vocoder(seed: int = 0, size: str = "tiny"):
    """``SpeechT5HifiGan`` with 64 mel bins and hop 160 at 16 kHz (AudioLDM2's front end); ``size="audioldm2"``:
    AudioLDM2's real widths."""
    from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

    torch.manual_seed(seed)
    if size == "audioldm2":
        cfg = SpeechT5HifiGanConfig(model_in_dim=64, sampling_rate=16000, upsample_initial_channel=1024,
                                    upsample_rates=[5, 4, 2, 2, 2], upsample_kernel_sizes=[16, 16, 8, 4, 4],
                                    resblock_kernel_sizes=[3, 7, 11],
                                    resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5], [1, 3, 5]], normalize_before=False)
    else:
        cfg = SpeechT5HifiGanConfig(model_in_dim=64, sampling_rate=16000, upsample_initial_channel=32,
                                    upsample_rates=[5, 4, 2, 2, 2], upsample_kernel_sizes=[16, 16, 8, 4, 4],
                                    resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1]], normalize_before=False)
    return SpeechT5HifiGan(cfg).eval()


def _roberta_tokenizer(max_length: int = 16):
    from transformers import RobertaTokenizer

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    vocab = {tok: i for i, tok in enumerate(specials)}
    letters = sorted({c for w in WORDS for c in w} | {"Ġ"})
    for c in letters:
        vocab.setdefault(c, len(vocab))
    merges = []
    for w in WORDS:  # merge each word (with and without the leading-space marker) letter by letter
        for word in (w, "Ġ" + w):
            cur = word[0]
            for c in word[1:]:
                merges.append((cur, c))
                cur += c
                vocab.setdefault(cur, len(vocab))
    merges = list(dict.fromkeys(merges))
    return RobertaTokenizer(vocab=vocab, merges=merges, model_max_length=max_length)


def _t5_tokenizer(max_length: int = 16):
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [("▁" + w, -1.0) for w in WORDS]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=max_length)


def _feature_extractor():
    from transformers import ClapFeatureExtractor

    return ClapFeatureExtractor(feature_size=64, sampling_rate=16000, hop_length=320, max_length_s=1,
                                fft_window_size=400)


def _clap(hidden: int = 16, seed: int = 0):
    from transformers import ClapAudioConfig, ClapConfig, ClapModel, ClapTextConfig

    torch.manual_seed(seed)
    text = ClapTextConfig(bos_token_id=0, eos_token_id=2, pad_token_id=1, vocab_size=256, hidden_size=hidden,
                          intermediate_size=37, num_attention_heads=2, num_hidden_layers=2, projection_dim=16,
                          max_position_embeddings=40, layer_norm_eps=1e-5)
    audio = ClapAudioConfig(spec_size=64, window_size=4, num_mel_bins=64, intermediate_size=37, depths=[2, 2],
                            num_attention_heads=[2, 2], num_hidden_layers=2, hidden_size=32,
                            patch_embeds_hidden_size=16, projection_dim=16, patch_size=2, patch_stride=2,
                            patch_embed_input_channels=4, layer_norm_eps=1e-5)
    return ClapModel(ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=16)).eval()


def _scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                         set_alpha_to_one=False)


def _ready(pipe):
    """Every module in eval mode (dropout off, as ``from_pretrained`` leaves them), no progress bar."""
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            component.eval()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_audioldm2(vae="bundled", seed: int = 0, size: str = "tiny"):
    """A random ``AudioLDM2Pipeline`` around ``vae`` (a :func:`tiny_vae` source or an ``AutoencoderKL``).

    Default length: ``unet.config.sample_size`` (8) latent frames = 32 mel frames = 0.32 s at 16 kHz.
    ``size="audioldm2"``: AudioLDM2's UNet widths (320/640/1280/1280) and vocoder (random weights; for timing).
    """
    from diffusers import AudioLDM2Pipeline, AudioLDM2ProjectionModel, AudioLDM2UNet2DConditionModel
    from transformers import GPT2Config, GPT2Model, T5Config, T5EncoderModel

    vae = tiny_vae(vae, seed) if isinstance(vae, str) else vae
    lat = int(vae.config.latent_channels)
    torch.manual_seed(seed)
    if size == "audioldm2":
        unet = AudioLDM2UNet2DConditionModel(
            sample_size=256, in_channels=lat, out_channels=lat, block_out_channels=(320, 640, 1280, 1280),
            layers_per_block=2, down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * 3,
            up_block_types=("CrossAttnUpBlock2D",) * 3 + ("UpBlock2D",), attention_head_dim=8,
            cross_attention_dim=([None, 768, 1024],) * 4, norm_num_groups=32)
        t5, gpt, clap_h = 1024, 768, 512
    else:
        unet = AudioLDM2UNet2DConditionModel(
            sample_size=8, in_channels=lat, out_channels=lat, block_out_channels=(16, 32), layers_per_block=1,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=([None, 16, 32], [None, 16, 32]),
            norm_num_groups=8, attention_head_dim=4)
        t5, gpt, clap_h = 32, 16, 16
    text_encoder = _clap(clap_h if size == "audioldm2" else 16, seed)
    torch.manual_seed(seed)
    text_encoder_2 = T5EncoderModel(T5Config(vocab_size=64, d_model=t5, d_ff=37, d_kv=8, num_heads=2, num_layers=2))
    torch.manual_seed(seed)
    language_model = GPT2Model(GPT2Config(n_embd=gpt, n_head=2, n_layer=2, vocab_size=64, n_ctx=99, n_positions=99,
                                                bos_token_id=0, eos_token_id=2))
    language_model.config.max_new_tokens = 4
    torch.manual_seed(seed)
    projection_model = AudioLDM2ProjectionModel(text_encoder_dim=16, text_encoder_1_dim=t5, langauge_model_dim=gpt)
    pipe = AudioLDM2Pipeline(
        vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2, projection_model=projection_model,
        language_model=language_model, tokenizer=_roberta_tokenizer(), tokenizer_2=_t5_tokenizer(),
        feature_extractor=_feature_extractor(), unet=unet.eval(), scheduler=_scheduler(),
        vocoder=tiny_vocoder(seed, size))
    return _ready(pipe)


def tiny_audioldm(vae="bundled", seed: int = 0):
    """A random ``AudioLDMPipeline`` (CLAP text encoder, ``UNet2DConditionModel`` with class-label conditioning)
    around ``vae`` (``"bundled"``, ``"random"`` or an ``AutoencoderKL``)."""
    from diffusers import AudioLDMPipeline, UNet2DConditionModel
    from transformers import ClapTextConfig, ClapTextModelWithProjection

    vae = tiny_vae(vae, seed) if isinstance(vae, str) else vae
    lat = int(vae.config.latent_channels)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=lat, out_channels=lat, block_out_channels=(16, 32), layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=(32, 32), class_embed_type="simple_projection", projection_class_embeddings_input_dim=32,
        class_embeddings_concat=True, norm_num_groups=8, attention_head_dim=4)
    torch.manual_seed(seed)
    text_encoder = ClapTextModelWithProjection(ClapTextConfig(
        bos_token_id=0, eos_token_id=2, pad_token_id=1, vocab_size=256, hidden_size=32, intermediate_size=37,
        num_attention_heads=4, num_hidden_layers=2, projection_dim=32, max_position_embeddings=40,
        layer_norm_eps=1e-5)).eval()
    pipe = AudioLDMPipeline(vae=vae, text_encoder=text_encoder, tokenizer=_roberta_tokenizer(), unet=unet.eval(),
                            scheduler=_scheduler(), vocoder=tiny_vocoder(seed))
    return _ready(pipe)


def tiny_musicldm(vae="bundled", seed: int = 0):
    """A random ``MusicLDMPipeline`` (CLAP text/audio model, ``UNet2DConditionModel`` with class-label
    conditioning) around ``vae`` (a :func:`tiny_vae` source or an ``AutoencoderKL``)."""
    from diffusers import MusicLDMPipeline, UNet2DConditionModel

    vae = tiny_vae(vae, seed) if isinstance(vae, str) else vae
    lat = int(vae.config.latent_channels)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=lat, out_channels=lat, block_out_channels=(16, 32), layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=(32, 32), class_embed_type="simple_projection", projection_class_embeddings_input_dim=16,
        class_embeddings_concat=True, norm_num_groups=8, attention_head_dim=4)
    pipe = MusicLDMPipeline(vae=vae, text_encoder=_clap(16, seed), tokenizer=_roberta_tokenizer(),
                            feature_extractor=_feature_extractor(), unet=unet, scheduler=_scheduler(),
                            vocoder=tiny_vocoder(seed))
    return _ready(pipe)
