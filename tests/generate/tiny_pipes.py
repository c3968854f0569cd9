"""Tiny random diffusers pipelines around the bundled VAE, built offline from config objects, once per session.

Each test module of this folder wraps them in its own fixtures (a ``conftest.py`` here would shadow
``tests/conftest.py``, which other test modules import as ``conftest``).
"""

import functools


@functools.cache
def audioldm2():
    """A tiny ``AudioLDM2Pipeline`` around the bundled tiny VAE (the bundled restorers' VAE), text path enabled."""
    from vaelib.generate.compat import fix_language_model
    from vaelib.generate.tiny import tiny_audioldm2

    pipe = tiny_audioldm2()
    fix_language_model(pipe)
    return pipe


@functools.cache
def audioldm():
    """A tiny ``AudioLDMPipeline`` around the bundled tiny VAE."""
    from vaelib.generate.tiny import tiny_audioldm

    return tiny_audioldm()


def unhook_all():
    """Detach every shared pipeline that was built (a failing test must not leak its hook into the next)."""
    from vaelib.generate.hook import detach

    for build in (audioldm2, audioldm):
        if build.cache_info().currsize:
            detach(build())
