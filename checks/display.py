"""HTML for what the learner sees (the check table, hints, solutions), readable in every theme.

A notebook front end may be light or dark: JupyterLab's light and dark themes, VS Code's and Colab's
dark modes (which define none of JupyterLab's CSS variables). No single text colour holds WCAG's
4.5:1 contrast on both white and near-black, so nothing here fixes a text colour or a background:

* text keeps the front end's own text colour (it is set together with the front end's background);
* an accent colour (a status icon, a link, a keyword of highlighted code) is ``color-mix(in srgb,
  currentColor 50%, HUE)``: half the front end's text colour, so it is dark on a light page and light
  on a dark one; each hue is first brought to the middle luminance (about 0.18, the one luminance with
  4.5:1 against both black and white), so the half-and-half mix keeps the contrast of the page's own
  text;
* a background is a translucent tint (``rgba(..., 0.12)``) over whatever the page's background is.

A browser without ``color-mix`` (before 2023) drops the declaration, and JupyterLab's sanitizer for an
untrusted notebook drops the styles it does not know: either way the text keeps the page's own colour,
over a tint at most. ``tests/test_browser.py`` measures every text node in real Chromium, in
JupyterLab's own theme CSS and on plain light and dark pages.
"""

from __future__ import annotations

import functools
import html
import re

MIDDLE_LUMINANCE = 0.18  # sqrt(1.05 * 0.05) - 0.05 = 0.179: 4.58:1 against both black and white


def _linear(channel: float) -> float:
    return channel / 12.92 if channel <= 0.04045 else ((channel + 0.055) / 1.055) ** 2.4


