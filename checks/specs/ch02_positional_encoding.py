"""Chapter 02: ``PositionalEncoding`` (section 3.5): a fixed table of sines and cosines, added to x."""

from __future__ import annotations

import torch

import solutions

from ..core import Ctx, Fail, Spec, learner_call, picture, several
from .common import (
    D_MODEL,
    MAX_LEN,
    compare,
    expect_float64_output,
    expect_forward_signature,
    expect_init_signature,
    expect_inputs_unchanged,
    expect_module,
    expect_shape,
    in_float64,
)

SPEC = Spec("PositionalEncoding", solutions.PositionalEncoding)


def sinusoid_table(
    d: int,
    n: int,
    *,
    exponent=lambda k, d: 2 * k / d,
    multiply: bool = False,
    swap: bool = False,
    interleave: bool = True,
    per_feature: bool = False,
) -> torch.Tensor:
    """The table of section 3.5 and its classic variants, shape [1, n, d] (float64)."""
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    if per_feature:  # exponent j/d with j the feature index itself (even j for sin, odd j for cos)
        j = torch.arange(d, dtype=torch.float64)
        freq = 10000.0 ** (j / d)
        s, c = torch.sin(pos / freq[0::2]), torch.cos(pos / freq[1::2])
    else:
        k = torch.arange(d // 2, dtype=torch.float64)[None]
        freq = 10000.0 ** exponent(k, d)
        angle = pos * freq if multiply else pos / freq
        s, c = torch.sin(angle), torch.cos(angle)
    if swap:
        s, c = c, s
    if interleave:
        pe = torch.zeros(n, d, dtype=torch.float64)
        pe[:, 0::2], pe[:, 1::2] = s, c
    else:
        pe = torch.cat([s, c], dim=-1)
    return pe.unsqueeze(0)


def table_hypotheses(d: int, n: int) -> dict:
    return {
        "pe_sin_cos_swapped": sinusoid_table(d, n, swap=True),
        "pe_wrong_frequencies#i/d": sinusoid_table(d, n, exponent=lambda k, d: k / d),
        "pe_wrong_frequencies#4i/d": sinusoid_table(d, n, exponent=lambda k, d: 4 * k / d),
        "pe_wrong_frequencies#multiply": sinusoid_table(d, n, multiply=True),
        "pe_wrong_frequencies#j/d": sinusoid_table(d, n, per_feature=True),
        "pe_wrong_frequencies#negative": sinusoid_table(d, n, exponent=lambda k, d: -2 * k / d),
        "pe_wrong_layout": sinusoid_table(d, n, interleave=False),
        "pe_wrong_layout#swapped": sinusoid_table(d, n, interleave=False, swap=True),
        "pe_positions_from_one": sinusoid_table(d, n + 1)[:, 1:],
    }


def _fresh(ctx: Ctx, d: int = D_MODEL, n: int = MAX_LEN):
    module = expect_module(ctx.new(d, n), "PositionalEncoding")
    learner_call(module.eval, what="PositionalEncoding.eval()")
    return module


def _run(module, x: torch.Tensor, what: str = "PositionalEncoding"):
    return learner_call(module, x, what=f"{what} on x of shape {list(x.shape)}")


@SPEC.test("interface")
def constructor_and_forward(ctx: Ctx) -> None:
    expect_init_signature(
        ctx, "(d_model, max_seq_length=5000)", ((D_MODEL,), {}), ((D_MODEL,), {"max_seq_length": MAX_LEN})
    )
    module = _fresh(ctx)
    expect_forward_signature(module, "PositionalEncoding", "(x)", ((torch.zeros(1, 2, D_MODEL),), {}))


@SPEC.test("interface")
def pe_is_a_buffer_of_the_right_shape(ctx: Ctx) -> None:
    module = _fresh(ctx)
    pe = getattr(module, "pe", None)
    if not isinstance(pe, torch.Tensor):
        missing = Fail("Your PositionalEncoding has no tensor attribute `pe` (the table of section 3.5).")
        raise several([_ignores_x(module), missing])
    if list(pe.shape) != [1, MAX_LEN, D_MODEL]:
        message = (
            f"`pe` should have shape [1, max_seq_length, d_model] = [1, {MAX_LEN}, {D_MODEL}], "
            f"but yours has shape {list(pe.shape)}."
        )
        if list(pe.shape) == [1, MAX_LEN + 1, D_MODEL]:
            raise Fail(f"{message}\n{_extra_row(module)}", ["pe_table_rows"]) from None
        raise Fail(message, ["pe_wrong_axis"] if sorted(pe.shape) == sorted([1, MAX_LEN, D_MODEL]) else [])
    buffers = dict(module.named_buffers())
    params = dict(module.named_parameters())
    if "pe" in params or "pe" not in buffers:
        kind = "an nn.Parameter" if "pe" in params else "a plain attribute"
        raise Fail(f"Your `pe` is {kind}, not a buffer.", ["pe_not_buffer"])
    if params:
        raise Fail(
            "Your PositionalEncoding has trainable parameters (" + ", ".join(params) + "): the "
            "sinusoidal encoding of section 3.5 is fixed, nothing in it is learned.",
            ["pe_not_buffer"],
        )


def _extra_row(module) -> str:
    """What a table of max_seq_length + 1 rows is used for: which rows the learner's forward adds."""
    words = (
        f"That is max_seq_length + 1 = {MAX_LEN + 1} rows: one row per position 0, 1, ..., max_seq_length - 1 "
        "is all a sequence of at most max_seq_length tokens can use."
    )
    x = torch.zeros(1, 5, D_MODEL)
    try:
        added = _run(module, x.clone())
    except Fail:
        return words
    table = sinusoid_table(D_MODEL, 6)
    if not isinstance(added, torch.Tensor) or not added.is_floating_point():
        return words
    added = added.detach().double()
    if added.shape == (1, 5, D_MODEL) and torch.allclose(added, table[:, 1:], atol=1e-4):
        words += (
            " And your forward adds the rows of positions 1 to S (its positions start at 1): in section 3.5 the "
            "first token is at position 0, whose row is sin(0) = 0 on the even features and cos(0) = 1 on the odd ones."
        )
    return words


def _ignores_x(module) -> Fail | None:
    """A failure when the output of the learner's forward does not depend on x (two different inputs of one
    shape give the same output); its words say when that output is the table itself. None otherwise."""
    x1, x2 = torch.randn(2, 5, D_MODEL), torch.randn(2, 5, D_MODEL)
    try:
        a, b = _run(module, x1.clone()), _run(module, x2.clone())
    except Fail:
        return None
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape):
        return None
    if not a.is_floating_point() or not torch.equal(a.detach(), b.detach()):
        return None
    table = sinusoid_table(D_MODEL, 5)
    try:
        is_table = torch.allclose(a.detach().double().expand(1, 5, D_MODEL), table, atol=1e-4)
    except RuntimeError:
        is_table = False
    said = (
        f"it returns the positional-encoding table itself (shape {list(a.shape)}), the same for every x"
        if is_table
        else f"it returns the same tensor (shape {list(a.shape)}) for two different x"
    )
    return Fail(
        f"Your PositionalEncoding's forward ignores its input: {said}. Section 3.5 adds the encoding to the "
        f"embeddings: the output is x + pe[:, :S], of x's shape [B, S, d_model].",
        ["pe_returns_table"],
    )


