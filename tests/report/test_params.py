"""The one parameter schema: the notebooks' cells, the notebooks' checks and the runner all follow it."""

import json
from pathlib import Path

import pytest

from vaelib.report import ReportError, inspect_params, params, plan_report

NB_DIR = Path(__file__).resolve().parents[2] / "notebooks"


def _parameters_cell(stem: str) -> str:
    nb = json.loads((NB_DIR / f"{stem}.ipynb").read_text(encoding="utf-8"))
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{stem}: exactly one cell tagged 'parameters'"
    return "".join(cells[0]["source"]).strip()


@pytest.mark.parametrize("kind", list(params.NOTEBOOKS))
def test_notebook_parameters_cell_is_the_schema(kind):
    stem = params.NOTEBOOKS[kind][0]
    assert _parameters_cell(stem) == params.parameters_cell(kind), (
        f"{stem}'s parameters cell differs from vaelib.report.params; paste the output of "
        f"python -c 'from vaelib.report import params; print(params.parameters_cell(\"{kind}\"))'")


def test_papermill_reads_the_schema_types_and_defaults():
    """Every schema line parses with papermill (it skips lines holding a second '=', e.g. in the help)."""
    import papermill

    for kind, (stem, _) in params.NOTEBOOKS.items():
        info = papermill.inspect_notebook(str(NB_DIR / f"{stem}.ipynb"))
        table = params.specs(kind)
        assert list(info) == list(table)
        for name, spec in table.items():
            assert info[name]["help"] == spec.help
            assert eval(info[name]["default"]) == spec.default  # noqa: S307 - a literal written by the schema


def test_check_coerces_papermill_and_cli_values():
    p = params.check("baseline", {"duration_s": 5, "interactive": "False", "seed": 3.0, "max_clips": "2"})
    assert p["duration_s"] == 5.0 and isinstance(p["duration_s"], float)
    assert p["interactive"] is False and p["seed"] == 3 and p["max_clips"] == 2
    assert p["audio"] == "demo" and p["vocoder"] == "auto" and p["out_dir"] == ""
    assert params.check("baseline", {"duration_s": "none"})["duration_s"] is None
    e = params.check("enhance", {"method": "contrast", "factor": 2})
    assert e["params"] == {"factor": 2.0}  # only the chosen method's parameters are passed on
    h = params.check("enhance", {"method": "hybrid", "gain": 1.4, "level": 0.04, "factor": 1.2})
    assert h["params"] == {"gain": 1.4, "level": 0.04, "factor": 1.2}
    a = params.check("analysis", {"sweep_frequency": [2, 1.5, 1.5], "sweep_noise": 0.1})
    assert a["grid"]["frequency"] == [1.5, 2.0] and a["grid"]["noise"] == [0.1]
    assert set(a["grid"]) == {"frequency", "noise", "contrast", "hybrid"}
    assert params.check("analysis", {"sweep_contrast": "0.9, 1.1"})["grid"]["contrast"] == [0.9, 1.1]


@pytest.mark.parametrize("word,value", [("true", True), ("Yes", True), ("on", True), ("1", True), ("y", True),
                                        ("FALSE", False), ("no", False), ("off", False), ("0", False), (0, False)])
def test_one_boolean_rule(word, value):
    spec = params.specs("baseline")["interactive"]
    assert params.coerce(spec, word) is value


@pytest.mark.parametrize("kind,values,match", [
    ("baseline", {"max_clips": 0}, "max_clips must be an integer >= 1"),
    ("baseline", {"duration_s": -1}, "duration_s must be a number >= 0.1"),
    ("baseline", {"duration_s": "long"}, "duration_s must be a number"),
    ("baseline", {"vocoder": "wavenet"}, "vocoder must be one of auto, hifigan, griffinlim"),
    ("baseline", {"interactive": "maybe"}, "interactive must be true or false"),
    ("baseline", {"seed": 1.5}, "seed must be an integer"),
    ("baseline", {"audio": " "}, "audio must be a non-empty string"),
    ("baseline", {"device": "tpu"}, "device must be auto, cpu, cuda"),
    ("enhance", {"method": "sharpen"}, "method must be one of"),
    ("enhance", {"method": "frequency", "gain": 9}, "gain must be a number >= 0 and <= 4"),
    ("analysis", {"sweep_noise": [0.1, 5]}, "out of range"),
    ("analysis", {"sweep_contrast": "lots"}, "must be a list of numbers"),
    ("analysis", {"batch_size": 0}, "batch_size"),
])
def test_check_rejects_bad_values_in_one_line(kind, values, match):
    with pytest.raises(params.ParamError, match=match) as err:
        params.check(kind, values)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("values", [
    {"max_clips": "0"}, {"vocoder": "wavenet"}, {"seed": "1.5"}, {"gain": "9"}, {"method": "sharpen"},
    {"sweep_noise": "[0.1, 5]"}, {"duration_s": "-1"},
])
def test_runner_refuses_what_the_notebooks_refuse(values, tmp_path):
    """The runner (strings from the command line) and the notebooks (typed values) apply the same rules."""
    name, value = next(iter(values.items()))
    with pytest.raises(ReportError) as runner:
        plan_report(audio="demo", params=values, out=tmp_path / "run")
    kind = next(k for k in params.NOTEBOOKS if name in params.specs(k))
    with pytest.raises(params.ParamError) as notebook:
        params.check(kind, {name: value})
    assert str(notebook.value).split(",")[0] in str(runner.value)


def test_runner_reads_its_parameters_from_the_schema():
    from vaelib.report import default_notebooks

    per, union = inspect_params(default_notebooks()[:3])
    for kind, (stem, _) in params.NOTEBOOKS.items():
        if stem in per:
            def view(table):
                return {n: (s.type, s.default, s.help, s.lo, s.hi, s.optional) for n, s in table.items()}

            assert view(per[stem]) == view(params.specs(kind))
    assert union["gain"].lo == 0 and union["gain"].hi == 4


def test_describe_lists_every_parameter_once():
    text = params.describe()
    names = [line.split(":")[0].strip() for line in text.splitlines()]
    assert len(names) == len(set(names))
    assert set(names) == {n for k in params.NOTEBOOKS for n in params.specs(k)}
    assert "set by the runner" in text
