"""The pictures in assets/: drawn by workbook/diagrams.py, committed in sync, shown by every chapter.

* regenerating assets/ gives byte-identical files, and ``workbook build --check`` catches a drifted one;
* every SVG is plain SVG 1.1 with width, height and viewBox, its own light background, no scripts, no
  CSS, no external references;
* every chapter's learner notebook shows its "you are here" architecture before its first exercise,
  and every file of assets/ is shown by some chapter, embedded as the PNG rendered from its SVG
  (``workbook/figures/``, kept in step with the SVG by the digest it records);
* the architecture coloured by owner (chapter 12) tells "yours" from "reference" apart, with a legend.
"""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import nbformat
import pytest

from workbook import diagrams, notebooks
from workbook.chapters import CHAPTERS, EXERCISE_TO_CHAPTER
from workbook.cli import main

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "assets"
SVG = "{http://www.w3.org/2000/svg}"
WRITTEN = [ch.stem for ch in notebooks.available_chapters()]


def parse(text: str) -> ET.Element:
    return ET.fromstring(text.encode("utf-8"))


def group(root: ET.Element, element: str) -> ET.Element:
    found = root.find(f".//{SVG}g[@id='{element}']")
    assert found is not None, f"no <g id={element!r}> in the diagram"
    return found


def box_rect(root: ET.Element, element: str) -> ET.Element:
    """The shape that wears the element's colours: its box (or, for a positional encoding, its circle)."""
    g = group(root, element)
    return g.find(f"{SVG}rect") if g.find(f"{SVG}rect") is not None else g.find(f"{SVG}circle")


def texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


# --------------------------------------------------------------------------------------------------
# The files: in sync, deterministic, plain SVG
# --------------------------------------------------------------------------------------------------
def test_regenerating_the_assets_gives_byte_identical_files(tmp_path):
    written = diagrams.write_assets(tmp_path)
    assert sorted(p.name for p in written) == sorted(diagrams.ASSET_NAMES)
    committed = sorted(p.name for p in ASSETS.iterdir())
    assert committed == sorted(diagrams.ASSET_NAMES), "assets/ holds exactly the files diagrams.py draws"
    differ = [n for n in diagrams.ASSET_NAMES if (ASSETS / n).read_bytes() != (tmp_path / n).read_bytes()]
    assert not differ, f"assets/ is out of date for {differ}: run `workbook build` and commit"
    assert diagrams.drifted_assets(ASSETS) == []
    assert diagrams.write_assets(tmp_path) == [], "a second build writes nothing"
    assert diagrams.asset_texts() == diagrams.asset_texts(), "drawing is deterministic"


def test_drift_is_reported_and_repaired(tmp_path):
    diagrams.write_assets(tmp_path)
    target = tmp_path / "masks.svg"
    target.write_text(target.read_text(encoding="utf-8").replace("future mask", "futur mask"), encoding="utf-8")
    (tmp_path / "architecture-03_attention.svg").unlink()
    (tmp_path / "by-hand.svg").write_text("<svg/>", encoding="utf-8")
    drift = diagrams.drifted_assets(tmp_path)
    assert any("masks.svg (differs" in line for line in drift)
    assert any("architecture-03_attention.svg (missing)" in line for line in drift)
    assert any("by-hand.svg (not drawn" in line for line in drift)
    assert sorted(p.name for p in diagrams.write_assets(tmp_path)) == ["architecture-03_attention.svg", "masks.svg"]


def test_workbook_build_writes_and_checks_the_assets(tmp_path, capsys):
    out = tmp_path / "chapters"
    assert main(["build", "01", "--out", str(out)]) == 0
    assert sorted(p.name for p in (tmp_path / "assets").iterdir()) == sorted(diagrams.ASSET_NAMES)
    assert main(["build", "--check", "01", "--out", str(out)]) == 0
    picture = tmp_path / "assets" / "lr-schedule.svg"
    picture.write_text(picture.read_text(encoding="utf-8") + "<!-- edited -->", encoding="utf-8")
    capsys.readouterr()
    assert main(["build", "--check", "01", "--out", str(out)]) == 1
    assert "lr-schedule.svg" in capsys.readouterr().out
    assert main(["build", "01", "--out", str(out)]) == 0
    assert main(["build", "--check", "01", "--out", str(out)]) == 0


