"""The pictures show with no network: in JupyterLab, in Notebook 7 and in nbgrader's feedback HTML.

Each chapter carries its figures inside itself (a PNG ``data:`` URI in the Markdown, rendered from the
SVG of ``assets/``; FORMAT.md, "Pictures from assets/"). Here a real JupyterLab (and Notebook 7, the
same server) serves a learner notebook and a solved copy to headless Chromium whose every request
that is not to that server is aborted, and every figure of the notebook must have decoded
(``naturalWidth > 0``), the header's "you are here" picture first. The same for the HTML that
nbconvert writes (nbgrader's ``generate_feedback`` exports with nbconvert's ``HTMLExporter`` and its
``feedback`` template), opened as a ``file://`` page with the network blocked.

Needs Debian's chromium and playwright (like ``tests/test_browser.py``); skips, saying which, without
them. One browser and one Jupyter server for the whole module.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from workbook import diagrams, notebooks

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# (where, chapter): a learner notebook and a solved copy, each with a figure below its header
LAB_NOTEBOOKS = [("chapters", "03_attention"), ("chapters/solved", "11_inference")]


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("no chromium: install Debian's chromium: apt-get install -y chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("no playwright: pip install playwright (it is in the test extra: pip install -e '.[test]')")
    with sync_playwright() as driver:
        try:
            chromium = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        except Exception as error:  # noqa: BLE001 - a chromium playwright cannot drive: say why
            pytest.skip(f"playwright could not start {CHROMIUM}: {str(error).splitlines()[0]}")
        try:
            yield chromium
        finally:
            chromium.close()


def offline_page(browser, allowed: str | None = None):
    """A page whose every request is aborted unless its URL starts with ``allowed`` (the local
    server); ``data:`` URIs are no requests. The aborted URLs are kept in ``page.blocked``."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    blocked: list[str] = []

    def route(request_route) -> None:
        url = request_route.request.url
        if allowed is not None and url.startswith(allowed):
            request_route.continue_()
        else:
            blocked.append(url)
            request_route.abort("internetdisconnected")

    context.route("**/*", route)
    page = context.new_page()
    page.blocked = blocked
    return page


def expected_figures(path: Path) -> list[list[str]]:
    """The figures (data: URIs) each Markdown cell of a notebook shows, in order; cells without any
    left out. The header's come first: the "Open in Colab" badge and the "you are here" picture."""
    names = {notebooks.asset_data_uri(name): name for name in diagrams.ASSET_NAMES}
    nb = nbformat.read(path, as_version=4)
    found = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            uris = re.findall(r"\]\((data:image/png;base64,[A-Za-z0-9+/=]+)\)", cell.source)
            if uris:
                found.append([names.get(uri, "(an image not drawn from assets/)") for uri in uris])
    return found


BLOCKED = """() => fetch("https://github.com/").then(() => "reached", () => "blocked")"""


# In the page: every <img> under root that matches a selector, decoded or not.
IMAGES = """(root, selector) => [...root.querySelectorAll(selector)].map((img) => ({
  data: img.src.startsWith("data:image/png;base64,"), src: img.src.slice(0, 80), alt: img.alt,
  complete: img.complete, width: img.naturalWidth, height: img.naturalHeight }))"""


def assert_all_drawn(images: list[dict], figures: list[list[str]], where: str) -> None:
    """Each image is an embedded figure, and each decoded."""
    expected = [name for cell in figures for name in cell]
    assert len(images) == len(expected), f"{where}: {len(images)} images in the page, {len(expected)} figures expected"
    assert all(img["data"] for img in images), f"{where}: an image that is not embedded: {images}"
    broken = [img for img in images if not (img["complete"] and img["width"] > 0 and img["height"] > 0)]
    assert not broken, f"{where}: figures that did not decode offline: {broken}"


def check_header(figures: list[list[str]], stem: str) -> None:
    assert figures[0] == [diagrams.COLAB_BADGE, diagrams.architecture_asset(notebooks.chapter(stem))], figures[0]
    assert len(figures) >= 2, "and an explaining picture below"


# --------------------------------------------------------------------------------------------------
# JupyterLab 4 and Notebook 7, served by one local Jupyter server
# --------------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory):
    """A Jupyter server (JupyterLab and Notebook 7) on a free local port, over a folder with the
    notebooks of LAB_NOTEBOOKS, with its config, data, runtime and workspaces in a temporary folder."""
    try:
        import jupyterlab  # noqa: F401
        import notebook  # noqa: F401
    except ImportError as error:
        pytest.skip(f"no {error.name}: pip install jupyterlab notebook")
    root = tmp_path_factory.mktemp("notebooks")
    home = tmp_path_factory.mktemp("jupyter")
    for where, stem in LAB_NOTEBOOKS:
        target = root / where / f"{stem}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / where / f"{stem}.ipynb", target)
    port = _free_port()
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        WORKBOOK_HOME=str(home / "workbook"),
    )
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        "--IdentityProvider.token=", "--ServerApp.password=", f"--ServerApp.root_dir={root}",
        f"--LabApp.workspaces_dir={home / 'workspaces'}", "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]  # fmt: skip
    log = (home / "server.log").open("w")
    server = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status", timeout=5):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail(f"the Jupyter server did not start:\n{(home / 'server.log').read_text()[-3000:]}")
                time.sleep(0.5)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def open_in(browser, base: str, url: str, content: str):
    """Open ``url`` offline and wait until the notebook's Markdown is rendered inside ``content``."""
    page = offline_page(browser, allowed=base)
    page.goto(url, wait_until="domcontentloaded", timeout=90_000)
    page.wait_for_selector(f"{content} .jp-MarkdownOutput img[src^='data:']", state="attached", timeout=90_000)
    return page


