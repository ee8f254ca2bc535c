"""Diagrams drawn by code: the SVG files in ``assets/``, and the architecture coloured by owner.

One source of truth for every picture of the workbook: the paper's Figure 1 (the architecture, with
the part a chapter builds highlighted: "you are here"), Figure 2 left (scaled dot-product attention),
the head split and merge of multi-head attention, the padding and future masks, the post-norm
residual block, the learning-rate schedule and a beam-search tree.

The SVG is written by plain string building, so the files regenerate byte-identically on any machine
(no timestamps, no library versions, numbers printed with at most two decimals). It is plain SVG 1.1:
explicit ``width``/``height``/``viewBox``, no CSS, no scripts, no external fonts (text is ``<text>``
with a generic font family), and every diagram sits on its own light rounded background, so it reads
in dark themes too.

* ``workbook build`` writes ``assets/`` (:func:`write_assets`); ``workbook build --check`` reports
  drift (:func:`drifted_assets`).
* The notebooks carry each picture inside them, as a PNG ``data:`` URI in the Markdown (so it shows
  offline, on Colab and on GitHub alike; FORMAT.md, "Pictures from assets/"). The PNGs are derived
  from the SVGs: ``workbook/figures/<stem>.png``, rendered by Chromium (the browser the pictures were
  drawn for) and palette-compressed, each recording the SHA-256 of the SVG text it was rendered from.
  A PNG is rendered again only when its SVG changes (:func:`write_figures`, called by
  :func:`write_assets`), so regenerating the notebooks needs no browser and gives the same bytes on
  every machine; a stale PNG is reported by :func:`drifted_assets`.
* :func:`architecture_owners` draws the architecture coloured by whose part is in it ("yours" or
  "reference"), for chapter 12's assembly to display at runtime.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from workbook.chapters import CHAPTERS, Chapter
from workbook.files import atomic_write

REPO_ROOT = Path(__file__).resolve().parents[1]
ASSETS_DIR = REPO_ROOT / "assets"
# The PNGs the notebooks embed, rendered from the SVGs of assets/; inside the package, so that a plain
# `pip install` (a teacher's `workbook course`) can still build notebooks that carry their pictures.
FIGURES_DIR = Path(__file__).resolve().parent / "figures"

FONT = "Helvetica, Arial, sans-serif"
INK = "#1f2328"  # text
MUTED = "#57606a"  # secondary text
WIRE = "#424a53"  # arrows
PAPER = "#ffffff"  # the diagram's own background (it must read on a dark page too)
EDGE = "#d0d7de"  # the background's border
HIGHLIGHT = "#d1242f"  # "you are here"
DIM = 0.3  # opacity of the parts a chapter does not build
MINUS = "\u2212"

# (fill, stroke) of each kind of box, after the paper's Figure 1
KINDS: dict[str, tuple[str, str]] = {
    "attention": ("#fcd9a8", "#a15c00"),
    "core": ("#fff6e8", "#a15c00"),
    "norm": ("#f4f0a6", "#7d6e00"),
    "ffn": ("#c4e4f6", "#1b6494"),
    "embedding": ("#f8c9d2", "#a8324a"),
    "pe": ("#ffffff", "#424a53"),
    "linear": ("#dcd3f5", "#5b45a8"),
    "softmax": ("#cdebc4", "#2f6e22"),
    "frame": ("#f2f3f5", "#8c959f"),
    "chip": ("#ffffff", "#57606a"),
    "mask": ("#e9e4f7", "#6639ba"),
    "train": ("#ffe3cc", "#a84400"),
    "decode": ("#d6f2f5", "#136c73"),
    "box": ("#f6f8fa", "#8c959f"),  # a container with no owner
}

# the owners diagram: distinct fills AND strokes (colour is not the only cue: yours is solid and
# thick, the reference thin and dashed)
OWNER_LOOKS: dict[str, tuple[str, str, float, str | None]] = {
    "yours": ("#9be1a8", "#116329", 2.5, None),
    "reference": ("#dde1e6", "#6e7781", 1.2, "4 3"),
}
NEUTRAL_LOOK = ("#ffffff", "#8c959f", 1.0, None)


def _n(x: float) -> str:
    """A number for SVG: at most two decimals, no trailing zeros, never '-0'."""
    text = f"{x:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _attrs(**attrs: object) -> str:
    out = []
    for key, value in attrs.items():
        if value is None:
            continue
        if isinstance(value, float | int) and not isinstance(value, bool):
            value = _n(value)
        out.append(f'{key.rstrip("_").replace("_", "-")}="{escape(str(value), {chr(34): "&quot;"})}"')
    return " ".join(out)


class Diagram(str):
    """An SVG document. It is a ``str`` (write it to a file, search it), and Jupyter displays it as
    the picture when it is the last expression of a cell (``_repr_svg_``)."""

    def _repr_svg_(self) -> str:
        return str(self)

    def _repr_pretty_(self, printer, cycle: bool) -> None:  # the plain-text form beside the picture: short
        title = self.split("<title>", 1)[-1].split("</title>", 1)[0] if "<title>" in self else "diagram"
        printer.text(f"[diagram: {title}]")


class _Svg:
    """A plain SVG 1.1 document built element by element."""

    def __init__(self, width: int, height: int, title: str) -> None:
        self.width, self.height, self.title = int(width), int(height), title
        self.parts: list[str] = []

    def add(self, element: str) -> None:
        self.parts.append(element)

    def group(self, id_: str | None = None, opacity: float | None = None) -> None:
        attrs = _attrs(id=id_, opacity=opacity)
        self.add(f"<g {attrs}>" if attrs else "<g>")

    def end(self) -> None:
        self.add("</g>")

    def rect(self, x, y, w, h, fill, stroke=None, width=1.0, rx=4.0, dash=None, opacity=None) -> None:
        self.add(
            "<rect "
            + _attrs(
                x=x,
                y=y,
                width=w,
                height=h,
                rx=rx,
                fill=fill,
                stroke=stroke,
                stroke_width=width if stroke else None,
                stroke_dasharray=dash,
                opacity=opacity,
            )
            + "/>"
        )

    def circle(self, cx, cy, r, fill, stroke=None, width=1.0) -> None:
        self.add("<circle " + _attrs(cx=cx, cy=cy, r=r, fill=fill, stroke=stroke, stroke_width=width) + "/>")

    def line(self, x1, y1, x2, y2, stroke=WIRE, width=1.4, dash=None) -> None:
        self.add(
            "<line "
            + _attrs(x1=x1, y1=y1, x2=x2, y2=y2, stroke=stroke, stroke_width=width, stroke_dasharray=dash)
            + "/>"
        )

    def polyline(self, points, stroke=WIRE, width=1.4, dash=None, fill="none") -> None:
        pts = " ".join(f"{_n(x)},{_n(y)}" for x, y in points)
        self.add(
            "<polyline "
            + _attrs(
                points=pts,
                fill=fill,
                stroke=stroke,
                stroke_width=width,
                stroke_dasharray=dash,
                stroke_linejoin="round",
            )
            + "/>"
        )

    def polygon(self, points, fill, stroke=None, width=1.0) -> None:
        pts = " ".join(f"{_n(x)},{_n(y)}" for x, y in points)
        self.add("<polygon " + _attrs(points=pts, fill=fill, stroke=stroke, stroke_width=width) + "/>")

    def path(self, d, stroke=WIRE, width=1.4, fill="none", dash=None) -> None:
        self.add("<path " + _attrs(d=d, fill=fill, stroke=stroke, stroke_width=width, stroke_dasharray=dash) + "/>")

    def arrow(self, points, stroke=WIRE, width=1.4, dash=None, head=7.0) -> None:
        """A polyline ending in an arrowhead at its last point."""
        points = [(float(x), float(y)) for x, y in points]
        (x1, y1), (x2, y2) = points[-2], points[-1]
        length = math.hypot(x2 - x1, y2 - y1) or 1.0
        ux, uy = (x2 - x1) / length, (y2 - y1) / length
        bx, by = x2 - ux * head, y2 - uy * head
        self.polyline(points[:-1] + [(bx, by)], stroke, width, dash)
        half = head * 0.45
        self.polygon([(x2, y2), (bx - uy * half, by + ux * half), (bx + uy * half, by - ux * half)], stroke)

    def text(self, x, y, content, size=12.0, anchor="middle", weight=None, fill=INK, italic=False, rotate=None):
        """Text; ``x^{2}`` and ``d_{k}`` in it are written as superscript and subscript."""
        runs = _runs(content)
        body, shift = [], 0.0
        for run, kind in runs:
            want = {"sub": size * 0.3, "sup": -size * 0.4}.get(kind, 0.0)
            dy = want - shift
            shift = want
            attrs = _attrs(dy=dy if dy else None, font_size=size * 0.72 if kind else None)
            body.append(f"<tspan {attrs}>{escape(run)}</tspan>" if attrs else escape(run))
        transform = f"rotate({_n(rotate)} {_n(x)} {_n(y)})" if rotate is not None else None
        self.add(
            "<text "
            + _attrs(
                x=x,
                y=y,
                font_size=size,
                text_anchor=anchor,
                font_weight=weight,
                font_style="italic" if italic else None,
                fill=fill,
                transform=transform,
            )
            + ">"
            + "".join(body)
            + "</text>"
        )

    def heading(self, title: str, subtitle: str | None = None) -> None:
        self.text(24, 30, title, size=16, anchor="start", weight="bold")
        if subtitle:
            self.text(24, 52, subtitle, size=12, anchor="start", fill=MUTED)

    def render(self, paper: bool = True) -> Diagram:
        """The document; ``paper``: on the diagrams' own light rounded background."""
        head = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{self.width}" height="{self.height}" '
            f'viewBox="0 0 {self.width} {self.height}" font-family="{FONT}">\n'
            f"<title>{escape(self.title)}</title>\n"
        )
        if paper:
            head += (
                f'<rect x="1" y="1" width="{self.width - 2}" height="{self.height - 2}" rx="12" fill="{PAPER}" '
                f'stroke="{EDGE}" stroke-width="1.5"/>\n'
            )
        return Diagram(head + "\n".join(self.parts) + "\n</svg>\n")


