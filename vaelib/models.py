"""Load the AudioLDM2 VAE and vocoder (or the bundled tiny VAE + Griffin-Lim) through ``from_pretrained``.

Sources accepted by :func:`load_vae` / :func:`load_vocoder` / :func:`resolve_models`:

* ``"auto"`` — the real AudioLDM2 weights when they are available locally (``$VAELIB_MODEL``, or
  ``cvssp/audioldm2``, ``cvssp/audioldm2-music``, ``cvssp/audioldm2-large`` in the Hugging Face cache), else the
  bundled tiny VAE with Griffin-Lim. Never touches the network.
* a Hugging Face repo id (``"cvssp/audioldm2-music"``): ``from_pretrained(id, subfolder="vae")``; downloads
  only when ``HF_HUB_OFFLINE`` is not set.
* a local snapshot folder holding ``vae/`` (and ``vocoder/``), or a folder holding a VAE directly
  (``config.json`` + ``diffusion_pytorch_model.safetensors``).
* ``"bundled"`` — the tiny VAE shipped inside vaelib.

Only safetensors weights are loaded: pickle files (``.bin``/``.ckpt``) can execute code when unpickled.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from pathlib import Path

import torch

from .assets import bundled_model_dir
from .audio import MelConfig

__all__ = [
    "AUDIOLDM2_REPOS",
    "ModelChoice",
    "LatentVAE",
    "GriffinLim",
    "HifiGanVocoder",
    "resolve_models",
    "load_vae",
    "load_vocoder",
    "weights_digest",
    "hf_cache_dir",
    "check_models",
    "check_hub",
    "check_device",
    "looks_like_repo_id",
    "VOCODER_NAMES",
    "vae_kind",
]

log = logging.getLogger(__name__)

#: Repos searched (in this order) by ``"auto"``.
AUDIOLDM2_REPOS = ("cvssp/audioldm2", "cvssp/audioldm2-music", "cvssp/audioldm2-large")
ENV_MODEL = "VAELIB_MODEL"
VOCODER_NAMES = ("auto", "hifigan", "griffinlim")
_PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth", ".pkl")
_SAFETENSORS = {"vae": "diffusion_pytorch_model.safetensors", "vocoder": "model.safetensors"}


class ModelLoadError(ValueError):
    """A model source could not be resolved or loaded; the message says how to fix it."""


def hf_cache_dir() -> Path:
    """The HF hub cache folder: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").strip().lower() in ("1", "true", "yes", "on")


def _cached_snapshot(repo_id: str, subfolder: str) -> Path | None:
    """The snapshot folder of ``repo_id`` in the HF cache if its ``subfolder`` weights are there, else None.

    ``subfolder=""`` looks for ``config.json`` + ``model.safetensors`` at the repo's root (e.g. a CLAP repo).
    """
    from huggingface_hub import try_to_load_from_cache

    prefix = f"{subfolder}/" if subfolder else ""
    weights = _SAFETENSORS.get(subfolder, "model.safetensors")
    try:
        hit = try_to_load_from_cache(repo_id, f"{prefix}{weights}", cache_dir=str(hf_cache_dir()))
        cfg = try_to_load_from_cache(repo_id, f"{prefix}config.json", cache_dir=str(hf_cache_dir()))
    except Exception:  # malformed cache entries are treated as absent
        return None
    if isinstance(hit, str) and isinstance(cfg, str):
        return Path(cfg).parent.parent if subfolder else Path(cfg).parent
    return None


@dataclasses.dataclass(frozen=True)
class ModelChoice:
    """Where the VAE and vocoder come from, as resolved by :func:`resolve_models`.

    Attributes
    ----------
    vae : str
        A local folder or a HF repo id for :func:`load_vae`.
    vocoder : str
        ``"griffinlim"``, or a local folder / HF repo id holding ``vocoder/``.
    bundled : bool
        True when the bundled tiny VAE is used (not AudioLDM2).
    reason : str
        Why this choice was made.
    """

    vae: str
    vocoder: str
    bundled: bool
    reason: str

    def describe(self) -> str:
        """One line naming model and vocoder, repeated in every report header.

        Says what the VAE is: the bundled tiny VAE, an AudioLDM2 VAE (a ``cvssp/audioldm2*`` repo), or for any other
        source its path and its config's sizes (:func:`vae_kind`) — a local folder is not called AudioLDM2.
        """
        vae = "bundled tiny VAE (vaelib, not AudioLDM2)" if self.bundled else vae_kind(self.vae)
        if self.vocoder == "griffinlim":
            voc = "Griffin-Lim (torch, no weights)"
        elif self.bundled_vocoder:
            voc = "bundled tiny HiFi-GAN (SpeechT5HifiGan, vaelib, not AudioLDM2's)"
        else:
            voc = f"HiFi-GAN from {self.vocoder}"
        return f"model: {vae}; vocoder: {voc} — {self.reason}"

    @property
    def bundled_vocoder(self) -> bool:
        """True when the vocoder is the one shipped beside the bundled tiny VAE (``vocoder/`` of its folder)."""
        if self.vocoder == "griffinlim":
            return False
        try:
            return Path(self.vocoder).expanduser().resolve() == bundled_model_dir()
        except (OSError, RuntimeError):
            return False

    def short_names(self) -> tuple[str, str]:
        """``(vae, vocoder)`` in a few words for a headline, e.g. ``("vaelib's bundled tiny VAE (not AudioLDM2)",
        "Griffin-Lim")`` or ``("the AudioLDM2 VAE of cvssp/audioldm2-music", "its HiFi-GAN")``."""
        if self.bundled:
            vae = "vaelib's bundled tiny VAE (a stand-in, not AudioLDM2)"
        elif self.vae in AUDIOLDM2_REPOS:
            vae = f"the AudioLDM2 VAE of {self.vae}"
        else:
            vae = f"the VAE from {self.vae}"
        if self.vocoder == "griffinlim":
            voc = "Griffin-Lim"
        elif self.bundled_vocoder:
            voc = "vaelib's bundled tiny SpeechT5HifiGan (not AudioLDM2's)"
        elif self.vocoder == self.vae:
            voc = "its HiFi-GAN vocoder"
        else:
            voc = f"the HiFi-GAN vocoder from {self.vocoder}"
        return vae, voc


