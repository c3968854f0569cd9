"""Notebook sessions: the one-call setup of a report notebook, clip and model loading, headers, figures.

:func:`setup` replaces the notebooks' setup cell: it validates the parameters against the schema
(:func:`vaelib.report.params.check`), seeds torch and numpy, creates the run folder, loads models and clips, and
shows the header. Everything shown in Markdown that comes from the input (clip names, paths, model ids, messages) goes
through :mod:`vaelib.report.html`.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np
import torch

from .._util import one_line as _one_line
from ..report import params as _params
from ..report.html import md_code, md_text

__all__ = ["Clip", "Models", "Session", "setup", "prepare_out_dir", "load_clips", "load_models", "header_markdown",
           "save_figure", "progress", "notebook_dir"]


def notebook_dir(kind: str) -> str:
    """Sub-folder of ``out_dir`` that notebook ``kind`` writes into (its stem, e.g. ``01_baseline``)."""
    return _params.NOTEBOOKS[kind][0]


def prepare_out_dir(out_dir: str, kind: str) -> Path:
    """Create and return the notebook's run folder ``out_dir/<notebook stem>`` (:func:`notebook_dir`).

    ``out_dir=""`` makes a new temporary folder (so an unparameterised run never writes into the repository).
    Refuses (one-line ``ValueError``) a sub-folder that already holds files: results are never overwritten.
    """
    base = Path(out_dir).expanduser() if out_dir else Path(tempfile.mkdtemp(prefix="vaelib_run_"))
    folder = base / notebook_dir(kind)
    if folder.exists() and any(folder.iterdir()):
        raise ValueError(f"{folder} already holds results; choose a new out_dir (results are never overwritten)")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclasses.dataclass
class Clip:
    """One loaded input clip: a unique ``name`` (file stem), its ``path`` and mono float32 ``wave``."""

    name: str
    path: Path
    wave: np.ndarray


def load_clips(audio, duration_s: float | None = None, max_clips: int | None = None, sr: int = 16000):
    """Load the clips of ``audio`` (a file, a folder, ``"demo"`` or a ``.lst`` list file), skipping the ones that fail.

    Each path from :func:`vaelib.audio.find_audio` is read with :func:`vaelib.audio.load_audio` (cropped to
    ``duration_s``); a file that raises is collected as ``(path, message)`` and skipped.

    Returns
    -------
    clips : list of Clip
        At most ``max_clips`` loaded clips, in file order; names are the file stems, made unique.
    skipped : list of (str, str)
        ``(path, one-line reason)`` of every file that could not be loaded.

    Raises
    ------
    ValueError
        No file could be loaded (one line listing the first reasons); ``FileNotFoundError`` /
        ``ValueError`` from :func:`vaelib.audio.find_audio` for a bad ``audio``.
    """
    from ..audio import find_audio, load_audio

    files = find_audio(audio)  # handles files, folders, 'demo' and .lst lists
    clips, skipped, used = [], [], set()
    for path in files:
        if max_clips is not None and len(clips) >= max_clips:
            break
        try:
            wave = load_audio(path, sr=sr, duration=duration_s)
        except (ValueError, FileNotFoundError, OSError) as exc:
            skipped.append((str(path), _one_line(exc)))
            continue
        name, k = path.stem, 2
        while name in used:
            name, k = f"{path.stem}_{k}", k + 1
        used.add(name)
        clips.append(Clip(name, Path(path), wave))
    if not clips:
        reasons = "; ".join(f"{Path(p).name}: {m}" for p, m in skipped[:3])
        raise ValueError(f"none of the {len(files)} audio file(s) in {audio!r} could be loaded ({reasons})")
    return clips, skipped


@dataclasses.dataclass
class Models:
    """The loaded models: resolved ``choice`` (:class:`vaelib.models.ModelChoice`), ``vae``, ``vocoder``."""

    choice: object
    vae: object
    vocoder: object

    @property
    def cfg(self):
        return self.vae.mel_config


def load_models(model: str = "auto", vocoder: str = "auto", device="auto", seed: int = 0) -> Models:
    """Resolve and load the VAE and vocoder; Griffin-Lim's random initial phase is seeded with ``seed``."""
    from ..models import GriffinLim, load_vae, load_vocoder, resolve_models

    choice = resolve_models(model, vocoder)
    vae = load_vae(model, device=device)
    voc = load_vocoder(vocoder, device=device, model=model)
    if isinstance(voc, GriffinLim):
        voc.seed = int(seed)
    return Models(choice, vae, voc)


