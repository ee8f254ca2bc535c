"""The notebook generator: chapter sources (``workbook/content/*.md``) + ``solutions`` -> notebooks.

Every chapter has one source (its format is ``workbook/content/FORMAT.md``). From it this module builds

* the learner notebook ``chapters/<stem>.ipynb`` (stubs, no outputs; committed), and
* the solved copy ``chapters/solved/<stem>.ipynb`` (each stub replaced by the reference, executed).

Generation is deterministic (cell ids derived from the chapter and the cell's index, no timestamps,
no outputs in the learner copy), so regenerating a clean checkout changes nothing; ``workbook build
--check`` and ``tests/test_chapters.py`` rely on that.

All cells are built by one function, :func:`build_cells`, for every variant, so further variants (an
nbgrader source notebook) only add metadata or swap an exercise cell's code there.
"""

from __future__ import annotations

import inspect
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from workbook import diagrams
from workbook.chapters import CHAPTERS, EXERCISE_TO_CHAPTER, Chapter, chapter
from workbook.content import CONTENT_DIR
from workbook.files import atomic_write

if TYPE_CHECKING:  # nbformat is imported where it is used: it is slow to import, and `workbook status` needs none
    import nbformat

REPO_ROOT = Path(__file__).resolve().parents[1]
# In a checkout (an editable install) the notebooks live beside the package; a plain `pip install`
# has no such folder, and then the commands work in ./chapters instead.
IN_CHECKOUT = (REPO_ROOT / "pyproject.toml").exists() and (REPO_ROOT / "checks").is_dir()
CHAPTERS_DIR = REPO_ROOT / "chapters" if IN_CHECKOUT else Path("chapters")