def _shown_value(v) -> str:
    """A config value for a one-line description: numbers and lists of numbers as they are, anything else '?'."""
    if isinstance(v, bool):
        return "?"
    if isinstance(v, (int, float)):
        return f"{v:g}" if isinstance(v, float) else str(v)
    if isinstance(v, (list, tuple)) and len(v) <= 16 and all(isinstance(x, int) and not isinstance(x, bool)
                                                             for x in v):
        return "[" + ", ".join(str(x) for x in v) + "]"
    return "?"


def vae_kind(source: str, bundled: bool = False) -> str:
    """What a VAE source is, in words, for headers: never claims AudioLDM2 for a folder it cannot vouch for.

    * bundled: ``"bundled tiny VAE (vaelib, not AudioLDM2)"``;
    * one of :data:`AUDIOLDM2_REPOS`: ``"AudioLDM2 VAE from cvssp/audioldm2"``;
    * a local folder: ``"VAE from local folder <path> (AutoencoderKL config: latent_channels 8, block_out_channels
      [8, 16, 16], scaling_factor 0.5)"`` (or ``"config unreadable"``);
    * another repo id: ``"VAE from Hugging Face repo <id>"``.
    """
    if bundled:
        return "bundled tiny VAE (vaelib, not AudioLDM2)"
    if source in AUDIOLDM2_REPOS:
        return f"AudioLDM2 VAE from {source}"
    folder = Path(source).expanduser()
    if folder.is_dir():
        cfg_path = folder / "vae" / "config.json"
        if not cfg_path.is_file():
            cfg_path = folder / "config.json"
        try:
            cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
            if not isinstance(cfg, dict):
                raise ValueError
        except (OSError, ValueError):
            return f"VAE from local folder {folder} (config unreadable)"
        sizes = ", ".join(f"{k} {_shown_value(cfg.get(k))}" for k in ("latent_channels", "block_out_channels",
                                                                       "scaling_factor"))
        return f"VAE from local folder {folder} (AutoencoderKL config: {sizes})"
    return f"VAE from Hugging Face repo {source}"


def looks_like_repo_id(source: str) -> bool:
    """Whether ``source`` reads as a Hugging Face repo id (``owner/name``) rather than an existing path."""
    parts = source.split("/")
    return len(parts) == 2 and all(parts) and not source.startswith((".", "~", "/")) and not Path(source).exists()


def _has_vae_subfolder(folder: Path) -> bool:
    return (folder / "vae" / "config.json").is_file()


def _auto_source() -> tuple[str, bool, str]:
    env = os.environ.get(ENV_MODEL, "").strip()
    if env:
        return env, False, f"${ENV_MODEL}={env}"
    for repo in AUDIOLDM2_REPOS:
        snap = _cached_snapshot(repo, "vae")
        if snap is not None:
            return repo, False, f"{repo} found in the Hugging Face cache ({hf_cache_dir()})"
    return (str(bundled_model_dir()), True,
            f"no AudioLDM2 weights in ${ENV_MODEL} or the HF cache ({hf_cache_dir()}); using the bundled default")


def _vocoder_available(vae_source: str) -> bool:
    folder = Path(vae_source).expanduser()
    if folder.is_dir():
        return (folder / "vocoder" / "config.json").is_file()
    if looks_like_repo_id(vae_source):
        return _cached_snapshot(vae_source, "vocoder") is not None or not _offline()
    return False


def resolve_models(model: str = "auto", vocoder: str = "auto") -> ModelChoice:
    """Decide which VAE and vocoder to load, without loading them and without network access for ``"auto"``.

    Parameters
    ----------
    model : str
        ``"auto"``, ``"bundled"``, a HF repo id or a local folder (see module docstring).
    vocoder : str
        ``"auto"`` (HiFi-GAN when the model source has a ``vocoder/``, else Griffin-Lim), ``"hifigan"``,
        ``"griffinlim"``, or a folder / repo id holding ``vocoder/``.
    """
    if not isinstance(model, str) or not model.strip():
        raise ModelLoadError(f"model must be 'auto', 'bundled', a Hugging Face repo id or a folder (got {model!r})")
    if not isinstance(vocoder, str) or not vocoder.strip():
        raise ModelLoadError(f"vocoder must be one of {VOCODER_NAMES} or a folder/repo id (got {vocoder!r})")
    if model == "auto":
        vae_src, bundled, reason = _auto_source()
    elif model == "bundled":
        vae_src, bundled, reason = str(bundled_model_dir()), True, "requested the bundled default"
    else:
        vae_src, bundled, reason = model, Path(model).expanduser().resolve() == bundled_model_dir(), "requested"
    if vocoder == "griffinlim":
        voc = "griffinlim"
    elif vocoder in ("auto", "hifigan"):
        if _vocoder_available(vae_src):
            voc = vae_src
        elif vocoder == "hifigan":
            raise ModelLoadError(
                f"vocoder='hifigan' needs a vocoder/ folder beside the VAE, and {vae_src} has none; "
                "pass vocoder='griffinlim' or a folder/repo id holding vocoder/"
            )
        else:
            voc = "griffinlim"
    else:
        voc = vocoder
    return ModelChoice(vae=vae_src, vocoder=voc, bundled=bundled, reason=reason)


