"""Shared reports are inert: hostile file and folder names run through the real report and are shown as text.

A colleague opens ``index.html`` and the notebook pages from a mail or a web server; anyone who can name a file in
a data set must not be able to run script in that colleague's browser. Checked in three layers:

1. the escaping helpers (:mod:`vaelib.report.html`) on hand-made cases;
2. the real ``vaelib report`` over a folder of hostile names (bundled model, 1 s clips): no page holds a
   ``<script>``, an ``on*`` attribute or a ``javascript:`` URL, every page carries the CSP, and each name still
   appears as text so users can find their clip;
3. headless Chromium (Playwright driving Debian ``chromium``) opens every page: no dialog is raised (the
   payloads call ``alert``), figures render and the audio players load under the CSP.
"""

import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vaelib.report import html as markup

SR = 16000
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)

#: (sub-folder, file stem) inside the audio folder, which is itself ``.../"><script>alert(1)</script>/``: a file
#: name cannot hold "/", so that payload spans two folder names and shows in the audio source path.
HOSTILE = [
    ("", "<img src=x onerror=alert(1)>"),
    ("", "[a](javascript:alert(1))"),
    ("", "new\nline <b>bold *em*"),
    ("<svg onload=alert(3)>", "clip"),
]
SCRIPT_PATH = ('"><script>alert(1)<', "script>")
BROKEN = "<svg onload=alert(2)>broken"


def _text(page: str) -> str:
    """The text a browser shows (tags dropped, entities decoded)."""
    parts = []

    class P(HTMLParser):
        def handle_data(self, data):
            parts.append(data)

    P(convert_charrefs=True).feed(page)
    return "".join(parts)


def _csp_of(page: str) -> str | None:
    """The content of the page's first ``<meta http-equiv="Content-Security-Policy">`` inside ``<head>``."""
    found = []

    class P(HTMLParser):
        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "meta" and (a.get("http-equiv") or "").lower() == "content-security-policy" and not found:
                found.append(a.get("content"))

    P(convert_charrefs=True).feed(page.split("</head>")[0])
    return found[0] if found else None


# ---------------------------------------------------------------------------------------------- helpers


@pytest.mark.parametrize("raw", [
    "<img src=x onerror=alert(1)>", "[a](javascript:alert(1))", "*x* _y_ `z` # h", "a|b", "<!-- c -->",
    "&lt;already&gt;", 'say "hi" & \'bye\'', "line1\nline2",
])
def test_md_text_renders_literally_and_inertly(raw):
    from nbconvert.filters.markdown_mistune import markdown2html_mistune  # what the report's HTML export uses

    html = markdown2html_mistune(markup.md_text(raw))
    assert markup.find_active_content(html) == []
    assert "<a" not in html and "<em" not in html and "<code" not in html and "<h1" not in html
    assert _text(html).strip() == " ".join(raw.split())


def test_md_code_and_html_text():
    assert markup.md_code("a_b<i>") == "<code>a&#95;b&#60;i&#62;</code>"
    assert markup.html_text('"><script>') == "&quot;&gt;&lt;script&gt;"


def test_find_active_content_parses_like_a_browser():
    assert markup.find_active_content("<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>") == []
    found = markup.find_active_content('<img src=x onerror="alert(1)"><a href=" JavaScript:x">y</a><script></script>')
    assert len(found) == 3
    assert markup.find_active_content('<iframe src="data:text/html,x"></iframe>') == ["<iframe> element"]


def test_csp_forbids_script_and_remote_loads():
    policy = dict(part.strip().split(" ", 1) for part in markup.CSP.split(";"))
    assert policy["script-src"] == "'none'" and policy["default-src"] == "'none'"
    assert policy["img-src"] == "data:" and policy["media-src"] == "data:"
    assert 'http-equiv="Content-Security-Policy"' in markup.csp_meta()