def repository_url() -> str:
    """Where the workbook lives on GitHub: ``[project.urls] Repository`` in pyproject.toml, the one
    place it is written (read from the checkout's pyproject.toml, else from the installed package's
    metadata, which pip wrote from it)."""
    if IN_CHECKOUT:
        text = (REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8")
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10: the one line, without a TOML parser
            found = re.search(r'^\[project\.urls\][^\[]*?^Repository\s*=\s*"([^"]+)"', text, re.MULTILINE | re.DOTALL)
            if found:
                return found.group(1)
        else:
            url = tomllib.loads(text).get("project", {}).get("urls", {}).get("Repository")
            if url:
                return url
    from importlib.metadata import PackageNotFoundError, metadata

    try:
        entries = metadata("transformer-workbook").get_all("Project-URL") or []
    except PackageNotFoundError:
        entries = []
    for entry in entries:
        label, _, url = entry.partition(",")
        if label.strip() == "Repository":
            return url.strip()
    raise RuntimeError("pyproject.toml has no [project.urls] Repository: the notebooks need the repository's address")


# The install cell pip-installs the workbook from here when it is missing (Colab, a fresh
# environment), and the "Open in Colab" badges point here.
WORKBOOK_REPO_URL = repository_url()
WORKBOOK_BRANCH = "main"

# nbgrader's default code stub: every body the learner writes ends with it (see FORMAT.md).
PLACEHOLDER = "# YOUR CODE HERE\nraise NotImplementedError()"
HEADER_KEYS = ("difficulty", "importance", "time", "build")
MARKERS = ("header", "markdown", "code", "setup", "exercise", "hint", "solution", "faq")
# A page of PyTorch's API reference, optionally with an anchor to a method on it:
# https://docs.pytorch.org/docs/stable/generated/torch.nn.Module.html#torch.nn.Module.register_buffer
# A PyTorch doc link: a generated page per name (generated/torch.nn.Linear.html), or a page of several
# names with an anchor per name (nn.init.html#torch.nn.init.xavier_uniform_), or a guide's section
# (optim.html#per-parameter-options). doc_links() resolves the names; tests/test_doc_links.py checks
# that the page itself exists.
DOC_LINK = re.compile(r"https://docs\.pytorch\.org/docs/stable/([A-Za-z0-9_./]+)\.html(?:#([A-Za-z0-9_.-]+))?")
ROLES = ("setup", "exercise", "check", "hint", "other")
# A picture in a Markdown block: ![what it shows](assets/NAME.svg) (FORMAT.md, "Pictures from assets/").
ASSET_IMAGE = re.compile(r"!\[([^\]]*)\]\(assets/([^)\s]+)\)")


class SourceError(ValueError):
    """A chapter source breaks a rule of FORMAT.md; the message names the file and line."""


@dataclass
class Block:
    kind: str  # one of MARKERS
    name: str | None  # the exercise name for exercise / hint / solution blocks
    text: str
    line: int  # 1-based line of the marker, for error messages


@dataclass
class ChapterSource:
    """One parsed chapter source."""

    chapter: Chapter
    path: Path
    header: dict[str, str]
    blocks: list[Block]  # the blocks that become cells, in order (header, markdown, code, setup, exercise, faq)
    hints: dict[str, list[str]] = field(default_factory=dict)
    solutions: dict[str, str] = field(default_factory=dict)

    @property
    def uses(self) -> list[str]:
        return [n for n in re.split(r"[\s,]+", self.header.get("uses", "")) if n]

    @property
    def number(self) -> str:
        return self.chapter.stem[:2]


# --------------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------------
def source_path(stem: str, content_dir: Path = CONTENT_DIR) -> Path:
    return Path(content_dir) / f"{stem}.md"


def available_chapters(content_dir: Path = CONTENT_DIR) -> list[Chapter]:
    """The chapters (in order) whose source file exists."""
    return [ch for ch in CHAPTERS if source_path(ch.stem, content_dir).exists()]


def parse_source(path: Path, chapter_info: Chapter | None = None) -> ChapterSource:
    """Read and validate one chapter source (rules in FORMAT.md)."""
    path = Path(path)
    info = chapter_info or chapter(path.stem)
    blocks: list[Block] = []
    current: Block | None = None
    lines: list[str] = []

    def close() -> None:
        if current is not None:
            current.text = "\n".join(lines).strip("\n")
            blocks.append(current)

    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith("@@ "):
            close()
            parts = line[3:].split()
            kind, name = (parts + [None])[0], (parts[1] if len(parts) > 1 else None)
            if kind not in MARKERS:
                raise SourceError(f"{path}:{number}: unknown marker {line!r}; markers are " + ", ".join(MARKERS))
            if kind in ("exercise", "hint", "solution") and (name is None or len(parts) != 2):
                raise SourceError(f"{path}:{number}: '@@ {kind}' needs exactly one exercise name")
            if kind not in ("exercise", "hint", "solution") and len(parts) != 1:
                raise SourceError(f"{path}:{number}: '@@ {kind}' takes no argument")
            current, lines = Block(kind, name, "", number), []
        elif current is not None:
            lines.append(line)
    close()
    return _validate(path, info, blocks)


def _validate(path: Path, info: Chapter, raw: list[Block]) -> ChapterSource:
    if not raw or raw[0].kind != "header" or sum(b.kind == "header" for b in raw) != 1:
        raise SourceError(f"{path}: the first block must be '@@ header', and there must be only one")
    header: dict[str, str] = {}
    for line in raw[0].text.splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise SourceError(f"{path}:{raw[0].line}: header line {line!r} is not 'key: value'")
        header[key.strip()] = value.strip()
    missing = [k for k in HEADER_KEYS if not header.get(k)]
    if missing:
        raise SourceError(f"{path}:{raw[0].line}: header lacks {', '.join(missing)}")
    source = ChapterSource(info, path, header, [b for b in raw if b.kind not in ("hint", "solution")])
    for block in raw:
        if block.kind == "hint":
            source.hints.setdefault(block.name, []).append(block.text)
        elif block.kind == "solution":
            source.solutions[block.name] = block.text

    exercises = [b.name for b in raw if b.kind == "exercise"]
    if tuple(exercises) != info.exercises:
        raise SourceError(
            f"{path}: exercises {exercises} differ from workbook/chapters.py's {list(info.exercises)} (same order)"
        )
    for block in raw:
        if block.kind in ("hint", "solution") and block.name not in info.exercises:
            raise SourceError(f"{path}:{block.line}: {block.name!r} is not an exercise of {info.stem}")
        if block.kind == "exercise" and "raise NotImplementedError()" not in block.text:
            raise SourceError(f"{path}:{block.line}: the stub of {block.name} lacks the placeholder {PLACEHOLDER!r}")
    for block in raw:
        for _, name in ASSET_IMAGE.findall(block.text) if block.kind in ("markdown", "faq") else ():
            if name not in diagrams.ASSET_NAMES:
                raise SourceError(
                    f"{path}:{block.line}: assets/{name} is not drawn by workbook/diagrams.py; pictures are "
                    + ", ".join(diagrams.ASSET_NAMES)
                )
    for name in info.exercises:
        if len(source.hints.get(name, [])) < 3:
            raise SourceError(f"{path}: {name} has {len(source.hints.get(name, []))} hints; write at least 3")
        reference_source(name, source)  # raises when there is none
    faqs = [b for b in raw if b.kind == "faq"]
    if len(faqs) != 1 or len(re.findall(r"^### ", faqs[0].text, flags=re.M)) < 3:
        raise SourceError(f"{path}: needs one '@@ faq' block with at least 3 '### ' questions")
    position = [c.stem for c in CHAPTERS].index(info.stem)
    for name in source.uses:
        if name not in EXERCISE_TO_CHAPTER or [c.stem for c in CHAPTERS].index(EXERCISE_TO_CHAPTER[name]) >= position:
            raise SourceError(f"{path}: 'uses: {name}' is not an exercise of an earlier chapter")
    return source


def load_source(stem_or_number: str | int, content_dir: Path = CONTENT_DIR) -> ChapterSource:
    info = chapter(stem_or_number)
    path = source_path(info.stem, content_dir)
    if not path.exists():
        raise FileNotFoundError(f"Chapter {info.stem} has no source yet ({path}).")
    return parse_source(path, info)


def reference_source(name: str, source: ChapterSource | None = None) -> str:
    """The reference code of an exercise: ``inspect.getsource(solutions.NAME)``, or the source's
    ``@@ solution NAME`` block for an exercise that ``solutions`` does not hold."""
    import solutions

    obj = getattr(solutions, name, None)
    if obj is not None:
        return inspect.getsource(obj).rstrip("\n")
    if source is None:
        source = load_source(EXERCISE_TO_CHAPTER[name])
    if name in source.solutions:
        return source.solutions[name]
    raise SourceError(f"{name} has no reference: neither solutions.{name} nor an '@@ solution {name}' block")


def doc_links(text: str) -> list[str]:
    """The dotted names of every PyTorch doc link in ``text`` (``torch.nn.Linear``, ...); for a link
    with an anchor, the anchor's name too (``torch.nn.Module.register_buffer``)."""
    names = []
    for page, anchor in DOC_LINK.findall(text):
        if page.startswith("generated/"):
            names.append(page.removeprefix("generated/"))
        if anchor.startswith("torch."):
            names.append(anchor)
    return names


# --------------------------------------------------------------------------------------------------
# Building cells
# --------------------------------------------------------------------------------------------------
@dataclass
class CellSpec:
    """A cell before it becomes nbformat: what every variant needs to know about it."""

    cell_type: str  # "markdown" or "code"
    source: str
    role: str = "other"  # one of ROLES
    exercise: str | None = None


def colab_url(stem: str) -> str:
    path = WORKBOOK_REPO_URL.removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{path}/blob/{WORKBOOK_BRANCH}/chapters/{stem}.ipynb"


# How a notebook shows a picture of assets/: inside itself, as the PNG of workbook/figures/ (rendered
# from the SVG, diagrams.render_pngs) in a data: URI in the Markdown, `![alt](data:image/png;base64,...)`.
# That is the one reference that shows, with no network, in JupyterLab, Notebook 7, VS Code, Colab,
# GitHub's viewer and nbconvert's HTML (nbgrader's feedback). Why not the alternatives (FORMAT.md,
# "Pictures from assets/"):
# * an absolute URL (raw.githubusercontent.com): broken offline and while the repository is private;
# * a relative path (../assets/x.svg): not on Colab (a notebook opened from GitHub has no folder
#   around it), nor in nbgrader's feedback HTML (a lone file);
# * a cell attachment (attachment:x.png): Colab renders none (googlecolab/colabtools#3836), nor does
#   GitHub's viewer; and JupyterLab renders no SVG attachment (jupyterlab/jupyterlab#10464);
# * an SVG data: URI: Colab draws none (googlecolab/colabtools#2092);
# * a stored image output of a code cell: the learner notebook has no outputs, nbgrader's release
#   clears them, and "Clear all outputs" would take the pictures along.
def asset_data_uri(name: str) -> str:
    """The ``data:`` URI by which a notebook shows ``assets/<name>`` (its PNG, base64)."""
    import base64

    return "data:image/png;base64," + base64.b64encode(diagrams.figure_png(name)).decode("ascii")


def asset_image(alt: str, name: str) -> str:
    """The Markdown image that shows ``assets/<name>``: ``![alt](data:image/png;base64,...)``."""
    return f"![{alt}]({asset_data_uri(name)})"


def embed_assets(markdown: str) -> str:
    """``![alt](assets/NAME.svg)`` -> ``![alt](data:image/png;base64,<the PNG of NAME>)``."""
    return ASSET_IMAGE.sub(lambda m: asset_image(m.group(1), m.group(2)), markdown)


def you_are_here_markdown(info: Chapter) -> str:
    """The header's "you are here" picture: the architecture with this chapter's part outlined."""
    name = diagrams.architecture_asset(info)
    alt = (
        f"The Transformer's architecture (the paper's Figure 1), with what chapter {info.stem[:2]} builds "
        "outlined in red"
    )
    return asset_image(alt, name) + "\n\n*You are here:* the parts outlined in red are what this chapter builds."


def header_markdown(source: ChapterSource) -> str:
    info, h = source.chapter, source.header
    sections = ", ".join(info.sections)
    return "\n".join(
        [
            f"# Chapter {source.number} · {info.title}",
            "",
            f"[{asset_image('Open In Colab', diagrams.COLAB_BADGE)}]({colab_url(info.stem)})",
            "",
            "| | |",
            "|---|---|",
            f"| **Paper sections** | {sections} of *Attention Is All You Need* "
            "([arXiv:1706.03762](https://arxiv.org/abs/1706.03762)) |",
            f"| **Difficulty** | {h['difficulty']} |",
            f"| **Importance** | {h['importance']} |",
            f"| **Time box** | {h['time']} |",
            f"| **You will build** | {h['build']} |",
            "",
            "Run the cells from top to bottom (Shift+Enter). Exercises say `raise NotImplementedError()` "
            "where your code goes; the cell below each one checks it.",
            "",
            you_are_here_markdown(info),
        ]
    )


INSTALL_CELL = f'''\
# Setup 1/2: installs the workbook when it is missing (on Colab, in a fresh environment).
# When the workbook is already installed, this cell does nothing.
WORKBOOK_REPO_URL = "{WORKBOOK_REPO_URL}"
try:
    import workbook  # noqa: F401
    import solutions  # noqa: F401
except ImportError:
    import subprocess
    import sys

    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "git+" + WORKBOOK_REPO_URL])
    import importlib

    importlib.invalidate_caches()

# On Colab, keep your progress and your passing parts on your Google Drive, so that chapter 12 and
# `use_my_work = True` find your work from every notebook: remove the "# " of the next two lines.
# from google.colab import drive; drive.mount("/content/drive")
# import os; os.environ["WORKBOOK_HOME"] = "/content/drive/MyDrive/transformer-workbook"'''

STANDARD_SETUP = """\
# Setup 2/2: the imports every chapter uses, and the workbook's helpers.
import math

import matplotlib.pyplot as plt
import torch
import torch.nn as nn
import torch.nn.functional as F

from workbook import check, hint, mine_or_reference, solution

_ = torch.manual_seed(0)  # the same random numbers every run"""


def earlier_work_cell(source: ChapterSource) -> str:
    names = source.uses
    listed = ", ".join(f"{n} (chapter {EXERCISE_TO_CHAPTER[n][:2]})" for n in names)
    lines = [
        "# " + "=" * 94,
        "# YOUR EARLIER WORK OR THE REFERENCE?   <- the one cell to change",
        f"# This chapter uses: {listed}.",
        "#   use_my_work = False (default): they come from the reference solutions, so this chapter works",
        "#                                  on its own.",
        "#   use_my_work = True: they come from YOUR earlier chapter notebooks (in the same folder as this",
        "#                       one) or, for a chapter whose notebook is not there (Colab), from the last",
        "#                       version that passed its check, kept in your workbook home; each is used",
        "#                       only if it passes its check, otherwise you are told and the reference is",
        "#                       used.",
        "# " + "=" * 94,
        "use_my_work = False",
        "",
        "from workbook import earlier_parts",
        "",
        f"parts = earlier_parts({names!r}, use_my_work=use_my_work)",
    ]
    lines += [f'{n} = parts["{n}"]' for n in names]
    return "\n".join(lines)


def stuck_cell(name: str) -> str:
    return (
        "# Stuck? Uncomment ONE line and run this cell. Each hint() call shows the next hint;\n"
        "# solution() shows the reference (try the hints first: both are noted in your progress).\n"
        f"# hint({name})\n"
        f"# solution({name})"
    )


def build_cells(source: ChapterSource, variant: str = "learner") -> list[CellSpec]:
    """Every cell of a chapter notebook, for ``variant`` "learner" (stubs) or "solved" (reference)."""
    if variant not in ("learner", "solved"):
        raise ValueError(f"unknown variant {variant!r}")
    cells = [
        CellSpec("markdown", header_markdown(source)),
        CellSpec("code", INSTALL_CELL, "setup"),
        CellSpec("code", STANDARD_SETUP, "setup"),
    ]
    if source.uses:
        cells.append(CellSpec("code", earlier_work_cell(source), "setup"))
    for block in source.blocks[1:]:
        if block.kind == "markdown":
            cells.append(CellSpec("markdown", embed_assets(block.text)))
        elif block.kind == "code":
            cells.append(CellSpec("code", block.text))
        elif block.kind == "setup":
            cells.append(CellSpec("code", block.text, "setup"))
        elif block.kind == "exercise":
            name = block.name
            code = block.text if variant == "learner" else reference_source(name, source)
            cells.append(CellSpec("code", code, "exercise", name))
            cells.append(CellSpec("code", f"check({name})", "check", name))
            cells.append(CellSpec("code", stuck_cell(name), "hint", name))
        elif block.kind == "faq":
            cells.append(CellSpec("markdown", "## FAQ\n\n" + embed_assets(block.text)))
    return cells


def make_notebook(source: ChapterSource, variant: str = "learner") -> nbformat.NotebookNode:
    """A plain nbformat v4.5 notebook (kernelspec python3), deterministic for a given source."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
        "workbook": {"chapter": source.chapter.stem, "variant": variant},
    }
    for index, spec in enumerate(build_cells(source, variant)):
        meta = {"workbook": {"role": spec.role, "exercise": spec.exercise}}
        cell_id = f"ch{source.number}-{index:03d}"
        if spec.cell_type == "markdown":
            cell = nbformat.v4.new_markdown_cell(spec.source, metadata=meta, id=cell_id)
        else:
            cell = nbformat.v4.new_code_cell(spec.source, metadata=meta, id=cell_id)
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def render(nb: nbformat.NotebookNode) -> str:
    import nbformat

    return nbformat.writes(nb) + "\n"


def learner_notebook_text(stem_or_number: str | int, content_dir: Path = CONTENT_DIR) -> str:
    """The pristine learner notebook of a chapter, as the exact text committed in chapters/."""
    return render(make_notebook(load_source(stem_or_number, content_dir), "learner"))


# --------------------------------------------------------------------------------------------------
# Writing, checking for drift, executing
# --------------------------------------------------------------------------------------------------
def write_learner_notebooks(out_dir: Path = CHAPTERS_DIR, stems: list[str] | None = None) -> list[Path]:
    """(Re)write the learner notebooks; only files whose text changes are touched. Returns written paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for info in _selected(stems):
        target = out_dir / f"{info.stem}.ipynb"
        text = learner_notebook_text(info.stem)
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            atomic_write(target, text)
            written.append(target)
    return written


def drifted(chapters_dir: Path = CHAPTERS_DIR, stems: list[str] | None = None) -> list[str]:
    """Learner notebooks in ``chapters_dir`` that differ from (or are missing against) their source."""
    out = []
    for info in _selected(stems):
        target = Path(chapters_dir) / f"{info.stem}.ipynb"
        if not target.exists():
            out.append(f"{target} (missing)")
        elif target.read_text(encoding="utf-8") != learner_notebook_text(info.stem):
            out.append(f"{target} (differs from workbook/content/{info.stem}.md)")
    return out


def stale_solved(solved_dir: Path = CHAPTERS_DIR / "solved", stems: list[str] | None = None) -> list[str]:
    """Solved copies whose cells' code and text differ from their source (outputs are not compared:
    they hold timings). A missing solved copy is not reported: they are built on request."""
    import nbformat

    out = []
    for info in _selected(stems):
        target = Path(solved_dir) / f"{info.stem}.ipynb"
        if target.exists():
            have = [c.source for c in nbformat.read(target, as_version=4).cells]
            want = [c.source for c in make_notebook(load_source(info.stem), "solved").cells]
            if have != want:
                out.append(f"{target} (run `workbook build --solved {info.stem[:2]}`)")
    return out


def refresh_solved_markdown(solved_dir: Path = CHAPTERS_DIR / "solved", stems: list[str] | None = None) -> list[Path]:
    """Bring the Markdown cells of the existing solved copies up to date with their sources, keeping
    every code cell and output as executed: for a change of text or of a picture only (a new drawing
    in assets/ re-embeds its PNG in every copy), which needs no re-execution. Refuses a copy whose
    code cells differ from the source (run ``workbook build --solved NN`` for that one). Returns the
    rewritten paths."""
    import nbformat

    written = []
    for info in _selected(stems):
        target = Path(solved_dir) / f"{info.stem}.ipynb"
        if not target.exists():
            continue
        nb = nbformat.read(target, as_version=4)
        want = make_notebook(load_source(info.stem), "solved")
        same_shape = [(c.id, c.cell_type) for c in nb.cells] == [(c.id, c.cell_type) for c in want.cells]
        same_code = all(h.source == w.source for h, w in zip(nb.cells, want.cells) if w.cell_type == "code")
        if not (same_shape and same_code):
            raise ValueError(
                f"{target}: its code cells differ from the source: run `workbook build --solved {info.stem[:2]}`"
            )
        changed = False
        for have, new in zip(nb.cells, want.cells):
            if have.source != new.source:
                have.source, changed = new.source, True
        if changed:
            atomic_write(target, render(nb))
            written.append(target)
    return written


def execute(nb: nbformat.NotebookNode, cwd: Path, timeout: int = 300) -> nbformat.NotebookNode:
    """Run a notebook top to bottom with nbclient, with progress written to a throwaway
    WORKBOOK_HOME (running a notebook here must not change the learner's own progress)."""
    from nbclient import NotebookClient

    old = os.environ.get("WORKBOOK_HOME")
    with tempfile.TemporaryDirectory(prefix="workbook-home-") as home:
        os.environ["WORKBOOK_HOME"] = home
        try:
            NotebookClient(
                nb,
                timeout=timeout,
                kernel_name="python3",
                resources={"metadata": {"path": str(cwd)}},
                coalesce_streams=True,  # one output per stream, carriage returns applied: a progress
            ).execute()  # bar is saved as it ended, as Jupyter itself saves it
        finally:
            if old is None:
                os.environ.pop("WORKBOOK_HOME", None)
            else:
                os.environ["WORKBOOK_HOME"] = old
    return nb


def write_solved_notebooks(out_dir: Path = CHAPTERS_DIR / "solved", stems: list[str] | None = None) -> list[Path]:
    """Build and execute the solved copies (slow: one kernel per chapter)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for info in _selected(stems):
        nb = execute(make_notebook(load_source(info.stem), "solved"), cwd=out_dir)
        target = out_dir / f"{info.stem}.ipynb"
        atomic_write(target, render(nb))
        written.append(target)
    return written


def _selected(stems: list[str] | None) -> list[Chapter]:
    if not stems:
        return available_chapters()
    return [chapter(s) for s in stems]