def _pick_device(device) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ModelLoadError(f"unknown device {device!r}; use 'cpu', 'cuda', 'cuda:0' or 'auto'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} requested but CUDA is not available here; use device='cpu'")
    return dev


def check_device(device) -> torch.device:
    """The ``torch.device`` that ``device`` (``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``) means here.

    Raises
    ------
    ModelLoadError
        One line: unknown device, or CUDA requested where it is not available.
    """
    return _pick_device(device)


def check_models(model: str = "auto", vocoder: str = "auto") -> ModelChoice:
    """Resolve ``model``/``vocoder`` as the loaders will and check the sources exist, without loading weights.

    Used by the report runner and ``vaelib eval`` to refuse a bad model before anything runs: a folder must hold
    ``vae/`` (and ``vocoder/`` when HiFi-GAN is asked for) with safetensors weights; a repo id must be in the
    Hugging Face cache when ``HF_HUB_OFFLINE=1``.

    Raises
    ------
    ModelLoadError
        One line saying what is wrong and how to fix it.
    """
    choice = resolve_models(model, vocoder)
    for source, sub in ((choice.vae, "vae"), (choice.vocoder, "vocoder")):
        if source == "griffinlim" or (choice.bundled and sub == "vae"):  # bundled: shipped with vaelib
            continue
        folder = Path(source).expanduser()
        if folder.exists():
            if not folder.is_dir():
                raise ModelLoadError(f"{sub} source {folder} is a file; pass the folder that holds {sub}/")
            _local_folder(folder, sub)
        elif not looks_like_repo_id(source):
            raise ModelLoadError(f"{sub} source {source!r} is neither an existing folder nor a Hugging Face "
                                 "repo id like 'cvssp/audioldm2'")
        elif _cached_snapshot(source, sub) is None:
            if _offline():
                raise ModelLoadError(f"{source} ({sub}/) is not in the Hugging Face cache and HF_HUB_OFFLINE=1 "
                                     "forbids downloading; pass a local snapshot folder")
            check_hub(source, f"{sub}/config.json")
    return choice


#: Seconds :func:`check_hub` waits for the Hub before calling the network unavailable.
HUB_CHECK_TIMEOUT = 10.0


def check_hub(repo_id: str, filename: str = "vae/config.json", timeout: float = HUB_CHECK_TIMEOUT) -> None:
    """Ask the Hugging Face Hub whether ``repo_id`` holds ``filename``, before anything runs.

    Called by :func:`check_models` (``vae/config.json``, ``vocoder/config.json``) and ``vaelib generate``
    (``model_index.json``) for a repo id that is not in the cache while ``HF_HUB_OFFLINE`` is not set, so a
    typo'd id (``cvssp/audioldm2-musik``) or an unreachable network fails in one line up front instead of inside a
    notebook or after a run folder was written. Reads only the file's metadata (no download).

    Raises
    ------
    ModelLoadError
        One line: the repo does not exist (or is gated / private), it has no ``filename``, or the Hub could
        not be reached — then it names ``HF_HUB_OFFLINE=1`` (with the weights in the cache) and a local folder.
    """
    import huggingface_hub
    from huggingface_hub import errors as hf_errors

    try:
        huggingface_hub.get_hf_file_metadata(huggingface_hub.hf_hub_url(repo_id, filename), timeout=timeout)
    except hf_errors.RepositoryNotFoundError:
        raise ModelLoadError(f"{repo_id} is not a model repo on the Hugging Face Hub (a typo? gated or private repos "
                             "need `huggingface-cli login`); check the id or pass a local snapshot folder") from None
    except (hf_errors.EntryNotFoundError, hf_errors.RevisionNotFoundError):
        raise ModelLoadError(f"{repo_id} on the Hugging Face Hub has no {filename}; pass a repo or folder laid out "
                             "like cvssp/audioldm2 (vae/, vocoder/, model_index.json)") from None
    except Exception as exc:  # connection refused, DNS, timeout, proxy, offline mode: the network, not the id
        why = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise ModelLoadError(f"could not reach the Hugging Face Hub to check {repo_id} ({type(exc).__name__}: "
                             f"{why}); with the weights in the cache set HF_HUB_OFFLINE=1, or pass a local "
                             "snapshot folder (--model /path/to/snapshot)") from None


def _pick_dtype(dtype, device: torch.device) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str):
        table = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
                 "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
        if dtype not in table:
            raise ModelLoadError(f"unknown dtype {dtype!r}; use one of {sorted(table)}")
        dtype = table[dtype]
    if dtype == torch.float16 and device.type == "cpu":
        raise ModelLoadError("float16 is not supported on CPU (slow or missing kernels); use float32 or bfloat16")
    return dtype


