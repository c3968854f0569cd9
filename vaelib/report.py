"""Run the analysis notebooks headlessly and turn them into a self-contained HTML report.

What :func:`run_report` (and ``vaelib report``) does, in order:

1. reads every notebook's papermill ``parameters`` cell (:func:`inspect_params`: name, type, default, help);
2. validates everything before running anything (:func:`plan_report`): unknown parameter names, values that do
   not parse as the declared type, the audio source (missing path, folder without audio; corrupt files among
   good ones are skipped and listed), the model/vocoder choice, the enhancement method and its parameter ranges,
   and that the output folder is new or empty;
3. runs the notebooks in order with papermill (kernel ``python3``, working directory = the run folder), stopping
   at the first failing cell (:class:`NotebookError`, the partial notebook is kept);
4. converts each executed notebook to HTML with its plots and audio players inline (data URIs, no external
   scripts) and writes ``index.html`` linking them with the headline numbers from each
   ``<run>/<notebook stem>/metrics.json`` ``"summary"``.

Contract with the notebooks: parameters ``out_dir`` (set to the run folder) and ``interactive`` (set to
``False``: static plots instead of widgets) are owned by the runner; ``audio``, ``model`` and ``vocoder`` are passed
to every notebook that declares them, so all use the same inputs; any other parameter is passed only when given,
and only to the notebooks that declare it. Each notebook writes inside ``out_dir/<its stem>/``.

Nothing is written outside the run folder, and input files are only read.
"""

from __future__ import annotations

import ast
import dataclasses
import datetime as _dt
import html
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from ._util import one_line as _one_line

__all__ = [
    "DEFAULT_NOTEBOOKS",
    "NotebookError",
    "NotebookParam",
    "ReportError",
    "ReportPlan",
    "ReportResult",
    "coerce_value",
    "default_notebooks",
    "export_html",
    "format_params",
    "inspect_params",
    "notebooks_dir",
    "parse_assignments",
    "plan_report",
    "run_report",
    "write_index",
]

#: The report notebooks, run in this order.
DEFAULT_NOTEBOOKS = ("01_baseline.ipynb", "02_latent_enhance.ipynb", "03_analysis.ipynb")
#: Parameters the runner sets itself (and refuses from the user).
RUNNER_OWNED = {
    "out_dir": "it is set to the run folder; use --out",
    "interactive": "reports are static (interactive=False)",
}
#: Parameters passed to every notebook that declares them, so all notebooks see the same inputs.
SHARED = ("audio", "model", "vocoder")
#: Per-cell timeout default, in seconds.
DEFAULT_TIMEOUT = 1800.0
AUDIO_LIST_NAME = "inputs.lst"
_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}
_KERNEL_ENV = {"TQDM_DISABLE": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}

_TEMPLATE_NAME = "vaelib_report.html.j2"
# The lab template, minus every script loaded from a CDN (require.js, MathJax, mermaid): the report must open
# offline. Widgets are never rendered (interactive=False), so require.js is not needed.
_TEMPLATE = """{%- extends "lab/index.html.j2" -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
"""


class ReportError(ValueError):
    """A bad input to the runner (exit status 2); the message is one line saying what is accepted."""


class NotebookError(RuntimeError):
    """A notebook failed while running (exit status 1).

    Attributes
    ----------
    notebook : str
        Notebook stem, e.g. ``"02_latent_enhance"``.
    cell : int or None
        Execution count (``In [n]``) of the failing cell, when known.
    ename, evalue : str
        Exception name and message raised in the kernel.
    partial : Path
        The partially executed notebook, kept for inspection.
    """

    def __init__(self, notebook: str, cell: int | None, ename: str, evalue: str, partial: Path):
        self.notebook, self.cell, self.ename, self.evalue, self.partial = notebook, cell, ename, evalue, partial
        where = f" at cell {cell}" if cell is not None else ""
        super().__init__(f"notebook {notebook} failed{where}: {ename}: {_one_line(evalue, 300)}"
                         f" (partial notebook kept: {partial})")


# ----------------------------------------------------------------------------------------------- notebooks


