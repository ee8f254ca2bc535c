"""What the learner sees is readable in a real browser, in JupyterLab's light and dark themes and on
pages with no JupyterLab theme at all (VS Code's and Colab's notebooks).

Each output (a failing check, a passing check, a check with skipped rows, one not attempted, one that
printed, a hint, a solution) is rendered in headless Chromium inside JupyterLab's own CSS, taken from
the installed JupyterLab: its theme (``theme-light-extension`` / ``theme-dark-extension``) and its
rendermime styles (``jp-RenderedHTMLCommon``, which right-aligns table cells and colours tables
itself). In the page every text node's computed colour is composited over its effective background
(each ancestor's background colour, down to the page's) and the WCAG contrast ratio must be at least
4.5:1 (WCAG 2 AA for normal text).

Needs Debian's chromium (``apt-get install -y chromium``) and playwright (``pip install playwright``,
in the ``test`` extra); skips, saying which, without them. One browser for the whole module.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

WCAG_AA = 4.5
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


# --------------------------------------------------------------------------------------------------
# JupyterLab's own CSS, from the installed JupyterLab
# --------------------------------------------------------------------------------------------------
def _lab_dir() -> Path | None:
    try:
        from jupyterlab.commands import get_app_dir
    except ImportError:
        return None
    path = Path(get_app_dir())
    return path if (path / "themes").is_dir() else None


def _theme_css(lab: Path, theme: str) -> str:
    return (lab / "themes" / "@jupyterlab" / f"theme-{theme}-extension" / "index.css").read_text()


_CSS_MODULE = re.compile(r"push\(\[e\.id,`((?:[^`\\]|\\.)*)`", re.S)


def _rendermime_css(lab: Path) -> str:
    """The CSS modules of JupyterLab's bundle that style rendered HTML (``jp-RenderedHTMLCommon``,
    ``jp-ThemedContainer``, the output area): webpack keeps each one as a template string."""
    found = []
    for script in sorted((lab / "static").glob("*.js")):
        text = script.read_text(errors="replace")
        if "jp-RenderedHTMLCommon" not in text:
            continue
        for match in _CSS_MODULE.finditer(text):
            css = match.group(1)
            if "jp-RenderedHTMLCommon" in css or ".jp-ThemedContainer" in css:
                found.append(re.sub(r"\\(.)", r"\1", css))
    return "\n".join(found)


# --------------------------------------------------------------------------------------------------
# The pages: JupyterLab's themes, and plain pages without any JupyterLab variable
# --------------------------------------------------------------------------------------------------
def _lab_page(theme_css: str, rendermime_css: str, light: bool) -> str:
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<style>{theme_css}</style><style>{rendermime_css}</style>"
        "<style>.notebook{padding:8px;background:var(--jp-layout-color0);color:var(--jp-content-font-color1)}"
        "</style></head>"  # the notebook panel's background, over the shell's (jp-ThemedContainer)
        f"<body class='jp-ThemedContainer' data-jp-theme-light='{str(light).lower()}'><div class='notebook'>"
        "<div class='jp-OutputArea-output jp-RenderedHTMLCommon jp-RenderedHTML' data-mime-type='text/html'>"
        "{OUTPUT}</div></div></body></html>"
    )


def _plain_page(background: str, text: str) -> str:
    """A notebook front end that defines no JupyterLab variable (VS Code, Colab): its own colours."""
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><style>"
        f"body{{margin:0;padding:8px;background:{background};color:{text};font-family:sans-serif}}"
        "</style></head><body><div class='output'>{OUTPUT}</div></body></html>"
    )


PLAIN = {
    "plain-light": ("#ffffff", "#1f1f1f"),  # VS Code light, Colab
    "plain-dark": ("#1e1e1e", "#cccccc"),  # VS Code's dark theme: light text on near-black
}
THEMES = ["jupyterlab-light", "jupyterlab-dark", "jupyterlab-dark-high-contrast", *PLAIN]


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    lab = _lab_dir()
    if lab is None:
        pytest.skip("JupyterLab's theme files not found: pip install jupyterlab")
    rendermime = _rendermime_css(lab)
    assert ".jp-RenderedHTMLCommon table" in rendermime, "JupyterLab's rendermime CSS not found in its bundle"
    found = {
        "jupyterlab-light": _lab_page(_theme_css(lab, "light"), rendermime, light=True),
        "jupyterlab-dark": _lab_page(_theme_css(lab, "dark"), rendermime, light=False),
    }
    high_contrast = lab / "themes" / "@jupyterlab" / "theme-dark-high-contrast-extension" / "index.css"
    if high_contrast.exists():
        found["jupyterlab-dark-high-contrast"] = _lab_page(high_contrast.read_text(), rendermime, light=False)
    found.update({name: _plain_page(*colours) for name, colours in PLAIN.items()})
    return found


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
        page = chromium.new_page()
        try:
            yield page
        finally:
            chromium.close()


# --------------------------------------------------------------------------------------------------
# The outputs the learner sees
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    from catalogue import buggy

    import solutions
    from checks import check
    from checks.core import CheckResult, TestRow

    with pytest.MonkeyPatch.context() as patch:  # hint() and solution() record progress: not in ~
        patch.setenv("WORKBOOK_HOME", str(tmp_path_factory.mktemp("workbook-home")))
        from workbook.learner import hint, hints_for, solution

        failing = check(buggy.attention_no_scale, "scaled_dot_product_attention")
        assert failing.state == "failed" and any(row.status == "skipped" for row in failing.tests)
        stub = CheckResult(
            "LayerNorm",
            "not attempted",
            ["LayerNorm is not written yet: it still raises NotImplementedError. Replace the "
             "`raise NotImplementedError(...)` line(s) with your code."],
        )  # fmt: skip
        printed = CheckResult(
            "MultiHeadAttention",
            "failed",
            ["The output: wrong values (largest difference 0.3). See https://docs.pytorch.org/docs/stable/"],
            ["mha_no_output_projection"],
            [
                TestRow("interface: constructor and parameters", "passed"),
                TestRow(
                    "numbers: matches the reference", "failed", "The output: wrong values (largest difference 0.3)."
                ),
                TestRow("hygiene: works in float64", "skipped", "not judged across processes: a handle"),
            ],
            0.31,
            "debug: x.shape = torch.Size([2, 5, 16])\n<script>alert(1)</script>",
            ["a thread your code started was still running"],
        )
        shown = {
            "failing check": failing._repr_html_(),
            "passing check": check(solutions.FeedForwardNetwork)._repr_html_(),
            "skipped rows": check(buggy.PESwapped, "PositionalEncoding")._repr_html_(),
            "mask picture": check(buggy.future_mask_triu, "create_future_mask")._repr_html_(),
            "not attempted": stub._repr_html_(),
            "printed and notes": printed._repr_html_(),
            "hint": hint("MultiHeadAttention", len(hints_for("MultiHeadAttention")))._repr_html_(),
            "first hint": hint("softmax", 1)._repr_html_(),
            "solution": solution("MultiHeadAttention")._repr_html_(),
        }
    return shown


# --------------------------------------------------------------------------------------------------
# In the page: every text node's colour over its effective background
# --------------------------------------------------------------------------------------------------
MEASURE = r"""
(root) => {
  const parse = (css) => {
    let m = css.match(/^rgba?\(([^)]*)\)$/);
    if (m) {
      const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number);
      return [p[0] / 255, p[1] / 255, p[2] / 255, p.length > 3 ? p[3] : 1];
    }
    m = css.match(/^color\(srgb ([^)]*)\)$/);
    if (m) {
      const p = m[1].split(/[\s\/]+/).filter(Boolean).map(Number);
      return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
    }
    throw new Error("a colour this test cannot read: " + css);
  };
  const over = (top, bottom) => [0, 1, 2].map((i) => top[i] * top[3] + bottom[i] * (1 - top[3])).concat([1]);
  const lum = (c) => {
    const lin = c.slice(0, 3).map((v) => (v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4)));
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2];
  };
  const hex = (c) => "#" + c.slice(0, 3).map((v) => Math.round(v * 255).toString(16).padStart(2, "0")).join("");
  document.querySelectorAll("details").forEach((d) => (d.open = true));
  const found = [];
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!node.textContent.trim() || !el.checkVisibility({ opacityProperty: true, visibilityProperty: true })) continue;
    const chain = [];
    let opacity = 1;
    for (let e = el; e; e = e.parentElement) {
      chain.unshift(e);
      opacity *= Number(getComputedStyle(e).opacity);
    }
    let background = [1, 1, 1, 1];  // the browser's canvas
    for (const e of chain) background = over(parse(getComputedStyle(e).backgroundColor), background);
    const colour = parse(getComputedStyle(el).color);
    colour[3] *= opacity;
    const text = over(colour, background);
    const [a, b] = [lum(text), lum(background)].sort((x, y) => y - x);
    found.push({ text: node.textContent.trim().slice(0, 60), tag: el.tagName.toLowerCase(),
                 colour: hex(text), background: hex(background), ratio: (a + 0.05) / (b + 0.05) });
  }
  const cells = [...root.querySelectorAll("td, th")].map((td) => getComputedStyle(td).textAlign);
  const images = [...root.querySelectorAll("img")].map((img) => [img.complete, img.naturalWidth, img.naturalHeight]);
  return { nodes: found, cells: cells, images: images };
}
"""


def measure(browser, page_html: str, output: str) -> dict:
    browser.set_content(page_html.replace("{OUTPUT}", output))
    root = browser.query_selector(".jp-RenderedHTMLCommon, .output")
    return root.evaluate(MEASURE)


OUTPUTS = [
    "failing check",
    "passing check",
    "skipped rows",
    "mask picture",
    "not attempted",
    "printed and notes",
    "hint",
    "first hint",
    "solution",
]


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("output", OUTPUTS)
def test_every_text_is_readable(browser, pages, outputs, theme: str, output: str) -> None:
    if theme not in pages:
        pytest.skip(f"this JupyterLab has no {theme} theme")
    found = measure(browser, pages[theme], outputs[output])
    assert len(found["nodes"]) >= 3, f"the {output} rendered (almost) no text: {found}"
    weak = [node for node in found["nodes"] if node["ratio"] < WCAG_AA]
    shown = "\n".join(
        f"  {n['ratio']:.2f}:1  {n['colour']} on {n['background']}  <{n['tag']}> {n['text']!r}" for n in weak[:12]
    )
    lowest = min(node["ratio"] for node in found["nodes"])
    assert not weak, f"{len(weak)} text node(s) below {WCAG_AA}:1 in {theme} (lowest {lowest:.2f}:1):\n{shown}"


@pytest.mark.parametrize("output", ["failing check", "skipped rows", "printed and notes"])
def test_table_cells_are_left_aligned_in_jupyterlab(browser, pages, outputs, output: str) -> None:
    """JupyterLab right-aligns the cells of an output's table; the checker's table says left."""
    found = measure(browser, pages["jupyterlab-light"], outputs[output])
    assert found["cells"] and set(found["cells"]) <= {"left", "start"}, found["cells"]


@pytest.mark.parametrize("output", ["failing check", "skipped rows", "mask picture"])
def test_pictures_of_wrong_values_are_drawn(browser, pages, outputs, output: str) -> None:
    """The heatmaps of a failure on values (yours, expected) decode as images in the browser."""
    found = measure(browser, pages["jupyterlab-dark"], outputs[output])
    assert found["images"] and len(found["images"]) % 2 == 0, found["images"]
    assert all(complete and width > 0 and height > 0 for complete, width, height in found["images"])