def _local_folder(folder: Path, subfolder: str) -> tuple[Path, str | None]:
    """Return (root, subfolder) for from_pretrained, refusing pickle-only weights."""
    if (folder / subfolder / "config.json").is_file():
        root, sub = folder, subfolder
    elif (folder / "config.json").is_file():
        root, sub = folder, None
    else:
        raise ModelLoadError(
            f"{folder} holds neither {subfolder}/config.json nor config.json; pass an AudioLDM2 snapshot folder "
            f"(with {subfolder}/) or the {subfolder} folder itself"
        )
    weights_dir = root / sub if sub else root
    expected = _SAFETENSORS.get(subfolder, "model.safetensors")
    if not ((weights_dir / expected).is_file() or (weights_dir / f"{expected}.index.json").is_file()):
        pickles = [p.name for p in weights_dir.iterdir() if p.suffix in _PICKLE_SUFFIXES]
        if pickles:
            raise ModelLoadError(
                f"refusing to load pickle weights {pickles} in {weights_dir}: unpickling can execute arbitrary code; "
                "convert them to safetensors (e.g. diffusers' save_pretrained(safe_serialization=True))"
            )
        others = sorted(p.name for p in weights_dir.glob("*.safetensors"))
        found = f" (found {', '.join(others)[:120]}: rename the right one)" if others else ""
        raise ModelLoadError(f"no {expected} in {weights_dir}{found}; a {subfolder} folder holds config.json and "
                             f"{expected}")
    check_config(weights_dir / "config.json", subfolder)
    return root, sub


#: Bounds of a plausible config (a typo or a hostile file must not allocate terabytes or run for hours).
_MAX_CHANNELS = 4096
_MAX_PARAMS = 2_000_000_000


def _int_in(cfg, key, lo, hi, problems, default=None):
    v = cfg.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        problems.append(f"{key} must be an integer in [{lo}, {hi}] (got {_shown_value(v) if v is not None else v})")
        return None
    return v


def _int_list(cfg, key, lo, hi, n_max, problems):
    v = cfg.get(key)
    if (not isinstance(v, list) or not 1 <= len(v) <= n_max
            or any(isinstance(x, bool) or not isinstance(x, int) or not lo <= x <= hi for x in v)):
        problems.append(f"{key} must be a list of 1 to {n_max} integers in [{lo}, {hi}] (got {_shown_value(v)})")
        return None
    return v


def check_config(path: Path, subfolder: str) -> dict:
    """Read a model folder's ``config.json`` and refuse, in one line, what would only fail deep inside diffusers /
    transformers or allocate absurd sizes: not JSON, not an object, sizes out of range, a layout vaelib's front
    end cannot feed (VAE: 1 input channel, 4x down-sampling; vocoder: 64 mel bins in, 160 samples per frame out)."""
    try:
        cfg = json.loads(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ModelLoadError(f"{path} is not UTF-8 text; restore the model's config.json") from None
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); restore "
                             "the model's config.json") from None
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc.strerror}") from None
    if not isinstance(cfg, dict):
        raise ModelLoadError(f"{path} must hold a JSON object (got {type(cfg).__name__}); restore the model's "
                             "config.json")
    problems: list[str] = []
    if subfolder == "vae":
        for key in ("in_channels", "out_channels"):
            if cfg.get(key, 3) != 1:
                problems.append(f"{key} must be 1 for a mel VAE (got {_shown_value(cfg.get(key, 3))})")
        _int_in(cfg, "latent_channels", 1, 256, problems, default=4)
        layers = _int_in(cfg, "layers_per_block", 1, 16, problems, default=1)
        blocks = _int_list(cfg, "block_out_channels", 1, _MAX_CHANNELS, 8, problems)
        groups = _int_in(cfg, "norm_num_groups", 1, _MAX_CHANNELS, problems, default=32)
        if blocks and groups and any(c % groups for c in blocks):
            problems.append(f"norm_num_groups {groups} must divide every block_out_channels {_shown_value(blocks)}")
        if blocks and 2 ** (len(blocks) - 1) != MelConfig().time_multiple:
            problems.append(f"{len(blocks)} blocks down-sample by {2 ** (len(blocks) - 1)}, but vaelib's front end "
                            f"pads mels to multiples of {MelConfig().time_multiple} (AudioLDM2's VAE has 3 blocks)")
        if blocks and layers:  # convolutions of 3x3 dominate: ~ (encoder + decoder) resnets x 2 convs x 9 c^2
            est = sum((2 * layers + 1) * 2 * 9 * c * c for c in blocks)
            if est > _MAX_PARAMS:
                problems.append(f"these sizes mean about {est / 1e9:.0f} G parameters (more than "
                                f"{_MAX_PARAMS / 1e9:.0f} G)")
        sf = cfg.get("scaling_factor", 0.18215)
        if isinstance(sf, bool) or not isinstance(sf, (int, float)) or not math.isfinite(sf) or sf <= 0:
            problems.append(f"scaling_factor must be a finite positive number (got {_shown_value(sf)}): latents are "
                            "divided by it")
    elif subfolder == "vocoder":
        if cfg.get("model_in_dim", 80) != MelConfig().n_mels:
            got = _shown_value(cfg.get("model_in_dim", 80))
            problems.append(f"model_in_dim must be {MelConfig().n_mels} mel bins (got {got})")
        rates = _int_list(cfg, "upsample_rates", 1, 64, 8, problems)
        if rates and math.prod(rates) != MelConfig().hop_length:
            problems.append(f"upsample_rates {_shown_value(rates)} multiply to {math.prod(rates)}, but one mel frame "
                            f"is {MelConfig().hop_length} samples")
        kernels = _int_list(cfg, "upsample_kernel_sizes", 1, 256, 8, problems)
        if rates and kernels and len(rates) != len(kernels):
            problems.append("upsample_rates and upsample_kernel_sizes must have the same length")
        _int_in(cfg, "upsample_initial_channel", 1, _MAX_CHANNELS, problems, default=512)
        _int_list(cfg, "resblock_kernel_sizes", 1, 64, 8, problems)
        if cfg.get("sampling_rate", 16000) != MelConfig().sr:
            problems.append(f"sampling_rate must be {MelConfig().sr} (got {_shown_value(cfg.get('sampling_rate'))})")
    if problems:
        raise ModelLoadError(f"{path}: {'; '.join(problems)}; this is not a {subfolder} vaelib can use — fix or "
                             "replace the config")
    return cfg


