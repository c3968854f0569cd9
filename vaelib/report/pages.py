"""The HTML pages of a report run: each executed notebook as an inert, self-contained page, and ``index.html``.

:func:`export_html` converts a notebook with nbconvert's lab template made static (the Content-Security-Policy of
:mod:`vaelib.report.html` first in ``<head>``, every script removed); :func:`write_index` writes the run's front
page, findings first.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from . import params as _params
from .html import fmt_value, png_data_uri
from .plan import ReportError, ReportPlan

__all__ = ["export_html", "write_index", "findings_mismatches", "numbers_in", "cited_table_html"]

_TEMPLATE_NAME = "vaelib_report.html.j2"
# The lab template made static and inert: the Content-Security-Policy of vaelib.report.html first in <head> (no script
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
{%- block html_head_css -%}<style type="text/css">{{ resources.vaelib_page_css }}</style>{%- endblock html_head_css -%}
"""
#: Page CSS beside the lab template's: wide tables scroll inside their output instead of overflowing the page,
#: figures shrink to the page width.
PAGE_CSS = (".jp-OutputArea-output{overflow-x:auto;max-width:100%}"
            ".jp-OutputArea-output img{max-width:100%;height:auto}"
            ".jp-RenderedHTMLCommon table{font-size:12px}")



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

    from .html import csp_meta, find_active_content

    nb = nbformat.read(str(ipynb), as_version=4)
    nb.metadata.pop("widgets", None)  # widget state: needs script to show, and reports are static
    body, _ = _html_exporter(no_input).from_notebook_node(
        nb, resources={"metadata": {"name": ipynb.stem}, "vaelib_csp_meta": csp_meta(), "vaelib_page_css": PAGE_CSS})
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
p.headline{font-size:1.2em;font-weight:600;line-height:1.4;margin:.4em 0}
.scroll{overflow-x:auto;max-width:100%}table.cited{font-size:.88em;margin:.3em 0 .8em}
table.cited caption{caption-side:bottom;text-align:left;color:#666;font-size:.9em;padding-top:.2em}
table.cited th{font-weight:normal;background:#fafafa}a.cite{font-size:.8em;color:#777}
"""

#: Metrics of each notebook's compact table, in row order (the rest stays in the collapsed dump).
COMPACT_ROWS: dict[str, tuple[str, ...]] = {
    "01_baseline": ("lsd_hf", "lsd_lf", "lsd", "mrstft", "si_sdr", "mel_err_db_high", "mel_l1", "mel_lsd_hf",
                    "share_lsd_hf", "share_lsd_lf", "snr_db", "correlation", "claims_ret_high"),
    "02_latent_enhance": ("lsd_hf", "mel_lsd_hf", "ber_high", "added_hf_flatness", "d_claims_high_pp", "d_snr_db",
                          "snr_db"),
    "03_analysis": ("mel_lsd_hf", "mel_l1", "mel_ber_high", "mel_err_db_high", "d_claims_high_pp", "d_snr_db"),
    "04_learned_enhance": ("mel_lsd_hf", "mel_l1"),
    "05_adaptive": ("mel_lsd_hf", "mel_l1"),
}


def _compact_table(stem: str, summary: Mapping, used: set) -> str:
    """Rows: metrics (human label, unit, direction, hover definition, link to the glossary); columns: stages."""
    from ..study import glossary
    from .html import html_text as e

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


_NUMBER = re.compile(r"(?<![\w.])[-+−]?\d+(?:\.\d+)?(?:e[-+]?\d+)?(?![\w.]*\s?kHz)")


def numbers_in(text: str) -> list[str]:
    """The numbers of a text as written (sign dropped; ``4 kHz`` band edges and digits inside words such as
    ``AudioLDM2`` or ``4×4`` skipped): ``"0.247 → 0.187 (-24.2 %)"`` → ``["0.247", "0.187", "24.2"]``."""
    text = re.sub(r"\d+×\d+", " ", text)
    return [m.group(0).lstrip("+-−") for m in _NUMBER.finditer(text)]


def findings_mismatches(page: str) -> list[str]:
    """Every number of a finding that its cited table does not show, formatted the same way, as
    ``"<table id>: <number> in '<sentence start>'"``; empty when each finding agrees with its table.

    Findings are the elements with ``data-cites="<table id>"`` of an index page (:func:`write_index`); a table's
    numbers are those of its cells, headers and caption.
    """
    from html.parser import HTMLParser

    class _Parse(HTMLParser):
        def __init__(self):
            super().__init__(convert_charrefs=True)
            self.finding, self.table, self.depth = None, None, 0
            self.findings, self.tables = [], {}

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "table" and a.get("id"):
                self.table = a["id"]
                self.tables[self.table] = []
            if self.finding is not None and tag in ("div", "table"):  # a table inside the bullet is not its text
                self.depth += 1
            if "data-cites" in a:
                self.finding = [a["data-cites"], []]
                self.findings.append(self.finding)

        def handle_endtag(self, tag):
            if tag == "table":
                self.table = None
            if self.finding is not None and tag in ("div", "table") and self.depth:
                self.depth -= 1
            elif tag in ("p", "li"):
                self.finding = None

        def handle_data(self, data):
            if self.table is not None:
                self.tables[self.table].append(data)
            if self.finding is not None and not self.depth and data != "[table]":
                self.finding[1].append(data)

    p = _Parse()
    p.feed(page)
    out = []
    for tid, parts in p.findings:
        text = "".join(parts).strip()
        if tid not in p.tables:
            out.append(f"{tid}: no such table for '{text[:60]}'")
            continue
        have = set(numbers_in(" ".join(p.tables[tid])))
        out += [f"{tid}: {x} in '{text[:60]}'" for x in numbers_in(text) if x not in have]
    return out


def cited_table_html(t) -> str:
    """A :class:`vaelib.study.findings.CitedTable` as an HTML table with its anchor (``id``), in a scroll container."""
    from .html import html_text as e

    head = "".join(f"<th>{e(c)}</th>" for c in t.columns)
    body = "".join(f"<tr><th>{e(label)}</th>{''.join(f'<td class=num>{e(c)}</td>' for c in cells)}</tr>"
                   for label, cells in t.rows)
    return (f'<div class="scroll"><table class="cited" id="{e(t.id)}"><caption>{e(t.caption)}</caption>'
            f"<tr>{head}</tr>{body}</table></div>")


def _findings_html(docs: Mapping, choice) -> list[str]:
    """The index's first screen: the headline sentence and figure (what the VAE itself loses above and below 4 kHz,
    in the mel domain), then one short bullet per further finding, each citing the table it summarises (rendered
    once, after the first bullet that cites it; each bullet links to it). The mean rule is stated once."""
    from ..study import findings as _findings
    from ..study.stages import MEAN_RULE
    from .html import html_text as e

    found = _findings.run_findings(docs, choice)
    out = []
    if not found:
        return ['<h2>Findings</h2><p class="muted">No findings: no notebook finished with numbers.</p>']
    shown: set = set()

    def cite(f) -> str:
        return f' <a class="cite" href="#{e(f.table.id)}">[table]</a>'

    head = [f for f in found if f.headline]
    rest = [f for f in found if not f.headline]
    nb = {kind: stem for kind, (stem, _) in _params.NOTEBOOKS.items()}
    base = docs.get(nb["baseline"], {}).get("summary") or {}
    if head:
        out.append('<h2>Headline</h2>')
        out += [f'<p class="headline" data-cites="{e(f.table.id)}">{e(f.text)}{cite(f)}</p>' for f in head]
        fig = _findings.headline_figure(base)
        if fig is not None:
            out.append(f'<figure><img alt="log-mel error below and above 4 kHz per path" src="{png_data_uri(fig)}">'
                       '<figcaption class="muted">Mean |Δ log-mel| against the input mel, below 4 kHz (blue) and '
                       "4–8 kHz (orange): the VAE alone (decoded, no vocoder) beside a band-blind 4×4 pooling codec "
                       "for scale, the vocoder alone and the round trip (both re-analysed).</figcaption></figure>")
        for f in head:
            if f.table.id not in shown:
                shown.add(f.table.id)
                out.append(cited_table_html(f.table))
    if rest:
        out.append('<h2>Findings</h2><ul class="findings">')
        for f in rest:
            out.append(f'<li data-cites="{e(f.table.id)}">{e(f.text)}{cite(f)}')
            if f.table.id not in shown:
                shown.add(f.table.id)
                out.append(cited_table_html(f.table))
            out.append("</li>")
        out.append("</ul>")
        fig = _findings.enhancer_figure(docs)
        if fig is not None:
            out.append(f'<figure><img alt="high-band mel LSD per enhancer" src="{png_data_uri(fig)}">'
                       '<figcaption class="muted">High-band mel LSD of the decoded log-mel (no vocoder) per enhancer; '
                       "dashed: the plain VAE.</figcaption></figure>")
    out.append(f'<p class="muted">Means: {e(MEAN_RULE)}.</p>')
    return out


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
    carries :data:`vaelib.report.html.CSP` and no script.

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
    from .. import __version__
    from ..study import findings as _findings
    from ..study import glossary
    from .html import csp_meta
    from .html import html_text as e

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
    parts += _findings_html(docs, getattr(plan, "model_choice", None))
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
            parts.append(f'<div class="scroll">{_compact_table(stem, summary, used)}</div>')
            parts.append(f"<details><summary>all {len(summary)} key numbers (metrics.json)</summary>"
                         '<div class="scroll"><table><tr><th>key</th><th>value</th></tr>')
            parts += [f'<tr><td>{e(k)}</td><td class="num">{e(fmt_value(v))}</td></tr>' for k, v in summary.items()]
            parts.append("</table></div></details>")
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