_MARKUP = re.compile(r"([_^])\{([^}]*)\}")


def _runs(text: str) -> list[tuple[str, str | None]]:
    """``"QK^{T} / d_{k}"`` -> runs of plain text, superscripts and subscripts."""
    runs: list[tuple[str, str | None]] = []
    at = 0
    for found in _MARKUP.finditer(text):
        if found.start() > at:
            runs.append((text[at : found.start()], None))
        runs.append((found.group(2), "sup" if found.group(1) == "^" else "sub"))
        at = found.end()
    if at < len(text):
        runs.append((text[at:], None))
    return runs


def _approx_width(text: str, size: float) -> float:
    """A rough width of ``text`` in a sans-serif font (for sizing boxes and legends)."""
    return len(text) * size * 0.56


# --------------------------------------------------------------------------------------------------
# The architecture (Figure 1)
# --------------------------------------------------------------------------------------------------
# Every box of the figure that a part of the workbook builds, with its kind (its colours).
ELEMENTS: dict[str, str] = {
    "input_embedding": "embedding",
    "output_embedding": "embedding",
    "input_pe": "pe",
    "output_pe": "pe",
    "enc_attention": "attention",
    "enc_attention_core": "core",
    "enc_norm1": "norm",
    "enc_ffn": "ffn",
    "enc_norm2": "norm",
    "dec_self_attention": "attention",
    "dec_self_core": "core",
    "dec_norm1": "norm",
    "dec_cross_attention": "attention",
    "dec_cross_core": "core",
    "dec_norm2": "norm",
    "dec_ffn": "ffn",
    "dec_norm3": "norm",
    "encoder_layer": "frame",
    "decoder_layer": "frame",
    "encoder_stack": "chip",
    "decoder_stack": "chip",
    "mask_padding": "mask",
    "mask_future": "mask",
    "mask_combined": "mask",
    "linear": "linear",
    "softmax": "softmax",
    "loss": "train",
    "schedule": "train",
    "greedy": "decode",
    "beam": "decode",
}
_ENCODER_INSIDE = ("enc_attention", "enc_attention_core", "enc_norm1", "enc_ffn", "enc_norm2")
_DECODER_INSIDE = (
    "dec_self_attention",
    "dec_self_core",
    "dec_norm1",
    "dec_cross_attention",
    "dec_cross_core",
    "dec_norm2",
    "dec_ffn",
    "dec_norm3",
)
_CORES = ("enc_attention_core", "dec_self_core", "dec_cross_core")
_MASKS = ("mask_padding", "mask_future", "mask_combined")
# boxes that only hold others (no owner): (kind, what they hold)
_CONTAINERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "masks_box": ("box", _MASKS),
    "decode_box": ("decode", ("greedy", "beam")),
}

# The boxes of each exercise (workbook/chapters.py): what "yours" colours, what a chapter highlights.
PART_ELEMENTS: dict[str, tuple[str, ...]] = {
    "softmax": ("softmax",),
    "TokenEmbedding": ("input_embedding", "output_embedding"),
    "PositionalEncoding": ("input_pe", "output_pe"),
    "scaled_dot_product_attention": _CORES,
    "MultiHeadAttention": ("enc_attention", "dec_self_attention", "dec_cross_attention"),
    "FeedForwardNetwork": ("enc_ffn", "dec_ffn"),
    "LayerNorm": ("enc_norm1", "enc_norm2", "dec_norm1", "dec_norm2", "dec_norm3"),
    "EncoderLayer": ("encoder_layer",),
    "Encoder": ("encoder_stack",),
    "create_padding_mask": ("mask_padding",),
    "create_future_mask": ("mask_future",),
    "create_masks": ("mask_combined",),
    "DecoderLayer": ("decoder_layer",),
    "Decoder": ("decoder_stack",),
    "Transformer": ("linear",),
    "TransformerLRScheduler": ("schedule",),
    "LabelSmoothingLoss": ("loss",),
    "greedy_decode": ("greedy",),
    "beam_search": ("beam",),
}