def notebooks_dir() -> Path:
    """Folder of the report notebooks.

    In a source checkout (``vaelib/`` beside ``pyproject.toml`` and ``notebooks/``, e.g. ``pip install -e .``) this
    is the repository's ``notebooks/``, the source of truth, so edits take effect without a sync. Installed from a
    wheel or with ``pip install .`` it is the copy shipped inside the package, ``vaelib/notebooks/`` (byte-identical
    to the sources: ``scripts/sync_notebooks.py``, guarded by ``tests/test_packaging.py``).
    """
    import vaelib

    package = Path(vaelib.__file__).resolve().parent
    checkout = package.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "notebooks").is_dir():
        return checkout / "notebooks"
    return package / "notebooks"


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


def _resolve_notebooks(notebooks: Iterable[str | os.PathLike] | None) -> list[Path]:
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


# ---------------------------------------------------------------------------------------------- parameters


@dataclasses.dataclass(frozen=True)
class NotebookParam:
    """A parameter declared in a notebook's ``parameters`` cell (as reported by ``papermill.inspect_notebook``).

    Attributes
    ----------
    name : str
        Parameter name.
    type_name : str
        Declared type (``"int"``, ``"float"``, ``"bool"``, ``"str"``, ...); inferred from the default when the
        annotation is missing.
    default : str
        The default's source text, e.g. ``'"demo"'`` or ``'1.5'``.
    help : str
        The trailing comment.
    notebooks : tuple of str
        Stems of the notebooks declaring it.
    """

    name: str
    type_name: str
    default: str
    help: str
    notebooks: tuple[str, ...]

    @property
    def default_value(self):
        """The default as a Python value, or ``NotImplemented`` when it is an expression, not a literal."""
        try:
            return ast.literal_eval(self.default)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return NotImplemented


def _type_name(info: Mapping) -> str:
    name = str(info.get("inferred_type_name") or "None").strip()
    if name in ("None", ""):
        try:
            value = ast.literal_eval(str(info.get("default")))
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return "str"
        return type(value).__name__ if value is not None else "str"
    return name


def inspect_params(notebooks: Sequence[Path]) -> tuple[dict[str, dict[str, NotebookParam]], dict[str, NotebookParam]]:
    """Read the parameters of each notebook.

    Parameters
    ----------
    notebooks : sequence of Path
        Notebook files.

    Returns
    -------
    per_notebook : dict
        ``{stem: {name: NotebookParam}}`` in notebook order.
    union : dict
        ``{name: NotebookParam}`` over all notebooks (first declaration wins; ``notebooks`` lists every stem
        declaring the name).
    """
    import papermill

    per: dict[str, dict[str, NotebookParam]] = {}
    union: dict[str, NotebookParam] = {}
    for nb in notebooks:
        try:
            infos = papermill.inspect_notebook(str(nb))
        except Exception as exc:  # malformed JSON, not a notebook
            raise ReportError(f"cannot read notebook {nb}: {_one_line(exc, 200)}") from None
        params = {}
        for name, info in infos.items():
            params[name] = NotebookParam(name, _type_name(info), str(info.get("default")), str(info.get("help") or ""),
                                         (nb.stem,))
        per[nb.stem] = params
        for name, p in params.items():
            if name in union:
                union[name] = dataclasses.replace(union[name], notebooks=union[name].notebooks + (nb.stem,))
            else:
                union[name] = p
    return per, union


def format_params(union: Mapping[str, NotebookParam]) -> str:
    """One line per parameter: ``name: type = default  # help  [notebooks]`` (for ``--list-params``)."""
    lines = []
    width = max((len(n) for n in union), default=0)
    for name, p in union.items():
        note = f"  (set by the runner: {RUNNER_OWNED[name]})" if name in RUNNER_OWNED else ""
        help_ = f"  # {p.help}" if p.help else ""
        lines.append(f"{name:<{width}} : {p.type_name} = {p.default}{help_}  [{', '.join(p.notebooks)}]{note}")
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


def _base_type(type_name: str) -> tuple[str, bool]:
    """``("float", optional)`` from ``"float"``, ``"Optional[float]"`` or ``"float | None"``."""
    t = type_name.replace(" ", "")
    optional = False
    m = re.fullmatch(r"(?:typing\.)?Optional\[(.+)\]", t)
    if m:
        t, optional = m.group(1), True
    parts = [x for x in t.split("|") if x]
    if "None" in parts and len(parts) > 1:
        optional = True
        parts = [x for x in parts if x != "None"]
    return ("|".join(parts) or "str"), optional


