"""The one parameter schema of the report notebooks: names, types, defaults, ranges and help.

Everything that handles a notebook parameter reads it from here:

* the notebooks' ``parameters`` cells are a checked projection of it (:func:`parameters_cell` prints one;
  ``tests/test_params.py`` fails when a cell and the schema disagree);
* the notebooks validate their parameters with :func:`check` (through :func:`vaelib.study.setup`);
* the report runner coerces command-line strings with :func:`coerce` and validates the same way before anything
  runs; ``vaelib report --list-params`` prints :func:`describe`.

One set of rules: booleans accept ``true/false/1/0/yes/no/on/off`` (any case); ints reject fractions and booleans;
floats must be finite and in range; ``None`` is accepted only where a parameter is ``optional``; lists accept a
Python literal or a comma-separated string. Every error is a one-line :class:`ParamError` naming the parameter and
what is accepted.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from ..enhance import PRESETS as _PRESETS

__all__ = [
    "NOTEBOOKS",
    "RUNNER_OWNED",
    "SCHEMA",
    "DEFAULT_SWEEPS",
    "SWEEP_FIXED",
    "ParamError",
    "Spec",
    "check",
    "coerce",
    "describe",
    "kind_of",
    "parameters_cell",
    "specs",
]


class ParamError(ValueError):
    """A parameter value that is not accepted; the message is one line naming the parameter and the rule."""


_TRUE = frozenset({"true", "1", "yes", "y", "on"})
_FALSE = frozenset({"false", "0", "no", "n", "off"})


@dataclasses.dataclass(frozen=True)
class Spec:
    """One parameter.

    Attributes
    ----------
    name : str
    type : str
        ``"str"``, ``"int"``, ``"float"``, ``"bool"`` or ``"list[float]"``.
    default
        The default value (written literally into the notebooks' ``parameters`` cells).
    help : str
        One line, shown by ``--list-params`` and as the cell comment.
    lo, hi : float, optional
        Inclusive range (``lo_open``: ``lo`` excluded).
    optional : bool
        ``None`` is accepted (meaning given in ``help``).
    choices : callable, optional
        Returns the accepted words (read when checking, so registries may grow).
    check : callable, optional
        ``check(value) -> str | None``: an extra rule; returns the reason when the value is refused.
    """

    name: str
    type: str
    default: object
    help: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    optional: bool = False
    choices: Callable[[], Sequence[str]] | None = None
    check: Callable[[object], str | None] | None = None

    @property
    def annotation(self) -> str:
        """The annotation of the notebook cell: the base type (``list[float]`` is written ``list``).

        Optional parameters are annotated with their base type too (``float``): papermill cannot parse
        ``float | None``, and ``Optional[float]`` would need an import in the cell; ``rule()`` says ``or None``.
        """
        return "list" if self.type.startswith("list") else self.type

    def rule(self) -> str:
        """What is accepted, in words (for errors and ``--list-params``)."""
        if self.choices is not None:
            words = "one of " + ", ".join(self.choices())
            return words + (" (or a folder / Hugging Face repo id holding vocoder/)" if self.name == "vocoder" else "")
        kind = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
                "list[float]": "a list of numbers"}.get(self.type, self.type)
        if self.lo is not None or self.hi is not None:
            lo = "" if self.lo is None else f"{'>' if self.lo_open else '>='} {self.lo:g}"
            hi = "" if self.hi is None else f"<= {self.hi:g}"
            kind += " " + " and ".join(x for x in (lo, hi) if x)
        return kind + (" or None" if self.optional else "")


# --------------------------------------------------------------------------------------------- rules


def _nonempty(value) -> str | None:
    return "must be a non-empty string" if not str(value).strip() else None


def _vocoder_rule(value) -> str | None:
    from ..models import VOCODER_NAMES, looks_like_repo_id

    if value in VOCODER_NAMES or Path(str(value)).expanduser().is_dir() or looks_like_repo_id(str(value)):
        return None
    return f"must be one of {', '.join(VOCODER_NAMES)}, a folder holding vocoder/ or a Hugging Face repo id"


def _model_rule(value) -> str | None:
    from ..models import looks_like_repo_id

    if value in ("auto", "bundled") or Path(str(value)).expanduser().is_dir() or looks_like_repo_id(str(value)):
        return None
    return "is neither an existing folder nor a Hugging Face repo id like cvssp/audioldm2 (nor auto / bundled)"


def _device_rule(value) -> str | None:
    v = str(value)
    if v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit()):
        return None
    return "must be auto, cpu, cuda or cuda:N"


def _methods() -> list[str]:
    """The latent-stage enhancers (02 explores the latent; mel-stage and learned ones are 04's), plus the
    mel-stage adaptive / multi-scale ones (05's methods; the explorer applies them to the plain decode)."""
    from ..enhance import ENHANCERS

    return [name for name, e in ENHANCERS.items() if getattr(e, "stage", "latent") == "latent"
            or name.startswith(("adaptive_", "multiscale_"))]


def _enh_param(name: str):
    from ..enhance import ENHANCERS

    for e in ENHANCERS.values():
        for p in e.params:
            if p.name == name:
                return p
    raise KeyError(name)


def _enh_spec(name: str, default: float, help_: str) -> Spec:
    p = _enh_param(name)
    return Spec(name, "float", default, help_, lo=p.lo, hi=p.hi)


# -------------------------------------------------------------------------------------------- schema

#: Default sweep values of each method's main parameter (the neutral value is the plain VAE row, added once).
DEFAULT_SWEEPS: dict[str, list[float]] = {
    "frequency": [1.1, 1.25, 1.5, 2.0],
    "noise": [0.05, 0.1, 0.2],
    "contrast": [0.8, 0.9, 1.15, 1.3],
    "hybrid": [1.1, 1.2, 1.4],
}


#: Parameters held fixed while a method's main parameter is swept (hybrid: the seed report's level and factor).
SWEEP_FIXED: dict[str, dict] = {"hybrid": {k: v for k, v in _PRESETS["seed_hybrid"][1].items() if k != "gain"}}



#: Notebook kind -> (notebook stem, title shown in its header).
NOTEBOOKS: dict[str, tuple[str, str]] = {
    "baseline": ("01_baseline", "01 · VAE round-trip baseline"),
    "enhance": ("02_latent_enhance", "02 · Latent enhancement"),
    "analysis": ("03_analysis", "03 · Sweeps and the seed report's claims"),
    "learned": ("04_learned_enhance", "04 · Learned high-band restorers vs. simple baselines"),
    "adaptive": ("05_adaptive", "05 · Adaptive and multi-scale enhancement vs. the per-clip oracle"),
}

#: Parameters the report runner sets itself (and refuses from the user), with the reason.
RUNNER_OWNED = {
    "out_dir": "it is set to the run folder; use --out",
    "interactive": "reports are static (interactive=False)",
}

_COMMON: tuple[Spec, ...] = (
    Spec("audio", "str", "demo", 'a file, a folder, a .lst list of files, or "demo" (the bundled eval clips)',
         check=_nonempty),
    Spec("model", "str", "auto", '"auto" (AudioLDM2 if cached, else the bundled tiny VAE), "bundled", a HF repo id, '
         "or a folder", check=_model_rule),
    Spec("vocoder", "str", "auto", '"auto" (HiFi-GAN beside the model, else Griffin-Lim), "hifigan" or "griffinlim"',
         check=_vocoder_rule),
    Spec("duration_s", "float", 10.24,
         "use at most each clip's first duration_s s (10.24: the training crop); None: all", lo=0.1, optional=True),
    Spec("device", "str", "auto", '"cpu", "cuda" or "auto" (CUDA when available)', check=_device_rule),
    Spec("seed", "int", 0, "random seed of everything random (Griffin-Lim initial phase, noise enhancers)", lo=0),
    Spec("out_dir", "str", "", "run folder; the notebook writes into out_dir/<notebook>/ (empty: a new temporary "
         "folder)"),
    Spec("interactive", "bool", True, "True: widgets in JupyterLab; False: static output (reports)"),
    Spec("max_clips", "int", 8, "use at most this many clips (in file order)", lo=1),
    Spec("max_players", "int", 2, "clips shown inline with figures and audio players (every clip is saved to files)",
         lo=0),
)


_CLIP = Spec("clip", "int", 0, "index of the clip the explorer shows first", lo=0)


def _enhance_specs() -> tuple[Spec, ...]:
    return (
        Spec("method", "str", "frequency", "enhancer to explore (frequency, noise, contrast, hybrid, none, ...)",
             choices=_methods),
        _enh_spec("gain", 1.5, "frequency / hybrid: Laplacian boost z + (gain - 1)·L(z); 1 is the identity"),
        _enh_spec("level", 0.1, "noise / hybrid: noise level (× channel std, box-smoothed); 0 is the identity"),
        _enh_spec("factor", 1.3, "contrast / hybrid: contrast around the channel mean; 1 is the identity"),
        _CLIP,
    )


def _sweep_spec(method: str, help_: str) -> Spec:

    def rule(values, method=method):
        from ..enhance import get, validate_params

        main = get(method).main_param
        for v in values:
            try:
                validate_params(method, {**SWEEP_FIXED.get(method, {}), main: v})
            except ValueError as exc:
                return f"holds a value that is out of range ({exc})"
        return None

    return Spec(f"sweep_{method}", "list[float]", list(DEFAULT_SWEEPS[method]), help_, check=rule)


def _analysis_specs() -> tuple[Spec, ...]:
    return (
        _sweep_spec("frequency", "frequency: gain values (the plain VAE, gain 1, is always included)"),
        _sweep_spec("noise", "noise: level values"),
        _sweep_spec("contrast", "contrast: factor values"),
        _sweep_spec("hybrid", "hybrid: gain values, at the seed report's level 0.04 and factor 1.2"),
        Spec("batch_size", "int", 4, "latents decoded per VAE call", lo=1),
    )


def _restorers() -> list[str]:
    from ..enhance import ENHANCERS

    return [name for name, e in ENHANCERS.items() if getattr(e, "restorer", False)]


def _learned_specs() -> tuple[Spec, ...]:
    from ..enhance import get

    return (
        Spec("restorer", "str", "learned", "restorer the explorer shows first (learned, learned_cond)",
             choices=_restorers),
        Spec("strength", "float", 1.0,
             "restorer strength: 0 gives the plain VAE output exactly, 1 the fully restored one", lo=0.0, hi=1.0),
        Spec("category", "str", "auto", "audio type given to learned_cond (auto: inferred from the mel)",
             choices=lambda: list(get("learned_cond").params[1].choices)),
        _CLIP,
    )


def _method_list_rule(value) -> str | None:
    from ..study.adaptive import GRIDS

    names = [m.strip() for m in str(value).split(",") if m.strip()]
    bad = [m for m in names if m not in GRIDS]
    if not names or bad:
        return f"must be comma-separated names of {', '.join(GRIDS)}"
    return None


def _adaptive_specs() -> tuple[Spec, ...]:
    return (
        Spec("methods", "str", "frequency,mel_shelf,mel_unsharp,learned",
             "compared, comma-separated (names of study.adaptive.GRIDS)", check=_method_list_rule),
        Spec("select", "str", "mel_lsd_hf", "what the fixed, adaptive, multi-scale and oracle settings minimise "
             "(mel_lsd_hf or mel_l1)", choices=lambda: ["mel_lsd_hf", "mel_l1"]),
        Spec("batch_size", "int", 4, "latents decoded per VAE call", lo=1),
    )


#: Kind -> function returning the kind's own specs (after the common ones). Built lazily: ranges and choices come
#: from the enhancer registry.
SCHEMA: dict[str, Callable[[], tuple[Spec, ...]]] = {
    "baseline": lambda: (),
    "enhance": _enhance_specs,
    "analysis": _analysis_specs,
    "learned": _learned_specs,
    "adaptive": _adaptive_specs,
}


def specs(kind: str) -> dict[str, Spec]:
    """``{name: Spec}`` of notebook ``kind`` (common parameters first, in cell order)."""
    if kind not in SCHEMA:
        raise ParamError(f"unknown notebook kind {kind!r}; known: {', '.join(SCHEMA)}")
    return {s.name: s for s in (*_COMMON, *SCHEMA[kind]())}


def kind_of(stem: str) -> str | None:
    """The schema kind of a notebook stem (``"02_latent_enhance"`` → ``"enhance"``), or None when unknown."""
    for kind, (nb, _) in NOTEBOOKS.items():
        if nb == stem:
            return kind
    return None


# ------------------------------------------------------------------------------------------- checking


def _bad(spec: Spec, value, why: str | None = None) -> ParamError:
    return ParamError(f"parameter {spec.name} must be {why or spec.rule()}, got {value!r}")


def coerce(spec: Spec, value):
    """Convert ``value`` (a command-line string or a typed value) to ``spec``'s type and check it.

    Raises
    ------
    ParamError
        One line, e.g. ``parameter gain must be a number >= 0 and <= 4, got 'abc'``.
    """
    if spec.optional and (value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null"))):
        return None
    t = spec.type
    if t == "str":
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise _bad(spec, value)
        out = value
    elif t == "bool":
        if isinstance(value, bool):
            out = value
        elif isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            out = value.strip().lower() in _TRUE
        elif isinstance(value, int) and value in (0, 1):
            out = bool(value)
        else:
            raise _bad(spec, value)
    elif t == "int":
        out = _to_int(spec, value)
    elif t == "float":
        out = _to_float(spec, value)
    elif t == "list[float]":
        out = _to_list(spec, value)
    else:  # pragma: no cover - schema bug
        raise ParamError(f"parameter {spec.name} has unknown type {t!r}")
    if spec.choices is not None and out not in spec.choices():
        raise _bad(spec, value)
    if spec.check is not None:
        why = spec.check(out)
        if why:
            raise ParamError(f"parameter {spec.name} {why}, got {value!r}")
    return out


def _range(spec: Spec, out, value):
    if spec.lo is not None and (out <= spec.lo if spec.lo_open else out < spec.lo):
        raise _bad(spec, value)
    if spec.hi is not None and out > spec.hi:
        raise _bad(spec, value)
    return out


def _to_int(spec: Spec, value) -> int:
    if isinstance(value, bool):
        raise _bad(spec, value)
    if isinstance(value, str):
        try:
            f = float(value.strip().replace("_", ""))
        except ValueError:
            raise _bad(spec, value) from None
    elif isinstance(value, (int, float)) or hasattr(value, "__index__"):
        f = float(value)
    else:
        raise _bad(spec, value)
    if not math.isfinite(f) or not f.is_integer():
        raise _bad(spec, value)
    return _range(spec, int(f), value)


def _to_float(spec: Spec, value) -> float:
    if isinstance(value, bool):
        raise _bad(spec, value)
    try:
        out = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise _bad(spec, value) from None
    if not math.isfinite(out):
        raise _bad(spec, value)
    return _range(spec, out, value)


def _to_list(spec: Spec, value) -> list[float]:
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            value = [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise _bad(spec, value)
    item = Spec(spec.name, "float", None, "")
    try:
        return [_to_float(item, v) for v in value]
    except ParamError:
        raise _bad(spec, value) from None


def check(kind: str, values: Mapping, *, unknown: str = "ignore") -> dict:
    """Validate and coerce the parameters of notebook ``kind``; missing ones take their defaults.

    Parameters
    ----------
    kind : str
        A key of :data:`SCHEMA` (``"baseline"``, ``"enhance"``, ``"analysis"``, ...).
    values : mapping
        ``{name: value}`` (e.g. a notebook's ``locals()``); names outside the schema are ignored, or refused with
        ``unknown="error"``.

    Returns
    -------
    dict
        Every parameter of ``kind``, coerced (``-p duration_s 5`` gives 5.0; ``"False"`` gives False). ``enhance``
        adds ``params`` (the method's validated parameters, :func:`vaelib.enhance.enhancer_params`); ``analysis``
        adds ``grid`` (``{method: sorted unique values}``).
    """
    table = specs(kind)
    if unknown == "error":
        extra = sorted(set(values) - set(table))
        if extra:
            raise ParamError(f"unknown parameter {extra[0]!r}; accepted: {', '.join(table)}")
    out = {name: coerce(spec, values.get(name, spec.default)) for name, spec in table.items()}
    if kind == "enhance":
        from ..enhance import enhancer_params

        try:
            out["params"] = enhancer_params(out["method"], out["gain"], out["level"], out["factor"])
        except ValueError as exc:
            raise ParamError(" ".join(str(exc).split())) from None
    if kind == "analysis":
        from ..enhance import get, validate_params

        grid = {}
        for name in table:
            if name.startswith("sweep_"):
                method = name[len("sweep_"):]
                main = get(method).main_param
                checked = [validate_params(method, {**SWEEP_FIXED.get(method, {}), main: v})[main] for v in out[name]]
                grid[method] = sorted(dict.fromkeys(checked))
        out["grid"] = grid
    return out


def _literal(value) -> str:
    return repr(value) if not isinstance(value, str) else '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parameters_cell(kind: str) -> str:
    """The source of notebook ``kind``'s ``parameters`` cell, generated from the schema (one annotated line each)."""
    return "\n".join(f"{s.name}: {s.annotation} = {_literal(s.default)}  # {s.help}" for s in specs(kind).values())


def describe(kinds: Sequence[str] | None = None) -> str:
    """One line per parameter over ``kinds``: ``name : type = default  # help; accepts ...  [notebooks]``."""
    kinds = list(kinds or SCHEMA)
    union: dict[str, tuple[Spec, list[str]]] = {}
    for kind in kinds:
        for name, spec in specs(kind).items():
            union.setdefault(name, (spec, []))[1].append(NOTEBOOKS.get(kind, (kind,))[0])
    width = max((len(n) for n in union), default=0)
    lines = []
    for name, (spec, nbs) in union.items():
        note = f"  (set by the runner: {RUNNER_OWNED[name]})" if name in RUNNER_OWNED else ""
        lines.append(f"{name:<{width}} : {spec.annotation} = {_literal(spec.default)}  # {spec.help}; "
                     f"accepts {spec.rule()}  [{', '.join(nbs)}]{note}")
    return "\n".join(lines)