def _clip_count(clips, params: dict) -> str:
    """``"8 clip(s) of 2.0–10.2 s (each at most the first 10.24 s)"`` — the truth about the crop."""
    if clips is None:
        return ""
    n = len(clips)
    durs = [len(c.wave) for c in clips] if clips and hasattr(clips[0], "wave") else []
    text = f", {n} clip(s)"
    if durs:
        sr = params.get("sr", 16000)
        lo, hi = min(durs) / sr, max(durs) / sr
        text += f" of {lo:.1f} s" if abs(hi - lo) < 0.05 else f" of {lo:.1f}–{hi:.1f} s"
    if params.get("duration_s"):
        text += f" (each at most its first {params['duration_s']:g} s)"
    return text


def _vae_word(source) -> str:
    """``AudioLDM2 VAE`` only for a cvssp/audioldm2* repo; any other source is named for what is known of it."""
    from ..models import AUDIOLDM2_REPOS

    return "AudioLDM2 VAE" if source in AUDIOLDM2_REPOS else "AutoencoderKL VAE (not a cvssp/audioldm2 repo)"


def header_markdown(title: str, models: Models, params: dict, clips=None, skipped=None) -> str:
    """Markdown header stating model, vocoder, front end, package version and whether the bundled model is used.

    Input-derived text (audio source, model source, skipped file names and reasons) is escaped with
    :func:`vaelib.report.html.md_text` / :func:`~vaelib.report.html.md_code`. ``clips`` is the list of loaded clips.
    """
    from .. import __version__
    from .stages import MEAN_RULE

    choice, vae, cfg = models.choice, models.vae, models.cfg
    n_par = sum(p.numel() for p in vae.model.parameters())
    voc = getattr(models.vocoder, "name", type(models.vocoder).__name__)
    if voc == "griffinlim":
        voc_line = f"Griffin-Lim (torch, {models.vocoder.n_iter} iterations, momentum {models.vocoder.momentum}, " \
                   f"seed {models.vocoder.seed}; no weights)"
    else:
        voc_line = f"HiFi-GAN (`SpeechT5HifiGan`) from {md_code(getattr(models.vocoder, 'source', '?'))}"
    bundled = bool(getattr(vae, "bundled", False))
    count = _clip_count(clips, {**params, "sr": cfg.sr})
    lines = [
        f"# {md_text(title)}",
        "",
        f"- **model**: {'bundled tiny VAE (vaelib, *not* AudioLDM2)' if bundled else _vae_word(vae.source)} from "
        f"{md_code(vae.source)} — {n_par / 1e6:.2f} M parameters, scaling_factor {vae.scaling_factor:.6g}",
        f"- **bundled model in use**: {'yes' if bundled else 'no'} ({md_text(choice.reason)})",
        f"- **vocoder**: {voc_line}",
        f"- **front end**: training-matched AudioLDM2 log-mel — {cfg.sr} Hz, n_fft {cfg.n_fft}, hop {cfg.hop_length}, "
        f"{cfg.n_mels} Slaney mels {cfg.fmin:g}–{cfg.fmax:g} Hz, natural log clamped at 1e-5, input normalised to "
        "peak 0.5 (not the seed report's CLAP 48 kHz extractor)",
        f"- **vaelib** {__version__}, torch {torch.__version__}, device {md_code(vae.device)}, "
        f"random seed {params.get('seed', 0)}",
        f"- **audio**: {md_code(params.get('audio'))}{count}",
        f"- **means**: {md_text(MEAN_RULE)}; players are loudness-matched to the input (RMS, played copy only)",
    ]
    if skipped:
        lines.append(f"- **skipped** {len(skipped)} unreadable file(s): "
                     + "; ".join(f"{md_code(Path(p).name)} ({md_text(m)})" for p, m in skipped))
    if bundled:
        lines += ["", "> The numbers below describe the bundled tiny VAE trained on the demo corpus, not AudioLDM2; "
                      "the seed report's numbers came from `cvssp/audioldm2-music`."]
    return "\n".join(lines)