# Chapters whose highlight is not simply the boxes of their exercises.
_CHAPTER_HIGHLIGHT: dict[str, tuple[str, ...]] = {
    # softmax turns scores into weights inside every attention, and logits into probabilities at the top
    "00_introduction": _CORES + ("softmax",),
    # the assembly: the generator (Linear) whose weight is the embeddings' (section 3.4)
    "09_transformer": ("linear", "input_embedding", "output_embedding"),
    # the whole model, trained
    "12_training_a_translator": tuple(ELEMENTS),
}


def chapter_highlight(info: Chapter) -> tuple[str, ...]:
    """The boxes of the architecture that chapter ``info`` builds ("you are here")."""
    if info.stem in _CHAPTER_HIGHLIGHT:
        return _CHAPTER_HIGHLIGHT[info.stem]
    return tuple(e for name in info.exercises for e in PART_ELEMENTS[name])


@dataclass(frozen=True)
class _Look:
    fill: str
    stroke: str
    width: float = 1.2
    dash: str | None = None
    opacity: float | None = None


def _figure1(look: Callable[[str], _Look], title: str, legend: list[tuple[_Look, str]]) -> Diagram:
    """The Transformer's architecture, each box drawn as ``look(element)`` says."""
    W, H = 720, 740
    svg = _Svg(W, H, title)
    ex, dx, bw = 195.0, 455.0, 160.0  # encoder and decoder column centres, box width
    enc_res, dec_res = ex - bw / 2 - 14, dx + bw / 2 + 14  # residual wires: encoder left, decoder right

    svg.text(24, 30, title, size=16, anchor="start", weight="bold")
    x = 24.0
    for swatch, label in legend:
        svg.rect(x, 42, 26, 14, swatch.fill, swatch.stroke, swatch.width, rx=3, dash=swatch.dash)
        svg.text(x + 32, 53.5, label, size=11.5, anchor="start", fill=INK)
        x += 32 + _approx_width(label, 11.5) + 22

    # every box is a group with the element's name as its id (tests/test_assets.py reads them)
    def box(element: str, cx, y, h, lines, w=bw, size=12.0, weight=None, first=None, spacing=None):
        lk = look(element)
        svg.group(element, lk.opacity)
        svg.rect(cx - w / 2, y, w, h, lk.fill, lk.stroke, lk.width, rx=5, dash=lk.dash)
        if first is None:
            first = y + h / 2 - (len(lines) - 1) * size * 0.6 + size * 0.36
        for i, text in enumerate(lines):
            svg.text(cx, first + i * (spacing or size * 1.2), text, size=size, weight=weight)
        svg.end()

    def attention(element: str, core: str, cx, y, lines):
        box(element, cx, y, 58, lines, first=y + 16, spacing=14)
        box(core, cx, y + 36, 16, ["scaled dot-product"], w=112, size=9.5)  # not inside: its own opacity

    def norm(element: str, cx, y):
        box(element, cx, y, 24, ["Add & Norm"], size=11.5)

    def frame(element: str, x1, x2, top, bottom, label, label_x, anchor):
        lk = look(element)
        svg.group(element, lk.opacity)
        svg.rect(x1, top, x2 - x1, bottom - top, lk.fill, lk.stroke, lk.width, rx=10, dash=lk.dash)
        svg.text(label_x, top - 6, label, size=11.5, anchor=anchor, weight="bold", fill=MUTED)
        svg.end()

    def residual(x_main, y_from, x_wire, y_to, x_into):
        svg.circle(x_main, y_from, 2.2, WIRE)
        svg.arrow([(x_main, y_from), (x_wire, y_from), (x_wire, y_to), (x_into, y_to)])

    bottom = 600.0
    enc_top, dec_top = 350.0, 222.0
    # frames first (they are behind everything)
    frame("encoder_layer", enc_res - 16, ex + bw / 2 + 15, enc_top, bottom, "Encoder", enc_res - 16, "start")
    frame("decoder_layer", dx - bw / 2 - 15, dec_res + 16, dec_top, bottom, "Decoder", dec_res + 16, "end")
    box("encoder_stack", 57, (enc_top + bottom) / 2 - 14, 28, ["N\u00d7"], w=38, size=13, weight="bold")
    box("decoder_stack", 593, (dec_top + bottom) / 2 - 14, 28, ["\u00d7N"], w=38, size=13, weight="bold")

    # ---- encoder (bottom up): self-attention 508..566, norm 468..492, ffn 404..438, norm 364..388
    svg.line(ex, 612, ex, 580)
    svg.line(ex - 48, 580, ex + 48, 580)
    for off in (-48, 0, 48):
        svg.arrow([(ex + off, 580), (ex + off, 566)])
    residual(ex, 590, enc_res, 480, ex - bw / 2)
    attention("enc_attention", "enc_attention_core", ex, 508, ["Multi-Head", "Attention"])
    svg.arrow([(ex, 508), (ex, 492)])
    norm("enc_norm1", ex, 468)
    svg.arrow([(ex, 468), (ex, 438)])
    residual(ex, 453, enc_res, 376, ex - bw / 2)
    box("enc_ffn", ex, 404, 34, ["Feed Forward"])
    svg.arrow([(ex, 404), (ex, 388)])
    norm("enc_norm2", ex, 364)
    # the encoder's output (the memory) into every decoder layer's cross-attention (keys and values)
    mem_x, mem_y = 325.0, 452.0
    svg.polyline([(ex, 364), (ex, 336), (mem_x, 336), (mem_x, mem_y), (dx, mem_y)])
    for off in (-48, 0):
        svg.arrow([(dx + off, mem_y), (dx + off, 438)])

    # ---- decoder (bottom up): masked self-attention 508..566, norm 468..492, cross 380..438,
    # norm 340..364, ffn 276..310, norm 236..260
    svg.line(dx, 612, dx, 580)
    svg.line(dx - 48, 580, dx + 48, 580)
    for off in (-48, 0, 48):
        svg.arrow([(dx + off, 580), (dx + off, 566)])
    residual(dx, 590, dec_res, 480, dx + bw / 2)
    attention("dec_self_attention", "dec_self_core", dx, 508, ["Masked", "Multi-Head Attention"])
    svg.arrow([(dx, 508), (dx, 492)])
    norm("dec_norm1", dx, 468)
    svg.arrow([(dx + 48, 468), (dx + 48, 438)])  # the queries
    residual(dx + 48, 460, dec_res, 352, dx + bw / 2)
    attention("dec_cross_attention", "dec_cross_core", dx, 380, ["Multi-Head", "Attention"])
    svg.arrow([(dx, 380), (dx, 364)])
    norm("dec_norm2", dx, 340)
    svg.arrow([(dx, 340), (dx, 310)])
    residual(dx, 325, dec_res, 248, dx + bw / 2)
    box("dec_ffn", dx, 276, 34, ["Feed Forward"])
    svg.arrow([(dx, 276), (dx, 260)])
    norm("dec_norm3", dx, 236)

    # ---- output: Linear, Softmax, the loss; the decoding loop
    svg.arrow([(dx, 236), (dx, 202)])
    box("linear", dx, 176, 26, ["Linear"])
    svg.arrow([(dx, 176), (dx, 156)])
    box("softmax", dx, 130, 26, ["Softmax"])
    svg.line(dx, 130, dx, 123)
    svg.text(dx, 117, "Output Probabilities", size=11.5, fill=MUTED)
    svg.arrow([(dx, 106), (dx, 96)])
    box("loss", dx, 68, 28, ["Loss: label smoothing (5.4)"], size=11)
    box("schedule", ex, 68, 28, ["Adam + LR schedule (5.3)"], size=11)
    svg.text(ex, 112, "training (chapter 10)", size=10, fill=MUTED, italic=True)
    # decoding (section 6.1): the next token goes back into the decoder's input
    box("decode_box", 667, 112, 84, ["Decoding (6.1)"], w=90, size=10.5, weight="bold", first=126)
    box("greedy", 667, 136, 20, ["greedy"], w=78, size=10)
    box("beam", 667, 162, 20, ["beam search"], w=78, size=10)
    svg.arrow([(dx + bw / 2, 143), (622, 143)])
    svg.arrow([(667, 196), (667, 716), (dx + 82, 716)], dash="5 3")
    svg.text(640, 710, "next token", size=10, fill=MUTED, italic=True)

    # ---- inputs: embeddings and positional encodings
    for cx, side, element_pe, element_emb, label, caption in (
        (ex, -1, "input_pe", "input_embedding", "Input Embedding", "Inputs"),
        (dx, 1, "output_pe", "output_embedding", "Output Embedding", "Outputs (shifted right)"),
    ):
        lk = look(element_pe)
        svg.group(element_pe, lk.opacity)
        svg.circle(cx, 622, 10, lk.fill, lk.stroke, lk.width)
        svg.line(cx - 6, 622, cx + 6, 622, stroke=INK, width=1.6)
        svg.line(cx, 616, cx, 628, stroke=INK, width=1.6)
        icon = cx + side * 46
        svg.circle(icon, 622, 13, lk.fill, lk.stroke, lk.width)
        svg.path(
            f"M {_n(icon - 9)} 622 C {_n(icon - 5)} 610, {_n(icon - 1)} 610, {_n(icon)} 622 "
            f"S {_n(icon + 5)} 634, {_n(icon + 9)} 622",
            stroke=INK,
            width=1.3,
        )
        svg.line(icon - side * 13, 622, cx + side * 10, 622)
        anchor = "end" if side < 0 else "start"
        svg.text(icon + side * 19, 619, "Positional", size=11, anchor=anchor)
        svg.text(icon + side * 19, 632, "Encoding", size=11, anchor=anchor)
        svg.end()
        svg.arrow([(cx, 648), (cx, 633)])
        box(element_emb, cx, 648, 32, [label])
        svg.arrow([(cx, 697), (cx, 680)])
        svg.text(cx, 710, caption, size=11.5, fill=MUTED)

    # ---- the masks (chapter 08): used by every attention
    box("masks_box", 325, 606, 96, ["Masks"], w=84, size=10.5, weight="bold", first=620)
    for i, (element, label) in enumerate(
        (("mask_padding", "padding"), ("mask_future", "future"), ("mask_combined", "pad & future"))
    ):
        box(element, 325, 628 + i * 24, 19, [label], w=72, size=9.5)
    return svg.render()


