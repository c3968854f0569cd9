"""Make text from the outside world inert before it meets Markdown or HTML.

Reports are shared by mail and on web servers, so anything derived from input — file names and paths, folder
names, ``.lst`` entries, parameter values, categories, model ids, error messages — must be shown as text, never
interpreted as markup. One helper per target, used everywhere:

* :func:`html_text` — for HTML element content and attribute values (``& < > " '`` escaped);
* :func:`md_text` — for Markdown that a notebook renders (``display(Markdown(...))``, nbconvert HTML): HTML-escaped
  *and* with Markdown syntax neutralised, so ``[a](javascript:alert(1))`` or ``*x*`` stay literal text;
* :func:`md_code` — an inline code span (``\\`name\\```) whose content cannot break out of the span;
* :data:`CSP` / :func:`csp_meta` — the Content-Security-Policy every exported page carries (defence in depth):
  inline styles, ``data:`` images and media allowed; no script at all, no remote loads, no ``javascript:`` URLs;
* :func:`fmt_value`, :func:`png_data_uri`, :func:`audio_data_uri`, :func:`wave_data_uri` — how every page formats a
  number and embeds a figure or a recording (plain text / ``data:`` URIs; escape the text where it meets HTML).

See ``docs/security.md`` for the threat model and the tests that guard it.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
from pathlib import Path

from .._util import one_line

__all__ = ["CSP", "csp_meta", "find_active_content", "html_text", "md_code", "md_text", "fmt_value", "png_data_uri",
           "audio_data_uri", "wave_data_uri"]

#: Content-Security-Policy of every HTML page vaelib writes. ``script-src 'none'`` forbids inline and remote
#: script (and with it ``on*`` handlers and ``javascript:`` URLs); images and audio may only be ``data:`` URIs
#: embedded in the page; styles may be inline (nbconvert's template and the index use ``<style>``).
CSP = ("default-src 'none'; script-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'; "
       "frame-src 'none'; style-src 'unsafe-inline'; img-src data:; media-src data:; font-src data:")

# Characters with a meaning in CommonMark / GFM inline syntax (emphasis, links, code, autolinks, tables,
# headings, lists, HTML entities). Each is replaced by its numeric HTML entity, which Markdown renders as the
# literal character and never as syntax.
_MD_SPECIAL = re.compile(r"[&<>\"'\\`*_{}\[\]()#+\-.!|~:]")


def csp_meta() -> str:
    """The ``<meta http-equiv="Content-Security-Policy">`` element of :data:`CSP`."""
    return f'<meta http-equiv="Content-Security-Policy" content="{html.escape(CSP, quote=True)}">'


def html_text(value) -> str:
    """``str(value)`` escaped for HTML text and quoted attribute values (``& < > " '``)."""
    return html.escape(str(value), quote=True)


def md_text(value) -> str:
    """``str(value)`` made literal inside Markdown: HTML-escaped, Markdown punctuation as entities, one line.

    Newlines and other whitespace runs become single spaces (a newline in a file name must not start a new
    Markdown block). The result renders as exactly the original characters, e.g. ``md_text("[a](javascript:x)")``
    shows ``[a](javascript:x)`` as text with no link.
    """
    text = " ".join(str(value).split())
    # one pass, so no entity is escaped twice; decimal references (mistune does not decode hex ones)
    return _MD_SPECIAL.sub(lambda m: f"&#{ord(m.group(0))};", text)


def md_code(value) -> str:
    """``str(value)`` as an inline Markdown code span that renders literally.

    A code span cannot hold entities, so instead of a backtick span this emits ``<code>`` with escaped content —
    rendered by every Markdown engine that nbconvert and JupyterLab use, and just as inert.
    """
    return f"<code>{md_text(value)}</code>"


def find_active_content(page: str) -> list[str]:
    """What in an HTML page could run script: ``<script>`` elements, ``on*`` event-handler attributes,
    ``javascript:`` URLs in ``href``/``src``/``action``/``formaction``, and ``<iframe>/<object>/<embed>`` elements.

    Parsed with :class:`html.parser.HTMLParser` (as a browser tokenises tags), not matched as text, so escaped text
    such as ``&lt;script&gt;`` is correctly ignored. Returns one short description per finding (empty: inert).
    """
    from html.parser import HTMLParser

    found: list[str] = []

    class _Scan(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag in ("script", "iframe", "object", "embed"):
                found.append(f"<{tag}> element")
            for name, value in attrs:
                if name.lower().startswith("on"):
                    found.append(f"{name}= attribute on <{tag}>")
                if name.lower() in ("href", "src", "action", "formaction", "xlink:href") and value and \
                        "".join(value.split()).lower().startswith("javascript:"):
                    found.append(f"javascript: URL in {name} of <{tag}>")

        handle_startendtag = handle_starttag

    _Scan(convert_charrefs=True).feed(page)
    return found


def fmt_value(value, digits: int = 4, nan: str = "nan") -> str:
    """A value as page text (not escaped): floats to ``digits`` significant digits (``nan`` for NaN), booleans,
    integers and strings as they are, anything else as one line of JSON (at most 120 characters)."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return nan if math.isnan(value) else f"{value:.{digits}g}"
    if isinstance(value, (int, str)):
        return str(value)
    return one_line(json.dumps(value, default=str), 120)


def png_data_uri(fig, dpi: int = 90, tight: bool = False) -> str:
    """A matplotlib figure as a ``data:image/png;base64,...`` URI (allowed by :data:`CSP`: ``img-src data:``)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, **({"bbox_inches": "tight"} if tight else {}))
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


_AUDIO_MIME = {".flac": "audio/flac", ".wav": "audio/wav", ".ogg": "audio/ogg", ".oga": "audio/ogg"}


def audio_data_uri(path) -> str:
    """An audio file as a ``data:audio/...;base64,...`` URI (allowed by :data:`CSP`: ``media-src data:``)."""
    path = Path(path)
    mime = _AUDIO_MIME.get(path.suffix.lower(), "audio/flac")
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def wave_data_uri(wave, sr: int) -> str:
    """A waveform (float, within [-1, 1]) as a ``data:audio/flac;base64,...`` URI (16-bit FLAC)."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, wave, int(sr), format="FLAC", subtype="PCM_16")
    return "data:audio/flac;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
