"""Chapter 12, the training run: it shows what it promises, and the long run is off by default.

* fast: the committed solved copy (executed by `workbook build --solved 12`) shows the table of which
  part came from whom, a training loss that fell, translations, an exact-match score above a floor,
  the loss plot and the attention heatmaps; the Multi30k cell is guarded by a flag that is False;
* the untouched learner notebook, executed with nbclient (one to two minutes), shows the same (every
  part from the reference, since its folder holds no other chapter).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest
from test_chapters import outputs_text

from workbook import notebooks
from workbook.chapters import chapter

REPO = Path(__file__).resolve().parents[1]
STEM = "12_training_a_translator"
EXACT_MATCH_FLOOR = 0.8  # the quick run gets ~95 % of held-out numbers right; 0.8 leaves room for noise


def images(cell) -> int:
    return sum("image/png" in out.get("data", {}) for out in cell.get("outputs", []))


def cell_with(nb, text: str):
    found = [c for c in nb.cells if c.cell_type == "code" and text in c.source]
    assert len(found) == 1, f"expected one code cell containing {text!r}, found {len(found)}"
    return found[0]


def assert_the_run_shows_its_results(nb, parts_yours: int | None = None) -> None:
    """What the learner must see after running the chapter top to bottom."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not any(o.output_type == "error" for o in cell.outputs), outputs_text(cell)[-2000:]

    table = outputs_text(cell_with(nb, "print(assembly.table())"))
    assert "part" in table and "from" in table and "MultiHeadAttention" in table and "Transformer" in table
    mine = re.search(r"(\d+) of 18 parts are yours", table)
    assert mine, table
    if parts_yours is not None:
        assert int(mine.group(1)) == parts_yours, table
    # The architecture coloured by owner, shown as a picture below the table, with the same count.
    pictures = [
        o.data["image/svg+xml"]
        for o in cell_with(nb, "print(assembly.table())").outputs
        if o.get("data", {}).get("image/svg+xml")
    ]
    assert len(pictures) == 1, "the assembly cell shows no architecture picture"
    assert f"yours ({mine.group(1)})" in pictures[0], pictures[0][:300]

    run = outputs_text(cell_with(nb, "result = train(quick"))
    first, last = map(float, re.search(r"training loss: ([\d.]+) at step 1 -> ([\d.]+) at step", run).groups())
    assert last < first / 2, run[-1000:]  # the loss fell, from about log 300 = 5.7
    assert "validation loss" in run

    assert images(cell_with(nb, 'ax.set_yscale("log")')) == 1  # the loss curve

    translations = outputs_text(cell_with(nb, "result.examples[:8]"))
    assert translations.count("->") == 8 and "✓" in translations
    score = float(re.search(r"exact match on 200 held-out test numbers: ([\d.]+)%", translations).group(1))
    assert score >= 100 * EXACT_MATCH_FLOOR, translations

    own = outputs_text(cell_with(nb, "translator = load_translator("))
    assert "not a number:" in own and own.count("greedy") == 6

    attention = cell_with(nb, "attention_figure(translator.model")
    assert images(attention) == 1, outputs_text(attention)  # three heatmaps in one figure

    assert "The Multi30k run is off" in outputs_text(cell_with(nb, "RUN_MULTI30K = False"))


def test_chapter_12_has_no_exercises_but_a_faq():
    assert chapter(12).stem == STEM and chapter(12).exercises == ()
    source = notebooks.load_source(STEM)
    faq = next(b.text for b in source.blocks if b.kind == "faq")
    assert len(re.findall(r"^### .+\?", faq, flags=re.M)) >= 5
    for topic in ("BLEU", "perplexity", "loss will not go down", "average", "out of memory", "paper train"):
        assert topic.lower() in faq.lower(), topic


@pytest.mark.parametrize("variant", ["learner", "solved"])
def test_the_multi30k_run_is_off_by_default(variant):
    nb = notebooks.make_notebook(notebooks.load_source(STEM), variant)
    cell = cell_with(nb, "RUN_MULTI30K = ")
    tree = ast.parse(cell.source)
    flags = {
        node.targets[0].id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
    }
    assert flags["RUN_MULTI30K"] is False and flags["RESUME"] is False
    # every call that trains, downloads or loads is inside `if RUN_MULTI30K:`
    guarded = [
        node for node in tree.body if isinstance(node, ast.If) and getattr(node.test, "id", None) == "RUN_MULTI30K"
    ]
    assert len(guarded) == 1
    top_level_calls = {
        getattr(n.func, "id", getattr(n.func, "attr", None))
        for stmt in tree.body
        if stmt is not guarded[0]
        for n in ast.walk(stmt)
        if isinstance(n, ast.Call)
    }
    assert not top_level_calls & {"train", "load_translator", "load_corpus", "attention_figure", "mount"}
    inside = ast.get_source_segment(cell.source, guarded[0])
    assert "train(long_run, resume=RESUME, parts=assembly)" in inside and 'PRESETS["multi30k"]' in inside
    # the quick run is sized for a CPU minute and needs no download
    quick = cell_with(nb, "result = train(quick").source
    assert 'dataset="numbers"' in quick and "steps=600" in quick


def test_the_committed_solved_copy_shows_the_run():
    path = REPO / "chapters" / "solved" / f"{STEM}.ipynb"
    assert path.exists(), "no solved copy of chapter 12: run `workbook build --solved 12` and commit it"
    nb = nbformat.read(path, as_version=4)
    # built in chapters/solved/, where the solved notebooks of chapters 00-11 are "the learner's own"
    assert_the_run_shows_its_results(nb, parts_yours=18)


def test_the_untouched_learner_notebook_trains_and_translates(tmp_path):
    nb = nbformat.read(REPO / "chapters" / f"{STEM}.ipynb", as_version=4)
    notebooks.execute(nb, cwd=tmp_path, timeout=600)
    assert_the_run_shows_its_results(nb, parts_yours=0)  # no chapter notebooks beside it: all reference
    assert (tmp_path / "runs" / "quick" / "averaged.pt").exists()
