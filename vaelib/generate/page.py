"""The inert ``index.html`` of a ``vaelib generate`` run: per prompt, players for the plain and the enhanced
generation and the comparison figure, in the reports' house style.

Every input-derived string (prompts, model id, enhancer labels and values, paths) is escaped with
:func:`vaelib.report.html.html_text`; the page carries :data:`vaelib.report.html.CSP` and no script; recordings
and figures are embedded as ``data:`` URIs (the only sources the CSP allows).
"""

from __future__ import annotations

from pathlib import Path

from ..report.html import audio_data_uri, csp_meta, fmt_value, html_text, png_data_uri
from ..report.pages import _INDEX_CSS

__all__ = ["write_page"]


def write_page(path, record: dict, items: list[dict]) -> Path:
    """Write ``index.html`` at ``path`` for a run described by ``record`` (``run.json``'s content) and ``items``
    (per prompt: ``folder``, ``prompt``, ``seconds``, ``figure`` (matplotlib Figure or None), ``peak_plain``,
    ``peak_enhanced``); the WAV files are read from ``path.parent / folder``."""
    e = html_text
    path = Path(path)
    run_dir = path.parent
    enh = ", ".join(f"{label} ({', '.join(f'{k}={fmt_value(v)}' for k, v in spec.items())})"
                    for label, spec in record["enhancers"].items())
    head = [record.get("started", ""), f"vaelib {record.get('vaelib', '')}",
            f"{record['pipeline']} from {record['model']}",
            f"{record['device']}, {record['dtype']}", f"seed {record['seed']}", f"{record['steps']} steps",
            f"guidance {fmt_value(record['guidance'])}", f"{fmt_value(record['duration_s'])} s"]
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', csp_meta(),
        f"<title>vaelib generate {e(run_dir.name)}</title>", f"<style>{_INDEX_CSS}</style></head><body>",
        f"<h1>vaelib generate <code>{e(run_dir.name)}</code></h1>",
        f'<p class="muted">{" · ".join(e(x) for x in head if x)}</p>',
        f"<p>Enhancers: <code>{e(enh)}</code>. Each prompt was diffused <b>once</b>; the plain and the enhanced "
        "audio are two decodes of the same latent (the pipeline's own decode, and with the enhancers where "
        "<code>vaelib.attach</code> runs them: latent stage before the VAE decoder, mel stage before the "
        "vocoder).</p>",
    ]
    if record.get("negative_prompt"):
        parts.append(f"<p>Negative prompt: <code>{e(record['negative_prompt'])}</code></p>")
    for i, it in enumerate(items, start=1):
        folder = run_dir / it["folder"]
        s = it["seconds"]
        parts.append(f"<h2>{i}. {e(it['prompt'])}</h2>")
        parts.append('<table><tr><th></th><th>audio</th><th>peak</th></tr>')
        for label, name, peak in (("plain", "plain.wav", it["peak_plain"]),
                                  ("enhanced", "enhanced.wav", it["peak_enhanced"])):
            parts.append(f'<tr><td>{e(label)} (<a href="{e(it["folder"] + "/" + name)}">{e(name)}</a>)</td>'
                         f'<td><audio controls preload="none" src="{audio_data_uri(folder / name)}"></audio></td>'
                         f'<td class="num">{e(fmt_value(peak))}</td></tr>')
        parts.append("</table>")
        parts.append(f'<p class="muted">diffusion {s["diffusion"]:.2f} s · plain decode {s["decode_plain"]:.2f} s '
                     f'· enhanced decode {s["decode_enhanced"]:.2f} s</p>')
        if it.get("figure") is not None:
            parts.append(f'<figure><img alt="plain vs enhanced: log-mels, difference, band energies" '
                         f'src="{png_data_uri(it["figure"])}"><figcaption class="muted">Top: the two log-mels the '
                         "vocoder received and their difference (dB). Bottom: band energies of the waveforms, the "
                         "mean difference per mel bin, and the spectra.</figcaption></figure>")
    parts.append('<p class="muted">Everything needed to repeat the run is in <code>run.json</code>.</p>')
    parts.append("</body></html>")
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path
