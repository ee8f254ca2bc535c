"""Helpers the specs share: tiny sizes, reference/learner pairs with the same weights, comparisons
that name known mistakes, and input-hygiene checks.

Every comparison works on numbers only: a learner's output is compared to the reference's, and on a
mismatch to the reference computed under each known mistake ("hypotheses"); the one it matches is the
diagnosis. Nothing here reads the learner's source text.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.nn as nn

from ..core import Ctx, Fail, Skip, Spec, learner_call

# Tiny sizes keep every check well under half a second on a laptop CPU.
D_MODEL = 16
HEADS = 2
D_FF = 32
VOCAB = 11
LAYERS = 2
MAX_LEN = 40
SEED = 1234

Hypotheses = Mapping[str, Any]  # diagnosis id -> expected tensor (or a callable producing one)


def shape_str(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return "[" + ", ".join(str(s) for s in x.shape) + "]"
    return type(x).__name__


def seed(value: int = SEED) -> None:
    torch.manual_seed(value)


# --------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------
def padding_mask(lengths: Sequence[int], total: int) -> torch.Tensor:
    """bool [B, 1, 1, total]: True for the first ``lengths[b]`` keys of row b, False for the padding."""
    return (torch.arange(total)[None, :] < torch.tensor(lengths)[:, None])[:, None, None, :]


def padded_tokens(lengths: Sequence[int], total: int, vocab: int = VOCAB, pad: int = 0) -> torch.Tensor:
    """Random token ids [len(lengths), total] from 1..vocab-1 (never ``pad``); row b is ``pad`` from
    position ``lengths[b]`` on."""
    seq = torch.randint(1, vocab, (len(lengths), total))
    seq[seq == pad] = pad + 1
    for i, n in enumerate(lengths):
        seq[i, n:] = pad
    return seq


# --------------------------------------------------------------------------------------------------
# Interfaces
# --------------------------------------------------------------------------------------------------
def _remote_problem(obj: Any, method: str | None, calls: Iterable[tuple[tuple, dict]]) -> tuple[str, str] | None:
    """For a handle on the judge's worker (``checks.judge``): (parameters, error) of the first call
    that ``obj`` (or its ``method``) cannot take, ("absent", "") when it lacks the method; else None."""
    answer = obj._bind(method, list(calls), with_self=method is not None)  # checks.judge.Remote
    if not answer:
        return None
    if answer.get("absent"):
        return "absent", ""
    return str(answer.get("signature", "")), str(answer.get("error", ""))


def _is_remote(obj: Any) -> bool:
    return type(obj).__name__ == "Remote" and type(obj).__module__ == "checks.judge"


def expect_signature(fn: Any, what: str, *calls: tuple[tuple, dict], shown: str) -> None:
    """Fail unless ``fn`` accepts each ``(args, kwargs)`` call (checked with inspect, nothing runs)."""
    if _is_remote(fn):
        problem = _remote_problem(fn, None, calls)
        if problem is not None and problem[0] != "absent":
            raise Fail(
                f"{what} should be callable as {shown}, but yours is {what}{problem[0]}: {problem[1]}.",
                ["wrong_signature"],
            )
        return
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # builtins and C functions: nothing to inspect
    for args, kwargs in calls:
        try:
            sig.bind(*args, **kwargs)
        except TypeError as error:
            raise Fail(
                f"{what} should be callable as {shown}, but yours is {what}{sig}: {error}.", ["wrong_signature"]
            ) from None


def _method_bind_error(method: Any, calls: Iterable[tuple[tuple, dict]]) -> tuple[str, TypeError] | None:
    """The first of ``calls`` that ``method`` (called with ``self`` first) cannot take, as (its parameters
    shown without ``self``, the error); None when it takes them all (checked with inspect, nothing runs)."""
    try:
        sig = inspect.signature(method)
    except (TypeError, ValueError):
        return None  # builtins and C functions: nothing to inspect
    for args, kwargs in calls:
        try:
            sig.bind(None, *args, **kwargs)
        except TypeError as error:
            return str(sig).replace("(self, ", "(").replace("(self)", "()"), error
    return None


def expect_init_signature(ctx: Ctx, shown: str, *calls: tuple[tuple, dict]) -> None:
    if _is_remote(ctx.obj):
        problem = _remote_problem(ctx.obj, "__init__", calls)
        problem = None if problem is None or problem[0] == "absent" else problem
    else:
        problem = _method_bind_error(ctx.obj.__init__, calls)
    if problem is not None:
        params, error = problem
        raise Fail(
            f"{ctx.exercise} should be built as {ctx.exercise}{shown}, but your __init__ takes {params}: {error}.",
            ["wrong_signature"],
        )


def expect_forward_signature(module: nn.Module, name: str, shown: str, *calls: tuple[tuple, dict]) -> None:
    if _is_remote(module):
        problem = _remote_problem(module, "forward", calls)
        fwd = None if problem is not None and problem[0] == "absent" else "remote"
    else:
        fwd = getattr(type(module), "forward", None)
        problem = None
    if fwd is None or fwd is nn.Module.forward:
        raise Fail(
            f"Your {name} has no forward method: define `def forward{shown}` inside the class (check the indentation).",
            ["wrong_signature"],
        )
    if fwd != "remote":
        problem = _method_bind_error(fwd, calls)
    if problem is not None:
        params, error = problem
        raise Fail(f"{name}.forward should accept {shown}, but yours takes {params}: {error}.", ["wrong_signature"])


def expect_module(obj: Any, name: str) -> nn.Module:
    if not isinstance(obj, nn.Module):
        raise Fail(
            f"{name} should be an nn.Module subclass (class {name}(nn.Module): ...) and call super().__init__() first.",
            ["returns_wrong_type"],
        )
    return obj


def _ignorable(key: str) -> bool:
    """The positional-encoding table may be a persistent buffer or not: both are fine."""
    return key == "pe" or key.endswith(".pe")


def materialise_lazy(mine: nn.Module, ref: nn.Module) -> None:
    """Give torch's lazy layers (``nn.LazyLinear``: shapes inferred at the first call) their shapes.

    Each uninitialised lazy layer of the learner's module is called once on a zero input as wide as the
    reference's layer of the same name takes, as the model's first forward pass would; it then holds
    its real parameters (their shapes are compared like any others). Across processes (the judge),
    see :func:`_materialise_remote`.
    """
    if _is_remote(mine):
        return
    from torch.nn.modules.lazy import LazyModuleMixin

    refs = dict(ref.named_modules())
    for name, sub in learner_call(lambda: list(mine.named_modules()), what="named_modules()"):
        if not isinstance(sub, LazyModuleMixin) or not sub.has_uninitialized_params():
            continue
        width = getattr(refs.get(name), "in_features", None)
        if isinstance(width, int):
            weight = getattr(refs[name], "weight", None)
            dtype = weight.dtype if isinstance(weight, torch.Tensor) else torch.get_default_dtype()
            with torch.no_grad():
                learner_call(sub, torch.zeros(1, width, dtype=dtype), what=f"{name} (a lazy layer)")


def _materialise_remote(mine: Any, ref: nn.Module) -> bool:
    """In the judge (``mine`` a handle to the worker's module, whose submodules cannot be listed): each
    of the learner's submodules at the name of one of the reference's linear layers that is one of
    torch's lazy layers is called once on a zero input of the reference's width. Only used after
    ``state_dict()`` failed on uninitialised parameters; True when some layer was materialised."""
    done = False
    for name, sub in ref.named_modules():
        width = getattr(sub, "in_features", None)
        if not name or not isinstance(width, int):
            continue
        theirs: Any = mine
        try:
            for part in name.split("."):
                theirs = getattr(theirs, part)
        except Exception:  # noqa: BLE001 - no submodule of that name: the name check reports it
            continue
        if _is_remote(theirs) and str(getattr(theirs, "_type", "")).startswith("Lazy"):
            learner_call(theirs, torch.zeros(1, width), what=f"{name} (a lazy layer)")
            done = True
    return done


def _shape_known(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and not nn.parameter.is_lazy(value)


def state_dict_problems(mine: nn.Module, ref: nn.Module) -> tuple[list[str], list[str], list[str]]:
    """(missing, unexpected, wrongly shaped) entries of the learner's state_dict against the reference's."""
    materialise_lazy(mine, ref)
    try:
        lsd = learner_call(mine.state_dict, what="state_dict()")
    except Fail as fail:
        if not (_is_remote(mine) and "uninitialized parameter" in fail.message and _materialise_remote(mine, ref)):
            raise
        lsd = learner_call(mine.state_dict, what="state_dict()")
    rsd = ref.state_dict()
    missing = [k for k in rsd if k not in lsd and not _ignorable(k)]
    unexpected = [k for k in lsd if k not in rsd and not _ignorable(k)]
    wrong = [
        f"{k}: yours {list(lsd[k].shape)}, expected {list(rsd[k].shape)}"
        for k in rsd
        if k in lsd and not _ignorable(k) and _shape_known(lsd[k]) and lsd[k].shape != rsd[k].shape
    ]
    return missing, unexpected, wrong


def load_reference_weights(
    mine: nn.Module,
    ref: nn.Module,
    name: str,
    diagnose: Callable[[list[str], list[str], list[str]], list[str]] | None = None,
) -> None:
    """Copy the reference's weights into the learner's module by state_dict key (never partially)."""
    missing, unexpected, wrong = state_dict_problems(mine, ref)
    if missing or unexpected or wrong:
        lines = [
            f"Your {name}'s parameters do not match the ones the paper's model has "
            "(names and shapes are fixed so that weights can be loaded):"
        ]
        if missing:
            lines.append("  missing: " + ", ".join(missing))
        if unexpected:
            lines.append("  unexpected: " + ", ".join(unexpected))
        if wrong:
            lines.append("  wrong shape: " + "; ".join(wrong))
        raise Fail("\n".join(lines), diagnose(missing, unexpected, wrong) if diagnose else [])
    rsd = {k: v for k, v in ref.state_dict().items() if not _ignorable(k)}
    with torch.no_grad():
        learner_call(mine.load_state_dict, rsd, strict=False, what=f"{name}.load_state_dict")


def randomise(module: nn.Module, scale: float = 0.5) -> nn.Module:
    """Give every 1-D parameter (norm weights, biases) random values, so ones/zeros hide nothing."""
    with torch.no_grad():
        for name, param in module.named_parameters():
            if param.dim() == 1:
                if name.endswith("weight"):
                    param.copy_(1.0 + scale * torch.randn_like(param))
                else:
                    param.copy_(scale * torch.randn_like(param))
    return module


def make_pair(
    ctx: Ctx, *args: Any, name: str | None = None, diagnose=None, **kwargs: Any
) -> tuple[nn.Module, nn.Module]:
    """(learner instance, reference instance) with the reference's random weights in both, eval mode."""
    name = name or ctx.exercise
    seed()
    ref = randomise(ctx.reference(*args, **kwargs)).eval()
    mine = expect_module(ctx.new(*args, **kwargs), name)
    load_reference_weights(mine, ref, name, diagnose)
    learner_call(mine.eval, what=f"{name}.eval()")
    return mine, ref


# --------------------------------------------------------------------------------------------------
# Outputs and comparisons
# --------------------------------------------------------------------------------------------------
def expect_tensor(out: Any, what: str) -> torch.Tensor:
    if not isinstance(out, torch.Tensor):
        hint = " (a tuple: did you return more than one thing?)" if isinstance(out, tuple) else ""
        raise Fail(
            f"{what} should return a torch.Tensor, but returned {type(out).__name__}{hint}.", ["returns_wrong_type"]
        )
    return out


def expect_shape(out: Any, shape: Iterable[int], what: str, diagnoses: list[str] | None = None) -> torch.Tensor:
    out = expect_tensor(out, what)
    shape = list(shape)
    if list(out.shape) != shape:
        raise Fail(f"{what} should have shape {shape}, but yours has shape {list(out.shape)}.", diagnoses or [])
    return out


def expect_finite(out: torch.Tensor, what: str, where: torch.Tensor | None = None) -> None:
    values = out if where is None else out[where]
    if out.is_floating_point() and not torch.isfinite(values).all():
        bad = "NaN" if torch.isnan(values).any() else "inf"
        raise Fail(f"{what} contains {bad} values.", ["nan_or_inf"])


def max_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return (actual.detach().double() - expected.detach().double()).abs().max().item()


def is_close(actual: Any, expected: torch.Tensor, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    if not isinstance(actual, torch.Tensor) or actual.shape != expected.shape:
        return False
    a, e = actual.detach().double(), expected.detach().double()
    if not torch.isfinite(a).all():
        return bool(
            torch.equal(torch.isnan(a), torch.isnan(e))
            and torch.allclose(a.nan_to_num(), e.nan_to_num(), rtol=rtol, atol=atol)
        )
    scale = max(e.abs().max().item(), 1.0) if e.numel() else 1.0
    return bool(torch.allclose(a, e, rtol=rtol, atol=atol * scale))


def which_hypothesis(
    actual: Any, hypotheses: Hypotheses, rtol: float = 1e-3, atol: float = 1e-4, valid: torch.Tensor | None = None
) -> list[str]:
    """The ids of the known mistakes whose predicted output ``actual`` matches (first match only).

    Several hypotheses may share an id: ``"embedding_wrong_scale#d"`` counts as ``embedding_wrong_scale``.
    ``valid`` (bool) restricts the comparison to the graded entries.
    """
    for diag, expected in hypotheses.items():
        try:
            value = expected() if callable(expected) else expected
        except Exception:  # noqa: BLE001 - a hypothesis that cannot be computed simply does not match
            continue
        if not isinstance(value, torch.Tensor) or not isinstance(actual, torch.Tensor):
            continue
        a, v = actual.detach(), value.detach()
        if valid is not None and a.shape == v.shape:
            try:
                mask = valid.expand_as(v)
            except RuntimeError:
                continue
            a, v = a[mask], v[mask]
        if is_close(a, v, rtol=rtol, atol=atol):
            return [diag.split("#")[0]]
    return []


def compare(
    actual: Any,
    expected: torch.Tensor,
    what: str,
    hypotheses: Hypotheses | None = None,
    rtol: float = 1e-4,
    atol: float = 1e-5,
    valid: torch.Tensor | None = None,
) -> None:
    """Fail unless ``actual`` matches ``expected``; name the known mistake it matches, if any.

    ``valid`` (bool, broadcastable) selects the entries that are graded (e.g. rows not fully masked).
    """
    actual = expect_tensor(actual, what)
    if list(actual.shape) != list(expected.shape):
        raise Fail(
            f"{what} should have shape {list(expected.shape)}, but yours has shape {list(actual.shape)}.",
            which_hypothesis(actual, hypotheses or {}),
        )
    a, e = actual.detach(), expected.detach()
    hyps = lambda: which_hypothesis(actual, hypotheses or {}, valid=valid)
    if valid is not None:
        mask = valid.expand_as(e)
        a, e = a[mask], e[mask]
    if is_close(a, e, rtol, atol) and torch.isfinite(a.double()).all() == torch.isfinite(e.double()).all():
        return
    if not torch.isfinite(a.double()).all() and torch.isfinite(e.double()).all():
        raise Fail(f"{what} contains NaN or inf values where the expected output has none.", hyps() or ["nan_or_inf"])
    diff = (a.double() - e.double()).abs()
    flat = int(diff.flatten().argmax())
    got, want = a.flatten()[flat].item(), e.flatten()[flat].item()
    message = (
        f"{what}: wrong values (largest difference {diff.max().item():.3g}: "
        f"yours {got:.4g} where {want:.4g} is expected)."
    )
    raise Fail(message, hyps())


# --------------------------------------------------------------------------------------------------
# Hygiene
# --------------------------------------------------------------------------------------------------
def snapshot(*tensors: Any) -> list[Any]:
    return [t.detach().clone() if isinstance(t, torch.Tensor) else copy.deepcopy(t) for t in tensors]


def expect_unchanged(before: list[Any], after: tuple[Any, ...], names: list[str], what: str) -> None:
    for b, a, n in zip(before, after, names):
        if isinstance(a, torch.Tensor) and not (b.shape == a.shape and torch.equal(b, a.detach())):
            raise Fail(
                f"{what} changed its input `{n}` in place. Inputs belong to the caller: compute "
                "new tensors instead of writing into the ones you were given "
                "(operations ending in `_`, `x[...] = ...`, `+=`).",
                ["inplace_input_modification"],
            )


def expect_inputs_unchanged(what: str, inputs: Mapping[str, Any], run: Callable[[], Any]) -> None:
    """Call ``run()``, which hands ``inputs`` (name -> value) to the learner's ``what``; fail when it
    changed one of them in place (the first changed one, in order, is named)."""
    before = snapshot(*inputs.values())
    run()
    expect_unchanged(before, tuple(inputs.values()), list(inputs), what)


def grads_match(
    mine: nn.Module,
    ref: nn.Module,
    run: Callable[[nn.Module], torch.Tensor],
    name: str,
    skip: Callable[[str], bool] = lambda k: False,
) -> None:
    """Backpropagate the same loss through both; every parameter gets the reference's gradient."""
    out_ref = run(ref)
    weights = torch.randn(out_ref.shape, generator=torch.Generator().manual_seed(7))
    (out_ref * weights).sum().backward()
    out = expect_tensor(learner_call(run, mine, what=f"your {name}"), f"your {name}'s output")
    if not out.requires_grad:
        raise Fail(
            f"Your {name}'s output does not require a gradient: something detaches it from the "
            "graph (.detach(), .item(), torch.no_grad(), .data, or building a new tensor from "
            "numbers).",
            ["no_gradient"],
        )
    learner_call((out * weights.to(out.dtype)).sum().backward, what=f"backward through your {name}")
    ref_params = dict(ref.named_parameters())
    listed = learner_call(lambda: list(mine.named_parameters(remove_duplicate=False)), what=f"your {name}")
    names = {key for key, _ in listed}
    absent = [k for k, p in ref_params.items() if not skip(k) and p.grad is not None and k not in names]
    if absent:  # an answer with nothing (or less) to compare is no answer
        raise Fail(
            f"Your {name}'s named_parameters() does not list `{absent[0]}`"
            + (f" (nor {len(absent) - 1} more)" if len(absent) > 1 else "")
            + ": every parameter must be registered (an nn.Linear, nn.Parameter or submodule assigned "
            "to self in __init__), under the contract's names.",
            ["unused_parameter"],
        )
    for key, param in listed:
        if skip(key) or key not in ref_params or ref_params[key].grad is None:
            continue
        if param.grad is None or not param.grad.abs().sum() > 0:
            raise Fail(
                f"No gradient reaches your {name}'s parameter `{key}`: it is never used in "
                "forward (or its result is thrown away).",
                ["unused_parameter"],
            )
        if not is_close(param.grad, ref_params[key].grad, rtol=1e-3, atol=1e-4):
            raise Fail(
                f"The gradient of your {name}'s parameter `{key}` differs from the reference's: "
                "the forward pass computes something slightly different.",
                ["wrong_gradient"],
            )


def dropout_free(module: nn.Module) -> nn.Module:
    """A deep copy with every Dropout set to p=0 (for comparing train-mode code paths)."""
    clone = copy.deepcopy(module)
    for sub in clone.modules():
        if isinstance(sub, nn.Dropout):
            sub.p = 0.0
    return clone


def require_float64(out: Any, what: str) -> None:
    out = expect_tensor(out, what)
    if out.dtype != torch.float64:
        raise Fail(
            f"{what} on float64 input came back as {out.dtype}: keep the input's dtype (for "
            "example build new tensors with `dtype=x.dtype` or `torch.zeros_like`).",
            ["float64_fails"],
        )


def require_device(out: Any, device: torch.device, what: str) -> None:
    out = expect_tensor(out, what)
    if out.device != device:
        raise Fail(
            f"{what} is on {out.device}, but the input was on {device}: create new tensors on "
            "the input's device (`device=x.device`).",
            ["device_not_kept"],
        )


def in_float64(test: Callable[[Ctx], None]) -> Callable[[Ctx], None]:
    """Mark a float64 test: a failure there with no more specific diagnosis is ``float64_fails``."""
    import functools

    @functools.wraps(test)
    def run(ctx: Ctx) -> None:
        try:
            test(ctx)
        except Fail as fail:
            raise Fail(fail.message, fail.diagnoses or ["float64_fails"]) from None

    return run


def expect_float64_output(
    out: Any,
    device: torch.device,
    expected: Callable[[], torch.Tensor],
    name: str,
    output: str = "output",
    atol: float = 1e-5,
) -> None:
    """``out``, what the learner's ``name`` gave for float64 inputs on ``device``, must be float64, stay on
    ``device`` and match ``expected()`` (called only now: after the learner's call, as the inputs are then)."""
    require_float64(out, f"{name}'s {output}")
    require_device(out, device, f"{name}'s {output}")
    compare(out, expected(), f"{name}'s float64 {output}", atol=atol)


def expect_float64_module(
    mine: nn.Module,
    ref: nn.Module,
    name: str,
    inputs: Callable[[], Sequence[Any]],
    run: Callable[..., Any],
    device_of: int = 0,
    output: str = "output",
) -> None:
    """Turn the learner's module ``name`` into float64 (``.double()``), run it with ``run(mine, *inputs())``
    and check its ``output`` against the float64 reference's (see :func:`expect_float64_output`).

    ``inputs()`` is called after ``.double()``; the output must stay on the device of ``inputs()[device_of]``.
    """
    learner_call(mine.double, what=f"{name}.double()")
    args = inputs()
    out = run(mine, *args)
    expect_float64_output(out, args[device_of].device, lambda: ref.double()(*args), name, output)


def module_hygiene_tests(
    spec: Spec,
    build: Callable[[Ctx], tuple[nn.Module, nn.Module]],
    inputs: Callable[[torch.dtype], Sequence[Any]],
    names: Sequence[str],
    run: Callable[..., Any],
    unchanged_test: str = "does_not_change_its_inputs",
    device_of: int = 0,
    output: str = "output",
) -> None:
    """Register the two hygiene tests of a module exercise on ``spec``, in this order:

    * ``unchanged_test`` (the test function's name, shown in the result row): ``run(mine, *inputs(torch.float32))``
      leaves every input as it was (``names`` name them in the message);
    * ``works_in_float64_and_keeps_the_device``: :func:`expect_float64_module` on ``inputs(torch.float64)``.

    ``build(ctx)`` makes the (learner, reference) pair; ``run(module, *inputs)`` calls the learner's module.
    Token inputs stay integers: ``inputs`` may ignore the dtype.
    """
    name = spec.exercise

    def does_not_change_its_inputs(ctx: Ctx) -> None:
        mine, _ = build(ctx)
        args = inputs(torch.float32)
        expect_inputs_unchanged(name, dict(zip(names, args)), lambda: run(mine, *args))

    @in_float64
    def works_in_float64_and_keeps_the_device(ctx: Ctx) -> None:
        mine, ref = build(ctx)
        expect_float64_module(mine, ref, name, lambda: inputs(torch.float64), run, device_of, output)

    does_not_change_its_inputs.__name__ = unchanged_test  # the row's name: "hygiene: does not change x"
    spec.test("hygiene")(does_not_change_its_inputs)
    spec.test("hygiene")(works_in_float64_and_keeps_the_device)


def skip_if(condition: bool, why: str) -> None:
    if condition:
        raise Skip(why)


# --------------------------------------------------------------------------------------------------
# Composite exercises: shared objects, dropout placement, the learner's own parts
# --------------------------------------------------------------------------------------------------
def shared_names(module: nn.Module) -> list[tuple[str, str]]:
    """Pairs of parameter names that are the same tensor (an object used in two places)."""
    seen: dict[int, str] = {}
    pairs = []
    for name, param in module.named_parameters(remove_duplicate=False):
        key = id(param)
        if key in seen:
            pairs.append((seen[key], name))
        else:
            seen[key] = name
    return pairs


def expect_independent(mine: nn.Module, ref: nn.Module, name: str) -> None:
    """Fail when the learner shares objects the reference keeps separate (norms, layers)."""
    allowed = {frozenset(p) for p in shared_names(ref)}
    for a, b in shared_names(mine):
        if frozenset((a, b)) in allowed:
            continue
        diag = (
            "layers_shared"
            if a.startswith(("layers.", "encoder.layers", "decoder.layers")) and a.split(".")[:2] != b.split(".")[:2]
            else "norms_shared"
            if "norm" in a and "norm" in b
            else ""
        )
        raise Fail(
            f"In your {name}, `{a}` and `{b}` are the same tensor: the object is used twice "
            "instead of having its own copy.",
            [diag],
        )


class PassThrough(nn.Module):
    """Stands in for a layer: returns its first input unchanged (to look at the embedding path alone)."""

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return x


def zero_sublayer_outputs(ref: nn.Module, prefixes: Iterable[str]) -> None:
    """Make each sub-layer output exactly zero (its last linear map's weight and bias set to 0)."""
    with torch.no_grad():
        for name, param in ref.named_parameters():
            if any(name.startswith(p) for p in prefixes):
                param.zero_()


def load_into(mine: nn.Module, ref: nn.Module, name: str) -> None:
    """Load the (already checked) reference weights into the learner's module again."""
    rsd = {k: v for k, v in ref.state_dict().items() if not _ignorable(k)}
    with torch.no_grad():
        learner_call(mine.load_state_dict, rsd, strict=False, what=f"{name}.load_state_dict")


def own_parts_check(
    ctx: Ctx, build: Callable[[], tuple[nn.Module, nn.Module]], run: Callable[[nn.Module], torch.Tensor]
) -> None:
    """Grade the exercise with the learner's OWN earlier exercises (no isolation); blame the part at fault.

    ``build()`` makes a (learner, reference) pair; ``run(module)`` its output on fixed inputs.
    """
    from ..core import StubReached, learner_globals, swapped_globals, tolerant
    from ..references import REFERENCES

    parts = ctx.cache.get("parts", {})
    namespace = learner_globals(ctx.obj)

    def attempt(replacements: dict) -> str | None:
        """None when right, else the reason."""
        try:
            with swapped_globals(namespace, replacements):
                seed(99)
                mine, ref = build()
                seed(98)
                expected = run(ref)
                seed(98)
                actual = learner_call(run, mine, what=f"your {ctx.exercise}")
                compare(actual, expected, f"Your {ctx.exercise}'s output")
        except StubReached:
            return "stub"
        except Fail as fail:
            return fail.message
        return None

    problem = attempt({})
    if problem is None:
        return
    for name in parts:
        if attempt({name: tolerant(REFERENCES[name])}) is None:
            if problem == "stub":
                raise Fail(
                    f"Your {ctx.exercise} is right when given a correct {name}, but your own {name} "
                    "is not written yet (it raises NotImplementedError): finish that exercise first.",
                    ["uses_faulty_part"],
                )
            raise Fail(
                f"Your {ctx.exercise} is right when given a correct {name}; the problem is in your "
                f"{name} (run check({name}) to see what).",
                ["uses_faulty_part"],
            )
    names = ", ".join(parts)
    detail = "some of them are not written yet" if problem == "stub" else problem
    raise Fail(
        f"Your {ctx.exercise} is right with the reference parts, but not with your own ({names}): "
        f"{detail}. Check those exercises one by one.",
        ["uses_faulty_part"],
    )


def blame_submodules(
    ctx: Ctx,
    build: Callable[[], tuple[nn.Module, nn.Module]],
    run: Callable[[nn.Module], torch.Tensor],
    names: Iterable[str],
    fail: Fail,
) -> None:
    """After a numbers failure with no diagnosis: is one of the learner's own sub-module classes at
    fault? Swap each (an attribute whose class is not the reference's) for a copy of the reference's
    sub-module with the same weights; if the output is then right, say so. Re-raises ``fail`` otherwise.

    This only sharpens the message of a failure; it never turns a failure into a pass.
    """
    from ..core import reference_of
    from ..references import REFERENCES

    if fail.diagnoses:
        raise fail
    known = {ref for ref in REFERENCES.values() if isinstance(ref, type)} | {nn.LayerNorm, nn.ModuleList}
    for name in names:
        mine, ref = build()
        sub = getattr(mine, name, None)
        if not isinstance(sub, nn.Module) or reference_of(type(sub)) in known:
            continue
        learner_call(setattr, mine, name, copy.deepcopy(getattr(ref, name)), what=f"replacing {name}")
        try:
            fixed = is_close(learner_call(run, mine, what=f"your {ctx.exercise}"), run(ref))
        except Fail:
            fixed = False
        if fixed:
            part = type(getattr(ref, name)).__name__
            raise Fail(
                f"Your {ctx.exercise} is right when its `{name}` is a correct {part}; the problem is in "
                f"your class {type(sub).__name__} (used for `{name}`): check it with "
                f'check({type(sub).__name__}, exercise="{part}").',
                ["uses_faulty_part"],
            ) from None
    raise fail
