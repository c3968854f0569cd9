"""Tiny random diffusers pipelines around the bundled VAE, built offline from config objects."""

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_pipe():
    """A tiny ``AudioLDM2Pipeline`` around the bundled tiny VAE (the bundled restorers' VAE), text path enabled."""
    from vaelib.generate.compat import fix_language_model
    from vaelib.generate.tiny import tiny_audioldm2

    pipe = tiny_audioldm2()
    fix_language_model(pipe)
    return pipe


@pytest.fixture(scope="session")
def tiny_ldm():
    """A tiny ``AudioLDMPipeline`` around the bundled tiny VAE."""
    from vaelib.generate.tiny import tiny_audioldm

    return tiny_audioldm()


@pytest.fixture(autouse=True)
def _no_hook_left(request):
    """Every test starts and ends with unhooked session pipelines (a failing test must not leak its hook)."""
    from vaelib.generate.hook import detach

    yield
    for name in ("tiny_pipe", "tiny_ldm"):
        if name in request.fixturenames:
            detach(request.getfixturevalue(name))


def gen(seed=0):
    return torch.Generator().manual_seed(seed)