@pytest.mark.parametrize("name", diagrams.ASSET_NAMES)
def test_each_svg_is_plain_svg_with_its_own_background(name):
    text = (ASSETS / name).read_text(encoding="utf-8")
    root = parse(text)
    assert root.tag == f"{SVG}svg" and root.get("version") == "1.1"
    width, height = int(root.get("width")), int(root.get("height"))
    assert root.get("viewBox") == f"0 0 {width} {height}"
    first = root[1] if root[0].tag == f"{SVG}title" else root[0]
    if name == diagrams.COLAB_BADGE:  # a badge, the size of Colab's own, opaque all over
        assert (width, height) == (118, 20) and first.tag == f"{SVG}rect"
        assert (first.get("width"), first.get("height")) == ("118", "20")
    else:
        assert 200 <= width <= 1000 and 150 <= height <= 1000, "a size that fits a notebook cell"
        assert first.tag == f"{SVG}rect" and first.get("fill") == "#ffffff", "a light background of its own"
        assert float(first.get("width")) >= width - 2 and float(first.get("height")) >= height - 2
    tags = {el.tag.removeprefix(SVG) for el in root.iter()}
    assert not tags & {"script", "style", "image", "foreignObject", "a", "use"}, tags
    for el in root.iter():
        assert not [k for k in el.attrib if "href" in k or k.startswith("on") or k == "style"], el.attrib
    assert "http" not in text.replace('xmlns="http://www.w3.org/2000/svg"', ""), "no external references"
    assert "@font-face" not in text and "url(" not in text
    for t in root.iter(f"{SVG}text"):
        assert "".join(t.itertext()).strip(), "no empty text"
    numbers = re.findall(r'(?:x|y|width|height|r|cx|cy)="(-?[0-9.]+)"', text)
    assert all(len(n.partition(".")[2]) <= 2 for n in numbers), "fixed formatting: at most two decimals"
    assert root.get("font-family", "").endswith("sans-serif"), "a generic font family"


# --------------------------------------------------------------------------------------------------
# The notebooks show them
# --------------------------------------------------------------------------------------------------
_DATA_URIS: dict[str, str] = {}


def shown_assets(cell) -> list[str]:
    """The assets/ files a Markdown cell shows (by the data: URI of their PNG, notebooks.asset_data_uri)."""
    if not _DATA_URIS:
        _DATA_URIS.update({notebooks.asset_data_uri(name): name for name in diagrams.ASSET_NAMES})
    uris = re.findall(r"!\[[^\]]+\]\((data:image/png;base64,[A-Za-z0-9+/=]+)\)", cell.source)
    return [_DATA_URIS.get(uri, "(an embedded image not drawn from assets/)") for uri in uris]


@pytest.mark.parametrize("stem", WRITTEN)
def test_every_chapter_shows_where_it_is_before_its_first_exercise(stem):
    info = notebooks.chapter(stem)
    nb = nbformat.read(REPO / "chapters" / f"{stem}.ipynb", as_version=4)
    name = diagrams.architecture_asset(info)
    where = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and name in shown_assets(c)]
    assert where, f"{stem} does not show assets/{name}"
    first_code = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    exercises = [i for i, c in enumerate(nb.cells) if c.metadata["workbook"]["role"] == "exercise"]
    assert where[0] < first_code and (not exercises or where[0] < exercises[0]), "near the top"
    assert (ASSETS / name).read_bytes() == str(diagrams.chapter_architecture(info)).encode("utf-8")
    # the solved copy is built by the same cells
    solved = notebooks.build_cells(notebooks.load_source(stem), "solved")
    assert any(name in shown_assets(nbformat.v4.new_markdown_cell(c.source)) for c in solved[: where[0] + 1])


