"""What the check table, hints and solutions say, in a notebook (HTML) and in a terminal (text).

The colours themselves are measured in a real browser by tests/test_browser.py; here: a diagnosis
said once, clickable and escaped links, why a row was skipped, identifiers kept whole, cells aligned
left, and the data (``to_dict``, what the judge and nbgrader get) unchanged by any of it.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from catalogue import buggy

import solutions
from checks import check, display
from checks.core import CheckResult, _row_name
from checks.core import TestRow as Row
from checks.diagnoses import explain

CAUSE = explain("attn_no_scale")


@pytest.fixture(scope="module")
def failing() -> CheckResult:
    result = check(buggy.attention_no_scale, "scaled_dot_product_attention")
    assert result.state == "failed" and result.diagnoses == ["attn_no_scale"]
    assert sum(row.status == "failed" for row in result.tests) >= 2  # the same cause on several rows
    return result


def test_a_repeated_diagnosis_is_said_once(failing: CheckResult) -> None:
    first = next(row.name for row in failing.tests if row.status == "failed")
    failed_rows = sum(row.status == "failed" for row in failing.tests)
    text, page = str(failing), failing._repr_html_()
    assert text.count("Likely cause:") == failed_rows and text.count(CAUSE) == 1
    assert text.count(f'Likely cause: the same as for "{first}" above.') == failed_rows - 1
    assert page.count("Your attention weights equal softmax") == 1
    assert page.count("the same as for &quot;" + first + "&quot; above") == failed_rows - 1
    # the data keeps every row's whole message (the judge, nbgrader and --json see them unchanged)
    assert all(CAUSE in row.message for row in failing.tests if row.status == "failed")
    assert all(CAUSE in f for f in failing.failures)
    assert CheckResult.from_dict(failing.to_dict()).to_dict() == failing.to_dict()


def test_urls_are_links(failing: CheckResult) -> None:
    page = failing._repr_html_()
    url = "https://docs.pytorch.org/docs/stable/generated/torch.matmul.html"
    assert f'href="{url}"' in page and f">{url}</a>.)" in page  # the sentence's full stop left outside
    shown = display.inline('see https://example.org/a?b=1&c="2"<x> and `code <y>`.')
    assert 'href="https://example.org/a?b=1&amp;c=&quot;2&quot;"' not in shown  # the quote ends the URL
    assert 'href="https://example.org/a?b=1&amp;c="' in shown and "&lt;x&gt;" in shown
    assert "<code" in shown and "code &lt;y&gt;</code>" in shown and "<x>" not in shown and "<y>" not in shown
    shown = display.inline("javascript:alert(1) http://ok.org")
    assert 'href="javascript' not in shown and 'href="http://ok.org"' in shown


def test_skipped_rows_say_why(failing: CheckResult) -> None:
    skipped = [row for row in failing.tests if row.status == "skipped"]
    assert skipped and all(row.message == "an earlier layer failed" for row in skipped)
    text = str(failing)
    for row in skipped:
        assert f"[skip] {row.name} (an earlier layer failed)" in text
    page = failing._repr_html_()
    assert page.count("an earlier layer failed") == len(skipped)
    judged = CheckResult("x", "passed", tests=[Row("hygiene: t", "skipped", "not judged across processes: why")])
    assert "[skip] hygiene: t (not judged across processes: why)" in str(judged)
    assert "not judged across processes: why" in judged._repr_html_()


def test_identifiers_in_test_names_stay_whole() -> None:
    def refuses_heads_that_do_not_divide_d_model(ctx):
        pass

    def uses_its_pad_idx(ctx):
        pass

    def adds_the_table_to_x(ctx):
        pass

    assert _row_name("properties", refuses_heads_that_do_not_divide_d_model) == (
        "properties: refuses heads that do not divide `d_model`"
    )
    assert _row_name("numbers", uses_its_pad_idx) == "numbers: uses its `pad_idx`"
    assert _row_name("numbers", adds_the_table_to_x) == "numbers: adds the table to `x`"
    result = check(buggy.MHANoDivisibilityCheck, "MultiHeadAttention")
    names = [row.name for row in result.tests]
    assert "properties: refuses heads that do not divide `d_model`" in names
    assert not any(" d model" in name for name in names)
    assert "<code" in result._repr_html_() and ">d_model</code>" in result._repr_html_()


def test_every_cell_says_left(failing: CheckResult) -> None:
    """JupyterLab's CSS right-aligns table cells of an output; each cell overrides it."""
    page = failing._repr_html_()
    cells = re.findall(r"<td [^>]*>", page)
    assert len(cells) == 3 * len(failing.tests)
    assert all("text-align:left" in cell for cell in cells)


def test_no_text_colour_is_fixed_over_a_fixed_background(failing: CheckResult) -> None:
    """Text keeps the notebook's colour; accents are mixed from it; backgrounds are translucent."""
    passed = check(solutions.FeedForwardNetwork)
    for page in (failing._repr_html_(), passed._repr_html_()):
        for colour in re.findall(r"(?<![-\w])color:\s*([^;\"]+)", page):
            assert colour.startswith("color-mix(in srgb, currentColor"), colour
        for background in re.findall(r"background(?:-color)?:\s*([^;\"]+)", page):
            assert background.startswith("rgba(") and float(background.rsplit(",", 1)[1].rstrip(") ")) <= 0.2


