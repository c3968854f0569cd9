"""Make an AudioLDM2 pipeline generate from text with transformers 5: :func:`fix_language_model`.

``AudioLDM2Pipeline.generate_language_model`` (diffusers 0.42) calls
``pipe.language_model._update_model_kwargs_for_generation``, a method of transformers' ``GenerationMixin``. The
AudioLDM2 checkpoints store their language model as ``GPT2Model``, which no longer inherits ``GenerationMixin``
since transformers 4.50, so every text prompt fails with ``AttributeError: 'GPT2Model' object has no attribute
'_update_model_kwargs_for_generation'`` (diffusers issue #12630, open). Passing ``prompt_embeds`` and
``generated_prompt_embeds`` avoids the call; a text prompt needs the method.

:func:`fix_language_model` binds ``GenerationMixin._update_model_kwargs_for_generation`` to *this* language model
object (an instance attribute; nothing in transformers or diffusers is changed). In transformers 5 that method
extends the attention mask by one position per generated step and does not hand back a key/value cache under the
name diffusers' loop reads (``past_key_values``), so every step runs GPT-2 on the whole sequence so far: the same
hidden states as with a cache (up to float rounding), at the cost of recomputing the prefix (8 steps by default).
"""

from __future__ import annotations

import types

__all__ = ["fix_language_model"]


def fix_language_model(pipe) -> bool:
    """Give ``pipe.language_model`` the ``GenerationMixin`` method AudioLDM2's text path needs, if it lacks it.

    Returns True when the method was added, False when nothing was needed (not AudioLDM2, or a language model that
    has it already). Idempotent.
    """
    lm = getattr(pipe, "language_model", None)
    if lm is None or hasattr(lm, "_update_model_kwargs_for_generation"):
        return False
    from transformers import GenerationMixin

    method = types.MethodType(GenerationMixin._update_model_kwargs_for_generation, lm)
    object.__setattr__(lm, "_update_model_kwargs_for_generation", method)
    return True
