"""vaelib: measure (and try to enhance) what the AudioLDM2 VAE round trip loses.

The public face::

    wave = vaelib.load_audio("clip.wav")                     # mono float32 at 16 kHz
    vae, vocoder = vaelib.load_vae("auto"), vaelib.load_vocoder("auto")
    rec = vaelib.reconstruct(wave, vae, vocoder, enhancers=["seed_frequency"])

Packages and modules: :mod:`vaelib.audio` (I/O + training-matched front end), :mod:`vaelib.models`,
:mod:`vaelib.enhance` (latent- and mel-stage enhancers, one registry), :mod:`vaelib.restore` (learned restorers),
:mod:`vaelib.metrics`, :mod:`vaelib.pipeline` (the round trip), :mod:`vaelib.categories` (audio types),
:mod:`vaelib.longaudio` / :mod:`vaelib.stream` (any length), :mod:`vaelib.evaluate` (``vaelib eval``),
:mod:`vaelib.study` (the notebooks' logic), :mod:`vaelib.plots`, :mod:`vaelib.widgets`, :mod:`vaelib.report`
(``vaelib report``: parameter schema, runner, pages, escaping), :mod:`vaelib.tiny_vae` (the bundled VAE's trainer),
:mod:`vaelib.generate` (:func:`attach` / :func:`detach`: the enhancers inside diffusers' AudioLDM2 / AudioLDM /
MusicLDM pipelines, and ``vaelib generate``).
"""

# adaptive / multiscale register the adaptive_* and multiscale_* enhancers (they import enhance, never back)
from . import adaptive, multiscale  # noqa: F401
from .audio import MelConfig, find_audio, load_audio, normalize, save_audio, wav_to_mel
from .generate import attach, detach
from .models import load_vae, load_vocoder, resolve_models
from .pipeline import reconstruct

__version__ = "0.1.0"

__all__ = [
    "MelConfig",
    "attach",
    "detach",
    "find_audio",
    "load_audio",
    "load_vae",
    "load_vocoder",
    "normalize",
    "reconstruct",
    "resolve_models",
    "save_audio",
    "wav_to_mel",
    "__version__",
]
