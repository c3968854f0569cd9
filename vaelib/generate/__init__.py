"""Enhancement inside diffusers' text-to-audio pipelines, and ``vaelib generate``.

Modules: :mod:`~vaelib.generate.hook` (:func:`attach`, :func:`detach`, :func:`attached`: the hook on an
AudioLDM2 / AudioLDM / MusicLDM pipeline), :mod:`~vaelib.generate.run` (one diffusion run, decoded plain and
enhanced from the same latents), :mod:`~vaelib.generate.page` (the inert ``index.html``),
:mod:`~vaelib.generate.cli` (``vaelib generate``), :mod:`~vaelib.generate.compat` (AudioLDM2's text path with
transformers 5), :mod:`~vaelib.generate.tiny` (tiny random pipelines for tests and benchmarks).
"""

from . import compat
from .compat import fix_language_model
from .hook import SUPPORTED_PIPELINES, attach, attached, detach, hook_of

__all__ = ["SUPPORTED_PIPELINES", "attach", "attached", "detach", "hook_of", "fix_language_model", "compat"]
