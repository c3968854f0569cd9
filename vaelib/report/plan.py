"""Decide and validate a report run before anything runs: notebooks, their parameters, audio, model, run folder.

:func:`plan_report` reads every notebook's parameters from the one schema (:mod:`vaelib.report.params`; a notebook
outside the schema, given with ``--notebooks``, is read from its papermill ``parameters`` cell, see
:func:`inspect_params`), and checks everything — unknown parameter names, values that do not parse as the declared
type, the audio source (missing path, folder without audio; corrupt files among good ones are skipped and listed),
the model/vocoder choice, the enhancement method and its parameter ranges, and that the output folder is new or
empty — before :func:`vaelib.report.run.run_report` starts a kernel. Errors are :class:`ReportError`, one line.
"""

from __future__ import annotations

import ast
import dataclasses
import datetime as _dt
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from .._util import one_line as _one_line
from . import params as _params

__all__ = ["FAILED_MARK", "CACHE_DIR", "DEFAULT_NOTEBOOKS", "RUNNER_OWNED", "SHARED", "AUDIO_LIST_NAME", "ReportError",
           "ReportPlan", "notebooks_dir", "default_notebooks", "inspect_params", "format_params", "parse_assignments",
           "plan_report"]

#: The report notebooks, run in this order.
DEFAULT_NOTEBOOKS = ("01_baseline.ipynb", "02_latent_enhance.ipynb", "03_analysis.ipynb", "04_learned_enhance.ipynb",
                     "05_adaptive.ipynb")
#: Parameters the runner sets itself (and refuses from the user): :data:`vaelib.report.params.RUNNER_OWNED`.
RUNNER_OWNED = _params.RUNNER_OWNED
#: Parameters passed to every notebook that declares them, so all notebooks see the same inputs.
SHARED = ("audio", "model", "vocoder")
AUDIO_LIST_NAME = "inputs.lst"


class ReportError(ValueError):
    """A bad input to the runner (exit status 2); the message is one line saying what is accepted."""



def notebooks_dir() -> Path:
    """Folder of the report notebooks: the package data ``vaelib.report.notebooks``.

    That package is the repository's top-level ``notebooks/`` (``pyproject.toml`` maps it), so an editable install
    (``pip install -e .``) runs the notebooks users open and edit, and a wheel ships the same files; there is one
    copy of each notebook.
    """
    import importlib.resources

    try:
        return Path(str(importlib.resources.files("vaelib.report.notebooks")))
    except ModuleNotFoundError:
        raise ReportError("the report notebooks (package vaelib.report.notebooks) are not installed; reinstall "
                          "vaelib (`pip install -c constraints.txt 'vaelib[report]'`) or pass --notebooks") from None


def default_notebooks() -> list[Path]:
    """The report notebooks :data:`DEFAULT_NOTEBOOKS` in :func:`notebooks_dir`.

    Raises
    ------
    ReportError
        When the folder or a notebook is missing (a broken install: the wheel ships them as package data).
    """
    folder = notebooks_dir()
    missing = [name for name in DEFAULT_NOTEBOOKS if not (folder / name).is_file()]
    if missing:
        raise ReportError(
            f"report notebooks not found: {', '.join(missing)} missing in {folder}; reinstall vaelib "
            "(`pip install -c constraints.txt 'vaelib[report]'`) or pass the notebooks explicitly (--notebooks)"
        )
    return [folder / name for name in DEFAULT_NOTEBOOKS]


def resolve_notebooks(notebooks: Iterable[str | os.PathLike] | None) -> list[Path]:
    if notebooks is None:
        return default_notebooks()
    out: list[Path] = []
    for item in notebooks:
        path = Path(item).expanduser()
        if path.is_dir():
            found = sorted(path.glob("*.ipynb"))
            if not found:
                raise ReportError(f"no notebooks (*.ipynb) in folder {path}")
            out.extend(found)
        elif not path.is_file():
            raise ReportError(f"notebook not found: {path}")
        elif path.suffix != ".ipynb":
            raise ReportError(f"{path.name} is not a notebook (.ipynb)")
        else:
            out.append(path)
    if not out:
        raise ReportError("no notebooks given")
    stems = [p.stem for p in out]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        raise ReportError(f"two notebooks share the name {', '.join(dupes)}; each needs its own output folder")
    return [p.resolve() for p in out]





_ANNOTATION_TYPES = {"int": "int", "float": "float", "bool": "bool", "str": "str", "list": "list[float]",
                     "tuple": "list[float]"}


