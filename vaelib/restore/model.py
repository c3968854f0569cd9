"""A trained restorer: :class:`RestorerConfig`, :class:`Restorer`, safetensors I/O, the bundled restorers, registration.

``Restorer.restore(x, s)`` returns ``x + s · f(x)`` (mel kind: clamped at the front end's floor), ``s`` in [0, 1];
``s = 0`` returns the plain VAE output exactly. Only safetensors weights are ever loaded. Trained restorers are
registered by name with :func:`register`; the enhancer registry (:mod:`vaelib.enhance`) wraps every restorer,
bundled or registered, with one adapter (this module never imports it).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._util import one_line
from ..categories import CATEGORIES
from ..metrics import HIGH_BAND_HZ
from .nets import LatentResNet, MelPostNet, MelTCN, TypeClassifier

__all__ = ["FORMAT", "WEIGHTS", "RestorerError", "RestorerConfig", "Restorer", "save_restorer", "load_restorer",
           "bundled_dir", "bundled_restorer", "training_log", "card_info", "register", "registered", "check_vae",
           "REGISTRY", "RESERVED_NAMES"]

FORMAT = "vaelib-restorer"
#: Values of a restorer's ``gate`` (the enhancer parameter's choices, in order: off = 0, consistency = 1).
GATES = ("off", "consistency")
WEIGHTS = "model.safetensors"
_PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth", ".pkl")
#: Restorers added with :func:`register`, by name.
REGISTRY: dict = {}
#: Names a registered restorer may not take: the enhancer registry's built-in methods (:mod:`vaelib.enhance` fills
#: it when it is imported, which ``import vaelib`` does).
RESERVED_NAMES: set = set()


class RestorerError(ValueError):
    """Bad input to training or loading; the one-line message says how to fix it."""


@dataclasses.dataclass
class RestorerConfig:
    """Architecture and front end of a restorer (stored in ``config.json``).

    Attributes
    ----------
    kind : {"mel", "latent"}
    conditional : bool
        FiLM-conditioned on the audio type, with a type classifier for unlabelled audio.
    arch : {"tcn", "unet"}
        Mel kind only: :class:`MelTCN` (default) or :class:`MelPostNet` (2-D U-Net).
    channels : int
        Width: TCN channels; U-Net base width (C, 2C, 4C at full, 1/2, 1/4 resolution); latent net channels.
    n_mels, latent_channels : int
    mel_mean, mel_std : float
        Affine input normalisation (set from the training data).
    sr, n_fft, fmin, fmax : float
        Front end, for the mel bin centres of the high-band mask.
    high_band_hz : float
    categories : list of str
    emb_dim : int
    mel_floor : float or None
        Mel kind: the restored log-mel is clamped from below at this value (the front end's ``log(1e-5)``: an
        input log-mel is never lower, so the clamp can only reduce the error). ``None`` (restorers trained
        before it existed): no clamp.
    vae_fingerprint : str or None
        :func:`vaelib.models.vae_fingerprint` of the VAE it was trained for; applying it to another VAE is refused
        (:func:`check_vae`). ``None``: recorded by no one (restorers trained before it existed), not checked.
    vae_name : str
        A readable name of that VAE (its source), for the refusal message.
    gate : {"consistency", "off"}
        The default of the enhancer's ``gate`` parameter: ``"consistency"`` scales each window's correction by the
        factor the VAE's own round trip agrees with (:mod:`vaelib.restore.gate`); ``"off"`` applies it as is.
    """

    kind: str = "mel"
    conditional: bool = False
    arch: str = "tcn"
    channels: int = 128
    n_mels: int = 64
    latent_channels: int = 8
    mel_mean: float = -5.0
    mel_std: float = 3.0
    sr: int = 16000
    n_fft: int = 1024
    fmin: float = 0.0
    fmax: float = 8000.0
    high_band_hz: float = HIGH_BAND_HZ
    categories: tuple = CATEGORIES
    emb_dim: int = 16
    mel_floor: float | None = None
    vae_fingerprint: str | None = None
    vae_name: str = ""
    gate: str = "consistency"

    def __post_init__(self):
        if self.kind not in ("mel", "latent"):
            raise RestorerError(f"kind must be 'mel' or 'latent', got {self.kind!r}")
        if self.arch not in ("tcn", "unet"):
            raise RestorerError(f"arch must be 'tcn' or 'unet', got {self.arch!r}")
        if self.gate not in GATES:
            raise RestorerError(f"gate must be one of {', '.join(GATES)}, got {self.gate!r}")
        self.categories = tuple(self.categories)

    def hf_mask(self) -> np.ndarray:
        """Boolean mask of the mel bins centred at or above ``high_band_hz``."""
        import librosa

        f = librosa.mel_frequencies(self.n_mels + 2, fmin=self.fmin, fmax=self.fmax, htk=False)[1:-1]
        return f >= self.high_band_hz



class Restorer(nn.Module):
    """A trained restorer: the residual net, the optional type classifier and its :class:`RestorerConfig`.

    Use :meth:`restore`; ``forward`` returns the raw residual of the normalised input.
    """

    def __init__(self, config: RestorerConfig):
        super().__init__()
        self.config = config
        emb = config.emb_dim if config.conditional else 0
        if config.kind == "latent":
            self.net = LatentResNet(config.latent_channels, config.channels, emb)
        elif config.arch == "unet":
            self.net = MelPostNet(config.channels, emb)
        else:
            self.net = MelTCN(config.n_mels, config.channels, emb)
        if config.conditional:
            self.embedding = nn.Embedding(len(config.categories), config.emb_dim)
            in_ch = 1 if config.kind == "mel" else config.latent_channels
            self.classifier = TypeClassifier(in_ch, len(config.categories))
        else:
            self.embedding = self.classifier = None

    @property
    def kind(self) -> str:
        return self.config.kind

    def _norm(self, x):
        if self.config.kind == "mel":
            return (x - self.config.mel_mean) / self.config.mel_std
        return x

    def type_probs(self, x: torch.Tensor) -> torch.Tensor:
        """Audio-type probabilities ``(B, K)`` inferred from the decoded mel (mel kind) or latent (latent kind)."""
        if self.classifier is None:
            raise RestorerError("this restorer is not conditional: it has no type classifier")
        return torch.softmax(self.classifier(self._norm(x.float())), dim=-1)

    def _cond_weights(self, x, category) -> torch.Tensor | None:
        """``(B, K)`` weights of the type embeddings: one-hot for a label, classifier probabilities for auto."""
        if self.embedding is None:
            return None
        k = len(self.config.categories)
        if category is None or (isinstance(category, str) and category == "auto"):
            return self.type_probs(x)
        if isinstance(category, torch.Tensor):
            if category.ndim == 2:  # given probabilities / weights
                return category.to(x.device, torch.float32)
            idx = category.to(x.device).long().reshape(-1)
        else:
            names = [category] if isinstance(category, (str, int, np.integer)) else list(category)
            idx = torch.tensor([self._category_index(c) for c in names], device=x.device)
        if idx.numel() == 1 and x.shape[0] > 1:
            idx = idx.expand(x.shape[0])
        return F.one_hot(idx, k).float()

    def _category_index(self, c) -> int:
        cats = self.config.categories
        if isinstance(c, str):
            if c not in cats:
                raise RestorerError(f"unknown audio type {c!r}; accepted: auto, {', '.join(cats)}")
            return cats.index(c)
        c = int(c)
        if not 0 <= c < len(cats):
            raise RestorerError(f"audio type index {c} out of range; accepted: 0..{len(cats) - 1} ({', '.join(cats)})")
        return c

    def forward(self, x, category=None):
        w = self._cond_weights(x, category)
        emb = None if w is None else w @ self.embedding.weight
        out = self.net(self._norm(x), emb)
        return out * self.config.mel_std if self.config.kind == "mel" else out

    @torch.no_grad()
    def restore(self, x: torch.Tensor, strength: float = 1.0, category=None) -> torch.Tensor:
        """``x + strength · f(x)`` for a log-mel ``(B, 1, T, M)`` (mel kind) or scaled latent (latent kind).

        ``strength=0`` returns ``x.clone()`` (bit-exact plain VAE output). ``x`` is never modified. ``category``:
        ``None``/``"auto"`` (inferred), a type name or index, or ``(B, K)`` weights (conditional restorers only).
        """
        strength = float(strength)
        if not 0.0 <= strength <= 1.0:
            raise RestorerError(f"strength must be in [0, 1], got {strength:g}")
        if not isinstance(x, torch.Tensor) or x.ndim != 4:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise RestorerError(f"restore takes a 4-D tensor (batch, channels, time, freq), got {shape}")
        if self.embedding is None and not (category is None or (isinstance(category, str) and category == "auto")):
            raise RestorerError("this restorer is not conditional; pass no category")
        return self.run(x, strength, category)

    @torch.no_grad()
    def run(self, x: torch.Tensor, strength: float, category=None, gate: bool = False) -> torch.Tensor:
        """:meth:`restore` without its argument checks, for callers that validated them (the enhancer adapter of
        :mod:`vaelib.enhance`, which validates a parameter once per call path). ``gate=True`` (mel kind): the
        correction is scaled per batch item by the consistency gate (:func:`vaelib.restore.gate.gated`) with the
        VAE given to :meth:`bind_vae`."""
        if strength == 0.0:
            return x.clone()
        p = next(self.parameters())
        if p.device != x.device:
            self.to(x.device)
        self.eval()
        xf = x.float()
        out = xf + strength * self(xf, category)
        if self.config.kind == "mel" and self.config.mel_floor is not None:
            out = out.clamp(min=self.config.mel_floor)
        if gate and self.config.kind == "mel":
            from .gate import gated

            out, self.last_gate = gated(self.gate_vae(), xf, out, self.hf_mask_tensor(), self.config.mel_floor)
        return out.to(x.dtype)

    def hf_mask_tensor(self) -> torch.Tensor:
        """:meth:`RestorerConfig.hf_mask` as a boolean tensor (computed once)."""
        mask = self.__dict__.get("_hf_mask")
        if mask is None:
            mask = torch.from_numpy(self.config.hf_mask())
            self.__dict__["_hf_mask"] = mask
        return mask

    def bind_vae(self, vae) -> None:
        """Remember ``vae`` (already checked by :func:`check_vae`) for the consistency gate. Kept outside the
        module's parameters and state (never saved). Every VAE that passes the check has the recorded weights,
        so the binding cannot change a result — unless the check was overridden (``allow_foreign_restorer``)."""
        self.__dict__["_gate_vae"] = vae

    def gate_vae(self):
        """The VAE for the gate: the one bound by :meth:`bind_vae`, else the bundled tiny VAE when this restorer was
        trained for it; otherwise a one-line :class:`RestorerError`."""
        vae = self.__dict__.get("_gate_vae")
        if vae is not None:
            return vae
        from ..models import vae_fingerprint

        bundled = _bundled_vae()
        if self.config.vae_fingerprint is not None and vae_fingerprint(bundled) == self.config.vae_fingerprint:
            self.__dict__["_gate_vae"] = bundled
            return bundled
        raise RestorerError("gate='consistency' needs the VAE this restorer was trained for: apply it through "
                            "vaelib.reconstruct / vaelib eval / the notebooks (which pass the VAE), call "
                            "enhance.check_restorers(specs, vae) first, or pass gate='off'")



@functools.cache
def _bundled_vae():
    from ..models import load_vae

    return load_vae("bundled", device="cpu")


def save_restorer(restorer: Restorer, folder, extra: dict | None = None) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``folder`` (created)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().float().cpu().contiguous() for k, v in restorer.state_dict().items()}
    save_file(state, str(folder / WEIGHTS), metadata={"format": FORMAT})
    cfg = dataclasses.asdict(restorer.config)
    cfg["categories"] = list(cfg["categories"])
    (folder / "config.json").write_text(json.dumps({"format": FORMAT, "version": 1, "restorer": cfg,
                                                    **(extra or {})}, indent=2) + "\n")
    return folder


def load_restorer(folder, device=None) -> Restorer:
    """Load a restorer written by :func:`save_restorer` / ``vaelib train-restorer`` (safetensors only).

    Raises :class:`RestorerError` (one line) for a missing folder, pickle-only weights or a foreign config.
    """
    from safetensors.torch import load_file

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise RestorerError(f"restorer folder not found: {folder}")
    cfg_path, weights = folder / "config.json", folder / WEIGHTS
    if not weights.is_file():
        pickles = [p.name for p in folder.iterdir() if p.suffix in _PICKLE_SUFFIXES]
        if pickles:
            raise RestorerError(f"refusing to load pickle weights {pickles} in {folder}: unpickling can execute "
                                f"code; only {WEIGHTS} is loaded")
        raise RestorerError(f"no {WEIGHTS} in {folder}; pass a folder written by `vaelib train-restorer`")
    try:
        meta = json.loads(cfg_path.read_text())
    except (OSError, ValueError) as exc:
        raise RestorerError(f"cannot read {cfg_path}: {one_line(exc, 120)}") from None
    if meta.get("format") != FORMAT:
        raise RestorerError(f"{cfg_path} is not a vaelib restorer config (format {meta.get('format')!r})")
    known = {f.name for f in dataclasses.fields(RestorerConfig)}
    config = RestorerConfig(**{k: v for k, v in meta["restorer"].items() if k in known})
    model = Restorer(config)
    try:
        model.load_state_dict(load_file(str(weights)))
    except RuntimeError as exc:
        raise RestorerError(f"{weights} does not match its config.json: {one_line(exc, 160)}") from None
    model.eval()
    if device is not None:
        model.to(device)
    return model


def bundled_dir(name: str = "learned") -> Path:
    """Folder of a bundled restorer (``vaelib/assets/restorers/<name>``) for the bundled tiny VAE."""
    from ..assets import ASSETS

    return ASSETS / "restorers" / name


@functools.cache
def bundled_restorer(name: str = "learned") -> Restorer:
    """The bundled restorer ``name`` (``"learned"`` or ``"learned_cond"``), loaded once and cached."""
    folder = bundled_dir(name)
    if not (folder / WEIGHTS).is_file():
        raise RestorerError(f"bundled restorer {name!r} missing in {folder}; reinstall vaelib or train one with "
                            "`vaelib train-restorer`")
    return load_restorer(folder)


def training_log(name: str = "learned") -> list[dict]:
    """Rows of a bundled restorer's ``training_log.csv`` (``step``, ``loss``, ``heldout_lsd_hf_change``, ...)."""
    with open(bundled_dir(name) / "training_log.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def card_info(name: str = "learned") -> dict:
    """The ``training`` block of a bundled restorer's ``config.json`` and its held-out means (``eval.json``)."""
    folder = bundled_dir(name)
    info = json.loads((folder / "config.json").read_text()).get("training", {})
    ev = json.loads((folder / "eval.json").read_text())
    held = (ev.get("heldout") or {}).get("mean", {})
    return {"name": name, **{k: info.get(k) for k in ("parameters", "steps", "seconds", "cpu_seconds", "threads",
                                                        "train_seconds_audio", "command")},
            "train_files": len(info.get("train_clips", [])), "heldout_files": len(info.get("heldout_clips", [])),
            **{f"heldout_{k}": v for k, v in held.items()}}


def register(folder, name: str | None = None) -> str:
    """Register a trained restorer folder as an enhancer (stage ``mel`` or ``latent`` by its kind); return its name.

    Afterwards ``vaelib.reconstruct(wave, vae, vocoder, enhancers=[name])`` applies it like any enhancer, with a
    ``strength`` parameter (and ``category`` for conditional ones): :mod:`vaelib.enhance` finds it in
    :data:`REGISTRY`. Registering a name again replaces the restorer behind it.
    """
    name = name or Path(folder).name
    if name in RESERVED_NAMES:
        raise RestorerError(f"enhancer name {name!r} is taken by a built-in method; choose another name")
    REGISTRY[name] = load_restorer(folder)
    return name


def registered(name: str) -> Restorer:
    """The restorer registered as ``name`` (:func:`register`) or the bundled one of that name."""
    if name in REGISTRY:
        return REGISTRY[name]
    return bundled_restorer(name)


def check_vae(restorer: Restorer, vae, name: str = "restorer", allow_foreign: bool = False) -> None:
    """Refuse (one-line :class:`RestorerError`) a restorer applied to a VAE other than the one it was trained for.

    Compares :func:`vaelib.models.vae_fingerprint` of ``vae`` (a :class:`vaelib.models.LatentVAE` or a diffusers
    ``AutoencoderKL``) with the restorer's recorded ``vae_fingerprint``; ``allow_foreign=True`` skips the check (the
    API's ``allow_foreign_restorer``, the command line's ``--allow-foreign-restorer``).
    """
    from ..models import vae_fingerprint

    want = restorer.config.vae_fingerprint
    if allow_foreign or want is None:
        restorer.bind_vae(vae)  # the gate uses the VAE it is applied with
        return
    got = vae_fingerprint(vae)
    if got == want:
        restorer.bind_vae(vae)
    if got != want:
        src = getattr(vae, "source", "") or getattr(getattr(vae, "config", None), "_name_or_path", "") or "?"
        raise RestorerError(f"restorer {name!r} was trained for VAE {want} ({restorer.config.vae_name or '?'}), not "
                            f"for this VAE {got} ({src}); train one for it with `vaelib train-restorer`, or pass "
                            "allow_foreign_restorer=True (--allow-foreign-restorer) to apply it anyway")