def luminance(rgb: tuple[float, float, float]) -> float:
    """WCAG 2 relative luminance of an sRGB colour (channels in 0..1)."""
    r, g, b = (_linear(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


@functools.cache
def middle(hex_colour: str) -> str:
    """``hex_colour`` mixed with white or black (in sRGB) to the middle luminance: same hue."""
    value = hex_colour.lstrip("#")
    if len(value) == 3:
        value = "".join(c * 2 for c in value)
    rgb = tuple(int(value[i : i + 2], 16) / 255 for i in (0, 2, 4))
    towards = 1.0 if luminance(rgb) < MIDDLE_LUMINANCE else 0.0
    low, high = 0.0, 1.0
    for _ in range(30):  # bisect the share of white (or black) that reaches the middle luminance
        share = (low + high) / 2
        mixed = tuple(c + share * (towards - c) for c in rgb)
        if (luminance(mixed) < MIDDLE_LUMINANCE) == (towards == 1.0):
            low = share
        else:
            high = share
    mixed = tuple(c + high * (towards - c) for c in rgb)
    return "#" + "".join(f"{round(c * 255):02x}" for c in mixed)


GREEN, RED, AMBER, BLUE, GREY = "#1a7f37", "#cf222e", "#9a6700", "#0969da", "#6e7781"


def accent(hue: str) -> str:
    """A CSS colour of ``hue`` that keeps contrast on the page: half the page's text colour."""
    return f"color-mix(in srgb, currentColor 50%, {middle(hue)})"


MUTED = "color-mix(in srgb, currentColor 72%, transparent)"  # secondary text: the page's, a little faded


def tint(hue: str, alpha: float = 0.12) -> str:
    """A translucent background of ``hue`` over whatever the page's background is."""
    value = hue.lstrip("#")
    r, g, b = (int(value[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r}, {g}, {b}, {alpha})"


CODE_STYLE = f"background-color:{tint(GREY, 0.16)};padding:0 0.25em;border-radius:3px"
LINK_STYLE = f"color:{accent(BLUE)};text-decoration:underline"

# --------------------------------------------------------------------------------------------------
# Text: escaped, `code` spans and URLs marked up
# --------------------------------------------------------------------------------------------------
_CODE_SPAN = re.compile(r"`([^`\n]+)`")
_URL = re.compile(r"https?://[^\s<>\"'`()\[\]]+")


def link(url: str, text: str | None = None) -> str:
    """An ``<a>`` to ``url`` (escaped), opening in a new tab."""
    return (
        f'<a href="{html.escape(url, quote=True)}" target="_blank" rel="noopener noreferrer" '
        f'style="{LINK_STYLE}">{html.escape(text if text is not None else url)}</a>'
    )


def _linkify(text: str) -> str:
    parts, last = [], 0
    for found in _URL.finditer(text):
        url = found.group(0).rstrip(".,;:!?")
        end = found.start() + len(url)
        parts.append(html.escape(text[last : found.start()]))
        parts.append(link(url))
        last = end
    parts.append(html.escape(text[last:]))
    return "".join(parts)


def inline(text: str) -> str:
    """``text`` as HTML: escaped; `backticked` spans as <code>; http(s) URLs as links (line breaks
    are kept by the caller's ``white-space: pre-wrap``)."""
    parts, last = [], 0
    for found in _CODE_SPAN.finditer(text):
        parts.append(_linkify(text[last : found.start()]))
        parts.append(f'<code style="{CODE_STYLE}">{html.escape(found.group(1))}</code>')
        last = found.end()
    parts.append(_linkify(text[last:]))
    return "".join(parts)


# --------------------------------------------------------------------------------------------------
# Highlighted Python: Pygments' tokens, each in an accent colour of its default style's hue
# --------------------------------------------------------------------------------------------------
PRE_STYLE = (
    f"background-color:{tint(GREY, 0.1)};padding:0.5em 0.8em;border-radius:4px;margin:0.4em 0;"
    "line-height:1.4;overflow-x:auto;text-align:left;white-space:pre"
)


def highlight_python(code: str) -> str:
    """``code`` as a ``<pre>`` of highlighted Python that keeps contrast in any theme."""
    from pygments.lexers import PythonLexer
    from pygments.styles import get_style_by_name

    style = get_style_by_name("default")
    parts = []
    for kind, value in PythonLexer().get_tokens(code):
        token = style.style_for_token(kind)
        css = [f"color:{accent('#' + token['color'])}"] if token["color"] else []
        css += ["font-weight:bold"] if token["bold"] else []
        css += ["font-style:italic"] if token["italic"] else []
        text = html.escape(value)
        parts.append(f'<span style="{";".join(css)}">{text}</span>' if css else text)
    return f'<pre style="{PRE_STYLE}"><code style="background:none;padding:0">{"".join(parts)}</code></pre>'


_MISTUNE_LINK = re.compile(r'<a href="')
_MISTUNE_CODE_BLOCK = re.compile(r'<pre><code(?: class="language-(\w+)")?>(.*?)</code></pre>', re.S)


def markdown(text: str) -> str:
    """Markdown (a hint) as HTML: links and code blocks in the theme-proof styles above."""
    import mistune

    page = mistune.html(text)

    def block(found: re.Match) -> str:
        language, code = found.group(1), html.unescape(found.group(2))
        if language in (None, "python", "py"):
            return highlight_python(code.rstrip("\n"))
        return f'<pre style="{PRE_STYLE}">{html.escape(code)}</pre>'

    page = _MISTUNE_CODE_BLOCK.sub(block, page)
    page = page.replace("<code>", f'<code style="{CODE_STYLE}">')
    return _MISTUNE_LINK.sub(f'<a target="_blank" rel="noopener noreferrer" style="{LINK_STYLE}" href="', page)


# --------------------------------------------------------------------------------------------------
# Pictures: the learner's values beside the expected ones (``checks.core.picture``), two heatmaps
# --------------------------------------------------------------------------------------------------
_VIRIDIS = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))
_NOT_FINITE = (255, 0, 255)  # NaN or inf: magenta, outside the scale
PICTURE_SIZE = 200  # pixels, the longer side of a heatmap at most


def _colour(value: float | None, low: float, high: float) -> tuple[int, int, int]:
    if value is None:
        return _NOT_FINITE
    t = 0.5 if high <= low else min(max((value - low) / (high - low), 0.0), 1.0)
    where = t * (len(_VIRIDIS) - 1)
    i = min(int(where), len(_VIRIDIS) - 2)
    f = where - i
    return tuple(round(a + f * (b - a)) for a, b in zip(_VIRIDIS[i], _VIRIDIS[i + 1]))


def png(pixels: list[list[tuple[int, int, int]]]) -> bytes:
    """An 8-bit RGB PNG of ``pixels`` (rows of (r, g, b)): enough of the format for a heatmap."""
    import struct
    import zlib

    height, width = len(pixels), len(pixels[0])
    raw = b"".join(b"\x00" + bytes(channel for pixel in row for channel in pixel) for row in pixels)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def picture_html(shown: dict) -> str:
    """Two heatmaps side by side, yours and the expected, on one colour scale, with a legend."""
    import base64

    yours, expected = shown.get("yours") or [[None]], shown.get("expected") or [[None]]
    finite = [v for table in (yours, expected) for row in table for v in row if v is not None]
    low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
    if shown.get("mask"):
        low, high = 0.0, 1.0
    rows, columns = len(yours), len(yours[0])
    cell = max(1, min(24, PICTURE_SIZE // max(rows, columns)))
    axes = " × ".join(part for part in (shown.get("rows", ""), shown.get("columns", "")) if part)

    def heatmap(table: list[list[float | None]], caption: str) -> str:
        image = base64.b64encode(png([[_colour(v, low, high) for v in row] for row in table])).decode()
        return (
            f'<div style="display:inline-block;margin:0 12px 0 0;vertical-align:top">'
            f'<div style="font-weight:bold">{html.escape(caption)}</div>'
            f'<img alt="{html.escape(caption)}: a heatmap" src="data:image/png;base64,{image}" '
            f'width="{columns * cell}" height="{rows * cell}" '
            'style="image-rendering:pixelated;image-rendering:crisp-edges;display:block;'
            f'border:1px solid {tint(GREY, 0.5)};max-width:none"></div>'
        )

    if shown.get("mask"):
        legend = "yellow = True (may attend), purple = False (masked)"
    else:
        legend = f"colour scale (the same on both): purple = {low:.3g} … yellow = {high:.3g}"
    if any(v is None for table in (yours, expected) for row in table for v in row):
        legend += "; magenta = NaN or inf"
    return (
        f'<div class="workbook-picture" style="margin-top:6px;white-space:normal">'
        f"<div>{inline(shown.get('title', ''))}{' (' + html.escape(axes) + ')' if axes else ''}:</div>"
        f"{heatmap(yours, 'yours')}{heatmap(expected, 'expected')}"
        f'<div style="color:{MUTED}">{html.escape(legend)}</div></div>'
    )