@SPEC.test("shapes")
def output_shape(ctx: Ctx) -> None:
    module = _fresh(ctx)
    for shape in ([2, 7, D_MODEL], [1, 1, D_MODEL], [3, MAX_LEN, D_MODEL], [5, 2, D_MODEL]):
        try:
            out = _run(module, torch.randn(shape))
        except Fail as fail:
            raise Fail(fail.message, ["pe_wrong_axis"] if "size of tensor" in fail.message else []) from None
        try:
            expect_shape(out, shape, f"PositionalEncoding's output for x of shape {shape}")
        except Fail as fail:
            raise several([_ignores_x(module), fail]) from None


@SPEC.test("numbers")
def the_table_matches_the_paper(ctx: Ctx) -> None:
    pe = _fresh(ctx).pe.detach()
    expected = sinusoid_table(D_MODEL, MAX_LEN)
    try:
        compare(pe, expected, "Your table `pe`", table_hypotheses(D_MODEL, MAX_LEN), atol=1e-4)
    except Fail as fail:
        ids, message = fail.diagnoses, fail.message
        halves = _halves_layout(pe.double()[0], expected[0]) if not ids and pe.shape == expected.shape else None
        if halves is not None:
            ids, message = halves[0], f"{message}\n{halves[1]}"
        elif not ids and pe.shape == expected.shape:
            p = pe.double()
            if torch.allclose(p[..., 0::2] ** 2 + p[..., 1::2] ** 2, torch.ones(()).double(), atol=1e-3):
                ids = ["pe_wrong_frequencies"]  # sine/cosine pairs, other frequencies
            else:
                found = _frequency_differences(p[0], expected[0])
                if found:
                    ids, message = ["pe_wrong_frequencies"], f"{message}\n{found}"
        shown = picture("Your table `pe`", pe, expected, "position", "feature")  # in the notebook only
        raise Fail(message, ids, shown) from None