def _you_are_here_look(highlight: Iterable[str]) -> Callable[[str], _Look]:
    highlight = set(highlight)
    unknown = highlight - set(ELEMENTS)
    if unknown:
        raise ValueError(f"unknown parts of the architecture: {sorted(unknown)}; parts are {sorted(ELEMENTS)}")
    lit = set(highlight)
    if "encoder_layer" in highlight:
        lit |= set(_ENCODER_INSIDE)
    if "decoder_layer" in highlight:
        lit |= set(_DECODER_INSIDE)
    for attention, core in zip(PART_ELEMENTS["MultiHeadAttention"], _CORES):
        if attention in highlight:  # an attention box holds its scaled dot-product
            lit.add(core)
    lit |= {name for name, (_, inside) in _CONTAINERS.items() if lit & set(inside)}

    def look(element: str) -> _Look:
        if element in _CONTAINERS:
            return _Look(*KINDS[_CONTAINERS[element][0]], opacity=None if element in lit or not highlight else DIM)
        fill, stroke = KINDS[ELEMENTS[element]]
        if element in highlight:
            return _Look(fill, HIGHLIGHT, 3.0)
        return _Look(fill, stroke, 1.2, opacity=None if element in lit or not highlight else DIM)

    return look


def architecture(highlight: Iterable[str] = (), title: str = "The Transformer (Figure 1 of the paper)") -> Diagram:
    """Figure 1 with the boxes ``highlight`` (names in :data:`ELEMENTS`) outlined in red and the others
    faded: "you are here"."""
    highlight = tuple(highlight)
    legend = [(_Look("#ffffff", HIGHLIGHT, 3.0), "what this chapter builds")] if highlight else []
    return _figure1(_you_are_here_look(highlight), title, legend)


def chapter_architecture(info: Chapter) -> Diagram:
    """The "you are here" picture of one chapter."""
    return architecture(chapter_highlight(info), f"Chapter {info.stem[:2]} \u00b7 {info.title}: you are here")


def architecture_owners(owners: Mapping[str, str], title: str = "Your Transformer: whose part is where") -> Diagram:
    """Figure 1 coloured by owner: ``owners`` maps exercise names (``TokenEmbedding``,
    ``MultiHeadAttention``, ... every key of :data:`PART_ELEMENTS`) to ``"yours"`` or ``"reference"``.
    Yours: green, solid thick outline; the reference: grey, thin dashed outline; a part not named
    (the output softmax, say) stays white. With a legend. For chapter 12's assembly, e.g.
    ``architecture_owners({name: who for name, (who, _) in assembly.sources.items()})``."""
    unknown = set(owners) - set(PART_ELEMENTS)
    if unknown:
        raise ValueError(f"unknown parts {sorted(unknown)}; parts are {sorted(PART_ELEMENTS)}")
    bad = {name: who for name, who in owners.items() if who not in OWNER_LOOKS}
    if bad:
        raise ValueError(f"owners must be 'yours' or 'reference', not {bad}")
    owner_of = {element: owners[name] for name in owners for element in PART_ELEMENTS[name]}

    def look(element: str) -> _Look:
        if element in _CONTAINERS:
            return _Look(*KINDS[_CONTAINERS[element][0]])
        fill, stroke, width, dash = OWNER_LOOKS.get(owner_of.get(element, ""), NEUTRAL_LOOK)
        if ELEMENTS[element] == "frame" and element in owner_of:  # a frame is a background: a pale tint
            fill = {"yours": "#e3f6e7", "reference": "#f0f1f3"}[owner_of[element]]
        return _Look(fill, stroke, width, dash)

    mine = sum(who == "yours" for who in owners.values())
    legend = [
        (_Look(*OWNER_LOOKS["yours"]), f"yours ({mine})"),
        (_Look(*OWNER_LOOKS["reference"]), f"reference ({len(owners) - mine})"),
    ]
    if set(owner_of) != set(ELEMENTS):
        legend.append((_Look(*NEUTRAL_LOOK), "built in (not an exercise here)"))
    return _figure1(look, title, legend)