def coerce_value(name: str, value, type_name: str):
    """Convert ``value`` (a command-line string, or an already typed value) to the declared type.

    ``int`` accepts integers; ``float`` accepts any finite number (an int is fine); ``bool`` accepts
    true/false/1/0/yes/no/on/off; ``str`` accepts anything; ``list``/``dict``/``tuple`` accept a Python literal.
    ``Optional[...]``/``... | None`` also accept ``none``/``null``. Unknown types are passed through.

    Raises
    ------
    ReportError
        ``parameter 'gain' expects float (got 'abc')``.
    """
    base, optional = _base_type(type_name)

    def bad():
        return ReportError(f"parameter {name!r} expects {type_name} (got {value!r})")

    if optional and (value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null"))):
        return None
    if base == "str":
        if isinstance(value, (str, os.PathLike)):
            return os.fspath(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise bad()
    if base == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise bad()
    if base == "int":
        if isinstance(value, bool):
            raise bad()
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip().replace("_", ""))
            except ValueError:
                raise bad() from None
        raise bad()
    if base == "float":
        if isinstance(value, bool):
            raise bad()
        try:
            out = float(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError):
            raise bad() from None
        if not math.isfinite(out):
            raise ReportError(f"parameter {name!r} expects a finite float (got {value!r})")
        return out
    container = re.match(r"(list|tuple|dict|set)\b", base)
    if container:
        kind = {"list": list, "tuple": tuple, "dict": dict, "set": set}[container.group(1)]
        if isinstance(value, str):
            try:
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                if kind is dict:
                    raise bad() from None
                value = [v.strip() for v in value.split(",") if v.strip()]
        if kind is not dict and isinstance(value, (list, tuple, set)):
            return kind(value)
        if isinstance(value, kind):
            return value
        raise bad()
    return value  # an annotation we do not understand: let the notebook judge


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
    """

    run_dir: Path
    notebooks: list[Path]
    parameters: dict[str, dict]
    user_params: dict
    audio_source: str | None = None
    audio_files: list[Path] = dataclasses.field(default_factory=list)
    skipped: list[tuple[Path, str]] = dataclasses.field(default_factory=list)
    model_line: str | None = None


def _default_out(now: _dt.datetime) -> Path:
    return Path("reports") / now.strftime("%Y%m%d-%H%M%S")


def _check_run_dir(out) -> Path:
    run_dir = Path(out).expanduser().resolve()
    if run_dir.exists():
        if not run_dir.is_dir():
            raise ReportError(f"output path {run_dir} is a file; choose a new --out folder")
        if any(run_dir.iterdir()):
            raise ReportError(f"output folder {run_dir} already exists and is not empty; choose a new --out "
                              "(reports are never overwritten)")
    return run_dir


def _effective(name: str, given: Mapping, union: Mapping[str, NotebookParam]):
    """The value a parameter will have: the user's, else the notebook default (NotImplemented if unknowable)."""
    if name in given:
        return given[name]
    if name in union:
        return union[name].default_value
    return NotImplemented


def _check_model(model: str, vocoder: str) -> str:
    """Resolve ``model``/``vocoder`` like the notebooks will and return the one-line description."""
    from .models import ModelLoadError, _cached_snapshot, _local_folder, _looks_like_repo_id, _offline, resolve_models

    try:
        choice = resolve_models(model, vocoder)
        for source, sub in ((choice.vae, "vae"), (choice.vocoder, "vocoder")):
            if source == "griffinlim" or (choice.bundled and sub == "vae"):  # bundled: shipped with vaelib
                continue
            folder = Path(source).expanduser()
            if folder.exists():
                if not folder.is_dir():
                    raise ModelLoadError(f"{sub} source {folder} is a file; pass the folder that holds {sub}/")
                _local_folder(folder, sub)
            elif not _looks_like_repo_id(source):
                raise ModelLoadError(f"{sub} source {source!r} is neither an existing folder nor a Hugging Face "
                                     "repo id like 'cvssp/audioldm2'")
            elif _offline() and _cached_snapshot(source, sub) is None:
                raise ModelLoadError(f"{source} ({sub}/) is not in the Hugging Face cache and HF_HUB_OFFLINE=1 "
                                     "forbids downloading; pass a local snapshot folder")
    except ModelLoadError as exc:
        raise ReportError(_one_line(exc)) from None
    return choice.describe()


def _check_audio(source, duration) -> tuple[list[Path], list[tuple[Path, str]]]:
    from .audio import find_audio, load_audio

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


def _check_method(values: Mapping, union: Mapping[str, NotebookParam]) -> None:
    from .enhance import ENHANCERS, get, validate_params

    method = _effective("method", values, union)
    if not isinstance(method, str):
        return
    methods = [m.strip() for m in method.split(",") if m.strip()] or [method]
    try:
        for m in methods:
            get(m)
    except ValueError as exc:
        raise ReportError(_one_line(exc)) from None
    # range-check the enhancer parameters the user set, for the methods that take them
    names = {p.name for e in ENHANCERS.values() for p in e.params}
    given = {k: v for k, v in values.items() if k in names}
    for m in methods:
        accepted = {p.name for p in ENHANCERS[m].params}
        mine = {k: v for k, v in given.items() if k in accepted}
        if mine:
            try:
                validate_params(m, mine)
            except ValueError as exc:
                raise ReportError(_one_line(exc)) from None


def _check_misc(values: Mapping, union: Mapping[str, NotebookParam]) -> None:
    duration = values.get("duration_s")
    if isinstance(duration, (int, float)) and duration <= 0:
        raise ReportError(f"parameter 'duration_s' must be > 0 seconds (got {duration:g})")
    for name in ("max_clips", "n_clips"):
        v = values.get(name)
        if isinstance(v, int) and not isinstance(v, bool) and v < 1:
            raise ReportError(f"parameter {name!r} must be >= 1 (got {v})")
    device = values.get("device")
    if isinstance(device, str):
        from .models import ModelLoadError, _pick_device

        try:
            _pick_device(device)
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
    nbs = _resolve_notebooks(notebooks)
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
    values = {name: coerce_value(name, value, union[name].type_name) for name, value in given.items()}
    for declared in per.values():  # a name declared with another type elsewhere must parse there too
        for name, value in given.items():
            if name in declared and declared[name].type_name != union[name].type_name:
                coerce_value(name, value, declared[name].type_name)
    run_dir = _check_run_dir(out if out is not None else _default_out(now))

    plan = ReportPlan(run_dir=run_dir, notebooks=nbs, parameters={}, user_params=dict(values))
    _check_misc(values, union)
    _check_method(values, union)
    model_v, vocoder_v = _effective("model", values, union), _effective("vocoder", values, union)
    if "model" in union or "vocoder" in union:
        plan.model_line = _check_model(model_v if isinstance(model_v, str) else "auto",
                                       vocoder_v if isinstance(vocoder_v, str) else "auto")
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
                nb_params[name] = coerce_value(name, given[name], declared[name].type_name)
        plan.parameters[stem] = nb_params
    return plan


# ------------------------------------------------------------------------------------------------ output


def _html_exporter(no_input: bool):
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    return HTMLExporter(template_name="lab", extra_loaders=[DictLoader({_TEMPLATE_NAME: _TEMPLATE})],
                        template_file=_TEMPLATE_NAME, exclude_input=no_input, exclude_input_prompt=no_input,
                        exclude_output_prompt=no_input)


def export_html(ipynb: Path, html_path: Path, no_input: bool = False) -> list[str]:
    """Convert an executed notebook to a self-contained HTML page (plots and audio as data URIs).

    Parameters
    ----------
    ipynb : Path
        Executed notebook.
    html_path : Path
        Where to write the HTML (must not exist).
    no_input : bool
        Hide code cells (``exclude_input``).

    Returns
    -------
    list of str
        Warnings: error outputs, tracebacks or remote resources found in the page.
    """
    import nbformat

    nb = nbformat.read(str(ipynb), as_version=4)
    body, _ = _html_exporter(no_input).from_notebook_node(nb, resources={"metadata": {"name": ipynb.stem}})
    warnings = []
    n_err = sum(1 for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error")
    if n_err:
        warnings.append(f"{ipynb.stem}: {n_err} cell(s) show an error output")
    elif "Traceback" in body or "output_error" in body:
        warnings.append(f"{ipynb.stem}: the page shows a traceback")
    remote = sorted(set(re.findall(r"<(?:script|link|img|audio|source)\b[^>]*(?:src|href)=[\"'](https?://[^\"']+)",
                                   body)))
    if remote:
        warnings.append(f"{ipynb.stem}: the page loads remote resources: {', '.join(remote[:3])}")
    if html_path.exists():
        raise ReportError(f"refusing to overwrite {html_path}")
    html_path.write_text(body, encoding="utf-8")
    return warnings


def _read_summary(run_dir: Path, stem: str) -> dict | None:
    path = run_dir / stem / "metrics.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    summary = data.get("summary") if isinstance(data, dict) else None
    return summary if isinstance(summary, dict) else None


def _fmt(value) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, (int, str)):
        return str(value)
    return _one_line(json.dumps(value, default=str), 120)


_INDEX_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;max-width:60em;color:#222;
 padding:0 1em;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;
 vertical-align:top}th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#17632a}.failed{color:#a40000;font-weight:bold}.skipped{color:#777}code{background:#f4f4f4;padding:0 .2em}