def _halves_layout(pe: torch.Tensor, expected: torch.Tensor) -> tuple[list[str], str] | None:
    """A table [n, d] laid out in halves (fairseq's and tensor2tensor's layout): at position 0 the first
    d/2 features are 0 and the last d/2 are 1, so the sines fill the first half and the cosines the second.
    (ids, words), the frequencies examined too once the halves are interleaved; None when it is not that."""
    d = pe.shape[-1]
    half = d // 2
    if d % 2 or d < 4:
        return None
    zeros, ones = torch.zeros(()).double(), torch.ones(()).double()
    if not (torch.allclose(pe[0, :half], zeros, atol=1e-4) and torch.allclose(pe[0, half:], ones, atol=1e-4)):
        return None
    words = (
        f"Your table puts all the sines in the first half of the features (0 to {half - 1}) and all the cosines "
        f"in the second half ({half} to {d - 1}): at position 0 its row is {half} zeros, then {half} ones. "
        "Section 3.5 interleaves them: the sine at each even feature 2i and its cosine at the odd feature 2i+1 "
        "right after it."
    )
    interleaved = torch.zeros_like(pe)
    interleaved[:, 0::2], interleaved[:, 1::2] = pe[:, :half], pe[:, half:]
    if torch.allclose(interleaved, expected, atol=1e-4):
        return ["pe_wrong_layout"], words
    found = _frequency_differences(interleaved, expected)
    if found:
        return ["pe_wrong_layout", "pe_wrong_frequencies"], (
            f"{words}\nBesides, put back in the interleaved order, your columns still differ. {found}"
        )
    return ["pe_wrong_layout"], words


def _is_sinusoid(column: torch.Tensor) -> bool:
    """A sine or cosine of some frequency (any phase): f(p+1) + f(p-1) = 2 cos(w) f(p) for every p."""
    mid, around = column[1:-1], column[2:] + column[:-2]
    if mid.numel() < 3 or float((mid * mid).sum()) < 1e-12:
        return False
    c = float((around * mid).sum() / (2 * (mid * mid).sum()))
    return abs(c) <= 1 + 1e-6 and float((around - 2 * c * mid).abs().max()) < 1e-3