# --------------------------------------------------------------------------------------------------
# Scaled dot-product attention (Figure 2, left)
# --------------------------------------------------------------------------------------------------
def attention_diagram() -> Diagram:
    svg = _Svg(600, 520, "Scaled dot-product attention (Figure 2, left, of the paper)")
    svg.heading("Scaled dot-product attention (Figure 2, left)")
    svg.text(24, 54, "Attention(Q, K, V) = softmax(QK^{T} / \u221ad_{k}) V", size=13, anchor="start")
    cx, w, h = 190.0, 140.0, 32.0
    stages = [  # (y, label, kind, dashed, note), top to bottom
        (136, "MatMul", "linear", False, "output [\u2026, S_{q}, d_{v}]"),
        (216, "SoftMax", "softmax", False, "weights [\u2026, S_{q}, S_{k}]: each row sums to 1"),
        (276, "Mask (opt.)", "embedding", True, "where mask is False: \u2212inf (weight 0)"),
        (336, "Scale", "norm", False, "divide by \u221ad_{k}"),
        (396, "MatMul", "linear", False, "scores = QK^{T} [\u2026, S_{q}, S_{k}]"),
    ]
    for y, label, kind, dashed, note in stages:
        fill, stroke = KINDS[kind]
        svg.rect(cx - w / 2, y, w, h, fill, stroke, 1.3, rx=5, dash="5 3" if dashed else None)
        svg.text(cx, y + 21, label, size=13)
        svg.text(cx + w / 2 + 38, y + 21, note, size=11.5, anchor="start", fill=MUTED)
    for (y_hi, *_), (y_lo, *_) in zip(stages[1:], stages[2:]):
        svg.arrow([(cx, y_lo), (cx, y_hi + h)])
    # softmax -> the top MatMul; V joins it from the right
    svg.arrow([(cx - 25, 216), (cx - 25, 168)])
    v = cx + w / 2 + 14  # V goes up beside the boxes
    svg.arrow([(v, 462), (v, 190), (cx + 25, 190), (cx + 25, 168)])
    svg.arrow([(cx, 136), (cx, 96)])
    svg.text(cx, 90, "output", size=12, fill=MUTED)
    # the inputs
    svg.arrow([(cx - 35, 462), (cx - 35, 428)])
    svg.arrow([(cx + 35, 462), (cx + 35, 428)])
    for x, name in ((cx - 35, "Q"), (cx + 35, "K"), (v, "V")):
        svg.text(x, 480, name, size=14, weight="bold")
    svg.text(
        24,
        508,
        "Q [\u2026, S_{q}, d_{k}]\u2003K [\u2026, S_{k}, d_{k}]\u2003V [\u2026, S_{k}, d_{v}]"
        "\u2003(\u2026: any batch axes, e.g. [B, h])",
        size=11,
        anchor="start",
        fill=MUTED,
    )
    return svg.render()


# --------------------------------------------------------------------------------------------------
# Multi-head attention: split into heads, attend, merge
# --------------------------------------------------------------------------------------------------
HEAD_COLOURS = ("#4e79a7", "#e8871e", "#59a14f", "#b0619e")
_GREY = "#aab2bd"


