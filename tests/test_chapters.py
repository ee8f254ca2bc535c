"""The chapter notebooks: generated from their sources, complete, and runnable both ways.

* regenerating the notebooks changes nothing (they are committed in sync with workbook/content);
* every source has its header, >= 3 hints per exercise, a FAQ, every exercise of the chapter map;
* every PyTorch doc link names an object that exists in the installed torch;
* every learner notebook runs top to bottom untouched, with every check saying "not attempted";
  every solved notebook runs and every check passes (every chapter in the default suite, a few seconds
  each, except chapter 12's minute-long training run: -m slow, and tests/test_chapter_12.py).
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import nbformat
import pytest

from workbook import notebooks
from workbook.chapters import CHAPTERS

REPO = Path(__file__).resolve().parents[1]
WRITTEN = [ch.stem for ch in notebooks.available_chapters()]
# a chapter without exercises is a training run (chapter 12: one to two minutes): slow; the others take seconds
SLOW = {stem for stem in WRITTEN if not notebooks.chapter(stem).exercises}
EVERY = [pytest.param(s, marks=pytest.mark.slow) if s in SLOW else s for s in WRITTEN]


def resolve_torch_name(dotted: str) -> object:
    """``torch.nn.Linear`` -> the object, walking modules and attributes; raises when it does not exist."""
    parts = dotted.split(".")
    obj = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], start=1):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            obj = importlib.import_module(".".join(parts[: i + 1]))
    return obj


def test_sources_exist_for_the_first_chapters():
    assert {ch.stem for ch in CHAPTERS[:6]} <= set(WRITTEN)


def test_regeneration_is_a_no_op(tmp_path):
    notebooks.write_learner_notebooks(tmp_path)
    drifted = [
        stem
        for stem in WRITTEN
        if not (REPO / "chapters" / f"{stem}.ipynb").exists()
        or (REPO / "chapters" / f"{stem}.ipynb").read_text(encoding="utf-8")
        != (tmp_path / f"{stem}.ipynb").read_text(encoding="utf-8")
    ]
    assert not drifted, f"chapters/ is out of date for {drifted}: run `workbook build` and commit"
    assert notebooks.drifted(REPO / "chapters") == []


def test_solved_copies_match_their_sources():
    stale = notebooks.stale_solved(REPO / "chapters" / "solved")
    assert not stale, f"solved copies out of date: {stale}"


def test_generation_is_deterministic():
    source = notebooks.load_source(WRITTEN[0])
    assert notebooks.render(notebooks.make_notebook(source)) == notebooks.render(notebooks.make_notebook(source))


@pytest.mark.parametrize("stem", WRITTEN)
def test_source_is_complete(stem):
    info = notebooks.chapter(stem)
    source = notebooks.load_source(stem)  # validates: header keys, exercises, placeholders, FAQ
    for name in info.exercises:
        assert len(source.hints[name]) >= 3, name
        assert notebooks.reference_source(name, source).strip()
    faq = next(b.text for b in source.blocks if b.kind == "faq")
    assert len(re.findall(r"^### .+\?", faq, flags=re.M)) >= 3, "at least 3 questions in the FAQ"


@pytest.mark.parametrize("stem", WRITTEN)
def test_learner_notebook_structure(stem):
    info = notebooks.chapter(stem)
    nb = nbformat.read(REPO / "chapters" / f"{stem}.ipynb", as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    header = nb.cells[0].source
    for label in (
        "Paper sections",
        "Difficulty",
        "Importance",
        "Time box",
        "You will build",
        "colab.research.google.com",
    ):
        assert label in header, f"{stem}: header lacks {label!r}"
    for section in info.sections:
        assert section in header
    assert "pip" in nb.cells[1].source and nb.cells[1].metadata["workbook"]["role"] == "setup"
    code = [c for c in nb.cells if c.cell_type == "code"]
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, "learner notebooks are committed without outputs"
        assert cell.metadata["workbook"]["role"] in notebooks.ROLES
    roles = [(c.metadata["workbook"]["role"], c.metadata["workbook"]["exercise"]) for c in code]
    for name in info.exercises:
        assert ("exercise", name) in roles and ("check", name) in roles and ("hint", name) in roles
        stub = next(c.source for c in code if c.metadata["workbook"] == {"role": "exercise", "exercise": name})
        assert f"{name}" in stub and "raise NotImplementedError()" in stub
        assert notebooks.doc_links(stub), f"the stub of {name} links to no PyTorch docs"
        checker = next(c.source for c in code if c.metadata["workbook"] == {"role": "check", "exercise": name})
        assert checker == f"check({name})"
    assert any(c.cell_type == "markdown" and c.source.startswith("## FAQ") for c in nb.cells)
    ids = [c.id for c in nb.cells]
    assert len(set(ids)) == len(ids)
    if notebooks.load_source(stem).uses:
        assert sum("use_my_work = False" in c.source for c in code) == 1


def test_solved_variant_holds_the_reference():
    source = notebooks.load_source("04")
    solved = [c for c in notebooks.build_cells(source, "solved") if c.role == "exercise"]
    assert "NotImplementedError" not in solved[0].source
    assert "class MultiHeadAttention" in solved[0].source


@pytest.mark.parametrize("stem", WRITTEN)
def test_doc_links_resolve_in_torch(stem):
    text = notebooks.source_path(stem).read_text(encoding="utf-8")
    for url in re.findall(r"https?://[^\s)>\]`'\"]*pytorch\.org/docs[^\s)>\]`'\"]*", text):
        assert notebooks.DOC_LINK.fullmatch(url), f"{stem}: {url} does not follow {notebooks.DOC_LINK.pattern}"
    names = notebooks.doc_links(text)
    assert names, f"{stem} links to no PyTorch docs"
    for name in names:
        try:
            resolve_torch_name(name)
        except (ImportError, AttributeError):
            pytest.fail(f"{stem}: doc link names {name}, which does not exist in torch")


def test_a_wrong_doc_link_is_caught():
    with pytest.raises((ImportError, AttributeError)):
        resolve_torch_name("torch.nn.Linaer")
    assert resolve_torch_name("torch.Tensor.masked_fill") is not None


# --------------------------------------------------------------------------------------------------
# Executing the notebooks (nbclient, a real kernel)
# --------------------------------------------------------------------------------------------------
def outputs_text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type == "error":
            parts.append("\n".join(out.traceback))
        else:
            parts.append(str(out.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def run_learner(stem: str, tmp_path: Path) -> None:
    nb = nbformat.read(REPO / "chapters" / f"{stem}.ipynb", as_version=4)
    notebooks.execute(nb, cwd=tmp_path)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        text = outputs_text(cell)
        assert "Traceback" not in text and not any(o.output_type == "error" for o in cell.outputs), (
            f"{stem}: {text[-2000:]}"
        )
        if cell.metadata["workbook"]["role"] == "check":
            assert ": not attempted" in text.lower(), f"{stem} {cell.source}: {text[:500]}"


def run_solved(stem: str, tmp_path: Path) -> None:
    nb = notebooks.make_notebook(notebooks.load_source(stem), "solved")
    notebooks.execute(nb, cwd=tmp_path)
    checks = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        text = outputs_text(cell)
        assert not any(o.output_type == "error" for o in cell.outputs), f"{stem}: {text[-2000:]}"
        if cell.metadata["workbook"]["role"] == "check":
            checks += 1
            assert ": passed" in text.lower() and ": failed" not in text.lower(), f"{stem} {cell.source}: {text[:1000]}"
    assert checks == len(notebooks.chapter(stem).exercises)


@pytest.mark.parametrize("stem", EVERY)
def test_every_learner_notebook_executes_untouched(stem, tmp_path):
    run_learner(stem, tmp_path)


@pytest.mark.parametrize("stem", EVERY)
def test_every_solved_notebook_passes_its_checks(stem, tmp_path):
    run_solved(stem, tmp_path)


# --------------------------------------------------------------------------------------------------
# Using the learner's earlier work
# --------------------------------------------------------------------------------------------------
def test_earlier_parts_loads_the_learners_passing_work_and_falls_back_otherwise(tmp_path, monkeypatch):
    from workbook import learner

    monkeypatch.setenv("WORKBOOK_HOME", str(tmp_path / "home"))
    solved = notebooks.make_notebook(notebooks.load_source("03"), "solved")
    nbformat.write(solved, tmp_path / "03_attention.ipynb")
    parts = learner.earlier_parts(["scaled_dot_product_attention"], use_my_work=True, chapters_dir=tmp_path)
    mine = parts["scaled_dot_product_attention"]
    assert mine is not learner.reference("scaled_dot_product_attention")
    assert mine.__module__ == "__main__"  # defined in the learner's notebook (brought back by value)

    broken = nbformat.read(REPO / "chapters" / "03_attention.ipynb", as_version=4)  # the untouched stub...
    broken.cells.append(
        nbformat.v4.new_code_cell("def oops(:\n", metadata={"workbook": {"role": "exercise", "exercise": None}})
    )
    nbformat.write(broken, tmp_path / "03_attention.ipynb")  # ...plus a cell that does not even parse
    parts = learner.earlier_parts(["scaled_dot_product_attention"], use_my_work=True, chapters_dir=tmp_path)
    assert parts["scaled_dot_product_attention"] is learner.reference("scaled_dot_product_attention")


def test_mine_or_reference_never_returns_a_stub(tmp_path, monkeypatch):
    from workbook import learner

    monkeypatch.setenv("WORKBOOK_HOME", str(tmp_path))
    stub_source = notebooks.load_source("05").blocks
    stub = next(b.text for b in stub_source if b.kind == "exercise")
    namespace: dict = {}
    exec(learner.STANDARD_PRELUDE + stub, namespace)
    picked = learner.mine_or_reference("FeedForwardNetwork", namespace)
    assert picked is learner.reference("FeedForwardNetwork")
    exec(learner.STANDARD_PRELUDE + notebooks.reference_source("FeedForwardNetwork"), namespace)
    assert learner.mine_or_reference("FeedForwardNetwork", namespace) is namespace["FeedForwardNetwork"]


def test_earlier_parts_survives_a_cell_that_never_ends(tmp_path, monkeypatch):
    from workbook import learner

    monkeypatch.setenv("WORKBOOK_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(learner, "CELL_TIME_LIMIT", 1)
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "while True:\n    pass", metadata={"workbook": {"role": "exercise", "exercise": "softmax"}}
        )
    ]
    nbformat.write(nb, tmp_path / "00_introduction.ipynb")
    parts = learner.earlier_parts(["softmax"], use_my_work=True, chapters_dir=tmp_path)
    assert parts["softmax"] is learner.reference("softmax")


def test_a_source_that_breaks_the_format_is_rejected_with_its_file_and_line(tmp_path):
    good = notebooks.source_path("05_feed_forward").read_text(encoding="utf-8")
    path = tmp_path / "05_feed_forward.md"
    cases = {
        "unknown marker": (good.replace("@@ code", "@@ figure", 1), "05_feed_forward.md:"),
        "too few hints": (good.replace("@@ hint FeedForwardNetwork", "@@ markdown", 1), "hints"),
        "no FAQ": (good.split("@@ faq")[0], "faq"),
        "stub without placeholder": (good.replace("raise NotImplementedError()", "pass"), "placeholder"),
        "later chapter used": (
            good.replace("time: 30 minutes", "time: 30 minutes\nuses: LayerNorm"),
            "earlier chapter",
        ),
    }
    for text, message in cases.values():
        path.write_text(text, encoding="utf-8")
        with pytest.raises(notebooks.SourceError, match=message):
            notebooks.parse_source(path)
    path.write_text(good, encoding="utf-8")
    assert notebooks.parse_source(path).chapter.stem == "05_feed_forward"