def notebook_images(page) -> tuple[list[dict], list[dict]]:
    """(the header cell's images, every rendered Markdown image) of the notebook on show, once each
    figure had its chance to decode: every Markdown cell is scrolled into view first (JupyterLab may
    render only the cells near the viewport)."""
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)").first
    count = panel.locator(".jp-MarkdownCell").count()
    for index in range(count):
        panel.locator(".jp-MarkdownCell").nth(index).evaluate("(cell) => cell.scrollIntoView()")
    panel.evaluate("(panel) => panel.querySelector('.jp-MarkdownCell').scrollIntoView()")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-MarkdownOutput img')].every((img) => img.complete)",
        timeout=30_000,
    )
    header = panel.locator(".jp-MarkdownCell").first.evaluate(IMAGES, "img")
    every = panel.evaluate(IMAGES, ".jp-MarkdownCell img")  # not the outputs' plots
    return header, every


@pytest.mark.parametrize(("where", "stem"), LAB_NOTEBOOKS)
def test_jupyterlab_shows_every_figure_offline(browser, jupyter, where: str, stem: str) -> None:
    path = REPO / where / f"{stem}.ipynb"
    figures = expected_figures(path)
    check_header(figures, stem)
    page = open_in(browser, jupyter, f"{jupyter}/lab/tree/{where}/{stem}.ipynb?reset", ".jp-NotebookPanel")
    try:
        header, every = notebook_images(page)
        assert_all_drawn(header, figures[:1], f"JupyterLab, {where}/{stem}, the header")
        assert_all_drawn(every, figures, f"JupyterLab, {where}/{stem}")
        assert page.evaluate(BLOCKED) == "blocked", "the network was not blocked"
    finally:
        page.context.close()


def test_notebook_7_shows_every_figure_offline(browser, jupyter) -> None:
    where, stem = LAB_NOTEBOOKS[0]
    figures = expected_figures(REPO / where / f"{stem}.ipynb")
    check_header(figures, stem)
    page = open_in(browser, jupyter, f"{jupyter}/notebooks/{where}/{stem}.ipynb", ".jp-NotebookPanel")
    try:
        header, every = notebook_images(page)
        assert_all_drawn(header, figures[:1], f"Notebook 7, {where}/{stem}, the header")
        assert_all_drawn(every, figures, f"Notebook 7, {where}/{stem}")
        assert page.evaluate(BLOCKED) == "blocked", "the network was not blocked"
    finally:
        page.context.close()


# --------------------------------------------------------------------------------------------------
# nbconvert's HTML: nbgrader's feedback, and a plain export
# --------------------------------------------------------------------------------------------------
def feedback_html(nb: nbformat.NotebookNode) -> str:
    """The notebook as nbgrader's ``generate_feedback`` writes it: nbconvert's HTMLExporter with
    nbgrader's ``feedback`` template (the configuration of nbgrader.converters.GenerateFeedback)."""
    from nbconvert.exporters import HTMLExporter
    from traitlets.config import Config

    try:
        import nbgrader
    except ImportError:
        pytest.skip("no nbgrader: pip install -e '.[teach]'")
    formgrader = Path(nbgrader.__file__).parent / "server_extensions" / "formgrader"
    config = Config()
    config.HTMLExporter.template_name = "feedback"
    config.HTMLExporter.extra_template_basedirs = [str(formgrader / "templates")]
    bootstrap = formgrader / "static" / "node_modules" / "bootstrap" / "dist" / "css"
    config.HTMLExporter.extra_template_paths = [str(bootstrap)]
    resources = {
        "nbgrader": {
            "notebook": nb.metadata.get("workbook", {}).get("chapter", "chapter"),
            "score": 0.0,
            "max_score": 0.0,
            "late_penalty": 0.0,
        }
    }
    body, _ = HTMLExporter(config=config).from_notebook_node(nb, resources=resources)
    return body


# A rendered Markdown cell in nbconvert's HTML: the lab template's, or the classic one's (nbgrader's
# feedback template extends it).
MARKDOWN_CELL = ".jp-MarkdownCell, .text_cell"
MARKDOWN_IMAGE = ".jp-MarkdownCell img, .text_cell img"


def plain_html(nb: nbformat.NotebookNode) -> str:
    from nbconvert.exporters import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nb)
    return body


HTML_NOTEBOOKS = [("chapters", "04_multi_head_attention"), ("chapters/solved", "06_layer_norm")]


@pytest.mark.parametrize("export", [feedback_html, plain_html], ids=["nbgrader-feedback", "nbconvert-html"])
@pytest.mark.parametrize(("where", "stem"), HTML_NOTEBOOKS)
def test_the_html_export_shows_every_figure_offline(browser, tmp_path, export, where: str, stem: str) -> None:
    path = REPO / where / f"{stem}.ipynb"
    figures = expected_figures(path)
    check_header(figures, stem)
    html = tmp_path / f"{stem}.html"
    html.write_text(export(nbformat.read(path, as_version=4)), encoding="utf-8")
    page = offline_page(browser, allowed=html.as_uri())  # the page itself, nothing else
    try:
        page.goto(html.as_uri(), wait_until="load", timeout=60_000)
        page.wait_for_function("() => [...document.images].every((img) => img.complete)", timeout=30_000)
        every = page.locator("body").evaluate(IMAGES, MARKDOWN_IMAGE)  # not the outputs' plots
        assert_all_drawn(every, figures, f"{export.__name__}, {where}/{stem}")
        header = page.locator(MARKDOWN_CELL).first.evaluate(IMAGES, "img")
        assert_all_drawn(header, figures[:1], f"{export.__name__}, {where}/{stem}, the header")
        assert page.evaluate(BLOCKED) == "blocked", "the network was not blocked"
    finally:
        page.context.close()
