"""Run the analysis notebooks headlessly and turn them into a self-contained HTML report.

What :func:`run_report` (and ``vaelib report``) does, in order:

1. reads every notebook's parameters from the one schema, :mod:`vaelib.params` (:func:`inspect_params`; a notebook
   outside the schema, given with ``--notebooks``, is read from its papermill ``parameters`` cell);
2. validates everything before running anything (:func:`plan_report`): unknown parameter names, values that do
   not parse as the declared type, the audio source (missing path, folder without audio; corrupt files among
   good ones are skipped and listed), the model/vocoder choice, the enhancement method and its parameter ranges,
   and that the output folder is new or empty;
3. runs the notebooks in order with papermill (kernel ``python3``, working directory = the run folder), stopping
   at the first failing cell (:class:`NotebookError`, the partial notebook is kept);
4. converts each executed notebook to HTML with its plots and audio players inline (data URIs, no external
   scripts) and writes ``index.html`` linking them with the headline numbers from each
   ``<run>/<notebook stem>/metrics.json`` ``"summary"``, findings first (:func:`write_index`).

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
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from . import params as _params
from ._util import one_line as _one_line

__all__ = [
    "DEFAULT_NOTEBOOKS",
    "NotebookError",
    "ReportError",
    "ReportPlan",
    "ReportResult",
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
DEFAULT_NOTEBOOKS = ("01_baseline.ipynb", "02_latent_enhance.ipynb", "03_analysis.ipynb", "04_learned_enhance.ipynb")
#: Parameters the runner sets itself (and refuses from the user): :data:`vaelib.params.RUNNER_OWNED`.
RUNNER_OWNED = _params.RUNNER_OWNED
#: Parameters passed to every notebook that declares them, so all notebooks see the same inputs.
SHARED = ("audio", "model", "vocoder")
#: Per-cell timeout default, in seconds.
DEFAULT_TIMEOUT = 1800.0
AUDIO_LIST_NAME = "inputs.lst"
_KERNEL_ENV = {"TQDM_DISABLE": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
#: Thread-count variables a kernel inherits when several notebooks run at once (each gets cores // jobs);
#: a value the user set is kept.
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")
#: Notebooks (stem -> stems) started only after these finished, when both are in the run: 03 reuses 02's
#: scores from the run folder instead of recomputing them.
RUN_AFTER = {_params.NOTEBOOKS["analysis"][0]: (_params.NOTEBOOKS["enhance"][0],)}

_TEMPLATE_NAME = "vaelib_report.html.j2"
# The lab template made static and inert: the Content-Security-Policy of vaelib.markup first in <head> (no script
# runs, nothing loads from the network, images and audio only as data: URIs), and every script the template would
# emit removed — require.js, MathJax and mermaid from a CDN, widget state and views, application/javascript
# outputs. Reports are static (interactive=False), so none of them is needed.
_TEMPLATE = """{%- extends "lab/index.html.j2" -%}
{%- block html_head_js -%}{{ resources.vaelib_csp_meta }}{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block data_javascript scoped -%}{%- endblock data_javascript -%}
{%- block data_widget_view scoped -%}{%- endblock data_widget_view -%}
{%- block footer_js -%}{%- endblock footer_js -%}
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


_ANNOTATION_TYPES = {"int": "int", "float": "float", "bool": "bool", "str": "str", "list": "list[float]",
                     "tuple": "list[float]"}


def _spec_from_papermill(name: str, info: Mapping) -> _params.Spec:
    """A :class:`vaelib.params.Spec` for a parameter of a notebook outside the schema (``--notebooks``)."""
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
    """The parameters of each notebook, from the schema (:mod:`vaelib.params`).

    A notebook of the schema (``01_baseline`` ... by stem) gets its :func:`vaelib.params.specs`; any other notebook
    (``--notebooks``) gets specs read from its papermill ``parameters`` cell, checked by the same rules.

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


def _effective(name: str, given: Mapping, union: Mapping[str, _params.Spec]):
    """The value a parameter will have: the user's, else the default (NotImplemented if unknowable)."""
    if name in given:
        return given[name]
    if name in union:
        return union[name].default
    return NotImplemented


