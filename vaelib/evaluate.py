"""``vaelib eval``: the round-trip loss of a whole corpus, resumable, on one machine or under Ray.

:func:`evaluate` scores every file of a corpus (a file, a folder searched recursively, a ``.lst`` list, a glob, or
``demo``) through the round trip — whole files, any length, in windows of the training length
(:mod:`vaelib.longaudio`) — and writes one row per (clip, stage) with every metric notebook 01 reports:

* ``stage`` (``mel_projection``, ``vae``, one per enhancer), ``method``, ``params`` (JSON), the waveform metrics
  of :func:`vaelib.metrics.score` and the decoded-mel metrics of :func:`vaelib.metrics.score_mel` prefixed
  ``dec_`` (the same columns as :func:`vaelib.study.score_stages`);
* ``clip`` (path relative to the corpus root), ``path``, ``category`` (speech / music / percussion / other, by the
  one rule of :func:`vaelib.categories.category_of`: a manifest label, the file or folder name), ``duration_s``,
  ``n_windows``;
* the run's parameters: ``run_hash``, ``model``, ``vocoder``, ``device``, ``dtype``, ``enhancers``, ``seed``,
  ``windowing``.

Output folder (``--out``; default ``evals/<hash of the parameters>``): ``results.parquet`` + ``results.csv``,
``bad_files.parquet`` + ``bad_files.csv`` (``path``, ``clip``, ``reason``: one line), ``summary.json``,
``run.json`` (the parameters and their hash), ``parts/`` (the crash-safe journal), ``audio/`` (excerpts of the
worst clips for ``vaelib report --from-eval``).

Crash safety: each batch's rows go to a new part file (written to a temporary name, flushed to disk, then
renamed — a part is either complete or absent). A rerun of the same command skips the clips already in a part,
so after ``kill -9`` nothing is lost or duplicated, and the per-clip work does not depend on which other clips
share its batch (Griffin-Lim's initial phase and the enhancers' seeds are per clip), so the numbers equal an
uninterrupted run's. A rerun with different parameters is refused (one line); inputs are only read.

Faults and hostile input (:mod:`vaelib.runlock`):

* one writer per run folder: an exclusive lock (``.vaelib.lock``, ``flock``) held while :func:`evaluate` runs; a
  second process is refused in one line naming the holder's PID; the OS drops the lock of a killed process;
* inputs are never outputs: ``--out`` inside the folder of any input file or folder is refused whatever the form
  of ``--audio``, and files inside a vaelib eval run folder are never listed as input;
* per-clip isolation: any failure of one clip (decoding, non-regular file such as a FIFO — never opened —, round
  trip, NaN/Inf output, scoring, ``MemoryError``) is a row of ``bad_files`` with a one-line reason;
* ``path`` holds the absolute path, or ``hex:`` + its bytes when it is not valid UTF-8 (:func:`path_of` gives the
  file back); ``clip``, ``category`` and reasons show such bytes escaped (``\\xe9``);
* a part that does not read is moved to ``parts/damaged/`` with a warning and its clips are redone; a disk-full or
  other OS error ends in one line naming the path and the free space, with temporary files removed; a folder whose
  ``run.json`` was never completed, or that holds no finished clip yet (e.g. a mistyped ``--model``), is new;
* excerpts are named by clip (``audio/clip-<clip_id>_<i>.flac``, :func:`clip_id`), so they follow their clip when
  the ranking changes; excerpts of clips no longer among the worst are removed.
"""

from __future__ import annotations

import argparse
import collections
import contextvars
import dataclasses
import functools
import glob as _glob
import hashlib
import json
import math
import os
import sys
import time
import uuid
from pathlib import Path

from ._util import one_line
from .categories import category_of

__all__ = ["EvalError", "EvalSettings", "EvalResult", "Evaluator", "evaluate", "parse_enhancer_spec",
           "add_parser", "LONG_SCORE_S", "clip_id", "column_path", "path_of"]

#: Clips longer than this (seconds) are scored segment by segment (:mod:`vaelib.longscore`, same values).
LONG_SCORE_S = 60.0
#: Worst clips (by ``dec_mel_lsd_hf`` of the ``vae`` stage) whose audio excerpts are kept for the report.
WORST_K = 6
#: Seconds of each worst clip kept as audio excerpt.
EXCERPT_S = 15.0
RUN_FILE = "run.json"
_FORMAT = 1


class EvalError(ValueError):
    """Bad input to :func:`evaluate`; the message is one line saying what was wrong and how to fix it."""


