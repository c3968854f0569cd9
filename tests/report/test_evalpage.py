"""The corpus view of an eval run: built from the table, inert (hostile clip names stay text)."""

import json
from html.parser import HTMLParser

import numpy as np
import pytest
import soundfile as sf

from vaelib.report.evalpage import write_eval_report

SR = 16000
HOSTILE = ["<img src=x onerror=alert(1)>.wav", "[a](javascript:alert(1)).wav"]


class _Scan(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.attrs, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend((tag, k, v or "") for k, v in attrs)

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def eval_dir(tmp_path_factory):
    from vaelib.evaluate import evaluate

    root = tmp_path_factory.mktemp("hostile") / "corpus"
    (root / "<b>cat").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, name in enumerate(HOSTILE):
        sf.write(root / "<b>cat" / name, (0.2 * rng.standard_normal(SR // 2 + 100 * i)).astype(np.float32), SR)
    (root / "<script>x.wav").write_bytes(b"not audio")
    out = root.parent / "run"
    evaluate(root, out=out, model="bundled", vocoder="griffinlim", griffinlim_iters=2, device="cpu", keep_worst=2,
             progress=False, echo=lambda s: None, enhancers="mel_shelf")
    return out


def test_report_is_inert_and_shows_names_as_text(eval_dir):
    page = write_eval_report(eval_dir)
    html = page.read_text()
    scan = _Scan()
    scan.feed(html)
    assert "script" not in scan.tags
    assert not [a for a in scan.attrs if a[1].lower().startswith("on")]
    assert not [a for a in scan.attrs if a[1] in ("href", "src") and not a[2].startswith("data:")]
    assert "javascript:" not in " ".join(a[2] for a in scan.attrs).lower()
    assert scan.tags.count("audio") >= 4 and "img" in scan.tags
    text = "".join(scan.text)
    for name in HOSTILE:
        assert name in text  # shown, as text
    assert "<b>cat" in text and "<script>x.wav" in text
    assert '<meta http-equiv="Content-Security-Policy"' in html.split("</head>")[0]


def test_report_sections_and_refusals(eval_dir, tmp_path):
    page = write_eval_report(eval_dir, tmp_path / "r")
    html = page.read_text()
    for heading in ("Distributions per stage", "Per category", "Worst clips", "Unreadable files (1)",
                    "Each enhancer against the plain VAE, per clip"):
        assert heading in html
    with pytest.raises(FileExistsError):
        write_eval_report(eval_dir, tmp_path / "r")
    with pytest.raises(FileNotFoundError, match="results.parquet") as info:
        write_eval_report(tmp_path)  # not a run folder (e.g. the corpus itself): never suggest --out <the corpus>
    assert "a new folder outside the corpus" in str(info.value) and str(tmp_path) + "`" not in str(info.value)


def test_vaelib_report_from_eval(eval_dir, tmp_path, capsys):
    """`vaelib report --from-eval DIR --out OUT` builds the same corpus view; a bad folder is one line, exit 2."""
    from vaelib.cli import main

    assert main(["report", "--from-eval", str(eval_dir), "--out", str(tmp_path / "view")]) == 0
    assert (tmp_path / "view" / "index.html").is_file()
    assert f"report: {tmp_path / 'view' / 'index.html'}" in capsys.readouterr().out
    assert main(["report", "--from-eval", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "results.parquet" in err and "\n" not in err
    assert main(["report", "--from-eval", str(eval_dir), "--audio", "demo"]) == 2
    assert "cannot be combined" in capsys.readouterr().err


def test_means_follow_the_one_rule_geometric_for_ratios(eval_dir):
    import pandas as pd

    from vaelib.report.html import fmt_value
    from vaelib.study import aggregate
    from vaelib.study.stages import MEAN_RULE

    html = write_eval_report(eval_dir, eval_dir / "means").read_text()
    df = pd.read_parquet(eval_dir / "results.parquet")
    vae = df[df["stage"] == "vae"]
    ratios = vae["dec_mel_ber_high"].to_numpy(float)
    geo = float(np.exp(np.mean(np.log(ratios))))
    assert geo == pytest.approx(aggregate(vae[["stage", "dec_mel_ber_high"]]).loc["vae", "dec_mel_ber_high"])
    if not np.isclose(geo, ratios.mean(), rtol=1e-3):  # the geometric mean shown, not the arithmetic one
        assert fmt_value(ratios.mean(), 4) not in html
    assert fmt_value(geo, 4) in html and MEAN_RULE in html.replace("&#x27;", "'")


def test_worst_clip_players_are_loudness_matched_to_the_input(eval_dir, tmp_path):
    """Each stage's excerpt is played at the input's RMS (the label says the gain), as the notebooks' players are;
    the kept excerpt files are not changed."""
    import base64
    import io
    import re

    from vaelib.widgets import player_gains

    before = {p.name: p.read_bytes() for p in (eval_dir / "audio").iterdir()}
    html = write_eval_report(eval_dir, tmp_path / "page").read_text()
    uris = re.findall(r'<audio controls preload="none" src="data:audio/flac;base64,([^"]+)"', html)
    assert len(uris) >= 4
    played = [sf.read(io.BytesIO(base64.b64decode(u)), dtype="float64")[0] for u in uris]
    rms = [float(np.sqrt(np.mean(w**2))) for w in played]
    summary = json.loads((eval_dir / "summary.json").read_text())
    first = summary["worst"][0]
    files = [eval_dir / "audio" / n for n in first["files"].values()]
    kept = [sf.read(f, dtype="float64")[0] for f in files]
    gains = player_gains([(str(i), w) for i, w in enumerate(kept)])
    n = len(files)
    for k in range(1, n):  # every stage of the first worst clip: the input's level unless that would clip
        expect = gains[k] * float(np.sqrt(np.mean(kept[k] ** 2)))
        assert rms[k] == pytest.approx(expect, rel=2e-3, abs=1e-4)
        if gains[k] * np.abs(kept[k]).max() < 0.999:
            assert rms[k] == pytest.approx(rms[0], rel=2e-3, abs=1e-4)
    assert "played at" in html and "loudness-matched to the input" in html
    assert {p.name: p.read_bytes() for p in (eval_dir / "audio").iterdir()} == before
