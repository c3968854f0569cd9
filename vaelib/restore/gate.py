"""The consistency gate: how much of a restorer's correction the VAE itself agrees with, per clip window.

A mel restorer proposes ``r' = r + f`` for the plain decode ``r = D(E(x))`` of an input log-mel ``x`` it never
sees. On material unlike its training data the proposal can be wrong (a short chime whose high band the VAE
already kept: the bundled restorer used to lift it by +70 % LSD-HF). The VAE gives a check that needs no
reference: the true input satisfies ``D(E(x)) = r`` exactly, so a good restoration ``r'`` should also decode back
to ``r`` when re-encoded. The gate scales the correction by the factor the VAE's round trip ``R = D∘E`` is most
consistent with, linearising ``R`` between ``r`` and ``r + f``::

    a = R(r) − r,   b = R(r + f) − R(r)             (two round trips, one batched call)
    e(s) = ‖ a + s · b ‖²_HF ≈ ‖ R(r + s·f) − r ‖²_HF  (the consistency error of r + s·f)
    s* = clip( −⟨a, b⟩_HF / ⟨b, b⟩_HF , 0, 1 ),       output  r + s* · f

with the inner products taken over the window's frames and the mel bins centred at or above 4 kHz (the band the
restorer acts on). ``s* = 0`` (the correction disagrees with the VAE, or is zero) returns ``r`` exactly — up to the
restorer's mel floor, which the gate never withholds: the front end's log-mel is ``≥ ln 1e-5`` by construction, so
for any input ``x`` and every bin ``|max(r, floor) − x| ≤ |r − x|`` (the projection onto a set that holds ``x``
cannot move away from it), and no per-bin error, mel L1 or LSD can grow by it. The
idea is the data-consistency step of model-based inverse problems (measured data must be reproduced by the
forward operator; e.g. Chung et al. 2022, "Improving diffusion models for inverse problems using manifold
constraints", and decoder-consistent inversion of autoencoders), with the frozen VAE as the forward operator.

Cost: two extra encode + decode passes of the window (one batched call), per mel-restorer stage.
"""

from __future__ import annotations

import torch

__all__ = ["round_trip", "consistency_factor", "gated"]


@torch.no_grad()
def round_trip(vae, mel: torch.Tensor) -> torch.Tensor:
    """``D(E(mel))`` for a :class:`vaelib.models.LatentVAE` or a diffusers ``AutoencoderKL`` (posterior mode)."""
    from ..models import LatentVAE

    if isinstance(vae, LatentVAE):
        return vae.decode(vae.encode(mel.to(vae.device, vae.dtype))).float()
    p = next(vae.parameters())
    z = vae.encode(mel.to(p.device, p.dtype)).latent_dist.mode()
    return vae.decode(z).sample.float()


def consistency_factor(r: torch.Tensor, rt_r: torch.Tensor, rt_rf: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``s*`` per batch item (shape ``(B,)``) from ``r``, ``R(r)`` and ``R(r + f)`` (all ``(B, 1, T, M)``).

    ``s* = clip(−⟨a, b⟩ / ⟨b, b⟩, 0, 1)`` with ``a = R(r) − r``, ``b = R(r + f) − R(r)``, inner products over time
    and the mel bins selected by the boolean ``mask`` (``M``,); ``⟨b, b⟩ = 0`` gives 0.
    """
    a = (rt_r - r)[..., mask].flatten(1)
    b = (rt_rf - rt_r)[..., mask].flatten(1)
    num = -(a * b).sum(dim=1)
    den = (b * b).sum(dim=1)
    s = torch.where(den > 0, num / den.clamp_min(1e-30), torch.zeros_like(num))
    return s.clamp(0.0, 1.0)


@torch.no_grad()
def gated(vae, r: torch.Tensor, restored: torch.Tensor, mask: torch.Tensor, floor: float | None = None):
    """``(r + s*·(restored − r), s*)``: the restored log-mel scaled back by the consistency gate.

    ``r``: plain decodes ``(B, 1, T, M)``; ``restored``: the restorer's output for them. ``floor``: the restorer's
    mel floor, applied after blending to every item, ``s* = 0`` ones included (they are ``r`` clamped at the floor;
    ``r`` exactly without a floor): the floor is never withheld, since it cannot move a log-mel away from any
    front-end output (module docstring).
    """
    rf = r.float()
    f = restored.float() - rf
    both = round_trip(vae, torch.cat([rf, rf + f]))
    n = rf.shape[0]
    s = consistency_factor(rf, both[:n].to(rf.device), both[n:].to(rf.device), mask.to(rf.device))
    out = rf + s.view(-1, 1, 1, 1) * f
    if floor is not None:
        out = out.clamp(min=floor)
    keep = s == 0  # r + 0·f is r already for a finite f; this keeps r when f holds inf / NaN (0·inf = NaN)
    if keep.any():
        out[keep] = rf[keep] if floor is None else rf[keep].clamp(min=floor)
    return out.to(r.dtype), s