def _checked_load(cls, where: Path, *args, **kwargs):
    """``cls.from_pretrained(*args, **kwargs)`` with every failure (corrupt weights, weights of another architecture)
    as one line, and weights that leave parameters uninitialised or unused refused (diffusers would only warn and
    keep random values)."""
    try:
        model, info = cls.from_pretrained(*args, output_loading_info=True, **kwargs)
    except MemoryError:
        raise ModelLoadError(f"out of memory loading the model in {where}; its config asks for more than this "
                             "machine has") from None
    except Exception as exc:  # diffusers / transformers / safetensors raise many types, with pages of text
        text = " ".join(str(exc).split())
        hint = ("its weights do not match its config.json (another architecture?)" if any(
            w in text for w in ("size mismatch", "shape", "Cannot load", "copying a param")) else "it does not load")
        raise ModelLoadError(f"cannot load the model in {where}: {hint} ({text[:200] or type(exc).__name__}); "
                             "use the config.json and weights saved together") from None
    missing = list(info.get("missing_keys") or [])
    unexpected = list(info.get("unexpected_keys") or [])
    mismatched = list(info.get("mismatched_keys") or [])
    if missing or unexpected or mismatched:
        groups = (("missing", missing), ("unexpected", unexpected), ("of another shape", mismatched))
        what = "; ".join(f"{len(v)} {k}: {', '.join(str(x) for x in v[:3])[:100]}{' ...' if len(v) > 3 else ''}"
                         for k, v in groups if v)
        raise ModelLoadError(f"the weights in {where} do not match its config.json ({what}); use the config.json and "
                             "weights saved together")
    return model


def _from_pretrained(cls, source: str, subfolder: str, **kwargs):
    """``cls.from_pretrained`` on a local folder or HF repo id, with one-line errors."""
    folder = Path(source).expanduser()
    if folder.exists():
        if not folder.is_dir():
            raise ModelLoadError(f"model source {folder} is a file; pass the folder that holds {subfolder}/")
        root, sub = _local_folder(folder, subfolder)
        kw = {"subfolder": sub} if sub else {}
        return _checked_load(cls, root / sub if sub else root, str(root), use_safetensors=True, local_files_only=True,
                             **kw, **kwargs)
    if not looks_like_repo_id(source):
        raise ModelLoadError(
            f"model source {source!r} is neither an existing folder nor a Hugging Face repo id like 'cvssp/audioldm2'"
        )
    cached = _cached_snapshot(source, subfolder)
    if cached is not None:
        check_config(cached / subfolder / "config.json", subfolder)
        return _checked_load(cls, cached / subfolder, str(cached), subfolder=subfolder, use_safetensors=True,
                             local_files_only=True, **kwargs)
    how = (f"download it on a connected machine (`huggingface-cli download {source} --include '{subfolder}/*'`) "
           f"into the HF cache ({hf_cache_dir()}), or pass a local snapshot folder holding {subfolder}/")
    if _offline():
        raise ModelLoadError(f"{source} ({subfolder}/) is not in the Hugging Face cache {hf_cache_dir()} and "
                             f"HF_HUB_OFFLINE=1 forbids downloading: {how}")
    try:
        return cls.from_pretrained(source, subfolder=subfolder, use_safetensors=True,
                                   cache_dir=str(hf_cache_dir()), **kwargs)
    except Exception as exc:
        msg = " ".join(str(exc).split())[:200]
        raise ModelLoadError(f"could not fetch {source} ({subfolder}/): {msg}; {how}") from None


def vae_fingerprint(vae) -> str:
    """A fingerprint of a VAE's weights and config: which VAE a restorer was trained for.

    ``sha256(class name, config without diffusers' private ``_`` keys, every state-dict tensor's name, shape and
    bytes after rounding to bfloat16)[:16]`` — the rounding makes a float32 and a bfloat16 load of the same weights
    agree. Accepts vaelib's :class:`LatentVAE` or a diffusers ``AutoencoderKL`` (a pipeline's ``pipe.vae``); cached
    on the model object (weights are frozen wherever vaelib uses it).
    """
    return weights_digest(vae, exact=False)


def weights_digest(vae, exact: bool = True) -> str:
    """SHA-256 of a model's class name, config (without diffusers' private ``_`` keys) and every state-dict tensor's
    name, shape and bytes; cached on the model object.

    ``exact=False`` is :func:`vae_fingerprint` (bytes after rounding to bfloat16, first 16 hex digits: a float32 and
    a bfloat16 load agree); ``exact=True`` hashes the dtype and the bytes as stored (one changed bit changes it:
    :class:`vaelib.pipeline.RoundTripCache`'s key).
    """
    import hashlib
    import json

    model = getattr(vae, "model", vae)
    attr = "_vaelib_exact_digest" if exact else "_vaelib_fingerprint"
    cached = getattr(model, attr, None)
    if cached is not None:
        return cached
    h = hashlib.sha256(type(model).__name__.encode())
    config = {k: v for k, v in dict(getattr(model, "config", {})).items() if not str(k).startswith("_")}
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if exact:
                t = t.detach().cpu().contiguous()
                h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
                h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
            else:
                h.update(f"{name}{tuple(t.shape)}".encode())
                h.update(t.detach().to("cpu", torch.bfloat16).contiguous().view(torch.int16).numpy().tobytes())
    digest = h.hexdigest() if exact else h.hexdigest()[:16]
    try:
        setattr(model, attr, digest)
    except AttributeError:
        pass
    return digest