def _check_model(model: str, vocoder: str) -> str:
    """Resolve ``model``/``vocoder`` like the notebooks will and return the one-line description."""
    from .models import ModelLoadError, check_models

    try:
        return check_models(model, vocoder).describe()
    except ModelLoadError as exc:
        raise ReportError(_one_line(exc)) from None


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


def _check_notebook_params(per: Mapping[str, Mapping[str, _params.Spec]], values: Mapping) -> None:
    """Check every schema notebook's full parameter set (user values + defaults) by the notebooks' own rules
    (:func:`vaelib.params.check`: ranges, the enhancer and its parameters, sweep values), and the device."""
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
        from .models import ModelLoadError, check_device

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
                nb_params[name] = _coerce(declared[name], given[name])
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

    from .markup import csp_meta, find_active_content

    nb = nbformat.read(str(ipynb), as_version=4)
    nb.metadata.pop("widgets", None)  # widget state: needs script to show, and reports are static
    body, _ = _html_exporter(no_input).from_notebook_node(
        nb, resources={"metadata": {"name": ipynb.stem}, "vaelib_csp_meta": csp_meta()})
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
    active = find_active_content(body)
    if active:
        warnings.append(f"{ipynb.stem}: the page holds active content (blocked by its CSP): {'; '.join(active[:3])}")
    if html_path.exists():
        raise ReportError(f"refusing to overwrite {html_path}")
    html_path.write_text(body, encoding="utf-8")
    return warnings


def _fmt(value) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, (int, str)):
        return str(value)
    return _one_line(json.dumps(value, default=str), 120)