# ---------------------------------------------------------------------------------------------- the report


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    from vaelib.report import run_report

    root = tmp_path_factory.mktemp("hostile")
    audio = root.joinpath(*SCRIPT_PATH)
    t = np.arange(SR) / SR
    rng = np.random.default_rng(0)
    for i, (folder, stem) in enumerate(HOSTILE):
        d = audio / folder if folder else audio
        d.mkdir(parents=True, exist_ok=True)
        x = 0.3 * np.sin(2 * np.pi * (220 + 110 * i) * t) + 0.05 * rng.standard_normal(t.size)
        sf.write(d / f"{stem}.wav", x.astype(np.float32), SR)
    (audio / f"{BROKEN}.wav").write_bytes(b"RIFF not really a wave file")
    result = run_report(audio=str(audio), model="bundled", vocoder="griffinlim", out=root / "run",
                        params={"duration_s": 1.0, "max_clips": 8, "max_players": 8},
                        progress=False, echo=None, warn=lambda s: None)
    pages = {p.name: p.read_text(encoding="utf-8") for p in (root / "run").glob("*.html")}
    return result, pages


def test_no_page_holds_active_content(hostile_run):
    result, pages = hostile_run
    assert {"index.html", "01_baseline.html", "02_latent_enhance.html", "03_analysis.html"} <= set(pages)
    for name, page in pages.items():
        assert markup.find_active_content(page) == [], name
        assert _csp_of(page) == markup.CSP, f"{name} lacks the Content-Security-Policy"
        # (a "javascript:" inside a table cell is text; find_active_content checks URLs in attributes)


def test_names_still_appear_as_text(hostile_run):
    result, pages = hostile_run
    for stem in ("01_baseline", "02_latent_enhance", "03_analysis"):
        text = _text(pages[f"{stem}.html"])
        for _, name in HOSTILE[:2]:
            assert name in text, (stem, name)
    text01 = " ".join(_text(pages["01_baseline.html"]).split())
    assert "new line <b>bold *em*" in text01  # the header flattens the newline; tables keep it
    index = _text(pages["index.html"])
    assert '"><script>alert(1)</script>' in index  # the audio source path
    assert f"{BROKEN}.wav" in index  # the skipped file is listed by name


@pytest.mark.skipif(CHROMIUM is None, reason="Debian `chromium` not installed (CI: apt-get install chromium)")
def test_pages_render_in_chromium_without_running_script(hostile_run, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    result, pages = hostile_run
    run = result.plan.run_dir
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            for name in sorted(pages):
                page = browser.new_page()
                dialogs = []
                page.on("dialog", lambda d, dialogs=dialogs: (dialogs.append(d.message), d.dismiss()))
                page.goto((run / name).as_uri(), wait_until="load")
                page.wait_for_timeout(300)
                assert dialogs == [], f"{name} ran script: {dialogs}"
                images = page.evaluate("Array.from(document.images).map(i => i.naturalWidth)")
                assert images and all(w > 0 for w in images), f"{name}: a figure did not render {images}"
                if name not in ("index.html", "05_adaptive.html"):  # the pages with players (05: tables, figures)
                    page.wait_for_function("Array.from(document.querySelectorAll('audio')).every("
                                           "a => a.readyState >= 1)", timeout=15000)
                    durations = page.evaluate("Array.from(document.querySelectorAll('audio')).map(a => a.duration)")
                    assert durations and all(d > 0.5 for d in durations), f"{name}: audio did not load {durations}"
                page.close()
        finally:
            browser.close()


def test_explorer_output_is_inert_with_a_hostile_clip_name():
    """The JupyterLab explorer's outputs (figure, table, players, error line) carry no markup from a clip name."""
    from vaelib import study
    from vaelib.models import load_vae, load_vocoder
    from vaelib.widgets import EnhanceExplorer, RenderContext, RenderState, display_outputs, render

    vae, voc = load_vae("bundled", device="cpu"), load_vocoder("griffinlim", device="cpu", n_iter=2)
    t = np.arange(SR // 2) / SR
    clip = study.Clip(HOSTILE[0][1], None, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32))
    _, recs = study.run_round_trips([clip], vae, voc, show_progress=False)
    ctx = RenderContext.from_reconstructions(recs, vae, voc)
    outputs = display_outputs(render(RenderState(method="contrast", factor=1.2), ctx))
    outputs += display_outputs(None, error=f"bad clip {HOSTILE[0][1]}")
    for out in outputs:
        html = out["data"].get("text/html", "")
        assert markup.find_active_content(html) == []
    explorer = EnhanceExplorer(ctx, RenderState())
    assert [label for label, _ in explorer.clip.options] == [HOSTILE[0][1]]  # a text label, shown as text
