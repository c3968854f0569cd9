"""Adaptive enhancers: the enhancer's parameter predicted per clip from what a user has at inference time.

The seed report's step 3 asks for "adaptive enhancement" (set the enhancement's parameters from the input's own
features). ``adaptive_<method>`` predicts ``method``'s main parameter for each batch item from three statistics of
the tensor the enhancer receives — the scaled latent for a latent-stage method, the plain VAE's decoded log-mel for
a mel-stage one; never the original audio — with a ridge regression fitted on the demo *train* clips to the
per-clip oracle setting (the grid value that minimises that clip's high-band mel LSD), then applies ``method``::

    f      = features(x)                                  (3 numbers per item, below)
    p_hat  = clamp( b + sum_j w_j (f_j - mu_j) / s_j , lo, hi )
    p      = p0 + weight * (p_hat - p0)                   (p0 = method's identity value)
    x'     = method(x, p)

``mu``, ``s`` standardise the features over the training clips, ``w``, ``b`` are the ridge solution
``w = (Zᵀ Z + alpha I)⁻¹ Zᵀ (y - b)``, ``b = mean(y)`` on the standardised features ``Z`` (Hoerl & Kennard 1970),
``alpha`` chosen by seeded K-fold cross-validation over the training clips; ``[lo, hi]`` is the fitting grid's
range. ``weight`` (identity 0, default 1) blends between the plain VAE (exactly, at 0) and the predicted setting.

Features (per batch item; ``H`` = mel bins centred at or above 4 kHz, ``Lo`` = the others):

============== ====== =====================================================================================
feature        stage  definition
============== ====== =====================================================================================
lat_detail     latent ``mean |L(z)| / (mean |z - mean_c(z)| + 1e-6)``: the share of fine detail (``L`` = the
                      seed's 3×3 Laplacian, ``mean_c`` = channel mean over time and frequency)
lat_tilt_db    latent ``10 log10( mean z[..., F/2:]² / mean z[..., :F/2]² )`` (+1e-12 each): upper vs. lower
                      half of the latent frequency axis
lat_std        latent ``std(z)`` over channels, time and frequency
mel_tilt       mel    ``mean_t,H L - mean_t,Lo L`` (nats): high band relative to the rest
mel_hf_var     mel    ``mean_H std_t L`` (nats): how much the high band moves in time
mel_hf_level   mel    ``mean_t,H L`` (nats; the floor is ln 1e-5 = -11.51)
============== ====== =====================================================================================

The bundled rules (``vaelib/assets/adaptive/<method>.json``, card ``MODEL_CARD.md``) were fitted for the bundled
tiny VAE by ``scripts/fit_adaptive.py``; for another VAE, fit your own with :func:`fit_rule` (on clips you do not
score) and :func:`register_rule`. Notebook 05 judges them against the best fixed setting and the per-clip oracle,
cross-validated over clips (:mod:`vaelib.study.adaptive`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import torch

from . import enhance as _enhance

__all__ = ["FEATURES", "AdaptiveRule", "features", "fit_rule", "ridge_fit", "register_rule", "load_rule",
           "bundled_rules", "rules_dir", "ADAPTIVE", "WEIGHT"]

#: Feature names per stage, in the order :func:`features` returns them.
FEATURES: dict[str, tuple[str, ...]] = {
    "latent": ("lat_detail", "lat_tilt_db", "lat_std"),
    "mel": ("mel_tilt", "mel_hf_var", "mel_hf_level"),
}

#: The adaptive enhancers' one parameter.
WEIGHT = _enhance.Param("weight", 1.0, 0.0, 0.0, 1.0,
                        "blend: 0 = plain VAE output (exactly), 1 = the parameter predicted for this clip")


def _latent_features(z: torch.Tensor) -> np.ndarray:
    z = z.detach().double()
    mu = z.mean(dim=(2, 3), keepdim=True)
    detail = _enhance.laplacian(z).abs().mean(dim=(1, 2, 3)) / ((z - mu).abs().mean(dim=(1, 2, 3)) + 1e-6)
    half = z.shape[-1] // 2
    hi = (z[..., half:] ** 2).mean(dim=(1, 2, 3)) + 1e-12
    lo = (z[..., :half] ** 2).mean(dim=(1, 2, 3)) + 1e-12
    tilt = 10.0 * torch.log10(hi / lo)
    std = z.flatten(1).std(dim=1)
    return torch.stack([detail, tilt, std], dim=1).cpu().numpy()


def _mel_features(mel: torch.Tensor) -> np.ndarray:
    from .metrics import HIGH_BAND_HZ

    m = mel.detach().double()[:, 0]  # (B, T, M)
    high = _enhance.mel_band_mask(m.shape[-1], HIGH_BAND_HZ).to(m.device)
    h, lo = m[..., high], m[..., ~high]
    tilt = h.mean(dim=(1, 2)) - lo.mean(dim=(1, 2))
    var = h.std(dim=1).mean(dim=1) if h.shape[1] > 1 else torch.zeros(m.shape[0], dtype=m.dtype)
    level = h.mean(dim=(1, 2))
    return torch.stack([tilt, var, level], dim=1).cpu().numpy()


def features(x: torch.Tensor, stage: str) -> np.ndarray:
    """The ``(B, 3)`` float64 feature matrix of :data:`FEATURES` ``[stage]`` (module docstring) of ``x``.

    ``x`` is the scaled latent ``(B, C, T', F')`` for ``stage="latent"`` and a log-mel ``(B, 1, T, M)`` for
    ``stage="mel"``.
    """
    if stage not in FEATURES:
        raise ValueError(f"stage must be one of {', '.join(FEATURES)}, got {stage!r}")
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or (stage == "mel" and x.shape[1] != 1):
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{stage} features need a 4-D tensor "
                         f"{'(batch, channels, time, freq)' if stage == 'latent' else '(batch, 1, time, n_mels)'}, "
                         f"got {shape}")
    return _latent_features(x) if stage == "latent" else _mel_features(x)


@dataclasses.dataclass(frozen=True)
class AdaptiveRule:
    """A fitted per-clip rule ``features -> method's main parameter`` (module docstring for the formula).

    Attributes
    ----------
    method, param : str
        The single-scale enhancer and the parameter predicted.
    stage : str
        ``method``'s stage; the features are :data:`FEATURES` ``[stage]``.
    feature_names : tuple of str
    mean, scale, coef : tuple of float
        Standardisation ``mu``, ``s`` and ridge weights ``w`` (one per feature).
    intercept : float
        ``b`` (the training targets' mean).
    lo, hi : float
        Clamp range of the prediction (the fitting grid's range).
    alpha : float
        Ridge penalty chosen by cross-validation.
    meta : dict
        Provenance (training clips, targets, seed, CV errors, model) — written to the JSON, not used to predict.
    """

    method: str
    param: str
    stage: str
    feature_names: tuple
    mean: tuple
    scale: tuple
    coef: tuple
    intercept: float
    lo: float
    hi: float
    alpha: float
    meta: dict = dataclasses.field(default_factory=dict, compare=False)

    def predict_features(self, f: np.ndarray) -> np.ndarray:
        """``p_hat`` for a ``(B, n_features)`` feature matrix."""
        f = np.atleast_2d(np.asarray(f, dtype=np.float64))
        zf = (f - np.asarray(self.mean)) / np.asarray(self.scale)
        return np.clip(self.intercept + zf @ np.asarray(self.coef), self.lo, self.hi)

    def predict(self, x: torch.Tensor) -> np.ndarray:
        """``p_hat`` per batch item of the tensor the enhancer receives (latent or decoded log-mel)."""
        return self.predict_features(features(x, self.stage))

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["feature_names"] = list(self.feature_names)
        for k in ("mean", "scale", "coef"):
            d[k] = [float(v) for v in d[k]]
        return d

    @classmethod
    def from_json(cls, d: dict) -> AdaptiveRule:
        fields = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(fields - set(d) - {"meta"})
        if missing:
            raise ValueError(f"adaptive rule lacks {', '.join(missing)}")
        kw = {k: d[k] for k in fields if k in d}
        for k in ("feature_names", "mean", "scale", "coef"):
            kw[k] = tuple(kw[k])
        rule = cls(**kw)
        n = len(rule.feature_names)
        if rule.stage not in FEATURES or tuple(rule.feature_names) != FEATURES[rule.stage]:
            raise ValueError(f"adaptive rule for {rule.method}: features {rule.feature_names} are not "
                             f"{FEATURES.get(rule.stage)}")
        if not (len(rule.mean) == len(rule.scale) == len(rule.coef) == n):
            raise ValueError(f"adaptive rule for {rule.method}: mean/scale/coef must have {n} entries")
        if not all(math.isfinite(v) for v in (*rule.mean, *rule.scale, *rule.coef, rule.intercept, rule.lo, rule.hi)):
            raise ValueError(f"adaptive rule for {rule.method}: non-finite numbers")
        return rule


def ridge_fit(x: np.ndarray, y: np.ndarray, alpha: float):
    """Ridge regression on standardised features: ``(mean, scale, coef, intercept)`` (module docstring).

    ``scale`` is the population standard deviation (a constant feature gets scale 1 and, being all zero after
    centring, weight 0).
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    z = (x - mean) / scale
    b = float(y.mean())
    coef = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ (y - b))
    return mean, scale, coef, b


def fit_rule(method: str, x, y, *, lo: float, hi: float, alphas=(0.1, 1.0, 10.0, 100.0), folds: int = 5,
             seed: int = 0, meta: dict | None = None) -> AdaptiveRule:
    """Fit an :class:`AdaptiveRule` for ``method`` on training clips.

    Parameters
    ----------
    method : str
        A registered single-parameter enhancer (``frequency``, ``mel_shelf``, ``learned``, ...).
    x : array_like
        ``(n_clips, 3)`` features of the training clips (:func:`features` of their latent / decoded log-mel).
    y : array_like
        ``(n_clips,)`` per-clip oracle values of ``method``'s main parameter.
    lo, hi : float
        The clamp range (the fitting grid's range).
    alphas : sequence of float
        Ridge penalties tried; the one with the lowest K-fold mean squared error of the (clamped) prediction wins
        (ties: the larger penalty).
    folds : int
        K of the cross-validation (at most the number of clips: leave-one-out then).
    seed : int
        Seeds the assignment of clips to folds (``numpy.random.default_rng(seed).permutation``).
    meta : dict, optional
        Provenance stored with the rule.
    """
    enh = _enhance.get(method)
    tunable = [p for p in enh.params if p.name != "gate"]
    if len(tunable) != 1:
        raise ValueError(f"adaptive rules predict one parameter; {method} takes {len(tunable)}")
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if x.ndim != 2 or len(x) != len(y) or len(y) < 2:
        raise ValueError(f"fit_rule needs (n, k) features and n targets with n >= 2, got {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("fit_rule: features and targets must be finite")
    stage = enh.stage
    k = min(int(folds), len(y))
    order = np.random.default_rng(seed).permutation(len(y))
    fold_of = np.empty(len(y), dtype=int)
    fold_of[order] = np.arange(len(y)) % k
    cv = {}
    for a in alphas:
        err = []
        for f in range(k):
            tr, te = fold_of != f, fold_of == f
            mean, scale, coef, b = ridge_fit(x[tr], y[tr], a)
            pred = np.clip(b + ((x[te] - mean) / scale) @ coef, lo, hi)
            err.extend((pred - y[te]) ** 2)
        cv[float(a)] = float(np.mean(err))
    best = min(cv, key=lambda a: (round(cv[a], 12), -a))
    mean, scale, coef, b = ridge_fit(x, y, best)
    info = {**(meta or {}), "cv_mse": {f"{a:g}": v for a, v in cv.items()}, "folds": k, "seed": int(seed),
            "n_clips": int(len(y))}
    return AdaptiveRule(method=method, param=enh.main_param, stage=stage, feature_names=FEATURES[stage],
                        mean=tuple(float(v) for v in mean), scale=tuple(float(v) for v in scale),
                        coef=tuple(float(v) for v in coef), intercept=float(b), lo=float(lo), hi=float(hi),
                        alpha=float(best), meta=info)


def held_fixed(method: str) -> dict:
    """Parameters an adaptive rule never varies: a restorer's consistency ``gate`` is off (the rule predicts the
    strength itself; its fits were made on ungated strengths)."""
    return {"gate": 0.0} if any(p.name == "gate" for p in _enhance.get(method).params) else {}


def _make_fn(rule: AdaptiveRule):
    base = _enhance.get(rule.method)
    neutral = base.params[0].neutral

    def fn(x, *, weight=1.0, seed=0):
        if weight == 0:
            return x.clone()
        p_hat = rule.predict(x)
        outs = []
        for i in range(x.shape[0]):
            p = float(neutral + weight * (p_hat[i] - neutral))
            outs.append(_enhance.apply(rule.method, x[i:i + 1], {rule.param: p, **held_fixed(rule.method)},
                                       seed=seed))
        return torch.cat(outs)

    return fn


def register_rule(rule: AdaptiveRule, name: str | None = None) -> _enhance.Enhancer:
    """Register ``rule`` as the enhancer ``name`` (default ``adaptive_<method>``), parameter :data:`WEIGHT`."""
    base = _enhance.get(rule.method)
    name = name or f"adaptive_{rule.method}"
    enh = _enhance.Enhancer(name, _make_fn(rule), (WEIGHT,), base.uses_seed,
                            f"{rule.method} with its {rule.param} predicted per clip from the "
                            f"{'latent' if rule.stage == 'latent' else 'decoded log-mel'}", stage=rule.stage,
                            wraps=base.wraps or (rule.method if base.restorer else ""))
    return _enhance.register(enh)


def load_rule(path) -> AdaptiveRule:
    """Read an :class:`AdaptiveRule` from its JSON file (one-line ``ValueError`` when malformed)."""
    path = Path(path)
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read adaptive rule {path}: {exc}") from None
    return AdaptiveRule.from_json(d)


def rules_dir() -> Path:
    """Folder of the bundled rules (``vaelib/assets/adaptive``)."""
    from .assets import ASSETS

    return ASSETS / "adaptive"


def bundled_rules() -> dict[str, AdaptiveRule]:
    """``{method: rule}`` of the bundled rules (``rules_dir()/<method>.json``), in file-name order."""
    folder = rules_dir()
    return {p.stem: load_rule(p) for p in sorted(folder.glob("*.json"))} if folder.is_dir() else {}


#: ``adaptive_<method> -> rule`` of the registered bundled rules.
ADAPTIVE: dict[str, AdaptiveRule] = {}
for _method, _rule in bundled_rules().items():
    register_rule(_rule)
    ADAPTIVE[f"adaptive_{_method}"] = _rule