def _spec_from_papermill(name: str, info: Mapping) -> _params.Spec:
    """A :class:`vaelib.report.params.Spec` for a parameter of a notebook outside the schema (``--notebooks``)."""
    ann = str(info.get("inferred_type_name") or "None").replace(" ", "")
    optional = "None" in ann.split("|") or ann.startswith(("Optional[", "typing.Optional["))
    base = re.sub(r"^(?:typing\.)?Optional\[(.+)\]$", r"\1", ann).replace("|None", "").replace("None|", "")
    try:
        default = ast.literal_eval(str(info.get("default")))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        default = NotImplemented
    if base in ("None", ""):
        base = type(default).__name__ if default not in (None, NotImplemented) else "str"
    t = _ANNOTATION_TYPES.get(re.match(r"\w*", base).group(0), "str")
    return _params.Spec(name, t, default, str(info.get("help") or ""), optional=optional)


def _foreign_spec(name: str, info: Mapping) -> _params.Spec:
    """A foreign notebook's parameter: a name the schema knows keeps the schema's rules (with the notebook's
    default); any other name gets a type-only spec from the cell."""
    own = _spec_from_papermill(name, info)
    for kind in _params.SCHEMA:
        known = _params.specs(kind).get(name)
        if known is not None:
            return dataclasses.replace(known, default=own.default, help=own.help or known.help)
    return own


def inspect_params(notebooks: Sequence[Path]) -> tuple[dict[str, dict[str, _params.Spec]], dict[str, _params.Spec]]:
    """The parameters of each notebook, from the schema (:mod:`vaelib.report.params`).

    A notebook of the schema (``01_baseline`` ... by stem) gets its :func:`~vaelib.report.params.specs`; any other
    notebook (``--notebooks``) gets specs read from its papermill ``parameters`` cell, checked by the same rules.

    Returns
    -------
    per_notebook : dict
        ``{stem: {name: Spec}}`` in notebook order.
    union : dict
        ``{name: Spec}`` over all notebooks (first declaration wins).
    """
    per: dict[str, dict[str, _params.Spec]] = {}
    union: dict[str, _params.Spec] = {}
    for nb in notebooks:
        kind = _params.kind_of(nb.stem)
        if kind is not None:
            declared = _params.specs(kind)
        else:
            import papermill

            try:
                infos = papermill.inspect_notebook(str(nb))
            except Exception as exc:  # malformed JSON, not a notebook
                raise ReportError(f"cannot read notebook {nb}: {_one_line(exc, 200)}") from None
            declared = {name: _foreign_spec(name, info) for name, info in infos.items()}
        per[nb.stem] = declared
        for name, spec in declared.items():
            union.setdefault(name, spec)
    return per, union


def format_params(per: Mapping[str, Mapping[str, _params.Spec]]) -> str:
    """One line per parameter (for ``--list-params``): ``name : type = default  # help; accepts ...  [notebooks]``."""
    where: dict[str, tuple[_params.Spec, list[str]]] = {}
    for stem, declared in per.items():
        for name, spec in declared.items():
            where.setdefault(name, (spec, []))[1].append(stem)
    width = max((len(n) for n in where), default=0)
    lines = []
    for name, (spec, stems) in where.items():
        note = f"  (set by the runner: {RUNNER_OWNED[name]})" if name in RUNNER_OWNED else ""
        default = "(expression)" if spec.default is NotImplemented else repr(spec.default)
        lines.append(f"{name:<{width}} : {spec.annotation} = {default}  # {spec.help}; accepts {spec.rule()}  "
                     f"[{', '.join(stems)}]{note}")
    return "\n".join(lines)


def parse_assignments(items: Iterable[str] | None) -> dict[str, str]:
    """Parse ``["gain=2", "method=noise"]`` into ``{"gain": "2", "method": "noise"}``.

    Raises
    ------
    ReportError
        An item without ``=`` or with an empty name, or a name given twice.
    """
    out: dict[str, str] = {}
    for item in items or ():
        name, sep, value = str(item).partition("=")
        name = name.strip()
        if not sep or not name:
            raise ReportError(f"-p expects name=value (got {item!r})")
        if name in out and out[name] != value:
            raise ReportError(f"parameter {name!r} given twice ({out[name]!r} and {value!r})")
        out[name] = value
    return out


def _coerce(spec: _params.Spec, value):
    try:
        return _params.coerce(spec, value)
    except _params.ParamError as exc:
        raise ReportError(_one_line(exc)) from None


# -------------------------------------------------------------------------------------------------- plan