# ----------------------------------------------------------------------------------------------------------
# parameters
# ----------------------------------------------------------------------------------------------------------
def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_enhancer_spec(spec) -> dict:
    """Parse ``--enhancers`` into ``{label: (method, params)}`` (validated by :func:`vaelib.pipeline.parse_enhancers`).

    Syntax: comma-separated items ``NAME`` or ``NAME:key=value[:key=value...]`` where ``NAME`` is any enhancer of
    the registry (:data:`vaelib.enhance.ENHANCERS`) or a preset (:data:`vaelib.enhance.PRESETS`, no parameters).
    Each item's text is its stage label, e.g. ``seed_hybrid,contrast:factor=1.2,learned:strength=0.5``.
    Also accepts a list of such items, a dict as :func:`~vaelib.pipeline.parse_enhancers` takes, or None.
    """
    from .pipeline import parse_enhancers

    if spec is None or spec == "" or spec == []:
        return {}
    if isinstance(spec, dict):
        items = spec
    else:
        parts = spec.split(",") if isinstance(spec, str) else list(spec)
        items = {}
        for raw in parts:
            item = str(raw).strip()
            if not item:
                continue
            name, *kvs = item.split(":")
            params = {}
            for kv in kvs:
                if "=" not in kv:
                    raise EvalError(f"enhancer {item!r}: expected key=value after ':', got {kv!r} "
                                    "(syntax: name:key=value:key=value, items separated by commas)")
                k, v = kv.split("=", 1)
                params[k.strip()] = _value(v.strip())
            if item in items:
                raise EvalError(f"enhancer {item!r} is listed twice")
            items[item] = None if not params else (name.strip(), params)
    try:
        return parse_enhancers(items)
    except (KeyError, ValueError, TypeError) as exc:
        raise EvalError(f"--enhancers: {one_line(exc)}") from None


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """Everything that decides the numbers of a run (picklable: Ray actors rebuild models from it).

    Attributes
    ----------
    model, vocoder : str
        Sources for :func:`vaelib.load_vae` / :func:`vaelib.load_vocoder`.
    enhancers : dict
        ``{label: (method, params)}`` from :func:`parse_enhancer_spec`.
    device : str
        ``"cpu"``, ``"cuda"``, ``"cuda:0"``...
    dtype : str
        ``"float32"`` or ``"bfloat16"`` (autocast on CUDA only).
    seed : int
        Seed of stochastic enhancers (window ``k`` of a clip uses ``seed + k``).
    window, overlap, fade : int
        :class:`vaelib.longaudio.Windowing`.
    griffinlim_iters : int
        Griffin-Lim iterations (when the vocoder is Griffin-Lim).
    metrics : tuple of str
        Metric sets (:mod:`vaelib.metrics.sets`): ``("default",)``, plus ``"perceptual"`` / ``"embedding"``.
    """

    model: str = "auto"
    vocoder: str = "auto"
    enhancers: dict = dataclasses.field(default_factory=dict)
    device: str = "cpu"
    dtype: str = "float32"
    seed: int = 0
    window: int = 1024
    overlap: int = 128
    fade: int = 64
    griffinlim_iters: int = 32
    allow_foreign_restorer: bool = False
    metrics: tuple = ("default",)

    def identity(self) -> dict:
        """The parameters whose change changes the numbers (hashed into ``run.json``)."""
        d = dataclasses.asdict(self)
        d.pop("allow_foreign_restorer")  # permission, not a number-changing parameter
        if tuple(d["metrics"]) == ("default",):  # runs from before --metrics keep their hash
            del d["metrics"]
        else:
            d["metrics"] = list(d["metrics"])
        d["enhancers"] = {k: [m, p] for k, (m, p) in self.enhancers.items()}
        d["device"] = self.device.split(":")[0]
        return d

    def windowing(self):
        from .longaudio import Windowing

        return Windowing(self.window, self.overlap, self.fade)


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------------------------------------
# the per-batch function (local engine and Ray actors)
# ----------------------------------------------------------------------------------------------------------
class Evaluator:
    """Loads the models once and evaluates batches of clips: the per-batch function of both engines.

    Parameters
    ----------
    settings : EvalSettings
    run : dict
        Run-level columns added to every row (``run_hash``, ``model``, ...).
    batch_size : int
        Windows per model call (:class:`vaelib.engine.Engine`); the numbers do not depend on it.
    """

    def __init__(self, settings: EvalSettings, run: dict | None = None, batch_size: int = 8):
        from .models import load_vae, load_vocoder, resolve_models

        t0 = time.perf_counter()
        self.settings = settings
        #: Windows (or vocoder chunks) per model call of the batched engine (:class:`vaelib.engine.Engine`).
        self.batch_size = int(batch_size)
        self.choice = resolve_models(settings.model, settings.vocoder)
        self.vae = load_vae(settings.model, device=settings.device)
        self.vocoder = load_vocoder(settings.vocoder, device=settings.device, model=settings.model,
                                    n_iter=settings.griffinlim_iters)
        from .enhance import check_restorers

        try:  # once, before any clip: a restorer trained for another VAE is a run error, not a clip error
            check_restorers(settings.enhancers, self.vae, settings.allow_foreign_restorer)
        except ValueError as exc:
            raise EvalError(f"--enhancers: {one_line(exc)}") from None
        self.run = dict(run or {})
        from .metrics.sets import ExtraScorer

        #: The opt-in metric sets (``--metrics perceptual,embedding``).
        self.extra = ExtraScorer(settings.metrics, settings.device)
        #: Seconds spent importing and loading the models (what a longer corpus amortises).
        self.load_seconds = time.perf_counter() - t0

    def _autocast(self):
        import contextlib

        import torch

        if self.settings.dtype == "bfloat16":
            return torch.autocast(self.vae.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def reconstruct(self, wave):
        """The windowed round trip of one waveform (:func:`vaelib.longaudio.reconstruct_long`)."""
        from .longaudio import reconstruct_long

        s = self.settings
        with self._autocast():
            return reconstruct_long(wave, self.vae, self.vocoder, s.enhancers, seed=s.seed, windowing=s.windowing(),
                                    allow_foreign_restorer=True)  # checked once in __init__

    def load(self, item):
        """``(wave, None)`` or ``(None, reason)`` for one item."""
        from .audio import load_audio

        try:
            return load_audio(path_of(item["path"])), None
        except Exception as exc:  # any failure of one file is that file's (MemoryError included), never the run's
            return None, _why(exc)

    def score(self, item, wave_len, rec) -> list[dict]:
        """Rows of one reconstructed clip (every stage but ``input``)."""
        from . import metrics

        sr = rec.sr
        long = wave_len / sr > LONG_SCORE_S
        if long:
            from .longscore import score_long_many, score_mel_long
        cfg = self.vae.mel_config
        base = {"clip": item["clip"], "path": item["path"], "category": item.get("category") or "",
                "duration_s": wave_len / sr, "n_windows": int(getattr(rec, "n_windows", 1))}
        rows = []
        stages = {name: st for name, st in rec.stages.items() if name != "input"}
        waves = {name: st.wave for name, st in stages.items() if st.wave is not None}
        if long:
            scores = score_long_many(rec.wave, waves, sr=sr, cfg=cfg)
        else:
            scores = metrics.score_many(rec.wave, waves, sr=sr, cfg=cfg)
        extra = self.extra.stage_columns(rec.wave, waves, sr) if self.extra.active else {}
        for name, st in stages.items():
            params = {k: v for k, v in st.params.items() if k != "method"}
            row = {**base, "stage": name, "method": st.params.get("method", name),
                   "params": json.dumps(params, sort_keys=True)}
            row.update(scores.get(name, {}))
            mel = score_mel_long(rec.input_mel, st.mel, cfg=cfg) if long else metrics.score_mel(rec.input_mel, st.mel,
                                                                                                cfg=cfg)
            row.update({f"dec_{k}": v for k, v in mel.items()})
            row.update(extra.get(name, {}))
            row.update(self.run)
            rows.append({k: (float(v) if isinstance(v, float) else v) for k, v in row.items()})
        return rows

    def engine(self):
        """A :class:`vaelib.engine.Engine` with this run's models and settings."""
        from .engine import Engine

        s = self.settings
        return Engine(self.vae, self.vocoder, s.enhancers, seed=s.seed, windowing=s.windowing(),
                      batch_size=self.batch_size, allow_foreign_restorer=True)  # checked once in __init__

    def process(self, items, pool=None) -> tuple[list[dict], list[dict]]:
        """Evaluate a batch: ``(rows, bad)``; ``bad`` holds ``{path, clip, category, reason}`` per failed file.

        The clips' windows go through the models together (:class:`vaelib.engine.Engine`, ``batch_size`` windows
        per call). With a ``concurrent.futures`` ``pool``, audio decoding of the next clips and the metrics of
        finished ones run in its threads while the main thread runs the models. If a batched model call fails
        (e.g. out of memory), the clips it had not finished are redone one at a time
        (:meth:`reconstruct`), so that a failure is the failing clip's row, never its neighbours'.
        """
        rows, bad = [], []
        ahead = (pool._max_workers + 1) if pool is not None else 0
        loads = {}
        fed = collections.deque()  # (item, n_samples) handed to the engine and not yet reconstructed
        scores = []
        nxt = [0]  # first item not yet handed to the engine

        def want(i):
            if pool is not None and i < len(items) and i not in loads:
                loads[i] = pool.submit(self.load, items[i])

        def load(i):
            for j in range(i, i + ahead + 1):
                want(j)
            return loads.pop(i).result() if i in loads else self.load(items[i])

        def waves():
            for i, item in enumerate(items):
                wave, reason = load(i)
                nxt[0] = i + 1
                if wave is None or not wave.shape[0]:
                    bad.append(_bad_row(item, reason))
                    continue
                fed.append((item, wave.shape[0]))
                yield wave
                del wave  # the engine holds the normalised copy it needs

        def finish(item, n, rec, reason):
            reason = reason or _non_finite(rec)
            if reason:
                bad.append(_bad_row(item, reason))
            elif pool is not None:
                scores.append((item, pool.submit(self._score_or_reason, item, n, rec)))
            else:
                scores.append((item, self._score_or_reason(item, n, rec)))

        try:
            with self._autocast():
                for rec in self.engine().run(waves()):
                    item, n = fed.popleft()
                    finish(item, n, rec, None)
                    del rec
        except Exception:  # a batched call failed: redo its unfinished clips one at a time, then the rest
            redo = [item for item, _ in fed] + list(items[nxt[0]:])
            fed.clear()
            for item in redo:
                wave, reason = self.load(item)
                if wave is None or not wave.shape[0]:
                    bad.append(_bad_row(item, reason))
                    continue
                n, rec = wave.shape[0], None
                try:
                    rec = self.reconstruct(wave)
                except Exception as exc:  # per-clip isolation: MemoryError, CUDA OOM, a model bug...
                    reason = f"round trip failed: {_why(exc)}"
                del wave
                finish(item, n, rec, reason)
                del rec
        for item, got in scores:
            got_rows, reason = got.result() if pool is not None else got
            if reason:
                bad.append(_bad_row(item, reason))
            rows.extend(got_rows)
        return rows, bad

    def _score_or_reason(self, item, wave_len, rec) -> tuple[list[dict], str | None]:
        """``(rows, None)``, or ``([], reason)`` when scoring this clip failed."""
        try:
            return self.score(item, wave_len, rec), None
        except Exception as exc:
            return [], f"scoring failed: {_why(exc)}"


def _why(exc: BaseException) -> str:
    """One line (cut to 300 characters) saying why a clip failed; shown escaped if it holds undecodable names."""
    if isinstance(exc, MemoryError):
        return ("out of memory (MemoryError) decoding or processing this file; split it into shorter files or use a "
                "machine with more memory")
    text = one_line(exc, 300) or type(exc).__name__
    if not isinstance(exc, (ValueError, OSError, EOFError)):
        text = f"{type(exc).__name__}: {text}"
    return _shown(text)


def _non_finite(rec) -> str | None:
    """A reason when a stage's mel or waveform holds NaN/Inf (e.g. a VAE config with ``scaling_factor`` 0)."""
    import numpy as np

    broken = [name for name, st in rec.stages.items() if name != "input" and not (
        np.isfinite(st.mel).all() and (st.wave is None or np.isfinite(st.wave).all()))]
    if broken:
        return (f"the model's output holds NaN/Inf (stage {', '.join(broken)}); check the model (its config, e.g. "
                "scaling_factor, and weights)")
    return None


def _bad_row(item, reason) -> dict:
    return {"path": item["path"], "clip": item["clip"], "category": item.get("category") or "",
            "reason": _shown(one_line(reason or "unknown failure", 400))}


# ----------------------------------------------------------------------------------------------------------
# file names: stored losslessly, shown escaped
# ----------------------------------------------------------------------------------------------------------
_HEX = "hex:"


def _shown(text) -> str:
    """``text`` with bytes that are not valid UTF-8 (surrogate escapes from the OS) written as ``\\xNN``."""
    from .runlock import _shown as shown

    return shown(text)


def column_path(path) -> str:
    """The ``path`` column's value for a file: its absolute path, or, when that is not valid UTF-8 (a file name in
    another encoding), ``"hex:"`` + the path's bytes in hex — lossless, and never confused with a real path (which
    starts with ``/``). :func:`path_of` is the inverse."""
    s = str(path)
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return _HEX + os.fsencode(s).hex()


def path_of(value: str) -> Path:
    """The file that a ``path`` column value names (the inverse of :func:`column_path`)."""
    if value.startswith(_HEX):
        return Path(os.fsdecode(bytes.fromhex(value[len(_HEX):])))
    return Path(value)


# ----------------------------------------------------------------------------------------------------------
# corpus listing
# ----------------------------------------------------------------------------------------------------------
class _Files(list):
    """The listed files, plus ``notes``: lines saying what was left out."""

    notes: list


def _list_files(audio) -> list[Path]:
    """The files of ``--audio``, resolved. Non-regular files (FIFOs, devices) are listed too — they become bad files
    with a reason and are never opened; files inside a vaelib eval run folder (its excerpts) are left out, said in
    the result's ``notes``: outputs are never inputs."""
    from .audio import find_audio

    sources = audio if isinstance(audio, (list, tuple)) else [audio]
    expanded = []
    for src in sources:
        s = str(src)
        if s != "demo" and any(c in s for c in "*?[") and not Path(s).exists():
            hits = sorted(_glob.glob(os.path.expanduser(s), recursive=True))
            if not hits:
                raise EvalError(f"--audio glob {s!r} matches no file")
            expanded.extend(hits)
        else:
            expanded.append(src)
    skipped: list = []
    try:
        files = [Path(p).resolve() for p in find_audio(expanded, skipped=skipped)]
    except (FileNotFoundError, ValueError) as exc:
        raise EvalError(one_line(exc)) from None
    files += [Path(p).resolve() for p, _ in skipped if not Path(p).is_dir()]  # FIFOs etc.: bad files, with a reason
    runs: dict = {}
    kept = [p for p in files if not _in_run_folder(p, runs)]
    left_out = [str(d) for d, is_run in runs.items() if is_run]
    left_out += [str(p) for p, _ in skipped if Path(p).is_dir()]
    if files and not kept:
        where = _shown(", ".join(left_out))[:200]
        raise EvalError(f"every file of --audio lies inside vaelib eval run folders ({where}); their excerpts are "
                        "outputs, never inputs — name the corpus itself")
    result = _Files(sorted(dict.fromkeys(kept)))
    result.notes = []
    if len(kept) < len(files) or left_out:
        where = _shown(", ".join(sorted(set(left_out))))[:300]
        result.notes.append(f"  left out {len(files) - len(kept)} files inside vaelib eval run folders (outputs are "
                            f"never inputs): {where}")
    return result


def _stored(items: list[dict]) -> list[dict]:
    """Items as the tables store them: ``path`` lossless (:func:`column_path`), ``clip`` and ``category`` with
    undecodable bytes escaped — every string valid UTF-8, so Arrow, CSV and JSON take it."""
    return [{**it, "path": column_path(it["path"]), "clip": _shown(it["clip"]), "category": _shown(it["category"])}
            for it in items]


def _in_run_folder(path: Path, cache: dict) -> bool:
    """Whether ``path`` lies inside a vaelib eval run folder (a folder holding ``run.json`` and ``parts/``)."""
    from .audio import is_eval_run_folder

    for folder in path.parents:
        if folder not in cache:
            cache[folder] = is_eval_run_folder(folder)
        if cache[folder]:
            return True
    return False


def _items(files: list[Path]) -> list[dict]:
    """``{path, clip, category}`` per file: clip relative to the common root, category by the one rule of
    :func:`vaelib.categories.category_of` (speech / music / percussion / other)."""
    if not files:
        return []
    root = Path(os.path.commonpath([str(p.parent) for p in files]))
    cache: dict = {}
    out = []
    for p in files:
        cat = category_of(p, cache)
        out.append({"path": str(p), "clip": str(p.relative_to(root)) if len(files) > 1 else p.name,
                    "category": cat})
    return out


# ----------------------------------------------------------------------------------------------------------
# the run folder
# ----------------------------------------------------------------------------------------------------------
def _atomic_write(path: Path, write) -> None:
    """Write via ``write(tmp_path)`` to a temporary name, fsync, then rename over ``path``
    (:func:`vaelib.runlock.atomic_write`); an OS error (disk full...) is one line naming the path and the free space,
    with the temporary file removed."""
    from .runlock import StorageError, atomic_write

    try:
        atomic_write(path, write)
    except StorageError as exc:
        raise EvalError(f"{exc.strerror}; finished batches are kept — rerun the same command to resume") from None


#: Run-folder locks held by the current :func:`evaluate` call (released when it returns or raises).
_HELD: contextvars.ContextVar = contextvars.ContextVar("vaelib_eval_locks", default=None)
LOCK_FILE = ".vaelib.lock"


def _releases_locks(fn):
    """Decorator: the run-folder locks :func:`_lock_out` takes during ``fn`` are released when it returns or
    raises (the OS releases them when the process dies, ``kill -9`` included). It also makes ``fn``'s ``echo``
    show undecodable bytes of paths escaped (a terminal may refuse them)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        echo = kwargs.get("echo", print)
        kwargs["echo"] = lambda text: echo(_shown(text))
        held: list = []
        token = _HELD.set(held)
        try:
            return fn(*args, **kwargs)
        finally:
            _HELD.reset(token)
            for lock in held:
                lock.release()

    return wrapper


def _own_leftovers(out: Path) -> bool:
    """Whether ``out`` holds only what an eval that never completed its ``run.json`` leaves: the lock file, an empty
    ``parts/`` (or one with temporary files only), temporary files."""
    for p in out.iterdir():
        if p.name == LOCK_FILE or (p.name.startswith(".") and p.name.endswith(".tmp")):
            continue
        if p.name == "parts" and p.is_dir() and all(q.name.startswith(".") and q.name.endswith(".tmp")
                                                    for q in p.iterdir()):
            continue
        return False
    return True


def _lock_out(out: Path) -> None:
    """Create ``out`` if needed and take its lock (one writer per run folder), or refuse in one line."""
    from .runlock import FolderLocked, StorageError, lock_folder

    if out.exists() and not out.is_dir():
        raise EvalError(f"refusing to write into {out}: it is a file, not a run folder; choose a new --out")
    if out.is_dir() and not (out / RUN_FILE).is_file() and not _own_leftovers(out):
        raise EvalError(f"refusing to write into {out}: it exists and is not a vaelib eval run folder (no "
                        f"{RUN_FILE}); choose a new --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from .runlock import storage_error

        raise EvalError(storage_error(out, exc, "create the folder").strerror) from None
    try:
        lock = lock_folder(out, name=LOCK_FILE, what="eval run folder")
    except (FolderLocked, StorageError) as exc:
        raise EvalError(str(exc) if isinstance(exc, FolderLocked) else exc.strerror) from None
    held = _HELD.get()
    if held is not None:
        held.append(lock)
    else:  # called outside evaluate(): held until the process ends
        _ORPHAN_LOCKS.append(lock)


_ORPHAN_LOCKS: list = []


def _refuse_out_inside_inputs(out: Path, inputs: list[Path], files: list[Path]) -> None:
    """Inputs are never outputs: ``--out`` may not lie in (or be) the folder of any input file or input folder,
    whatever the form of ``--audio`` (folder, file, glob, ``.lst``)."""
    around = {out, *out.parents}
    for p in inputs:
        if "**" in p.parts and not p.exists():  # a recursive glob: its whole base folder is input
            base = []
            for part in p.parts:
                if any(c in part for c in "*?["):
                    break
                base.append(part)
            p = Path(*base)
        if p.is_dir() and p in around:
            raise EvalError(f"--out {_shown(out)} lies inside the input folder {_shown(p)}; choose an output folder "
                            "outside it (inputs are never written)")
    for f in files:
        if f.parent in around:
            raise EvalError(f"--out {_shown(out)} lies inside {_shown(f.parent)}, the folder of the input file "
                            f"{_shown(f.name)}; choose an output folder outside every input folder (inputs are never "
                            "written, and a rerun would score its own excerpts)")


def _write_table(rows: list[dict], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(rows)
    _atomic_write(path, lambda p: _with_file(p, "wb", lambda fh: pq.write_table(table, fh)))


def _with_file(p: Path, mode: str, use):
    """``use(open file)``: Python opens any name (a folder name that is not UTF-8 included), Arrow gets a handle."""
    with open(p, mode) as fh:
        return use(fh)


def _read_parts(folder: Path, kind: str):
    import pandas as pd
    import pyarrow.parquet as pq

    def read(p):
        try:
            return _with_file(p, "rb", pq.read_table).to_pandas()
        except Exception as exc:  # damaged since the start of this run: the next run moves it aside
            raise EvalError(f"part {p} does not read ({one_line(exc, 150)}); rerun the same command: it is moved "
                            "to parts/damaged/ and its clips are redone") from None

    frames = [read(p) for p in sorted(folder.glob(f"{kind}-*.parquet"))]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _prepare_out(out: Path, identity: dict, inputs: list[Path]) -> dict:
    """Create or reopen the run folder; refuse a folder of another run or one that is not a run."""
    run_hash = _hash(identity)
    for p in inputs:
        if p.is_dir() and (out == p or p in out.parents):
            raise EvalError(f"--out {out} lies inside the input folder {p}; choose an output folder outside it "
                            "(inputs are never written)")
    run_file = out / RUN_FILE
    worked = _has_work(out)
    if run_file.is_file():
        try:
            old = json.loads(run_file.read_text())
            if not isinstance(old, dict) or "hash" not in old:
                raise ValueError("not a run description")
        except (OSError, ValueError):
            if worked:
                raise EvalError(f"{run_file} is unreadable; choose a new --out") from None
            old = None  # never completed, and nothing done yet: a new run
        if old is not None and old.get("hash") != run_hash and not worked:
            old = None  # e.g. a mistyped --model that failed before the first clip: nothing to keep, start anew
        if old is None:
            pass
        elif old.get("hash") != run_hash:
            differ = sorted(k for k in set(identity) | set(old.get("params", {}))
                            if identity.get(k) != old.get("params", {}).get(k))
            raise EvalError(f"{out} holds an eval run with other parameters (differs in: {', '.join(differ)}); "
                            "rerun with the same parameters to resume, or choose a new --out")
        else:
            return old
    elif out.exists() and (not out.is_dir() or not _own_leftovers(out)):
        raise EvalError(f"refusing to write into {out}: it exists and is not a vaelib eval run folder (no "
                        f"{RUN_FILE}); choose a new --out")
    out.mkdir(parents=True, exist_ok=True)
    run = {"format": _FORMAT, "hash": run_hash, "params": identity,
           "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    _atomic_write(run_file, lambda p: p.write_text(json.dumps(run, indent=2, sort_keys=True)))
    try:  # after run.json: a folder with parts/ always has a complete run.json
        (out / "parts").mkdir(exist_ok=True)
    except OSError as exc:
        from .runlock import storage_error

        raise EvalError(storage_error(out / "parts", exc, "create the folder").strerror) from None
    return run


def _has_work(out: Path) -> bool:
    """Whether the folder holds finished work (a part or a results table) that a new run.json would orphan."""
    parts = out / "parts"
    return (out / "results.parquet").exists() or (parts.is_dir() and any(parts.glob("*.parquet")))


def _done_paths(parts: Path, echo=None) -> set[str]:
    """Paths of the clips already in a part. A part that does not read whole (truncated, corrupted, foreign) is
    moved to ``parts/damaged/`` with a warning, so its clips are redone; interrupted writes are removed."""
    done = set()
    for p in sorted(parts.glob("*.parquet")):
        paths, why = _read_part(p)
        if why is None:
            done.update(paths)
            continue
        damaged = parts / "damaged"
        try:
            damaged.mkdir(exist_ok=True)
            os.replace(p, damaged / p.name)
        except OSError as exc:
            raise EvalError(f"part {p} does not read ({why}) and cannot be moved aside ({one_line(exc, 100)}); "
                            "remove it and rerun") from None
        (echo or print)(f"warning: part {p.name} does not read ({why}); moved to {damaged}, its clips are redone")
    for tmp in parts.glob(".*.tmp"):  # a part interrupted while being written: never renamed, so not counted
        tmp.unlink(missing_ok=True)
    return done


def _read_part(p: Path) -> tuple[list, str | None]:
    """``(paths, None)`` for a part that reads whole, else ``([], reason)``."""
    import pyarrow.parquet as pq

    try:
        table = _with_file(p, "rb", pq.read_table)
        need = {"path", "stage"} if p.name.startswith("rows-") else {"path", "reason"}
        missing = need - set(table.column_names)
        if missing:
            return [], f"no {', '.join(sorted(missing))} column"
        return table.column("path").to_pylist(), None
    except Exception as exc:  # ArrowInvalid, OSError, thrift errors: the file is not a whole part
        return [], one_line(exc, 150) or type(exc).__name__


class _Journal:
    """Appends each batch's rows and bad files to ``parts/`` in atomic steps."""

    def __init__(self, out: Path, pause_s: float = 0.0):
        self.parts = out / "parts"
        self.pause_s = pause_s

    def write(self, rows, bad) -> None:
        tag = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        if rows:
            _write_table(rows, self.parts / f"rows-{tag}.parquet")
        if bad:
            _write_table(bad, self.parts / f"bad-{tag}.parquet")
        if self.pause_s:
            time.sleep(self.pause_s)


# ----------------------------------------------------------------------------------------------------------
# engines
# ----------------------------------------------------------------------------------------------------------
def _batches(items, size):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _run_local(settings, run_cols, todo, batch_size, workers, journal, bar):
    from concurrent.futures import ThreadPoolExecutor

    ev = Evaluator(settings, run_cols, batch_size)
    pool = ThreadPoolExecutor(workers) if workers > 0 else None
    try:
        for batch in _batches(todo, batch_size):
            rows, bad = ev.process(batch, pool)
            journal.write(rows, bad)
            bar.update(len(batch))
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    return ev


class _RayEvaluator:
    """Ray Data actor: loads the models once, then runs :meth:`Evaluator.process` on each batch."""

    def __init__(self, settings: dict, run: dict, workers: int = 0, batch_size: int = 8):
        import torch

        s = dict(settings)
        s["enhancers"] = {k: tuple(v) for k, v in s["enhancers"].items()}
        if s["device"] == "auto":
            s["device"] = "cuda" if torch.cuda.is_available() else "cpu"
        self.ev = Evaluator(EvalSettings(**s), run, batch_size)
        self.workers = workers

    def __call__(self, batch):
        import pandas as pd

        items = batch.to_dict(orient="records")
        rows, bad = self.ev.process(items)
        return pd.DataFrame({"payload": [json.dumps({"rows": rows, "bad": bad, "n": len(items)})]})


def _run_ray(settings, run_cols, todo, batch_size, workers, journal, bar, address, actors):
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise EvalError("--engine ray needs Ray Data: pip install 'vaelib[ray]' (or use --engine local)") from None
    started = False
    if not ray.is_initialized():
        kw = {"include_dashboard": False}
        if address:
            kw["address"] = address
        ray.init(**kw)
        started = True
    try:
        gpus = 1 if settings.device.startswith("cuda") else 0
        s = dataclasses.asdict(settings)
        s["enhancers"] = {k: [m, p] for k, (m, p) in settings.enhancers.items()}
        ds = ray.data.from_items(todo)
        resources = {"num_gpus": gpus} if gpus else {"num_cpus": 1}
        kwargs = {"settings": s, "run": run_cols, "batch_size": batch_size}
        ds = ds.map_batches(_RayEvaluator, fn_constructor_kwargs=kwargs,
                            batch_size=batch_size, batch_format="pandas", concurrency=actors, **resources)
        for out in ds.iter_batches(batch_size=None, batch_format="pandas"):
            for payload in out["payload"]:
                got = json.loads(payload)
                journal.write(got["rows"], got["bad"])
                bar.update(got["n"])
    finally:
        if started:
            ray.shutdown()


# ----------------------------------------------------------------------------------------------------------
# finishing: tables, summary, worst-clip excerpts
# ----------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class EvalResult:
    """Paths and totals of a finished :func:`evaluate` run.

    ``seconds``: this invocation's wall time (model loading included); ``audio_s``: audio in the whole table;
    ``new_audio_s``: audio of the clips this invocation processed; ``load_seconds``: model loading (local engine;
    ``None`` under Ray, where each actor loads its own).
    """

    out: Path
    results: Path
    results_csv: Path
    bad_files: Path
    summary: Path
    n_clips: int
    n_rows: int
    n_bad: int
    seconds: float
    audio_s: float
    new_audio_s: float = 0.0
    load_seconds: float | None = None


def _after_load_rate(audio_s: float, seconds: float, load_s: float | None) -> float | None:
    """Audio seconds per wall second once the models were loaded; ``None`` without a load time."""
    if load_s is None or seconds - load_s <= 0:
        return None
    return audio_s / (seconds - load_s)


def _stage_order(df) -> list[str]:
    seen = []
    for s in df["stage"]:
        if s not in seen:
            seen.append(s)
    fixed = [s for s in ("mel_projection", "vae") if s in seen]
    return fixed + sorted(s for s in seen if s not in fixed)


def _finish(out: Path, run: dict, seconds: float, new_paths: set, ev, settings, keep_worst: int) -> EvalResult:
    import pandas as pd

    parts = out / "parts"
    df = _read_parts(parts, "rows")
    bad = _read_parts(parts, "bad")
    if len(df):  # one row per (clip, stage) even in a folder an older vaelib let two processes write
        df = df.drop_duplicates(["path", "stage"], keep="first")
    if len(bad):
        bad = bad.drop_duplicates("path", keep="first")
        if len(df):
            bad = bad[~bad["path"].isin(set(df["path"]))]
    if len(df):
        order = {s: i for i, s in enumerate(_stage_order(df))}
        df = df.assign(_o=df["stage"].map(order)).sort_values(["clip", "path", "_o"], kind="stable")
        df = df.drop(columns="_o").reset_index(drop=True)
    if len(bad):
        bad = bad.sort_values(["clip", "path"], kind="stable").reset_index(drop=True)
    else:
        bad = pd.DataFrame(columns=["path", "clip", "category", "reason"])
    paths = {k: out / v for k, v in (("results", "results.parquet"), ("results_csv", "results.csv"),
                                      ("bad_files", "bad_files.parquet"), ("bad_csv", "bad_files.csv"),
                                      ("summary", "summary.json"))}
    _atomic_write(paths["results"], lambda p: _with_file(p, "wb", lambda fh: df.to_parquet(fh, index=False)))
    from .metrics.sets import CSV_DROP, extra_summary

    csv = df.drop(columns=list(CSV_DROP), errors="ignore")  # embedding vectors: Parquet only
    _atomic_write(paths["results_csv"], lambda p: csv.to_csv(p, index=False))
    _atomic_write(paths["bad_files"], lambda p: _with_file(p, "wb", lambda fh: bad.to_parquet(fh, index=False)))
    _atomic_write(paths["bad_csv"], lambda p: bad.to_csv(p, index=False))
    n_clips = int(df["path"].nunique()) if len(df) else 0
    per_file = (df.drop_duplicates("path").set_index("path")["duration_s"] if len(df)
                else pd.Series(dtype=float))
    audio_s = float(per_file.sum())
    new_audio_s = float(per_file[per_file.index.isin(new_paths)].sum())
    n_new = len(new_paths)
    load_s = getattr(ev, "load_seconds", None)
    worst = _save_worst(out, df, ev, settings, keep_worst) if len(df) and keep_worst else []
    summary = {
        "run_hash": run["hash"], "params": run["params"], "n_clips": n_clips, "n_rows": int(len(df)),
        "n_bad": int(len(bad)), "audio_hours": audio_s / 3600.0,
        "this_invocation": {"clips": n_new, "seconds": seconds,
                            "clips_per_s": n_new / seconds if seconds > 0 else None,
                            "audio_s": new_audio_s,
                            "x_real_time": new_audio_s / seconds if seconds > 0 else None,
                            "model_load_s": load_s,
                            "x_real_time_after_load": _after_load_rate(new_audio_s, seconds, load_s)},
        "stages": _stage_summary(df), "categories": _category_summary(df), "vs_vae": _vs_vae_summary(df),
        "worst": worst,
        "outputs": {k: p.name for k, p in paths.items()},
    }
    if settings is not None and tuple(settings.metrics) != ("default",):
        summary["perceptual"] = extra_summary(df)
    _atomic_write(paths["summary"], lambda p: p.write_text(json.dumps(_clean(summary), indent=2, sort_keys=True)))
    return EvalResult(out, paths["results"], paths["results_csv"], paths["bad_files"], paths["summary"], n_clips,
                      int(len(df)), int(len(bad)), seconds, audio_s, new_audio_s, load_s)


_SUMMARY_METRICS = ("lsd", "lsd_hf", "mrstft", "dec_mel_l1", "dec_mel_lsd", "dec_mel_lsd_hf", "ber_high",
                    "dec_mel_ber_high")


def _stage_summary(df) -> dict:
    out = {}
    if not len(df):
        return out
    for stage, g in df.groupby("stage", sort=False):
        out[stage] = {m: {"median": float(g[m].median()), "mean": float(g[m].mean())}
                      for m in _SUMMARY_METRICS if m in g}
    return out


#: Distances whose per-clip change against the plain VAE the summary gives for every enhancer stage.
_CHANGE_METRICS = ("dec_mel_lsd_hf", "dec_mel_l1", "dec_mel_lsd", "lsd_hf")


def _vs_vae_summary(df) -> dict:
    """``{stage: {metric: change_summary}}``: each enhancer stage's per-clip change against ``vae``
    (:func:`vaelib.changes.change_summary`: median, share improved, worst clip), not only the change of the means."""
    from .changes import change_summary

    out: dict = {}
    if not len(df) or "vae" not in set(df["stage"]):
        return out
    for m in _CHANGE_METRICS:
        if m not in df:
            continue
        wide = df.pivot(index="clip", columns="stage", values=m)
        for stage in wide.columns:
            if stage not in ("vae", "mel_projection"):
                out.setdefault(stage, {})[m] = change_summary(wide["vae"], wide[stage], [str(c) for c in wide.index])
    return out


def _category_summary(df) -> dict:
    if not len(df):
        return {}
    g = df[df["stage"] == "vae"]
    return {str(c or "(none)"): {"clips": int(len(x)), "dec_mel_lsd_hf_median": float(x["dec_mel_lsd_hf"].median())}
            for c, x in g.groupby("category", sort=True)}


def _clean(v):
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def clip_id(path_value: str) -> str:
    """A clip's stable id: the first 12 hex digits of SHA-256 of its ``path`` column value (names its excerpts)."""
    return hashlib.sha256(path_value.encode("utf-8")).hexdigest()[:12]


def _write_excerpt(p: Path, wave, sr: int) -> None:
    """Write one excerpt as 16-bit FLAC (as :func:`vaelib.audio.save_audio`), atomically."""
    import numpy as np
    import soundfile as sf

    from .audio import _os_path

    data = np.clip(np.asarray(wave, dtype=np.float32).reshape(-1), -1.0, 1.0)

    def write(tmp):
        try:
            sf.write(_os_path(tmp), data, sr, subtype="PCM_16", format="FLAC")
        except RuntimeError as exc:  # libsndfile's errors (a full disk reads "System error.")
            import errno

            raise OSError(errno.EIO, f"libsndfile could not write it: {one_line(exc, 120)}") from None

    _atomic_write(p, write)


def _drop_stale_excerpts(folder: Path, keep: set[str]) -> None:
    """Remove excerpts of clips no longer among the worst (and those of the old rank-named scheme)."""
    import re

    if not folder.is_dir():
        return
    for p in folder.iterdir():
        m = re.fullmatch(r"clip-([0-9a-f]{12})_\d+\.flac", p.name)
        if (m and m.group(1) not in keep) or re.fullmatch(r"worst\d+_\d+\.flac", p.name) or (
                p.name.startswith(".") and p.name.endswith(".tmp")):
            p.unlink(missing_ok=True)


def _save_worst(out: Path, df, ev, settings, k: int = WORST_K) -> list[dict]:
    """Audio excerpts of the ``k`` clips with the largest ``dec_mel_lsd_hf`` of the ``vae`` stage (recomputed:
    ``k`` clips, not the corpus), for the report's players. Files are named by the clip (``clip-<clip_id>_<i>.flac``,
    ``i`` the stage's index, ``0`` the input), so when the corpus grows and the ranking changes a file still holds
    its clip's audio; excerpts of clips that left the worst ``k`` are removed, existing ones of the rest are kept."""
    from .audio import load_audio

    g = df[df["stage"] == "vae"].sort_values(["dec_mel_lsd_hf", "clip"], ascending=[False, True]).head(k)
    folder = out / "audio"
    _drop_stale_excerpts(folder, {clip_id(p) for p in g["path"]})
    listing = []
    for rank, (_, row) in enumerate(g.iterrows(), start=1):
        files = {}
        stages = list(df[df["path"] == row["path"]]["stage"])
        cid = clip_id(row["path"])
        names = {s: folder / f"clip-{cid}_{i}.flac" for i, s in enumerate(["input", *stages])}
        if not all(p.exists() for p in names.values()):
            try:
                if ev is None:
                    ev = Evaluator(settings)
                wave = load_audio(path_of(row["path"]))[: int(EXCERPT_S * 16000) + 16000]
                rec = ev.reconstruct(wave)
            except Exception:  # the clip changed or vanished since it was scored: no players for it
                continue
            n = int(EXCERPT_S * rec.sr)
            for s, p in names.items():
                if not p.exists() and rec[s].wave is not None:
                    folder.mkdir(exist_ok=True)
                    _write_excerpt(p, rec[s].wave[:n], rec.sr)
        for s, p in names.items():
            if p.exists():
                files[s] = p.name
        listing.append({"rank": rank, "clip": row["clip"], "path": row["path"], "category": row["category"],
                        "dec_mel_lsd_hf": float(row["dec_mel_lsd_hf"]), "excerpt_s": EXCERPT_S, "files": files})
    return listing


# ----------------------------------------------------------------------------------------------------------
# entry point
# ----------------------------------------------------------------------------------------------------------
@_releases_locks
def evaluate(audio, *, model: str = "auto", vocoder: str = "auto", enhancers=None, out=None, device: str = "auto",
             dtype: str = "float32", batch_size: int = 8, workers: int = 0, engine: str = "local", seed: int = 0,
             window: int = 1024, overlap: int = 128, fade: int = 64, griffinlim_iters: int = 32,
             ray_address: str | None = None, actors: int = 1, keep_worst: int = WORST_K, progress: bool = True,
             echo=print, pause_after_batch: float = 0.0, allow_foreign_restorer: bool = False,
             metrics="default") -> EvalResult:
    """Score a corpus through the round trip and write the run folder (see the module docstring).

    Parameters
    ----------
    audio : str, Path or list
        A file, a folder (recursive), a ``.lst`` list, a glob (``"data/**/*.wav"``) or ``"demo"``.
    model, vocoder : str
        As for :func:`vaelib.load_vae` / :func:`vaelib.load_vocoder`.
    enhancers : str, list or dict, optional
        See :func:`parse_enhancer_spec` (e.g. ``"seed_hybrid,contrast:factor=1.2"``).
    out : str or Path, optional
        The run folder; default ``evals/<hash of the parameters>`` (so the same command resumes).
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``...
    dtype : str
        ``"float32"``, or ``"bfloat16"`` (autocast; CUDA only).
    batch_size : int
        Windows per model call (encoder, decoder, vocoder: :class:`vaelib.engine.Engine` packs windows of many
        clips, and the many windows of a long clip, into one call), and clips per part file and per Ray task.
        The numbers do not depend on it (float round-off aside).
    workers : int
        Threads that decode audio ahead and compute metrics while the models run (0: all in the main thread).
    engine : str
        ``"local"`` or ``"ray"`` (Ray Data ``map_batches`` with actors that load the models once).
    seed, window, overlap, fade, griffinlim_iters
        See :class:`EvalSettings`.
    ray_address : str, optional
        Ray cluster address for ``engine="ray"`` (default: ``$RAY_ADDRESS``, else a local Ray).
    actors : int
        Ray actors (each loads the models once; one GPU each when ``device`` is CUDA).
    keep_worst : int
        Keep audio excerpts of this many worst clips (recomputed at the end) for ``vaelib report --from-eval``.
    progress : bool
        Show a progress bar (clips/s and ETA).
    echo : callable
        Where the start and final lines go.
    pause_after_batch : float
        Sleep after each part file (a testing aid for crash-safety tests).
    metrics : str or list
        Metric sets, e.g. ``"default,perceptual,embedding"`` (:mod:`vaelib.metrics.sets`; default ``"default"``).

    Returns
    -------
    EvalResult
    """
    import torch

    from .models import ModelLoadError, check_models

    if engine not in ("local", "ray"):
        raise EvalError(f"--engine must be 'local' or 'ray' (got {engine!r})")
    for name, v, lo in (("batch_size", batch_size, 1), ("workers", workers, 0), ("actors", actors, 1),
                        ("griffinlim_iters", griffinlim_iters, 1), ("keep_worst", keep_worst, 0)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise EvalError(f"--{name.replace('_', '-')} must be an integer >= {lo} (got {v!r})")
    if dtype not in ("float32", "bfloat16"):
        raise EvalError(f"--dtype must be float32 or bfloat16 (got {dtype!r})")
    dev = device
    if device in (None, "auto"):
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    elif str(device).startswith("cuda") and not torch.cuda.is_available() and engine == "local":
        raise EvalError(f"--device {device}: CUDA is not available here; use --device cpu")
    if dtype == "bfloat16" and not str(dev).startswith("cuda"):
        raise EvalError("--dtype bfloat16 runs as CUDA autocast only; on CPU it was slower than float32 "
                        "(docs/reference.md §6) — use --dtype float32")
    try:
        from .longaudio import Windowing

        Windowing(window, overlap, fade)
        choice = check_models(model, vocoder)  # folder, cache or Hub checked before run.json is written
        from .metrics.sets import parse_metric_sets

        metric_sets = parse_metric_sets(metrics)
        if "embedding" in metric_sets:  # fail before the first clip, not after it
            from .metrics.embedding import find_clap

            find_clap("auto")
    except (ModelLoadError, ValueError) as exc:
        raise EvalError(one_line(exc)) from None
    settings = EvalSettings(model=model, vocoder=vocoder, enhancers=parse_enhancer_spec(enhancers), device=str(dev),
                            dtype=dtype, seed=int(seed), window=window, overlap=overlap, fade=fade,
                            griffinlim_iters=griffinlim_iters, allow_foreign_restorer=bool(allow_foreign_restorer),
                            metrics=metric_sets)
    files = _list_files(audio)
    identity = {**settings.identity(), "model": choice.vae, "vocoder": choice.vocoder,
                "audio": sorted({str(Path(a).resolve()) if a != "demo" else "demo"
                                 for a in (audio if isinstance(audio, (list, tuple)) else [audio])})}
    out = Path(out) if out is not None else Path("evals") / _hash(identity)
    out = out.expanduser().resolve()
    inputs = [Path(a).expanduser().resolve() for a in (audio if isinstance(audio, (list, tuple)) else [audio])
              if a != "demo"]
    _refuse_out_inside_inputs(out, inputs, files)
    _lock_out(out)  # one writer per run folder: a second process is refused, naming this one's PID
    run = _prepare_out(out, identity, inputs)
    for note in getattr(files, "notes", []):
        echo(note)
    items = _stored(_items(files))
    done = _done_paths(out / "parts", echo)
    todo = [it for it in items if it["path"] not in done]
    run_cols = {"run_hash": run["hash"], "model": choice.vae, "vocoder": choice.vocoder, "device": settings.device,
                "dtype": dtype, "enhancers": ",".join(settings.enhancers), "seed": int(seed),
                "windowing": f"{window}/{overlap}/{fade}"}
    echo(f"eval: {len(items)} files, {len(items) - len(todo)} already done, {len(todo)} to do -> {out}")
    echo(f"  {choice.describe()}; device {settings.device}, {dtype}, engine {engine}")
    from tqdm.auto import tqdm

    bar = tqdm(total=len(todo), unit="clip", desc="eval", disable=not progress, file=sys.stderr)
    journal = _Journal(out, pause_after_batch)
    t0 = time.perf_counter()
    ev = None
    try:
        if todo and engine == "local":
            ev = _run_local(settings, run_cols, todo, batch_size, workers, journal, bar)
        elif todo:
            _run_ray(settings, run_cols, todo, batch_size, workers, journal, bar,
                     ray_address or os.environ.get("RAY_ADDRESS"), actors)
    except ModelLoadError as exc:
        raise EvalError(one_line(exc)) from None
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    result = _finish(out, run, seconds, {it["path"] for it in todo}, ev, settings, keep_worst)
    speed = []
    if seconds > 0 and todo:
        speed.append(f"{len(todo) / seconds:.2f} clips/s, {result.new_audio_s / seconds:.1f}x real time")
        after = _after_load_rate(result.new_audio_s, seconds, result.load_seconds)
        if after is not None:
            speed.append(f"models loaded in {result.load_seconds:.1f} s, then {after:.1f}x")
    speed_txt = f" ({'; '.join(speed)})" if speed else ""
    echo(f"eval: {result.n_clips} clips ({result.n_rows} rows), {result.n_bad} bad files; {len(todo)} processed in "
         f"{seconds:.1f} s{speed_txt} -> {result.results}, {result.results_csv}, {result.bad_files}, "
         f"{result.summary}")
    return result


# ----------------------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------------------
_EPILOG = """\
enhancers: comma-separated registry names or presets, parameters after colons, e.g.
  --enhancers seed_hybrid,contrast:factor=1.2,mel_shelf:shelf_db=3
examples:
  vaelib eval --audio my_corpus/ --out evals/my_corpus
  vaelib eval --audio 'data/**/*.flac' --model cvssp/audioldm2 --vocoder hifigan --device cuda --dtype bfloat16 \\
      --batch-size 32 --out evals/gpu
  RAY_ADDRESS=ray://head:10001 vaelib eval --audio /shared/corpus --engine ray --actors 8 --device cuda --out /shared/ev
The same command after an interruption resumes; other parameters with the same --out are refused.
exit status: 0 ok, 2 bad input.
"""


def _cli(args) -> int:
    try:
        evaluate(args.audio, model=args.model, vocoder=args.vocoder, enhancers=args.enhancers, out=args.out,
                 device=args.device, dtype=args.dtype, batch_size=args.batch_size, workers=args.workers,
                 engine=args.engine, seed=args.seed, window=args.window, overlap=args.overlap, fade=args.fade,
                 griffinlim_iters=args.griffinlim_iters, ray_address=args.ray_address, actors=args.actors,
                 keep_worst=args.keep_worst, progress=not args.no_progress, pause_after_batch=args.pause_after_batch,
                 allow_foreign_restorer=args.allow_foreign_restorer, metrics=args.metrics)
    except EvalError as exc:
        sys.stderr.write(f"error: {one_line(exc)}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted; finished batches are kept — rerun the same command to resume\n")
        return 130
    return 0


def add_parser(subparsers, parser_class=argparse.ArgumentParser):
    """Register ``vaelib eval`` (called by :func:`vaelib.cli.build_parser`)."""
    p = subparsers.add_parser(
        "eval", help="score a whole corpus (any length, resumable; local or Ray)",
        description="Round-trip loss of every file of a corpus: one row per (clip, stage) with every metric of the "
                    "baseline report, in Parquet and CSV, plus a summary and the list of unreadable files.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--audio", required=True, metavar="PATH|GLOB|demo",
                   help="audio file, folder (recursive), .lst list, glob, or 'demo'")
    p.add_argument("--model", default="auto", metavar="auto|bundled|ID|PATH", help="VAE source (default: auto)")
    p.add_argument("--vocoder", default="auto", metavar="auto|hifigan|griffinlim|PATH",
                   help="vocoder (default: auto)")
    p.add_argument("--enhancers", default=None, metavar="SPEC",
                   help="enhancers to evaluate too: name[:key=value...],... (see below)")
    p.add_argument("--allow-foreign-restorer", action="store_true",
                   help="apply a restorer trained for another VAE anyway (refused by default: restorers record their "
                        "VAE's fingerprint)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="run folder (default: evals/<hash of the parameters>); rerun to resume")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: auto)")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                   help="bfloat16 = CUDA autocast (default: float32)")
    p.add_argument("--batch-size", type=int, default=8, metavar="N",
                   help="windows per model call (VAE, vocoder), and clips per part file / Ray task; the numbers "
                        "do not depend on it (default 8)")
    p.add_argument("--workers", type=int, default=0, metavar="N",
                   help="threads decoding audio and computing metrics beside the model (default 0)")
    p.add_argument("--engine", default="local", choices=("local", "ray"), help="local (default) or ray")
    p.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="Ray cluster for --engine ray (default: $RAY_ADDRESS, else a local Ray)")
    p.add_argument("--actors", type=int, default=1, metavar="N", help="Ray actors (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of stochastic enhancers (default 0)")
    p.add_argument("--window", type=int, default=1024, metavar="FRAMES",
                   help="window length in frames (default 1024 = the training length, 10.24 s)")
    p.add_argument("--overlap", type=int, default=128, metavar="FRAMES", help="window overlap (default 128)")
    p.add_argument("--fade", type=int, default=64, metavar="FRAMES", help="crossfade ramp (default 64)")
    p.add_argument("--griffinlim-iters", type=int, default=32, metavar="N",
                   help="Griffin-Lim iterations (default 32)")
    p.add_argument("--keep-worst", type=int, default=WORST_K, metavar="N",
                   help=f"keep audio excerpts of the N worst clips for 'vaelib report --from-eval' (default {WORST_K})")
    p.add_argument("--metrics", default="default", metavar="SETS",
                   help="metric sets: default[,perceptual][,embedding] (perceptual: ViSQOL, STOI, PESQ, DNSMOS; "
                        "embedding: CLAP cosine + FAD; both opt-in, slow; default: default)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--pause-after-batch", type=float, default=0.0, help=argparse.SUPPRESS)
    p.set_defaults(func=_cli)
    return p