def test_every_asset_is_shown_by_some_chapter():
    shown = set()
    for stem in WRITTEN:
        nb = nbformat.read(REPO / "chapters" / f"{stem}.ipynb", as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                shown.update(shown_assets(cell))
    assert shown <= set(diagrams.ASSET_NAMES), shown - set(diagrams.ASSET_NAMES)
    assert {p.name for p in ASSETS.iterdir()} <= shown, "a picture in assets/ no chapter shows"


@pytest.mark.parametrize("stem", WRITTEN)
def test_the_colab_badge_is_embedded_too(stem):
    """Colab's own badge is an image on Colab's site: broken offline. The header draws ours."""
    header = nbformat.read(REPO / "chapters" / f"{stem}.ipynb", as_version=4).cells[0]
    badge = notebooks.asset_data_uri(diagrams.COLAB_BADGE)
    assert f"[![Open In Colab]({badge})]({notebooks.colab_url(stem)})" in header.source
    assert "colab-badge.svg" not in header.source


def test_the_explaining_pictures_are_in_their_chapters():
    where = {
        "attention.svg": "03_attention",
        "multi-head.svg": "04_multi_head_attention",
        "residual.svg": "06_layer_norm",
        "masks.svg": "08_decoder",
        "lr-schedule.svg": "10_training",
        "beam-search.svg": "11_inference",
    }
    for name, stem in where.items():
        nb = nbformat.read(REPO / "chapters" / f"{stem}.ipynb", as_version=4)
        assert any(name in shown_assets(c) for c in nb.cells if c.cell_type == "markdown"), (name, stem)


def test_a_picture_is_embedded_as_the_png_of_its_svg():
    """No network needed: the notebook carries the PNG itself (FORMAT.md, "Pictures from assets/")."""
    png = diagrams.figure_png("masks.svg")
    uri = notebooks.asset_data_uri("masks.svg")
    assert uri == "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    assert notebooks.embed_assets("see ![the masks](assets/masks.svg) here") == f"see ![the masks]({uri}) here"
    for cell in nbformat.read(REPO / "chapters" / "08_decoder.ipynb", as_version=4).cells:
        assert "raw.githubusercontent.com" not in cell.source and "](assets/" not in cell.source


@pytest.mark.parametrize("name", diagrams.ASSET_NAMES)
def test_each_png_is_rendered_from_the_current_svg_at_its_size(name):
    from PIL import Image

    svg = (ASSETS / name).read_text(encoding="utf-8")
    root = parse(svg)
    path = diagrams.FIGURES_DIR / diagrams.figure_name(name)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.mode == "P", "a palette PNG: small"
        assert image.size == (int(root.get("width")), int(root.get("height"))), "drawn at the SVG's own size"
        assert image.text.get(diagrams.SOURCE_KEY) == diagrams.svg_digest(svg), (
            f"{path} was rendered from another {name}: run `workbook build` and commit workbook/figures/"
        )
        if name != diagrams.COLAB_BADGE:
            assert min(image.convert("RGB").getpixel((image.width // 2, 3))) >= 250, "its light background"
    assert path.stat().st_size < 40_000, "compressed"


def test_figures_hold_exactly_the_pngs_of_the_svgs():
    pngs = sorted(p.name for p in diagrams.FIGURES_DIR.iterdir())
    assert pngs == sorted(map(diagrams.figure_name, diagrams.ASSET_NAMES))
    assert diagrams.stale_figures() == []


def test_a_changed_svg_makes_its_png_stale(tmp_path):
    for name in diagrams.ASSET_NAMES:
        (tmp_path / diagrams.figure_name(name)).write_bytes(diagrams.figure_png(name))
    texts = diagrams.asset_texts()
    assert diagrams.stale_figures(texts, tmp_path) == []
    texts["masks.svg"] = texts["masks.svg"].replace("future mask", "futur mask")
    (tmp_path / "residual.png").unlink()
    assert diagrams.stale_figures(texts, tmp_path) == ["masks.svg", "residual.svg"]


def test_the_png_renders_the_svg(tmp_path):
    """Chromium renders an SVG at its size, into a palette PNG that records the SVG (skips without it)."""
    pytest.importorskip("playwright", reason="no playwright: pip install -e '.[test]'")
    if diagrams._chromium() is None:
        pytest.skip("no chromium: apt-get install -y chromium")
    from PIL import Image, ImageChops

    texts = diagrams.asset_texts()
    text = texts["residual.svg"]
    # `workbook build` renders only the stale PNG (here the missing one) and drops one no SVG makes
    for name in diagrams.ASSET_NAMES:
        if name != "residual.svg":
            (tmp_path / diagrams.figure_name(name)).write_bytes(diagrams.figure_png(name))
    (tmp_path / "by-hand.png").write_bytes(diagrams.figure_png("masks.svg"))
    assert diagrams.write_figures(texts, tmp_path) == [tmp_path / "residual.png"]
    assert not (tmp_path / "by-hand.png").exists() and diagrams.stale_figures(texts, tmp_path) == []
    assert diagrams.write_figures(texts, tmp_path) == [], "nothing stale: nothing rendered"
    with Image.open(tmp_path / "residual.png") as new, Image.open(diagrams.FIGURES_DIR / "residual.png") as old:
        assert new.text[diagrams.SOURCE_KEY] == diagrams.svg_digest(text) and new.size == old.size
        # the same picture as the committed one, give or take the text (another machine may have other
        # fonts for "Helvetica, Arial, sans-serif") and anti-aliasing: boxes, wires, colours in place
        difference = ImageChops.difference(new.convert("L"), old.convert("L"))
        assert sum(difference.histogram()[65:]) < 0.08 * new.width * new.height


def test_a_source_showing_an_unknown_picture_is_rejected(tmp_path):
    original = notebooks.source_path("05_feed_forward").read_text(encoding="utf-8")
    broken = original.replace("@@ faq", "@@ markdown\n![nothing](assets/no-such-picture.svg)\n\n@@ faq", 1)
    path = tmp_path / "05_feed_forward.md"
    path.write_text(broken, encoding="utf-8")
    with pytest.raises(notebooks.SourceError, match=r"05_feed_forward\.md:\d+: assets/no-such-picture\.svg"):
        notebooks.parse_source(path)


# --------------------------------------------------------------------------------------------------
# The architecture: "you are here", and whose part is where
# --------------------------------------------------------------------------------------------------
def test_every_exercise_has_its_boxes_and_every_chapter_a_highlight():
    assert set(EXERCISE_TO_CHAPTER) <= set(diagrams.PART_ELEMENTS)
    for elements in diagrams.PART_ELEMENTS.values():
        assert elements and set(elements) <= set(diagrams.ELEMENTS)
    for info in CHAPTERS:
        assert diagrams.chapter_highlight(info), info.stem


def test_you_are_here_outlines_the_chapters_part_and_fades_the_rest():
    root = parse((ASSETS / "architecture-03_attention.svg").read_text(encoding="utf-8"))
    for core in ("enc_attention_core", "dec_self_core", "dec_cross_core"):
        assert box_rect(root, core).get("stroke") == diagrams.HIGHLIGHT
        assert group(root, core).get("opacity") is None
    for other in ("enc_ffn", "linear", "input_embedding", "enc_attention"):
        assert box_rect(root, other).get("stroke") != diagrams.HIGHLIGHT
        assert float(group(root, other).get("opacity")) < 0.5
    assert "what this chapter builds" in texts(root)
    # chapter 07 builds the encoder: its frame is outlined, what it holds is not faded
    root = parse((ASSETS / "architecture-07_encoder.svg").read_text(encoding="utf-8"))
    assert box_rect(root, "encoder_layer").get("stroke") == diagrams.HIGHLIGHT
    assert group(root, "enc_ffn").get("opacity") is None
    assert group(root, "dec_ffn").get("opacity") is not None
    # chapter 12 trains the whole model: nothing is faded
    text = (ASSETS / "architecture-12_training_a_translator.svg").read_text(encoding="utf-8")
    assert "opacity" not in text
    with pytest.raises(ValueError, match="unknown parts"):
        diagrams.architecture(["no_such_box"])


def test_the_owners_diagram_tells_yours_from_the_reference():
    picture = diagrams.architecture_owners({"MultiHeadAttention": "yours", "LayerNorm": "reference"})
    assert isinstance(picture, str) and picture._repr_svg_() == str(picture)  # Jupyter displays it
    root = parse(picture)
    yours, reference = box_rect(root, "enc_attention"), box_rect(root, "enc_norm1")
    assert yours.get("fill") != reference.get("fill")
    assert yours.get("stroke") != reference.get("stroke")
    assert float(yours.get("stroke-width")) > float(reference.get("stroke-width"))
    for element in diagrams.PART_ELEMENTS["MultiHeadAttention"]:
        assert box_rect(root, element).get("fill") == yours.get("fill")
    for element in diagrams.PART_ELEMENTS["LayerNorm"]:
        assert box_rect(root, element).get("fill") == reference.get("fill")
    untold = box_rect(root, "enc_ffn").get("fill")
    assert untold not in (yours.get("fill"), reference.get("fill")), "a part not named is neither"
    legend = " ".join(texts(root))
    assert "yours (1)" in legend and "reference (1)" in legend
    # the legend's swatches wear the same colours as the boxes
    fills = [r.get("fill") for r in root.iter(f"{SVG}rect")]
    assert fills.count(yours.get("fill")) >= 4 and fills.count(reference.get("fill")) >= 6


def test_the_owners_diagram_takes_every_part_of_the_assembly():
    from solutions.pipeline.parts import PARTS

    owners = {name: ("yours" if i % 2 else "reference") for i, name in enumerate(PARTS)}
    root = parse(diagrams.architecture_owners(owners))
    for name, who in owners.items():
        fill = diagrams.OWNER_LOOKS[who][0]
        for element in diagrams.PART_ELEMENTS[name]:
            if diagrams.ELEMENTS[element] != "frame":  # a frame is a background: a pale tint of it
                assert box_rect(root, element).get("fill") == fill, (name, element)
    with pytest.raises(ValueError, match="yours"):
        diagrams.architecture_owners({"LayerNorm": "mine"})
    with pytest.raises(ValueError, match="unknown parts"):
        diagrams.architecture_owners({"Nonsense": "yours"})


def test_the_schedule_and_the_beam_are_computed():
    assert diagrams.lr_rate(4000) == pytest.approx(512**-0.5 * 4000**-0.5)
    assert diagrams.lr_rate(100) == pytest.approx(512**-0.5 * 100 * 4000**-1.5)
    assert diagrams.lr_rate(20000) == pytest.approx(512**-0.5 * 20000**-0.5)
    beam = " ".join(texts(parse((ASSETS / "beam-search.svg").read_text(encoding="utf-8"))))
    assert "\u201cI love pizza\u201d, P = 0.342" in beam and "P = 0.146" in beam