@dataclasses.dataclass
class ReportPlan:
    """Everything :func:`run_report` will do, decided and validated before anything runs or is written.

    Attributes
    ----------
    run_dir : Path
        Absolute run folder (does not exist yet, or is empty).
    notebooks : list of Path
        Notebooks to run, in order.
    parameters : dict
        ``{stem: {name: value}}`` passed to each notebook (only names it declares).
    user_params : dict
        The parameters given by the user, coerced (for the report header).
    audio_source : str or None
        The audio source as given (``"demo"``, a path), or None when no notebook takes ``audio``.
    audio_files : list of Path
        Readable audio files.
    skipped : list of (Path, str)
        Unreadable audio files and why; left out of the run.
    model_line : str or None
        :meth:`vaelib.models.ModelChoice.describe` of the chosen model and vocoder.
    model_choice : vaelib.models.ModelChoice or None
        The chosen model and vocoder (the index's headline names them).
    """

    run_dir: Path
    notebooks: list[Path]
    parameters: dict[str, dict]
    user_params: dict
    audio_source: str | None = None
    audio_files: list[Path] = dataclasses.field(default_factory=list)
    skipped: list[tuple[Path, str]] = dataclasses.field(default_factory=list)
    model_line: str | None = None
    model_choice: object = None


def _default_out(now: _dt.datetime) -> Path:
    return Path("reports") / now.strftime("%Y%m%d-%H%M%S")


def _check_run_dir(out) -> Path:
    run_dir = Path(out).expanduser().resolve()
    if run_dir.exists():
        if not run_dir.is_dir():
            raise ReportError(f"output path {run_dir} is a file; choose a new --out folder")
        from ..runlock import LOCK_NAME

        # a lock file alone: a run that wrote nothing; a failed run's marker: a run that finished no notebook
        leftovers = any(p.name not in (LOCK_NAME, FAILED_MARK) for p in run_dir.iterdir())
        if leftovers and not _failed_before_results(run_dir):
            raise ReportError(f"output folder {run_dir} already exists and is not empty; choose a new --out "
                              "(reports are never overwritten)")
    return run_dir


#: Written into a report folder whose run failed before any notebook finished (JSON: the paths it wrote); a rerun
#: into the same ``--out`` removes exactly those and starts afresh, so such a run never blocks the corrected one.
FAILED_MARK = ".vaelib-report-failed.json"
#: Folder inside a report run where the notebooks share each clip's encoding and plain decode
#: (:class:`vaelib.pipeline.RoundTripCache`); removed when the run ends.
CACHE_DIR = ".roundtrip-cache"