_INDEX_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;max-width:62em;color:#222;
 padding:0 1em;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.1em}h2{font-size:1.25em;margin-top:1.5em;border-bottom:1px solid #ddd}
h3{font-size:1.05em;margin:1.2em 0 .3em}
table{border-collapse:collapse;margin:.4em 0}td,th{border:1px solid #ddd;padding:.2em .55em;text-align:left;
 vertical-align:top}th{background:#f4f4f4;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
th.metric a{color:inherit;text-decoration:none;border-bottom:1px dotted #999}.dir{color:#777;font-weight:normal;
 font-size:.85em;white-space:nowrap}
.ok{color:#17632a}.failed{color:#a40000;font-weight:bold}.skipped{color:#777}code{background:#f4f4f4;padding:0 .2em}
.muted{color:#666;font-size:.9em}ul.findings li{margin:.35em 0}figure{margin:.6em 0}figure img{max-width:100%}
details{margin:.4em 0}summary{cursor:pointer;color:#555}dl.glossary dt{font-weight:600;margin-top:.5em}
dl.glossary dd{margin-left:1.2em;color:#333}
"""

#: Metrics of each notebook's compact table, in row order (the rest stays in the collapsed dump).
COMPACT_ROWS: dict[str, tuple[str, ...]] = {
    "01_baseline": ("lsd_hf", "lsd_lf", "lsd", "mrstft", "si_sdr", "mel_err_db_high", "mel_l1", "mel_lsd_hf",
                    "share_lsd_hf", "share_lsd_lf", "snr_db", "correlation", "claims_ret_high"),
    "02_latent_enhance": ("lsd_hf", "mel_lsd_hf", "ber_high", "added_hf_flatness", "d_claims_high_pp", "d_snr_db",
                          "snr_db"),
    "03_analysis": ("mel_lsd_hf", "mel_l1", "mel_ber_high", "mel_err_db_high", "d_claims_high_pp", "d_snr_db"),
    "04_learned_enhance": ("mel_lsd_hf", "mel_l1"),
}


def _compact_table(stem: str, summary: Mapping, used: set) -> str:
    """Rows: metrics (human label, unit, direction, hover definition, link to the glossary); columns: stages."""
    from .markup import html_text as e
    from .study import glossary

    cells: dict[str, dict[str, tuple[str, float]]] = {}
    stages: list[str] = []
    for key, value in summary.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        stage, metric, suffix = glossary.describe_key(str(key))
        if not metric or metric not in glossary.METRICS:
            continue
        if suffix == "change":
            stage = f"{stage} (change vs. VAE only)"
        elif suffix == "rel_change":
            stage = f"{stage} (% vs. VAE only)"
        if stage not in stages:
            stages.append(stage)
        cells.setdefault(metric, {})[stage] = (str(key), value, suffix)
    order = COMPACT_ROWS.get(stem) or tuple(glossary.METRICS)
    rows = [m for m in order if m in cells]
    if not rows:
        return ""
    stages = [st for st in stages if any(st in cells[m] for m in rows)]
    head = "".join(f"<th>{e(st or 'value')}</th>" for st in stages)
    out = [f'<table class="compact"><tr><th>metric</th>{head}</tr>']
    for m in rows:
        meta = glossary.METRICS[m]
        used.add(m)
        unit = f" [{meta.unit}]" if meta.unit and meta.unit not in ("×",) else ""
        title = e(glossary.definition(m))
        label = (f'<th class="metric"><a href="#m-{e(m)}" title="{title}">{e(meta.label)}</a>{e(unit)} '
                 f'<span class="dir">{e(meta.arrow)}</span></th>')
        tds = []
        for st in stages:
            hit = cells[m].get(st)
            tds.append(f'<td class="num" title="{e(hit[0])}">{e(glossary.format_value(hit[1], m, hit[2]))}</td>'
                       if hit else "<td></td>")
        out.append(f"<tr>{label}{''.join(tds)}</tr>")
    out.append("</table>")
    return "".join(out)


def _figure_data_uri(fig) -> str:
    import base64
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def write_index(path: Path, plan: ReportPlan, status: Mapping[str, str], started: _dt.datetime,
                warnings: Sequence[str] = ()) -> Path:
    """Write ``index.html``, findings first.

    1. the run in one line (date, model, audio, parameters);
    2. **findings**: sentences computed from the notebooks' numbers (:func:`vaelib.study.findings.run_findings`,
       the same sentence builders as 03's conclusions) and a small figure of the high-band distance per stage;
    3. per notebook: link, status and a compact table (human labels, units, direction, each metric linked to the
       glossary and hover-titled with its definition); the full key-number dump collapsed in ``<details>``;
    4. a glossary generated from the metric registry (:mod:`vaelib.study.glossary`).

    Every input-derived string (run folder, audio source, paths, parameter values, messages) is escaped; the page
    carries :data:`vaelib.markup.CSP` and no script.

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
    from .markup import csp_meta
    from .markup import html_text as e
    from .study import findings as _findings
    from .study import glossary

    stems = [nb.stem for nb in plan.notebooks]
    docs = _findings.load_docs(plan.run_dir, stems)
    run = [started.strftime("%Y-%m-%d %H:%M"), f"vaelib {__version__}"]
    if plan.model_line:
        run.append(plan.model_line)
    if plan.audio_source is not None:
        run.append(f"audio {plan.audio_source} ({len(plan.audio_files)} file(s))")
    shown = {k: v for k, v in plan.user_params.items() if k != "audio"}
    run.append("parameters: " + (", ".join(f"{k}={v!r}" for k, v in shown.items()) or "notebook defaults"))
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', csp_meta(),
        f"<title>vaelib report {e(plan.run_dir.name)}</title>", f"<style>{_INDEX_CSS}</style></head><body>",
        f"<h1>vaelib report <code>{e(plan.run_dir.name)}</code></h1>",
        f'<p class="muted">{" · ".join(e(x) for x in run)}</p>',
    ]
    if warnings:
        parts.append("<p><b>Warnings:</b></p><ul>" + "".join(f"<li>{e(w)}</li>" for w in warnings) + "</ul>")
    parts.append("<h2>Findings</h2>")
    sentences = _findings.run_findings(docs)
    if sentences:
        parts.append('<ul class="findings">' + "".join(f"<li>{e(x)}</li>" for x in sentences) + "</ul>")
    else:
        parts.append('<p class="muted">No findings: no notebook finished with numbers.</p>')
    fig = _findings.attribution_figure(docs)
    if fig is not None:
        parts.append(f'<figure><img alt="high-band distance per stage" src="{_figure_data_uri(fig)}">'
                     '<figcaption class="muted">High-band distance to the input at each stage (blue: vocoded '
                     "waveforms, LSD-HF; orange: decoded log-mels, no vocoder, mel LSD-HF).</figcaption></figure>")
    if plan.skipped:
        parts.append(f"<h2>Skipped audio files ({len(plan.skipped)})</h2><ul>")
        parts += [f"<li><code>{e(p)}</code>: {e(why)}</li>" for p, why in plan.skipped]
        parts.append("</ul>")
    parts.append("<h2>Notebooks</h2>")
    used: set = set()
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
        parts.append(f'<h3>{title} <span class="{css}">{e(state)}</span></h3>')
        summary = docs.get(stem, {}).get("summary")  # read once, by load_docs
        if summary:
            parts.append(_compact_table(stem, summary, used))
            parts.append(f"<details><summary>all {len(summary)} key numbers (metrics.json)</summary>"
                         "<table><tr><th>key</th><th>value</th></tr>")
            parts += [f'<tr><td>{e(k)}</td><td class="num">{e(_fmt(v))}</td></tr>' for k, v in summary.items()]
            parts.append("</table></details>")
        elif state == "ok":
            parts.append(f'<p class="muted">no key numbers ({e(stem)}/metrics.json has no "summary")</p>')
    if used:
        parts.append('<h2>Glossary</h2><dl class="glossary">')
        for m in glossary.METRICS:
            if m in used:
                meta = glossary.METRICS[m]
                arrow = f" ({meta.arrow})" if meta.arrow else ""
                parts.append(f'<dt id="m-{e(m)}">{e(meta.label)}{e(arrow)}</dt><dd>{e(glossary.definition(m))}'
                             f' <span class="muted">[{e(m)}]</span></dd>')
        parts.append("</dl><p class=\"muted\">Formulas and sources: each function's docstring in "
                     "<code>vaelib.metrics</code> and <code>docs/reference.md</code>.</p>")
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


def default_jobs(n_notebooks: int = len(DEFAULT_NOTEBOOKS)) -> int:
    """Notebooks run at once by default: one per two cores, at least one, at most ``n_notebooks``.

    On 2 cores two kernels with one thread each finish the report sooner than one kernel with two threads:
    most of a notebook is single-threaded (imports, plotting, metrics, Griffin-Lim one clip at a time).
    """
    cores = os.cpu_count() or 1
    return max(1, min(n_notebooks, cores if cores <= 2 else cores // 2))


class _KernelEnv:
    """Temporarily set environment variables the kernels inherit (no progress bars inside notebooks; with
    ``threads``, the thread-count variables the user did not set)."""

    def __init__(self, threads: int | None = None):
        self.env = dict(_KERNEL_ENV)
        if threads is not None:
            self.env.update({k: str(threads) for k in _THREAD_VARS if k not in os.environ})

    def __enter__(self):
        self.saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)

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
        papermill.execute_notebook(
            str(nb), str(out_nb), parameters=parameters, kernel_name="python3", progress_bar=progress,
            cwd=str(cwd), execution_timeout=timeout, log_output=False, report_mode=False,
            extra_arguments=["--IPKernelApp.log_level=ERROR", "--HistoryManager.enabled=False"],
        )
    except PapermillExecutionError as exc:
        raise NotebookError(nb.stem, exc.exec_count, exc.ename, exc.evalue, out_nb) from None
    except Exception as exc:  # timeout, dead kernel, missing kernelspec
        raise NotebookError(nb.stem, _failed_cell(out_nb), type(exc).__name__, str(exc), out_nb) from None


def _schedule(notebooks: Sequence[Path], run_one: Callable[[Path, int], list[str]], jobs: int):
    """Run ``run_one(nb, slot)`` for each notebook, ``jobs`` at a time, yielding ``(nb, result, error)``.

    A notebook starts when a slot is free and the notebooks :data:`RUN_AFTER` names for it (those in this run)
    have finished; the first such notebook in the given order goes first. After a :class:`NotebookError` no
    new notebook starts; the running ones finish.
    """
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    stems = {nb.stem for nb in notebooks}
    waiting = list(notebooks)
    done: set[str] = set()

    def ready(nb: Path) -> bool:
        return all(d in done or d not in stems for d in RUN_AFTER.get(nb.stem, ()))

    if jobs == 1:  # in this thread: Ctrl-C reaches papermill directly
        while waiting:
            nb = next((nb for nb in waiting if ready(nb)), waiting[0])
            waiting.remove(nb)
            try:
                found = run_one(nb, 0)
            except NotebookError as exc:
                yield nb, [], exc
                return
            done.add(nb.stem)
            yield nb, found, None
        return
    running: dict = {}
    free = list(range(jobs))
    failed = False
    with ThreadPoolExecutor(jobs) as pool:
        while waiting or running:
            while free and waiting and not failed:
                nb = next((nb for nb in waiting if ready(nb)), None)
                if nb is None:
                    break
                slot = free.pop(0)
                waiting.remove(nb)
                running[pool.submit(run_one, nb, slot)] = (nb, slot)
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in sorted(finished, key=lambda f: running[f][1]):
                nb, slot = running.pop(fut)
                free.append(slot)
                done.add(nb.stem)
                try:
                    yield nb, fut.result(), None
                except NotebookError as exc:
                    failed = True
                    yield nb, [], exc


def _require_report_extra() -> None:
    """Refuse in one line when the ``report`` extra is missing (a core ``pip install vaelib``)."""
    import importlib.util

    missing = [m for m in ("papermill", "nbconvert", "ipykernel") if importlib.util.find_spec(m) is None]
    if missing:
        raise ReportError(f"`vaelib report` needs the report extra ({', '.join(missing)} not installed): "
                          "pip install -c constraints.txt 'vaelib[report]'")


def run_report(audio=None, model=None, vocoder=None, params: Mapping | None = None, out=None, *,
               notebooks: Iterable[str | os.PathLike] | None = None, no_input: bool = False,
               timeout: float | None = DEFAULT_TIMEOUT, progress: bool = True, jobs: int | None = None,
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
    jobs : int, optional
        Notebooks run at once (default :func:`default_jobs`: 2 on a 2-core machine). With more than one, each
        kernel gets ``cores // jobs`` threads (``OMP_NUM_THREADS`` and friends, unless set) and a notebook
        that reuses another's output (:data:`RUN_AFTER`) starts after it.
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
        A notebook failed; the partial notebook and an ``index.html`` are kept in the run folder, notebooks
        not yet started are not run (those already running finish).
    """
    _require_report_extra()
    echo = echo or (lambda s: None)
    warn = warn or echo
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ReportError(f"timeout must be a positive number of seconds (got {timeout!r})")
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise ReportError(f"jobs must be a positive integer (got {jobs!r})")
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
        from .audio import write_audio_list

        write_audio_list(run_dir / AUDIO_LIST_NAME, plan.audio_files)
    echo(f"run folder: {run_dir}")
    status: dict[str, str] = {}
    pages: dict[str, Path] = {}
    warnings: list[str] = []
    n = len(plan.notebooks)
    jobs = min(default_jobs(n) if jobs is None else jobs, n)
    number = {nb.stem: i for i, nb in enumerate(plan.notebooks, start=1)}

    def run_one(nb: Path, slot: int) -> list[str]:
        i = number[nb.stem]
        bar = {"desc": f"[{i}/{n}] {nb.stem}", "leave": True, "position": slot} if progress else False
        if not progress:
            echo(f"[{i}/{n}] running {nb.name}")
        out_nb = run_dir / nb.name
        _execute(nb, out_nb, plan.parameters[nb.stem], run_dir, timeout, bar)
        page = run_dir / f"{nb.stem}.html"
        found = export_html(out_nb, page, no_input=no_input)
        pages[nb.stem] = page
        return found

    failure = None
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
    with _KernelEnv(threads):
        for nb, found, exc in _schedule(plan.notebooks, run_one, jobs):
            if exc is None:
                status[nb.stem] = "ok"
                for w in found:
                    warn(f"warning: {w}")
                warnings += found
            else:
                status[nb.stem] = f"failed at cell {exc.cell}" if exc.cell is not None else "failed"
                failure = failure or exc
    if failure is not None:
        write_index(run_dir / "index.html", plan, status, started, warnings)
        raise failure
    pages = {nb.stem: pages[nb.stem] for nb in plan.notebooks}
    index = write_index(run_dir / "index.html", plan, status, started, warnings)
    return ReportResult(plan=plan, index=index, html=pages, warnings=warnings)
