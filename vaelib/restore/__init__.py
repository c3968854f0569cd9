"""Learned high-band restorers for a frozen mel VAE, and ``vaelib train-restorer``.

Modules: :mod:`~vaelib.restore.nets` (the networks), :mod:`~vaelib.restore.model` (:class:`Restorer`, save/load,
the bundled restorers, :func:`register`), :mod:`~vaelib.restore.data` (audio types, augmentation, pairs, the
held-out split), :mod:`~vaelib.restore.train` (loss, training loop, evaluation, model card),
:mod:`~vaelib.restore.cli` (``vaelib train-restorer``).

Two kinds, both residual so that the untrained (zero-initialised) model is the identity:

* ``mel``    — a post-net on the decoded log-mel: ``r' = r + s · f(r)`` (a temporal conv net, :class:`MelTCN`, or
  a small U-Net, :class:`MelPostNet`);
* ``latent`` — a latent residual net: ``z' = z + s · g(z)`` (:class:`LatentResNet`), trained *through* the frozen
  decoder on whole clips so that ``decode(z')`` matches the input log-mel (decoding a latent crop is not cropping
  the full decode: GroupNorm statistics and mid-block attention span the whole input — docs/reference.md §6).

``s`` is the ``strength`` in [0, 1]: 0 returns the plain VAE output exactly (a copy of the input tensor, no float
operation on it), 1 the fully restored output. With ``conditional=True`` every residual block is FiLM-modulated
(Perez et al. 2018: ``h · (1 + γ(e)) + β(e)``) by an embedding ``e`` of the audio type (speech / music /
percussion / other); :class:`TypeClassifier` infers the type from the decoded mel (or latent) when no label is
given, and the embedding is then the probability-weighted mix of the type embeddings.

Training objective (per crop, natural-log mel, ``d = restored − input``; :func:`~vaelib.restore.train.restorer_loss`)::

    loss = Σ_{t,m} w_m |d_{t,m}| / Σ_{t,m} w_m  +  λ · mean_t sqrt( mean_{m ∈ HF} d_{t,m}² + ε )

with ``w_m = hf_weight`` (3) for mel bins centred at or above 4 kHz (``metrics.HIGH_BAND_HZ``) and 1 below, and
``λ = lsd_weight`` (1). The first term is the AudioLDM VAE's own L1 on log-mel, tilted toward the band to restore;
the second is the per-frame RMS log-ratio over the high band, which is ``ln 10 / 2`` times the mel LSD-HF that
:func:`vaelib.metrics.mel_lsd` reports — L1 alone is not the target metric (it lets a few frames keep large
errors that LSD, a mean of per-frame RMS values, punishes). ``ε = 1e-4`` keeps the gradient finite at 0.

Training needs only (input log-mel, decoded log-mel) pairs for the mel kind, so every clip goes through the
frozen VAE once (:func:`~vaelib.restore.data.collect_pairs`) and the net trains on random crops of those pairs.
"""

from ..categories import CATEGORIES, category_of
from .cli import add_parser
from .data import augment_wave, collect_pairs, split_holdout
from .model import (
    Restorer,
    RestorerConfig,
    RestorerError,
    bundled_dir,
    bundled_restorer,
    card_info,
    load_restorer,
    register,
    registered,
    save_restorer,
    training_log,
)
from .nets import LatentResNet, MelPostNet, MelTCN, TypeClassifier
from .train import TrainOptions, evaluate_restorer, restorer_loss, train_restorer

__all__ = [
    "CATEGORIES", "RestorerConfig", "TrainOptions", "MelPostNet", "LatentResNet", "TypeClassifier", "Restorer",
    "MelTCN", "training_log", "card_info", "category_of", "restorer_loss", "collect_pairs", "augment_wave",
    "split_holdout", "train_restorer", "evaluate_restorer", "save_restorer", "load_restorer", "bundled_restorer",
    "bundled_dir", "register", "registered", "RestorerError", "add_parser",
]