def test_middle_luminance_hues() -> None:
    for hue in (display.GREEN, display.RED, display.AMBER, display.BLUE, "#0000ff", "#ffff00", "#000000"):
        mid = display.middle(hue)
        rgb = tuple(int(mid[i : i + 2], 16) / 255 for i in (1, 3, 5))
        assert abs(display.luminance(rgb) - display.MIDDLE_LUMINANCE) < 0.01, (hue, mid)


def test_hint_and_solution_html_keep_the_theme(tmp_path, monkeypatch) -> None:
    from workbook.learner import hint, solution

    shown = hint("softmax", 3)._repr_html_()
    assert "<pre" in shown and "color-mix(in srgb, currentColor" in shown  # its code block highlighted
    code = solution("MultiHeadAttention")
    page = code._repr_html_()
    assert "MultiHeadAttention" in page and "color-mix(in srgb, currentColor" in page
    assert not re.search(r"(?<![-\w])color:\s*#", page)  # pygments' fixed light-theme colours are gone
    assert "class MultiHeadAttention" in str(code)


# --------------------------------------------------------------------------------------------------
# Pictures: the learner's values beside the expected ones, in the notebook only
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("buggy_part", "exercise", "row", "title"),
    [
        ("PESwapped", "PositionalEncoding", "numbers: the table matches the paper", "Your table `pe`"),
        ("attention_no_scale", "scaled_dot_product_attention", "numbers: matches equation 1", "attention weights"),
        ("future_mask_triu", "create_future_mask", "numbers: true on and below the diagonal", "create_future_mask"),
        ("padding_mask_flipped", "create_padding_mask", "numbers: true for real tokens", "Your padding mask"),
    ],
)
def test_a_failure_on_values_is_pictured_in_the_notebook_only(buggy_part, exercise, row, title) -> None:
    import workbook

    result = workbook.check(getattr(buggy, buggy_part), exercise)  # graded in a worker: the picture comes back
    assert result.state == "failed" and row in result.pictures
    shown = result.pictures[row]
    assert title in shown["title"] and len(shown["yours"]) == len(shown["expected"]) >= 1
    assert shown["yours"] != shown["expected"]
    page = result._repr_html_()
    assert page.count('<img alt="yours: a heatmap" src="data:image/png;base64,') >= 1
    assert page.count('<img alt="expected: a heatmap"') == page.count('<img alt="yours: a heatmap"')
    assert "<img" not in str(result) and "heatmap" not in str(result) and "base64" not in str(result)
    assert "pictures" not in result.to_dict()  # not for the judge, nbgrader or --json
    assert "pictures" not in json.dumps(result.to_dict()) and "base64" not in json.dumps(result.to_dict())
    assert CheckResult.from_dict(result.to_dict(pictures=True)).pictures == result.pictures


def test_the_judge_path_draws_no_picture() -> None:
    from checks.core import run_spec
    from checks.references import REFERENCES
    from checks.specs import SPECS

    judged = run_spec(SPECS["PositionalEncoding"], buggy.PESwapped, REFERENCES, judged=True)
    assert judged.state == "failed" and judged.pictures == {}
    assert "<img" not in judged._repr_html_()


def test_a_picture_of_a_passing_or_misshapen_output_is_none() -> None:
    from checks.core import picture

    assert picture("t", torch.zeros(2, 3), torch.zeros(3, 2)) is None
    assert picture("t", [1, 2], torch.zeros(2)) is None
    shown = picture("t", torch.ones(2, 1, 3, 3), torch.zeros(2, 1, 3, 3), "query", "key")
    assert shown["title"] == "t [0, 0, :, :]" and shown["yours"] == [[1.0] * 3] * 3
    mask = picture("m", torch.tensor([[[[True, False]]]]), torch.tensor([[[[True, True]]]]), mask=True)
    assert mask["yours"] == [[1.0, 0.0]] and mask["mask"] is True
    nan = picture("n", torch.tensor([float("nan"), 1.0]), torch.tensor([0.0, 1.0]))
    assert nan["yours"] == [[None, 1.0]]
    assert "magenta = NaN or inf" in display.picture_html(nan)
    assert json.loads(json.dumps(nan)) == nan  # plain JSON: it travels back from the grading worker


def test_png_is_a_valid_image() -> None:
    import struct
    import zlib

    data = display.png([[(255, 0, 0), (0, 255, 0)], [(0, 0, 255), (1, 2, 3)]])
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (2, 2)
    start = data.index(b"IDAT") + 4
    (length,) = struct.unpack(">I", data[start - 8 : start - 4])
    raw = zlib.decompress(data[start : start + length])
    assert raw == b"\x00\xff\x00\x00\x00\xff\x00\x00\x00\x00\xff\x01\x02\x03"