def heads_diagram() -> Diagram:
    h, dk, seq, cell = 4, 2, 3, 12.0
    d = h * dk
    svg = _Svg(940, 400, "Multi-head attention: split into heads, attend, merge")
    svg.heading(
        "Multi-head attention: split the features into h heads, attend, merge",
        "here h = 4 heads and d_model = 8, so each head gets d_k = d_model / h = 2 features; "
        "the sequence is \u201cI like pizza\u201d",
    )

    def grid(x, y, cols, colour_of_col):
        for r in range(seq):
            for c in range(cols):
                svg.rect(x + c * cell, y + r * cell, cell, cell, colour_of_col(c), "#ffffff", 1.0, rx=0)
        svg.rect(x, y, cols * cell, seq * cell, "none", INK, 1.2, rx=0)

    def caption(x_mid, y, name, shape):
        svg.text(x_mid, y, name, size=12.5, weight="bold")
        svg.text(x_mid, y + 16, shape, size=11, fill=MUTED)

    mid = 205.0  # the vertical centre of the flow
    top = mid - seq * cell / 2
    below = top + seq * cell + 20
    x1, x2, x3, x4, x5 = 60.0, 225.0, 455.0, 680.0, 822.0
    for r, word in enumerate(("I", "like", "pizza")):
        svg.text(x1 - 6, top + r * cell + cell * 0.8, word, size=10, anchor="end", fill=MUTED)
    grid(x1, top, d, lambda c: _GREY)
    caption(x1 + d * cell / 2, below, "x", "[B, S, d_model]")
    grid(x2, top, d, lambda c: HEAD_COLOURS[c // dk])
    caption(x2 + d * cell / 2, below, "Q (K, V alike)", "[B, S, d_model]")
    # the heads, side by side on their own axis
    gap = 14.0
    stack = h * seq * cell + (h - 1) * gap
    y3 = mid - stack / 2
    box_w = dk * cell + 88
    svg.rect(x3 - 16, y3 - 14, box_w, stack + 28, "#fff6e8", KINDS["attention"][1], 1.2, rx=8, dash="5 3")
    for i in range(h):
        y = y3 + i * (seq * cell + gap)
        grid(x3, y, dk, lambda c, i=i: HEAD_COLOURS[i])
        svg.text(x3 + dk * cell + 10, y + seq * cell / 2 + 4, f"head {i + 1}", size=11, anchor="start")
    svg.text(x3 - 16 + box_w / 2, y3 + stack + 32, "attention in every head,", size=11, fill=MUTED)
    svg.text(x3 - 16 + box_w / 2, y3 + stack + 46, "in parallel: [B, h, S, d_k]", size=11, fill=MUTED)
    grid(x4, top, d, lambda c: HEAD_COLOURS[c // dk])
    caption(x4 + d * cell / 2, below, "concat", "[B, S, d_model]")
    grid(x5, top, d, lambda c: "#6e7781")
    caption(x5 + d * cell / 2, below, "out", "[B, S, d_model]")
    svg.text(x5 + d * cell / 2, top - 10, "heads mixed", size=10, fill=MUTED, italic=True)

    def step(xa, xb, lines):
        svg.arrow([(xa + 8, mid), (xb - 8, mid)])
        for i, line in enumerate(lines):
            svg.text((xa + xb) / 2, mid - 12 - (len(lines) - 1 - i) * 14, line, size=10.5)

    step(x1 + d * cell, x2, ["W_q, W_k, W_v", "(nn.Linear)"])
    step(x2 + d * cell, x3 - 16, [".view(B, S, h, d_k)", ".transpose(1, 2)"])
    step(x3 - 16 + box_w, x4, [".transpose(1, 2)", ".view(B, S, d_model)"])
    step(x4 + d * cell, x5, ["W_o"])
    svg.text(
        24,
        382,
        "Head i sees only features i\u00b7d_k \u2026 (i+1)\u00b7d_k of each projection; "
        "W_o mixes the heads back together.",
        size=11.5,
        anchor="start",
        fill=MUTED,
    )
    return svg.render()


# --------------------------------------------------------------------------------------------------
# Masks
# --------------------------------------------------------------------------------------------------
def masks_diagram() -> Diagram:
    tokens = ("<s>", "ich", "mag", "Pizza", "<pad>")
    n, cell = len(tokens), 28.0
    pad = [t == "<pad>" for t in tokens]
    masks = (
        ("padding mask", "[B, 1, 1, T]: hides <pad> keys", lambda q, k: not pad[k]),
        ("future mask", "[1, 1, T, T]: k \u2264 q", lambda q, k: k <= q),
        ("target mask", "[B, 1, T, T]: both", lambda q, k: not pad[k] and k <= q),
    )
    svg = _Svg(820, 340, "The padding mask, the future mask and their AND")
    svg.heading("Masks: True = may attend (row: the query, column: the key)")
    on, off = "#2f6fb3", "#eef0f3"
    x0, y0 = 80.0, 100.0
    for i, (name, shape, allowed) in enumerate(masks):
        x = x0 + i * 265
        svg.text(x + n * cell / 2, y0 - 42, name, size=13, weight="bold")
        for k, token in enumerate(tokens):
            svg.text(x + k * cell + cell / 2, y0 - 8, token, size=9, fill=MUTED, rotate=-35)
        for q, token in enumerate(tokens):
            svg.text(x - 6, y0 + q * cell + cell * 0.64, token, size=9.5, anchor="end", fill=MUTED)
            for k in range(n):
                ok = allowed(q, k)
                svg.rect(x + k * cell, y0 + q * cell, cell, cell, on if ok else off, "#ffffff", 1.5, rx=2)
                if not ok:
                    svg.text(x + k * cell + cell / 2, y0 + q * cell + cell * 0.66, "\u00d7", size=12, fill="#8c959f")
        svg.rect(x, y0, n * cell, n * cell, "none", "#57606a", 1.0, rx=2)
        svg.text(x + n * cell / 2, y0 + n * cell + 22, shape, size=11, fill=MUTED)
        if i < 2:
            svg.text(x + n * cell + 58, y0 + n * cell / 2 + 6, "AND" if i == 0 else "=", size=16, weight="bold")
    svg.text(24, y0 + 76, "query", size=10, fill=MUTED, rotate=-90)
    svg.rect(24, 292, 16, 16, on, None, rx=2)
    svg.text(46, 304, "True: may attend", size=11.5, anchor="start")
    svg.rect(170, 292, 16, 16, off, "#8c959f", 1.0, rx=2)
    svg.text(178, 304.5, "\u00d7", size=12, fill="#8c959f")
    svg.text(192, 304, "False: the score becomes \u2212inf, the weight 0", size=11.5, anchor="start")
    svg.text(
        24,
        326,
        "The source mask [B, 1, 1, S] (encoder self-attention, cross-attention) is the padding mask of the source.",
        size=11,
        anchor="start",
        fill=MUTED,
    )
    return svg.render()


# --------------------------------------------------------------------------------------------------
# The post-norm residual block
# --------------------------------------------------------------------------------------------------
def residual_diagram() -> Diagram:
    svg = _Svg(760, 230, "The post-norm residual block: LayerNorm(x + Dropout(Sublayer(x)))")
    svg.heading("Add & Norm around a sub-layer (post-norm, as in the paper)")
    y = 112.0
    svg.text(44, y + 5, "x", size=15, weight="bold")
    svg.circle(70, y, 2.5, WIRE)
    svg.line(54, y, 70, y)
    boxes = (
        (90, 200, "Sublayer", "attention or feed-forward", "attention"),
        (320, 110, "Dropout", "p = 0.1 (5.4)", "box"),
    )
    for x, w, label, note, kind in boxes:
        fill, stroke = KINDS[kind]
        svg.rect(x, y - 18, w, 36, fill, stroke, 1.3, rx=5)
        svg.text(x + w / 2, y + 5, label, size=13)
        svg.text(x + w / 2, y - 26, note, size=10.5, fill=MUTED)
    svg.arrow([(70, y), (90, y)])
    svg.arrow([(290, y), (320, y)])
    svg.arrow([(430, y), (465, y)])
    svg.circle(478, y, 13, "#ffffff", WIRE, 1.4)
    svg.text(478, y + 6, "+", size=18, weight="bold")
    svg.arrow([(70, y), (70, y + 52), (478, y + 52), (478, y + 13)])
    svg.text(270, y + 46, "the residual: x itself, unchanged", size=10.5, fill=MUTED, italic=True)
    fill, stroke = KINDS["norm"]
    svg.arrow([(491, y), (530, y)])
    svg.rect(530, y - 18, 110, 36, fill, stroke, 1.3, rx=5)
    svg.text(585, y + 5, "LayerNorm", size=13)
    svg.arrow([(640, y), (680, y)])
    svg.text(700, y + 5, "out", size=14, weight="bold")
    svg.text(24, 200, "out = LayerNorm(x + Dropout(Sublayer(x)))", size=13, anchor="start")
    svg.text(340, 200, "every shape is [B, S, d_model]", size=12, anchor="start", fill=MUTED)
    return svg.render()


# --------------------------------------------------------------------------------------------------
# The learning-rate schedule (section 5.3)
# --------------------------------------------------------------------------------------------------
def lr_rate(step: int, d_model: int = 512, warmup: int = 4000) -> float:
    """lrate = d_model^-0.5 * min(step^-0.5, step * warmup^-1.5), with correctly rounded operations
    only (sqrt, *, /), so the points are the same on every machine."""
    return min(1.0 / math.sqrt(step), step / (warmup * math.sqrt(warmup))) / math.sqrt(d_model)


def schedule_diagram(d_model: int = 512, warmup: int = 4000, last: int = 40000) -> Diagram:
    svg = _Svg(680, 400, "The learning-rate schedule of section 5.3")
    svg.heading("The learning-rate schedule (section 5.3)")
    formula = "lrate = d_{model}^{\u22120.5} \u00b7 min(step^{\u22120.5}, step \u00b7 warmup_steps^{\u22121.5})"
    svg.text(24, 54, formula, size=13, anchor="start")
    left, right, top, bottom = 90.0, 640.0, 80.0, 330.0
    y_max = 8e-4

    def px(step: float) -> float:
        return left + (right - left) * step / last

    def py(rate: float) -> float:
        return bottom - (bottom - top) * rate / y_max

    for i in range(5):  # grid and y ticks
        rate = i * 2e-4
        svg.line(left, py(rate), right, py(rate), stroke="#e6e9ed", width=1.0)
        svg.text(left - 8, py(rate) + 4, f"{rate:.4f}" if i else "0", size=10.5, anchor="end", fill=MUTED)
    for i in range(5):  # x ticks
        step = i * last // 4
        svg.line(px(step), bottom, px(step), bottom + 5, stroke=MUTED, width=1.0)
        svg.text(px(step), bottom + 19, f"{step:,}", size=10.5, fill=MUTED)
    svg.polyline([(left, top - 6), (left, bottom), (right + 6, bottom)], stroke=INK, width=1.2)
    svg.text((left + right) / 2, bottom + 40, "training step", size=12)
    svg.text(28, (top + bottom) / 2, "learning rate", size=12, rotate=-90)
    peak = lr_rate(warmup, d_model, warmup)
    svg.line(px(warmup), py(peak), px(warmup), bottom, stroke="#8c959f", width=1.0, dash="4 3")
    steps = sorted({1, *range(100, last + 1, 100), warmup})
    svg.polyline([(px(s), py(lr_rate(s, d_model, warmup))) for s in steps], stroke="#2f6fb3", width=2.2)
    svg.circle(px(warmup), py(peak), 3.5, "#d1242f")
    svg.text(px(warmup) + 10, py(peak) - 4, f"peak at step {warmup:,}: {peak:.2e}", size=11, anchor="start")
    svg.text(
        px(warmup) + 10,
        py(peak) + 14,
        "= (d_{model} \u00b7 warmup_steps)^{\u22120.5}",
        size=10.5,
        anchor="start",
        fill=MUTED,
    )
    y_half = py(lr_rate(warmup // 2, d_model, warmup))
    svg.text(px(warmup / 2) + 10, y_half + 20, "warmup: linear", size=10.5, anchor="start", fill=MUTED)
    svg.text(px(22000), py(lr_rate(22000)) - 14, "then \u221d 1/\u221astep", size=11, fill=MUTED)
    svg.text(right, top - 8, f"d_model = {d_model}, warmup_steps = {warmup:,}", size=11, anchor="end", fill=MUTED)
    return svg.render()


# --------------------------------------------------------------------------------------------------
# Beam search (section 6.1), on chapter 11's hand-built bigram model
# --------------------------------------------------------------------------------------------------
BIGRAM = {
    "<s>": {"I": 0.9, "it": 0.1},
    "I": {"like": 0.45, "love": 0.4, "really": 0.15},
    "like": {"pizza": 0.36, "pasta": 0.34, "it": 0.3},
    "love": {"pizza": 0.95, "pasta": 0.05},
    "really": {"love": 0.9, "like": 0.1},
    "pizza": {"</s>": 1.0},
    "pasta": {"</s>": 1.0},
    "it": {"</s>": 1.0},
}


@dataclass
class _Node:
    words: tuple[str, ...]
    logp: float
    state: str  # "kept", "pruned", "finished"
    children: list[_Node]
    row: float = 0.0


def _beam_tree(beam: int = 2, steps: int = 4) -> _Node:
    """Plain beam search on :data:`BIGRAM`, keeping every expansion for the picture."""
    root = _Node(("<s>",), 0.0, "kept", [])
    frontier = [root]
    for _ in range(steps):
        candidates = []
        for node in frontier:
            for word, p in BIGRAM.get(node.words[-1], {}).items():
                child = _Node(node.words + (word,), node.logp + math.log(p), "pruned", [])
                node.children.append(child)
                candidates.append(child)
        candidates.sort(key=lambda c: -c.logp)
        frontier = []
        for child in candidates[:beam]:
            child.state = "finished" if child.words[-1] == "</s>" else "kept"
            if child.state == "kept":
                frontier.append(child)
        if not frontier:
            break
    return root


def beam_diagram(beam: int = 2) -> Diagram:
    root = _beam_tree(beam)
    rows = [0]

    def place(node: _Node) -> None:  # leaves get consecutive rows, a parent the middle of its children
        if not node.children:
            node.row = rows[0]
            rows[0] += 1
            return
        for child in node.children:
            place(child)
        node.row = (node.children[0].row + node.children[-1].row) / 2

    place(root)
    nodes_w, nodes_h, col, row_h, x0, y0 = 96.0, 34.0, 150.0, 44.0, 30.0, 96.0
    height = int(y0 + rows[0] * row_h + 70)
    svg = _Svg(int(x0 * 2 + col * 4 + nodes_w), height, "Beam search with beam size 2 on chapter 11's bigram model")
    svg.heading(
        f"Beam search, beam size {beam}: keep the {beam} best partial sentences at every step",
        "score: the summed log-probability log P under chapter 11's bigram model (finished sentences are then "
        "ranked by length-penalised score)",
    )
    for depth in range(5):
        svg.text(x0 + depth * col + nodes_w / 2, 78, "start" if depth == 0 else f"step {depth}", size=11, fill=MUTED)
    best = max((n for n in _walk(root) if n.state == "finished"), key=lambda n: n.logp)
    looks = {
        "kept": ("#dbe9fb", "#1f5fb4", 1.4, None, INK),
        "finished": ("#d6f5dd", "#1a7f37", 1.6, None, INK),
        "pruned": ("#f6f8fa", "#8c959f", 1.0, "4 3", "#6e7781"),
    }

    def draw(node: _Node, depth: int) -> None:
        x, y = x0 + depth * col, y0 + node.row * row_h
        for child in node.children:
            cy = y0 + child.row * row_h
            dash = "4 3" if child.state == "pruned" else None
            colour = "#8c959f" if child.state == "pruned" else WIRE
            ends = [(x + nodes_w, y + nodes_h / 2), (x + col, cy + nodes_h / 2)]
            svg.arrow(ends, stroke=colour, dash=dash, width=1.2)
            draw(child, depth + 1)
        fill, stroke, width, dash, ink = looks[node.state]
        if node is best:
            width = 3.0
        svg.rect(x, y, nodes_w, nodes_h, fill, stroke, width, rx=6, dash=dash)
        svg.text(x + nodes_w / 2, y + 14, node.words[-1], size=12, weight="bold", fill=ink)
        logp = f"{node.logp:.2f}".replace("-", MINUS)
        svg.text(x + nodes_w / 2, y + 28, f"log P {logp}", size=10, fill=ink)

    draw(root, 0)
    legend_y = height - 34
    x = 24.0
    for state, label in (("kept", "in the beam"), ("finished", "finished (</s>)"), ("pruned", "pruned")):
        fill, stroke, width, dash, _ = looks[state]
        svg.rect(x, legend_y - 11, 24, 14, fill, stroke, width, rx=3, dash=dash)
        svg.text(x + 30, legend_y, label, size=11.5, anchor="start")
        x += 30 + _approx_width(label, 11.5) + 24
    sentence = " ".join(best.words[1:-1])
    svg.text(
        24,
        legend_y + 22,
        f"best: \u201c{sentence}\u201d, P = {math.exp(best.logp):.3f}. Greedy takes \u201clike\u201d "
        f"(0.45 > 0.4) and ends with \u201cI like pizza\u201d, P = {0.9 * 0.45 * 0.36:.3f}.",
        size=11.5,
        anchor="start",
    )
    return svg.render()


def _walk(node: _Node) -> Iterable[_Node]:
    yield node
    for child in node.children:
        yield from _walk(child)


# --------------------------------------------------------------------------------------------------
# The "Open in Colab" badge of every chapter's header
# --------------------------------------------------------------------------------------------------
COLAB_BADGE = "open-in-colab.svg"


def colab_badge() -> Diagram:
    """The header's "Open in Colab" badge, drawn here (Colab's own is an image on Colab's site, broken
    offline) and embedded like every picture: 118 x 20, "Open in" on grey, "Colab" on Colab's amber."""
    svg = _Svg(118, 20, "Open in Colab")
    svg.rect(0, 0, 118, 20, "#f9ab00", rx=3)
    svg.rect(0, 0, 54, 20, "#4a4f55", rx=3)
    svg.rect(50, 0, 4, 20, "#4a4f55", rx=0)
    svg.text(27, 14, "Open in", size=11, fill="#ffffff")
    svg.text(86, 14, "Colab", size=11, weight="bold", fill=INK)
    return svg.render(paper=False)


# --------------------------------------------------------------------------------------------------
# The files in assets/, writing and drift
# --------------------------------------------------------------------------------------------------
def architecture_asset(info: Chapter) -> str:
    """The file name of a chapter's "you are here" picture in ``assets/``."""
    return f"architecture-{info.stem}.svg"


def _asset_makers() -> dict[str, Callable[[], str]]:
    makers: dict[str, Callable[[], str]] = {
        architecture_asset(info): (lambda info=info: chapter_architecture(info)) for info in CHAPTERS
    }
    makers.update(
        {
            "attention.svg": attention_diagram,
            "multi-head.svg": heads_diagram,
            "masks.svg": masks_diagram,
            "residual.svg": residual_diagram,
            "lr-schedule.svg": schedule_diagram,
            "beam-search.svg": beam_diagram,
            COLAB_BADGE: colab_badge,
        }
    )
    return makers


ASSET_NAMES: tuple[str, ...] = tuple(_asset_makers())


def asset_texts() -> dict[str, str]:
    """Every file of ``assets/``: name -> its SVG text."""
    return {name: str(make()) for name, make in _asset_makers().items()}


def write_assets(out_dir: Path = ASSETS_DIR) -> list[Path]:
    """(Re)write ``assets/``; only files whose text changes are touched. Returns the written paths,
    the PNGs of ``workbook/figures/`` rendered again because their SVG changed included."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    texts = asset_texts()
    for name, text in texts.items():
        target = out_dir / name
        if not target.exists() or target.read_bytes() != text.encode("utf-8"):
            atomic_write(target, text)
            written.append(target)
    return written + write_figures(texts)


# --------------------------------------------------------------------------------------------------
# The PNGs the notebooks embed (workbook/figures/), derived from the SVGs
# --------------------------------------------------------------------------------------------------
# The PNG's text chunk that names the SVG it was rendered from (the SHA-256 of the SVG text).
SOURCE_KEY = "svg-sha256"


def figure_name(name: str) -> str:
    """``attention.svg`` -> ``attention.png``: the file of ``workbook/figures/`` drawn from it."""
    return name.removesuffix(".svg") + ".png"


def svg_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def figure_source(path: Path) -> str | None:
    """The SVG digest a PNG of ``workbook/figures/`` records, or None (not one of ours, unreadable)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.text.get(SOURCE_KEY)  # type: ignore[attr-defined]
    except (OSError, ValueError):
        return None


def figure_png(name: str, figures_dir: Path = FIGURES_DIR) -> bytes:
    """The PNG bytes a notebook embeds for ``assets/<name>``."""
    path = Path(figures_dir) / figure_name(name)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `workbook build` (it renders the SVGs of assets/)")
    return path.read_bytes()


def stale_figures(texts: Mapping[str, str] | None = None, figures_dir: Path = FIGURES_DIR) -> list[str]:
    """The SVG names whose PNG is missing or was rendered from another SVG text."""
    texts = asset_texts() if texts is None else texts
    figures_dir = Path(figures_dir)
    return [name for name, text in texts.items() if figure_source(figures_dir / figure_name(name)) != svg_digest(text)]


def write_figures(texts: Mapping[str, str] | None = None, figures_dir: Path = FIGURES_DIR) -> list[Path]:
    """Render the PNG of every SVG whose PNG is stale (Chromium, through playwright: only when a
    picture changed); drop PNGs no SVG makes. Returns the written paths."""
    texts = asset_texts() if texts is None else texts
    figures_dir = Path(figures_dir)
    stale = stale_figures(texts, figures_dir)
    written = []
    if stale:
        for name, png in render_pngs({name: texts[name] for name in stale}).items():
            written.append(atomic_write(figures_dir / figure_name(name), png))
    wanted = {figure_name(name) for name in texts}
    for path in sorted(figures_dir.glob("*.png")) if figures_dir.is_dir() else ():
        if path.name not in wanted:
            path.unlink()
    return written


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def render_pngs(texts: Mapping[str, str]) -> dict[str, bytes]:
    """Each SVG rendered at its own size by headless Chromium, as a compressed PNG recording its SVG.

    Chromium, because browsers are what the SVGs were drawn for: it substitutes fonts per glyph as
    the notebook front ends do (cairo, for one, leaves a hole for a glyph like U+221D that the
    sans-serif font lacks). Needs playwright (the ``test`` extra) and Debian's chromium (or
    playwright's own build)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        raise RuntimeError(
            f"{len(texts)} picture(s) of assets/ changed ({', '.join(texts)}): rendering their PNGs needs "
            "playwright and chromium: pip install -e '.[test]' and apt-get install -y chromium"
        ) from error
    pngs = {}
    with sync_playwright() as driver:
        executable = _chromium()
        browser = driver.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page(device_scale_factor=1)
            for name, text in texts.items():
                width, height = (int(v) for v in re.search(r'width="(\d+)" height="(\d+)"', text).groups())
                page.set_viewport_size({"width": width, "height": height})
                page.set_content(f"<!DOCTYPE html><html><body style='margin:0'>{text}</body></html>")
                shot = page.screenshot(clip={"x": 0, "y": 0, "width": width, "height": height})
                pngs[name] = compress_png(shot, svg_digest(text))
        finally:
            browser.close()
    return pngs


def compress_png(png: bytes, source: str) -> bytes:
    """A screenshot as a 256-colour palette PNG (octree, no dithering: flat colours and anti-aliased
    edges stay within a few levels of the original, at a third of the size), with ``source`` (the
    SVG's digest) in a text chunk and nothing else that could change between runs."""
    from PIL import Image, PngImagePlugin

    with Image.open(io.BytesIO(png)) as shot:
        image = shot.convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    info = PngImagePlugin.PngInfo()
    info.add_text(SOURCE_KEY, source)
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True, pnginfo=info)
    return out.getvalue()


def drifted_assets(out_dir: Path = ASSETS_DIR) -> list[str]:
    """Files of ``out_dir`` that are missing, differ from what this module draws, or are not drawn here."""
    out_dir = Path(out_dir)
    texts = asset_texts()
    out = []
    for name, text in texts.items():
        target = out_dir / name
        if not target.exists():
            out.append(f"{target} (missing)")
        elif target.read_bytes() != text.encode("utf-8"):
            out.append(f"{target} (differs from workbook/diagrams.py)")
    if out_dir.is_dir():
        for path in sorted(out_dir.iterdir()):
            if path.name not in texts:
                out.append(f"{path} (not drawn by workbook/diagrams.py: delete it, or draw it there)")
    for name in stale_figures(texts):
        out.append(f"{FIGURES_DIR / figure_name(name)} (not rendered from the current {name}: run `workbook build`)")
    return out