def save_figure(fig, path, dpi: int = 90):
    """Save ``fig`` as PNG at ``dpi`` and return an ``IPython.display.Image`` of the saved bytes.

    Displaying the returned image shows exactly the saved file and avoids rendering the figure a second time.
    Refuses to overwrite an existing file.
    """
    from IPython.display import Image

    path = Path(path)
    if path.exists():
        raise FileExistsError(f"refusing to overwrite {path}; choose a new out_dir")
    fig.savefig(path, dpi=dpi, format="png")
    return Image(data=path.read_bytes(), format="png")


def progress(iterable, desc: str = "", enabled: bool = True, total: int | None = None):
    """``tqdm.auto`` progress bar over ``iterable`` (``enabled=False`` or ``TQDM_DISABLE=1`` switches it off)."""
    from tqdm.auto import tqdm

    if not enabled:
        return iterable
    return tqdm(iterable, desc=desc, total=total)


@dataclasses.dataclass
class Session:
    """What a notebook works with after :func:`setup`.

    Attributes
    ----------
    kind : str
        Schema kind (``"baseline"``, ``"enhance"``, ...).
    params : dict
        The checked parameters (:func:`vaelib.report.params.check`).
    run_dir : Path
        ``out_dir/<notebook stem>/``, new and empty.
    models : Models
    clips : list of Clip
    skipped : list of (str, str)
        Files that could not be loaded, with the reason.
    """

    kind: str
    params: dict
    run_dir: Path
    models: Models
    clips: list
    skipped: list

    @property
    def vae(self):
        return self.models.vae

    @property
    def vocoder(self):
        return self.models.vocoder

    @property
    def cfg(self):
        return self.models.cfg

    @property
    def cache(self):
        """The run's shared :class:`vaelib.pipeline.RoundTripCache` (``out_dir/.roundtrip-cache``,
        :data:`vaelib.report.plan.CACHE_DIR`): the notebooks of one ``vaelib report`` run encode (and plain-decode)
        each clip once between them, with the same numbers; ``vaelib report`` removes the folder when it ends."""
        cached = self.__dict__.get("_cache")
        if cached is None:
            from ..pipeline import RoundTripCache
            from ..report.plan import CACHE_DIR

            cached = self.__dict__["_cache"] = RoundTripCache(self.run_dir.parent / CACHE_DIR)
        return cached

    def unpack(self):
        """``(params, run_dir, vae, vocoder, cfg, clips)``, the names the notebooks use."""
        return self.params, self.run_dir, self.vae, self.vocoder, self.cfg, self.clips


def setup(kind: str, namespace, *, show: bool = True) -> Session:
    """Set a report notebook up in one call: ``S = study.setup("baseline", locals())``.

    1. validate the notebook's parameters found in ``namespace`` against the schema (:func:`vaelib.report.params.check`;
       one-line ``ParamError`` on a bad value);
    2. seed torch and numpy with ``seed``; set pandas display options and matplotlib's inline figure size;
    3. create the run folder ``out_dir/<notebook>/`` (refuses one that already holds results);
    4. load the VAE and vocoder (:func:`load_models`) and the clips (:func:`load_clips`, unreadable files skipped);
    5. display the header (:func:`header_markdown`) and the results folder (``show=False``: nothing displayed).
    """
    import matplotlib
    import pandas as pd

    title = _params.NOTEBOOKS[kind][1]
    p = _params.check(kind, namespace)
    torch.manual_seed(p["seed"])
    np.random.seed(p["seed"])
    matplotlib.rcParams["figure.dpi"] = 72  # inline PNG size (files are saved at dpi=90)
    for opt, value in (("display.precision", 3), ("display.max_columns", 40), ("display.width", 200),
                       ("display.max_colwidth", 90)):
        pd.set_option(opt, value)
    run_dir = prepare_out_dir(p["out_dir"], kind)
    models = load_models(p["model"], p["vocoder"], p["device"], p["seed"])
    clips, skipped = load_clips(p["audio"], p["duration_s"], p["max_clips"], sr=models.cfg.sr)
    for path, why in skipped:
        print(f"skipped {path}: {why}")
    if show:
        from IPython.display import Markdown, display

        display(Markdown(header_markdown(title, models, p, clips, skipped)))
        print(f"results folder: {run_dir}")
    return Session(kind, p, run_dir, models, clips, skipped)