def _frequency_differences(pe: torch.Tensor, expected: torch.Tensor) -> str:
    """What the columns of a wrong table [n, d] show when no single known mistake explains it: every
    column a sinusoid starting where section 3.5's does (sine 0, cosine 1 at position 0), some at other
    frequencies, and the cosine of a pair not at its sine's frequency. "" when it is not that."""
    d = pe.shape[-1]
    if d % 2 or pe.shape[0] < 5:
        return ""
    if not all(_is_sinusoid(pe[:, j]) for j in range(d)):
        return ""
    if not (
        torch.allclose(pe[0, 0::2], torch.zeros(()).double(), atol=1e-3)
        and torch.allclose(pe[0, 1::2], torch.ones(()).double(), atol=1e-3)
    ):
        return ""
    differ = [j for j in range(d) if not torch.allclose(pe[:, j], expected[:, j], atol=1e-4)]
    sines = [j for j in differ if j % 2 == 0]
    cosines = [j for j in differ if j % 2 == 1]
    unpaired = not torch.allclose(pe[:, 0::2] ** 2 + pe[:, 1::2] ** 2, torch.ones(()).double(), atol=1e-3)

    def listed(js: list[int]) -> str:
        return ", ".join(str(j) for j in js[:6]) + (", ..." if len(js) > 6 else "")

    lines = [
        "Every column of your table is a sine or cosine that starts right (0 or 1 at position 0), so "
        "the difference is in the frequencies (the exponent of 10000):"
    ]
    if sines:
        lines.append(f"  the sine columns {listed(sines)} run at other frequencies than section 3.5's;")
    if cosines:
        lines.append(f"  the cosine columns {listed(cosines)} run at other frequencies than section 3.5's;")
    if unpaired:
        lines.append(
            "  and the cosine at feature 2i+1 does not run at the frequency of the sine at feature 2i "
            "(in section 3.5 both use the same exponent 2i/d_model)."
        )
    if sines and unpaired:
        lines.append(
            "More than one thing differs here: the sines' exponent, and the cosines' exponent on top of it. "
            "Work out what i is for feature 2i and for feature 2i+1, then fix both."
        )
    return "\n".join(lines)


@SPEC.test("numbers")
def adds_the_table_to_x(ctx: Ctx) -> None:
    module = _fresh(ctx)
    x = torch.randn(3, 5, D_MODEL)
    table = sinusoid_table(D_MODEL, MAX_LEN).float()
    hyps = {"pe_wrong_axis": x + table[0, :3].unsqueeze(1), "pe_returns_table": table[:, :5].expand(3, 5, D_MODEL)}
    compare(_run(module, x.clone()), x + table[:, :5], "PositionalEncoding's output (x + pe[:, :S])", hyps, atol=1e-4)


@SPEC.test("properties")
def a_too_long_sequence_is_a_clear_error(ctx: Ctx) -> None:
    module = _fresh(ctx, n=8)
    x = torch.zeros(1, 9, D_MODEL)
    try:
        learner_call(module, x, what="PositionalEncoding")
    except Fail as fail:
        if "size of tensor" in fail.message or "must match the size" in fail.message:
            raise Fail(
                "With max_seq_length=8, a sequence of length 9 fails with a confusing torch shape "
                "error instead of a clear message.",
                ["pe_no_length_error"],
            ) from None
        return  # your own error: good
    raise Fail("With max_seq_length=8, a sequence of length 9 went through without an error.", ["pe_no_length_error"])


@SPEC.test("properties")
def no_dropout_inside(ctx: Ctx) -> None:
    module = _fresh(ctx)
    x = torch.randn(2, 6, D_MODEL)
    learner_call(module.train, what="PositionalEncoding.train()")
    a, b = _run(module, x), _run(module, x)
    learner_call(module.eval, what="PositionalEncoding.eval()")
    c = _run(module, x)
    if not (torch.equal(a, c) and torch.equal(b, c)):
        raise Fail("Your PositionalEncoding's output changes in train mode.", ["pe_dropout_inside"])


@SPEC.test("hygiene")
def does_not_change_x(ctx: Ctx) -> None:
    module = _fresh(ctx)
    x = torch.randn(2, 4, D_MODEL)
    expect_inputs_unchanged("PositionalEncoding", {"x": x}, lambda: _run(module, x))


@SPEC.test("hygiene")
@in_float64
def works_in_float64_and_keeps_the_device(ctx: Ctx) -> None:
    module = _fresh(ctx)
    x = torch.randn(2, 4, D_MODEL, dtype=torch.float64)
    out = _run(module, x)
    expect_float64_output(
        out, x.device, lambda: x + sinusoid_table(D_MODEL, MAX_LEN)[:, :4], "PositionalEncoding", atol=1e-4
    )