class LatentVAE:
    """An AudioLDM-style mel VAE with the scaling that the diffusion model sees.

    ``encode``: ``z = posterior.mode() * scaling_factor`` (or ``.sample()`` with a seed);
    ``decode``: ``mel = decoder(z / scaling_factor)`` (docs/reference.md §2). Inputs and outputs are natural-log mels
    ``(batch, 1, time, n_mels)``, time a multiple of 4.

    Attributes
    ----------
    model : diffusers.AutoencoderKL
    scaling_factor : float
        Read from the model config, never hard-coded.
    source : str
        Where it was loaded from.
    bundled : bool
        True for vaelib's bundled tiny VAE.
    mel_config : MelConfig
        The front end the VAE expects.
    """

    def __init__(self, model, source: str = "", bundled: bool = False, mel_config: MelConfig | None = None):
        self.model = model.eval()
        self.scaling_factor = float(model.config.scaling_factor)
        self.source = source
        self.bundled = bundled
        self.mel_config = mel_config or MelConfig.audioldm2()
        self.downsample = 2 ** (len(model.config.block_out_channels) - 1)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def latent_channels(self) -> int:
        return int(self.model.config.latent_channels)

    def check_mel(self, mel) -> torch.Tensor:
        """Validate the ``(batch, 1, time, n_mels)`` layout; a wrong layout raises instead of being misread."""
        if not isinstance(mel, torch.Tensor):
            raise TypeError(f"mel must be a torch.Tensor (from vaelib.wav_to_mel), got {type(mel).__name__}")
        m = self.mel_config.n_mels
        shape = tuple(mel.shape)
        if mel.ndim == 3:
            if shape[-1] == m:
                raise ValueError(f"mel {shape} lacks the channel dim: expected (batch, 1, time, {m}); use mel[:, None]")
            if shape[1] == m:
                raise ValueError(f"mel {shape} looks like (batch, {m}, time): expected (batch, 1, time, {m}); "
                                 "use mel.transpose(1, 2)[:, None] (time comes before mel bins)")
        if mel.ndim != 4 or shape[1] != 1 or shape[-1] != m:
            hint = " (time and mel bins swapped? use mel.transpose(2, 3))" if mel.ndim == 4 and shape[2] == m else ""
            raise ValueError(f"mel must have shape (batch, 1, time, {m}), got {shape}{hint}")
        if shape[2] % self.downsample:
            raise ValueError(f"mel time length {shape[2]} is not a multiple of {self.downsample}; "
                             "pad the waveform with vaelib.audio.pad_to_multiple (wav_to_mel does it by default)")
        return mel

    @torch.inference_mode()
    def encode(self, mel: torch.Tensor, sample: bool = False, seed: int | None = None) -> torch.Tensor:
        """Mel ``(B,1,T,M)`` → scaled latent ``(B, C, T/4, M/4)``: ``mode() * scaling_factor``.

        ``sample=True`` draws from the posterior instead (as the original ``get_first_stage_encoding``),
        seeded with ``seed`` (default 0) for reproducibility.
        """
        mel = self.check_mel(mel).to(self.device, self.dtype)
        dist = self.model.encode(mel).latent_dist
        if sample:
            gen = torch.Generator(device=self.device).manual_seed(0 if seed is None else int(seed))
            z = dist.sample(generator=gen)
        else:
            z = dist.mode()
        return z * self.scaling_factor

    @torch.inference_mode()
    def decode(self, latent: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """Scaled latent → mel ``(B,1,T,M)``: ``decoder(z / scaling_factor)``, in chunks of ``batch_size``."""
        if not isinstance(latent, torch.Tensor) or latent.ndim != 4 or latent.shape[1] != self.latent_channels:
            shape = tuple(latent.shape) if isinstance(latent, torch.Tensor) else type(latent).__name__
            raise ValueError(f"latent must be a tensor (batch, {self.latent_channels}, time/4, mels/4), got {shape}")
        z = latent.to(self.device, self.dtype) / self.scaling_factor
        step = batch_size or z.shape[0]
        return torch.cat([self.model.decode(z[i:i + step]).sample for i in range(0, z.shape[0], step)])

    def __repr__(self):
        n = sum(p.numel() for p in self.model.parameters())
        return (f"LatentVAE(source={self.source!r}, bundled={self.bundled}, params={n / 1e6:.2f}M, "
                f"scaling_factor={self.scaling_factor:.6g}, device={self.device}, dtype={self.dtype})")


def load_vae(source: str = "auto", device=None, dtype=None) -> LatentVAE:
    """Load an AudioLDM-style ``AutoencoderKL`` (safetensors only) and wrap it as :class:`LatentVAE`.

    Parameters
    ----------
    source : str
        ``"auto"``, ``"bundled"``, a HF repo id (``cvssp/audioldm2``, ``-music``, ``-large``), a local
        snapshot folder holding ``vae/``, or a folder holding the VAE directly.
    device : str or torch.device, optional
        ``None``/``"auto"``: CUDA when available, else CPU.
    dtype : torch.dtype or str, optional
        Default float32. float16 is refused on CPU.
    """
    from diffusers import AutoencoderKL

    choice = resolve_models(source, vocoder="griffinlim")
    dev = _pick_device(device)
    dt = _pick_dtype(dtype, dev)
    model = _from_pretrained(AutoencoderKL, choice.vae, "vae", torch_dtype=dt, low_cpu_mem_usage=False)
    return LatentVAE(model.to(dev), source=choice.vae, bundled=choice.bundled)


class HifiGanVocoder(torch.nn.Module):
    """``SpeechT5HifiGan`` from transformers: log-mel ``(B,T,64)`` (or ``(B,1,T,64)``) → waveform ``(B, T*hop)``.

    The raw output has ``T*hop + 32`` samples for AudioLDM2; it is trimmed to ``T*hop``.
    """

    name = "hifigan"

    def __init__(self, model, hop_length: int = 160, source: str = ""):
        super().__init__()
        self.model = model.eval()
        self.hop_length = hop_length
        self.source = source
        self.n_mels = int(model.config.model_in_dim)

    @torch.inference_mode()
    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        mel = _vocoder_layout(mel, self.n_mels)
        p = next(self.model.parameters())
        wave = self.model(mel.to(p.device, p.dtype))
        if wave.ndim == 1:
            wave = wave[None]
        return wave[:, : mel.shape[1] * self.hop_length].float()


def _vocoder_layout(mel: torch.Tensor, n_mels: int) -> torch.Tensor:
    """Bring ``(B,1,T,M)`` to ``(B,T,M)``; refuse ``(B,M,T)``, the classic transposed input."""
    if not isinstance(mel, torch.Tensor):
        raise TypeError(f"mel must be a torch.Tensor, got {type(mel).__name__}")
    if mel.ndim == 4 and mel.shape[1] == 1:
        mel = mel[:, 0]
    if mel.ndim == 2:
        mel = mel[None]
    if mel.ndim != 3 or mel.shape[-1] != n_mels:
        raise ValueError(f"vocoder input must be (batch, time, {n_mels}) or (batch, 1, time, {n_mels}), got "
                         f"{tuple(mel.shape)} (time must come before mel bins)")
    return mel


class GriffinLim(torch.nn.Module):
    """Log-mel → waveform with fast Griffin-Lim (Perraudin et al. 2013), in torch, needing no weights.

    1. ``S = max(pinv(B) @ exp(L), 0)`` — linear magnitudes from the clamped pseudo-inverse of the mel basis;
    2. ``n_iter`` iterations of ``x = istft(S·e^{iφ})``, ``c = stft(x)``, ``φ = angle(c − m/(1+m)·c_prev)``
       with momentum ``m`` (0.99), random initial phase from ``seed``.

    Frames are centred half a hop later than ``torch.stft(center=True)`` in the training front end (reflect
    pad ``(n_fft-hop)//2``); the output is shifted by that offset so that it lines up with the input.
    """

    name = "griffinlim"

    def __init__(self, cfg: MelConfig | None = None, n_iter: int = 32, momentum: float = 0.99, seed: int = 0):
        super().__init__()
        if not (isinstance(n_iter, int) and n_iter >= 1):
            raise ValueError(f"n_iter must be a positive integer, got {n_iter!r}")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        from .audio import mel_basis

        self.cfg = cfg or MelConfig.audioldm2()
        self.n_iter, self.momentum, self.seed = n_iter, momentum, seed
        self.hop_length = self.cfg.hop_length
        self.register_buffer("inv_basis", torch.linalg.pinv(mel_basis(self.cfg).double()).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(self.cfg.win_length, periodic=True), persistent=False)
        self.source = "griffinlim"

    def _setup(self, mel: torch.Tensor):
        """``(mag (B, T, F), angles (T, F), frames)`` for log-mels ``mel`` in any vocoder layout."""
        cfg = self.cfg
        mel = _vocoder_layout(mel, cfg.n_mels).float().to(self.inv_basis.device)
        mag = torch.clamp(self.inv_basis @ torch.exp(mel).transpose(1, 2), min=0.0)  # (B, F, T)
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        # one initial phase shared by every item: a clip's output does not depend on what else is in the batch
        phase = torch.rand(mag.shape[1:], generator=gen).to(mag.device) * 2 * torch.pi
        mag = mag.transpose(1, 2).contiguous()  # (B, T, F): frames contiguous, the FFTs' layout
        angles = torch.polar(torch.ones_like(phase), phase).transpose(0, 1)  # (T, F)
        return mag, angles, _Frames(cfg.n_fft, cfg.hop_length, self.window, mel.shape[1])

    def _aligned(self, wave: torch.Tensor, n_frames: int) -> torch.Tensor:
        """Shift by the front end's frame-centre offset and trim to ``n_frames * hop`` samples."""
        offset = self.cfg.n_fft // 2 - self.cfg.pad  # frame centres of the training front end lie this much later
        return torch.nn.functional.pad(wave, (offset, 0))[:, :n_frames * self.cfg.hop_length]

    @torch.inference_mode()
    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        mag, angles, frames = self._setup(mel)
        if mag.device.type == "cpu":  # one item at a time: its arrays stay in cache (1.5-2x faster than a batch)
            wave = torch.cat([self._iterate(m[None], angles, frames) for m in mag])
        else:
            wave = self._iterate(mag, angles, frames)
        return self._aligned(wave, mag.shape[1])

    @torch.inference_mode()
    def vocode_warm(self, mel: torch.Tensor, phase: torch.Tensor | None = None):
        """One log-mel ``(T, M)`` → ``(wave (T·hop,), unit phases (T, F))``, warm-started: the first ``K`` frames
        start from ``phase`` ``(K, F)`` (unit-modulus, e.g. the phases a previous overlapping chunk converged to)
        instead of the seeded random phase. ``phase=None`` gives exactly :meth:`forward` of ``mel``. The returned
        phases are those of the final estimate's STFT, for the next chunk (:mod:`vaelib.stream`'s low-latency
        mode)."""
        mag, angles, frames = self._setup(mel)
        if phase is not None:
            angles = angles.clone()
            angles[:phase.shape[0]] = phase.to(angles.device)
        wave = self._iterate(mag, angles, frames)
        spec = frames.stft(wave)[0]
        return self._aligned(wave, mag.shape[1])[0], spec / (spec.abs() + 1e-16)

    def _iterate(self, mag: torch.Tensor, angles: torch.Tensor, frames: _Frames) -> torch.Tensor:
        """The fast Griffin-Lim loop on ``mag`` (B, T, F) from unit phases ``angles`` (T, F); returns (B, L).

        The update ``φ ← angle(c − α·c_prev)`` is applied as ``spec = (c − α·c_prev)·S/(|c − α·c_prev| + ε)``,
        the next iteration's input, with ``α = m/(1+m)`` and ``ε = 1e-16``.
        """
        spec = angles * mag
        prev = torch.zeros_like(spec)
        alpha = self.momentum / (1 + self.momentum)
        for _ in range(self.n_iter):  # this loop dominates the report's and eval's run time: in place, real ops
            rebuilt = frames.stft(frames.istft(spec))
            spec = rebuilt.sub(prev, alpha=alpha)
            re, im = spec.real, spec.imag
            spec.mul_(torch.div(mag, (re * re).addcmul_(im, im).sqrt_().add_(1e-16)))
            prev = rebuilt
        return frames.istft(spec)


class _Frames:
    """``torch.stft`` / ``torch.istft`` (``center=True``, reflect padding) for a fixed frame count, frames first.

    The same transforms as torch's with the window envelope computed once and the overlap-add done as
    ``ceil(n_fft / hop)`` shifted adds of hop-sized blocks (torch's ``istft`` scatters through
    ``unfold_backward``, the slowest step of the loop). Layout: spectra ``(B, T, n_fft//2+1)``, waves ``(B, T·hop)``.
    """

    def __init__(self, n_fft: int, hop: int, window: torch.Tensor, n_frames: int):
        if window.numel() < n_fft:  # centred zero padding, as torch.stft does
            left = (n_fft - window.numel()) // 2
            window = torch.nn.functional.pad(window, (left, n_fft - window.numel() - left))
        self.n_fft, self.hop, self.n_frames, self.window = n_fft, hop, n_frames, window
        self.blocks = -(-n_fft // hop)
        self.length = n_frames * hop
        start = n_fft // 2
        env = self._overlap_add((window**2).expand(1, n_frames, n_fft))[0, start:start + self.length]
        if bool((env.abs() < 1e-11).any()):
            raise ValueError("the window's overlap-add envelope has zeros: hop_length is too large for the window")
        self.inv_env = 1.0 / env

    def _overlap_add(self, frames: torch.Tensor) -> torch.Tensor:
        b, t, n = frames.shape
        k, hop = self.blocks, self.hop
        parts = torch.nn.functional.pad(frames, (0, k * hop - n)).view(b, t, k, hop)
        out = frames.new_zeros(b, t + k - 1, hop)
        for j in range(k):
            out[:, j:j + t] += parts[:, :, j]
        return out.view(b, -1)

    def istft(self, spec: torch.Tensor) -> torch.Tensor:
        """``torch.istft(spec, center=True, length=T·hop)`` for ``spec`` (B, T, F)."""
        frames = torch.fft.irfft(spec, n=self.n_fft, dim=-1).mul_(self.window)
        start = self.n_fft // 2
        wave = self._overlap_add(frames)[:, start:start + self.length]
        if wave.shape[1] < self.length:
            wave = torch.nn.functional.pad(wave, (0, self.length - wave.shape[1]))
        return wave * self.inv_env

    def stft(self, wave: torch.Tensor) -> torch.Tensor:
        """The first T frames of ``torch.stft(wave, center=True, pad_mode="reflect")``, as (B, T, F)."""
        half = self.n_fft // 2
        padded = torch.nn.functional.pad(wave[:, None], (half, half), mode="reflect")[:, 0]
        return torch.fft.rfft(padded.unfold(-1, self.n_fft, self.hop)[:, :self.n_frames] * self.window, dim=-1)


def load_vocoder(source: str = "auto", device=None, dtype=None, model: str = "auto", n_iter: int = 32):
    """Load a vocoder callable as ``vocoder(mel) -> wave (B, T*hop)``.

    Parameters
    ----------
    source : str
        ``"griffinlim"`` (no weights), ``"hifigan"`` / ``"auto"`` (the ``vocoder/`` beside ``model``;
        ``"auto"`` falls back to Griffin-Lim when there is none), or a folder / HF repo id holding
        ``vocoder/`` (``SpeechT5HifiGan``, safetensors only).
    model : str
        The model source the vocoder belongs to, for ``"auto"``/``"hifigan"``.
    n_iter : int
        Griffin-Lim iterations.
    """
    choice = resolve_models(model, source)
    dev = _pick_device(device)
    if choice.vocoder == "griffinlim":
        return GriffinLim(n_iter=n_iter).to(dev)
    from transformers import SpeechT5HifiGan

    dt = _pick_dtype(dtype, dev)
    hifi = _from_pretrained(SpeechT5HifiGan, choice.vocoder, "vocoder", torch_dtype=dt)
    hop = 1
    for r in hifi.config.upsample_rates:
        hop *= int(r)
    return HifiGanVocoder(hifi.to(dev), hop_length=hop, source=choice.vocoder)