def _failed_before_results(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds only what a run that finished no notebook wrote (its :data:`FAILED_MARK` lists it)."""
    from ..runlock import LOCK_NAME

    mark = run_dir / FAILED_MARK
    try:
        written = set(json.loads(mark.read_text(encoding="utf-8")).get("written", []))
    except (OSError, ValueError, AttributeError):
        return False
    return all(p.name in (LOCK_NAME, FAILED_MARK) or p.name in written for p in run_dir.iterdir())


def _effective(name: str, given: Mapping, union: Mapping[str, _params.Spec]):
    """The value a parameter will have: the user's, else the default (NotImplemented if unknowable)."""
    if name in given:
        return given[name]
    if name in union:
        return union[name].default
    return NotImplemented


def _check_model(model: str, vocoder: str):
    """Resolve and check ``model``/``vocoder`` like the notebooks will (a folder, the cache, or the Hub when online:
    :func:`vaelib.models.check_models`) and return the :class:`~vaelib.models.ModelChoice`."""
    from ..models import ModelLoadError, check_models

    try:
        return check_models(model, vocoder)
    except ModelLoadError as exc:
        raise ReportError(_one_line(exc)) from None


def _check_audio(source, duration) -> tuple[list[Path], list[tuple[Path, str]]]:
    from ..audio import find_audio, load_audio

    try:
        files = find_audio(source)
    except (FileNotFoundError, ValueError) as exc:
        raise ReportError(_one_line(exc)) from None
    good, skipped = [], []
    dur = duration if isinstance(duration, (int, float)) and not isinstance(duration, bool) and duration > 0 else None
    for path in files:
        try:
            load_audio(path, duration=dur)
        except (FileNotFoundError, ValueError) as exc:
            skipped.append((path, _one_line(exc, 200)))
        else:
            good.append(path)
    if not good:
        listed = "; ".join(f"{p.name} ({why})" for p, why in skipped[:5])
        more = f"; and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        raise ReportError(f"none of the {len(skipped)} audio file(s) from {source} could be read: {listed}{more}")
    return good, skipped


def _check_notebook_params(per: Mapping[str, Mapping[str, _params.Spec]], values: Mapping) -> None:
    """Check every schema notebook's full parameter set (user values + defaults) by the notebooks' own rules
    (:func:`vaelib.report.params.check`: ranges, the enhancer and its parameters, sweep values), and the device."""
    for stem, declared in per.items():
        kind = _params.kind_of(stem)
        if kind is None:
            continue
        try:
            _params.check(kind, {k: v for k, v in values.items() if k in declared})
        except _params.ParamError as exc:
            raise ReportError(_one_line(exc)) from None
    device = values.get("device")
    if isinstance(device, str):
        from ..models import ModelLoadError, check_device

        try:
            check_device(device)
        except ModelLoadError as exc:
            raise ReportError(_one_line(exc)) from None


def plan_report(audio=None, model=None, vocoder=None, params: Mapping | None = None, out=None,
                notebooks: Iterable[str | os.PathLike] | None = None, now: _dt.datetime | None = None) -> ReportPlan:
    """Validate every input and decide what to run, without running or writing anything.

    Parameters
    ----------
    audio, model, vocoder : str, optional
        Shorthands for ``params["audio"]`` etc.; None keeps the notebooks' defaults.
    params : mapping, optional
        ``{name: value}``; values may be strings (from the command line) or typed values.
    out : str or Path, optional
        Run folder; default ``reports/<YYYYmmdd-HHMMSS>`` under the current directory. Must not exist or be
        empty.
    notebooks : iterable of path, optional
        Notebooks (or folders of notebooks) to run, in order; default :func:`default_notebooks`.
    now : datetime, optional
        Clock for the default run folder name.

    Returns
    -------
    ReportPlan

    Raises
    ------
    ReportError
        One line naming the bad input and what is accepted.
    """
    now = now or _dt.datetime.now()
    nbs = resolve_notebooks(notebooks)
    per, union = inspect_params(nbs)
    given = dict(params or {})
    for name, value in (("audio", audio), ("model", model), ("vocoder", vocoder)):
        if value is None:
            continue
        if name in given and str(given[name]) != str(value):
            raise ReportError(f"parameter {name!r} given twice (--{name} {value} and -p {name}={given[name]})")
        given[name] = value
    accepted = ", ".join(n for n in union if n not in RUNNER_OWNED)
    for name in given:
        if name in RUNNER_OWNED:
            raise ReportError(f"parameter {name!r} cannot be set: {RUNNER_OWNED[name]}")
        if name not in union:
            raise ReportError(f"unknown parameter {name!r}; accepted: {accepted or 'none'}")
    values = {name: _coerce(union[name], value) for name, value in given.items()}
    for declared in per.values():  # a name declared with another type elsewhere must parse there too
        for name, value in given.items():
            if name in declared and declared[name].type != union[name].type:
                _coerce(declared[name], value)
    run_dir = _check_run_dir(out if out is not None else _default_out(now))

    plan = ReportPlan(run_dir=run_dir, notebooks=nbs, parameters={}, user_params=dict(values))
    _check_notebook_params(per, values)
    model_v, vocoder_v = _effective("model", values, union), _effective("vocoder", values, union)
    if "model" in union or "vocoder" in union:
        plan.model_choice = _check_model(model_v if isinstance(model_v, str) else "auto",
                                         vocoder_v if isinstance(vocoder_v, str) else "auto")
        plan.model_line = plan.model_choice.describe()
    shared = {}
    for name, v in (("model", model_v), ("vocoder", vocoder_v)):
        if not isinstance(v, str):
            continue
        if v not in ("auto", "bundled", "hifigan", "griffinlim") and Path(v).expanduser().exists():
            v = str(Path(v).expanduser().resolve())  # the notebooks run in the run folder
        shared[name] = v
    if "audio" in union:
        source = _effective("audio", values, union)
        if source is NotImplemented:
            raise ReportError("the notebooks' default for 'audio' is not a literal; pass --audio")
        if isinstance(source, str) and source != "demo":
            source = str(Path(source).expanduser().resolve())
        plan.audio_source = str(source)
        plan.audio_files, plan.skipped = _check_audio(source, _effective("duration_s", values, union))
        shared["audio"] = plan.audio_source if not plan.skipped else str(run_dir / AUDIO_LIST_NAME)
    for stem, declared in per.items():
        nb_params = {}
        for name in declared:
            if name == "out_dir":
                nb_params[name] = str(run_dir)
            elif name == "interactive":
                nb_params[name] = False
            elif name in shared:
                nb_params[name] = shared[name]
            elif name in values:
                nb_params[name] = _coerce(declared[name], given[name])
        plan.parameters[stem] = nb_params
    return plan