.muted{color:#666;font-size:.9em}
"""


def write_index(path: Path, plan: ReportPlan, status: Mapping[str, str], started: _dt.datetime,
                warnings: Sequence[str] = ()) -> Path:
    """Write ``index.html``: run header, one section per notebook with a link and its key numbers.

    Parameters
    ----------
    path : Path
        The file to write (inside the run folder).
    plan : ReportPlan
        The validated plan.
    status : mapping
        ``{stem: "ok" | "failed: ..." | "not run"}``.
    started : datetime
        When the run started.
    warnings : sequence of str
        Shown under the header.
    """
    from . import __version__

    e = html.escape
    rows = [("date", started.strftime("%Y-%m-%d %H:%M:%S")), ("vaelib", __version__)]
    if plan.model_line:
        rows.append(("model", plan.model_line))
    if plan.audio_source is not None:
        rows.append(("audio", f"{plan.audio_source} ({len(plan.audio_files)} file(s))"))
    shown = {k: v for k, v in plan.user_params.items() if k != "audio"}
    rows.append(("parameters", ", ".join(f"{k}={v!r}" for k, v in shown.items()) or "notebook defaults"))
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>vaelib report {e(plan.run_dir.name)}</title>", f"<style>{_INDEX_CSS}</style></head><body>",
        f"<h1>vaelib report <code>{e(plan.run_dir.name)}</code></h1>", "<table>",
    ]
    parts += [f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in rows]
    parts.append("</table>")
    if plan.skipped:
        parts.append(f"<h2>Skipped audio files ({len(plan.skipped)})</h2><ul>")
        parts += [f"<li><code>{e(str(p))}</code>: {e(why)}</li>" for p, why in plan.skipped]
        parts.append("</ul>")
    if warnings:
        parts.append("<h2>Warnings</h2><ul>" + "".join(f"<li>{e(w)}</li>" for w in warnings) + "</ul>")
    for nb in plan.notebooks:
        stem = nb.stem
        state = status.get(stem, "not run")
        html_file = plan.run_dir / f"{stem}.html"
        ipynb = plan.run_dir / nb.name
        css = "ok" if state == "ok" else ("failed" if state.startswith("failed") else "skipped")
        if html_file.exists():
            title = f'<a href="{e(html_file.name)}">{e(stem)}</a>'
        elif ipynb.exists():
            title = f'{e(stem)} <span class="muted">(partial notebook: <a href="{e(ipynb.name)}">{e(ipynb.name)}' \
                    "</a>)</span>"
        else:
            title = e(stem)
        parts.append(f'<h2>{title} <span class="{css}">{e(state)}</span></h2>')
        summary = _read_summary(plan.run_dir, stem)
        if summary:
            parts.append("<table><tr><th>key number</th><th>value</th></tr>")
            parts += [f'<tr><td>{e(str(k))}</td><td class="num">{e(_fmt(v))}</td></tr>' for k, v in summary.items()]
            parts.append("</table>")
        elif state == "ok":
            parts.append(f'<p class="muted">no key numbers ({e(stem)}/metrics.json has no "summary")</p>')
    parts.append("</body></html>")
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------------- run


@dataclasses.dataclass
class ReportResult:
    """What a run produced.

    Attributes
    ----------
    plan : ReportPlan
        The validated plan (run folder, notebooks, parameters, skipped files).
    index : Path
        ``index.html``.
    html : dict
        ``{stem: Path}`` of the HTML pages written.
    warnings : list of str
        Problems found in the pages (error outputs, remote resources).
    """

    plan: ReportPlan
    index: Path
    html: dict[str, Path]
    warnings: list[str]


class _KernelEnv:
    """Temporarily set environment variables the kernel inherits (no progress bars inside notebooks)."""

    def __enter__(self):
        self.saved = {k: os.environ.get(k) for k in _KERNEL_ENV}
        os.environ.update(_KERNEL_ENV)

    def __exit__(self, *exc):
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _failed_cell(ipynb: Path) -> int | None:
    """Execution count of the cell papermill marked failed/running in a partial notebook."""
    try:
        nb = json.loads(ipynb.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for cell in nb.get("cells", []):
        status = cell.get("metadata", {}).get("papermill", {}).get("status")
        if status in ("failed", "running"):
            return cell.get("execution_count")
    return None


def _execute(nb: Path, out_nb: Path, parameters: dict, cwd: Path, timeout: float | None, progress) -> None:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    try:
        with _KernelEnv():
            papermill.execute_notebook(
                str(nb), str(out_nb), parameters=parameters, kernel_name="python3", progress_bar=progress,
                cwd=str(cwd), execution_timeout=timeout, log_output=False, report_mode=False,
                extra_arguments=["--IPKernelApp.log_level=ERROR", "--HistoryManager.enabled=False"],
            )
    except PapermillExecutionError as exc:
        raise NotebookError(nb.stem, exc.exec_count, exc.ename, exc.evalue, out_nb) from None
    except Exception as exc:  # timeout, dead kernel, missing kernelspec
        raise NotebookError(nb.stem, _failed_cell(out_nb), type(exc).__name__, str(exc), out_nb) from None


def run_report(audio=None, model=None, vocoder=None, params: Mapping | None = None, out=None, *,
               notebooks: Iterable[str | os.PathLike] | None = None, no_input: bool = False,
               timeout: float | None = DEFAULT_TIMEOUT, progress: bool = True,
               echo: Callable[[str], None] | None = print, warn: Callable[[str], None] | None = None) -> ReportResult:
    """Validate, run the notebooks, and write the HTML report into a new run folder.

    Parameters
    ----------
    audio, model, vocoder, params, out, notebooks
        See :func:`plan_report`.
    no_input : bool
        Hide code cells in the HTML.
    timeout : float or None
        Per-cell execution timeout in seconds (None: no limit).
    progress : bool
        Show a per-cell progress bar for each notebook (tqdm, on stderr).
    echo, warn : callable, optional
        Where progress lines (``print``) and warnings go; None silences them.

    Returns
    -------
    ReportResult

    Raises
    ------
    ReportError
        A bad input, before anything ran or was written.
    NotebookError
        A notebook failed; the partial notebook and an ``index.html`` are kept in the run folder, later
        notebooks are not run.
    """
    echo = echo or (lambda s: None)
    warn = warn or echo
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ReportError(f"timeout must be a positive number of seconds (got {timeout!r})")
    started = _dt.datetime.now()
    plan = plan_report(audio, model, vocoder, params, out, notebooks=notebooks, now=started)
    run_dir = plan.run_dir
    if plan.model_line:
        echo(plan.model_line)
    if plan.audio_source is not None:
        echo(f"audio: {plan.audio_source} ({len(plan.audio_files)} file(s))")
    for path, why in plan.skipped:
        warn(f"warning: skipping unreadable audio file {path}: {why}")

    run_dir.mkdir(parents=True, exist_ok=True)
    if plan.skipped:
        (run_dir / AUDIO_LIST_NAME).write_text("".join(f"{p}\n" for p in plan.audio_files), encoding="utf-8")
    echo(f"run folder: {run_dir}")
    status: dict[str, str] = {}
    pages: dict[str, Path] = {}
    warnings: list[str] = []
    n = len(plan.notebooks)
    for i, nb in enumerate(plan.notebooks, start=1):
        bar = {"desc": f"[{i}/{n}] {nb.stem}", "leave": True} if progress else False
        if not progress:
            echo(f"[{i}/{n}] running {nb.name}")
        out_nb = run_dir / nb.name
        try:
            _execute(nb, out_nb, plan.parameters[nb.stem], run_dir, timeout, bar)
        except NotebookError as exc:
            status[nb.stem] = f"failed at cell {exc.cell}" if exc.cell is not None else "failed"
            write_index(run_dir / "index.html", plan, status, started, warnings)
            raise
        status[nb.stem] = "ok"
        page = run_dir / f"{nb.stem}.html"
        found = export_html(out_nb, page, no_input=no_input)
        for w in found:
            warn(f"warning: {w}")
        warnings += found
        pages[nb.stem] = page
    index = write_index(run_dir / "index.html", plan, status, started, warnings)
    return ReportResult(plan=plan, index=index, html=pages, warnings=warnings)
