"""Assemble one Transformer from the learner's own parts, falling back to the reference part by part.

Every exercise is a name (API.md). The learner defines them in the chapter notebooks; this module
runs the code cells of each notebook (those tagged ``metadata["workbook"]["role"]`` ``"setup"`` or
``"exercise"``) in a fresh namespace, grades every part with the checker (``checks.check``), and
keeps the learner's version when it passes, the reference otherwise.

How parts find each other: a class looks up the names it uses (``Encoder`` builds ``EncoderLayer``s,
which build a ``MultiHeadAttention``...) in the global namespace where it was defined, at the moment
it runs. So after choosing, we write the chosen object for *every* name into every namespace involved
(the learner's chapters and a private copy of the reference). Then the learner's ``Encoder`` builds the
chosen ``EncoderLayer``, and a reference ``Encoder`` (fallback) builds the learner's ``EncoderLayer``
if that one passed. With every part from the reference, the result is ``solutions.Transformer``
exactly: the same code, so the same weights from the same seed.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

import solutions

# The parts a model and its training need, in the order the chapters build them.
PARTS: tuple[str, ...] = (
    "TokenEmbedding", "PositionalEncoding", "scaled_dot_product_attention", "MultiHeadAttention",
    "FeedForwardNetwork", "LayerNorm", "EncoderLayer", "Encoder", "create_padding_mask",
    "create_future_mask", "create_masks", "DecoderLayer", "Decoder", "Transformer",
    "TransformerLRScheduler", "LabelSmoothingLoss", "greedy_decode", "beam_search",
)
CODE_ROLES = ("setup", "exercise")


def reference_namespace() -> dict:
    """A private copy of the reference: the source of ``solutions/{training,decoding,model}.py`` run
    in one fresh namespace, so its classes can be rewired without touching ``solutions`` itself."""
    namespace: dict = {"__name__": "solutions._assembled", "__package__": "solutions"}
    package_dir = Path(solutions.__file__).parent
    for module in ("training.py", "decoding.py", "model.py"):  # model.py last: its names win
        path = package_dir / module
        exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), namespace)
    return namespace


def notebook_code(path: Path) -> list[str]:
    """The code of a notebook's cells tagged as setup or exercise (IPython ``%``/``!`` lines dropped)."""
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    sources = []
    for cell in notebook.cells:
        role = cell.get("metadata", {}).get("workbook", {}).get("role")
        if cell.cell_type == "code" and role in CODE_ROLES:
            lines = [line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!"))]
            sources.append("\n".join(lines))
    return sources


def load_learner_parts(chapters_dir: Path) -> tuple[dict[str, object], list[dict], dict[str, str]]:
    """Run every chapter notebook's setup/exercise cells; never raises because of learner code.

    Returns (part name -> learner object, the namespaces, part name -> problem while loading).
    A part is taken from the chapter that teaches it (``checks.chapters``).
    """
    from checks.chapters import CHAPTERS

    found: dict[str, object] = {}
    namespaces: list[dict] = []
    problems: dict[str, str] = {}
    for chapter in CHAPTERS:
        path = chapters_dir / f"{chapter.stem}.ipynb"
        wanted = [name for name in chapter.exercises if name in PARTS]
        if not wanted or not path.exists():
            continue
        namespace: dict = {"__name__": f"learner_{chapter.stem}"}
        errors = []
        try:
            cells = notebook_code(path)
        except Exception as error:  # an unreadable notebook: every part of it falls back
            cells, errors = [], [f"could not read {path.name}: {error}"]
        for source in cells:
            try:
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    exec(compile(source, str(path), "exec"), namespace)
            except BaseException as error:  # noqa: BLE001 - learner code may raise anything
                if isinstance(error, KeyboardInterrupt):
                    raise
                errors.append(f"{type(error).__name__}: {error}")
        namespaces.append(namespace)
        for name in wanted:
            if name in namespace and getattr(namespace[name], "__module__", None) == namespace["__name__"]:
                found[name] = namespace[name]
            elif errors:
                problems[name] = f"{path.name}: {errors[0]}"
    return found, namespaces, problems


def _grade(obj: object, name: str) -> tuple[bool, str]:
    """(passed, note) from the checker; a checker that is missing or crashes means 'not passed'."""
    try:
        from checks import check
    except ImportError:
        return False, "checker not available"
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            result = check(obj, name)
    except Exception as error:  # noqa: BLE001 - the checker should not raise, but never crash here
        return False, f"check crashed: {type(error).__name__}"
    if result.passed:
        return True, "passed its check"
    state = getattr(result, "state", "failed")
    if state != "failed":  # e.g. "not attempted": the stub is still there
        return False, f"{state} yet"
    failures = list(getattr(result, "failures", []) or [])
    return False, "failed its check" + (f": {' '.join(str(failures[0]).split())[:70]}" if failures else "")


class FusedMultiHeadAttentionMixin:
    """Multi-head attention computed by PyTorch's fused kernel ``F.scaled_dot_product_attention``
    (FlashAttention / memory-efficient attention where available). Same weights and outputs as the
    contract's ``MultiHeadAttention`` (up to rounding), but no ``attention_weights`` to plot."""

    def forward(self, query, key, value, mask=None):
        batch, len_q, d_model = query.shape
        heads = self.num_heads

        def split(x):  # [B, L, d] -> [B, h, L, d_k]
            return x.view(batch, x.size(1), heads, d_model // heads).transpose(1, 2)

        q, k, v = split(self.W_q(query)), split(self.W_k(key)), split(self.W_v(value))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # [B, h, S_q, d_k]
        self.attention_weights = None
        return self.W_o(out.transpose(1, 2).reshape(batch, len_q, d_model))


@dataclass
class Assembly:
    """The chosen parts (``parts[name]``) and where each came from (``sources[name]``)."""

    parts: dict[str, object]
    sources: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (who, why)

    def __getattr__(self, name: str):
        try:
            return self.__dict__["parts"][name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def learner_parts(self) -> list[str]:
        return [name for name, (who, _) in self.sources.items() if who == "yours"]

    def table(self) -> str:
        """A plain-text table: part, from whom, why."""
        width = max(len(name) for name in self.sources)
        lines = [f"{'part'.ljust(width)}  {'from':9}  note", f"{'-' * width}  {'-' * 9}  {'-' * 30}"]
        lines += [f"{name.ljust(width)}  {who:9}  {why}" for name, (who, why) in self.sources.items()]
        lines.append(f"{len(self.learner_parts)} of {len(self.sources)} parts are yours.")
        return "\n".join(lines)

    def model(self, src_vocab_size: int, tgt_vocab_size: int, **kwargs) -> torch.nn.Module:
        """Build the Transformer from the chosen parts (keyword arguments as ``solutions.Transformer``)."""
        return self.parts["Transformer"](src_vocab_size, tgt_vocab_size, **kwargs)


def assemble(use_learner: bool = True, chapters_dir: str | Path | None = "chapters",
             attention: str = "manual") -> Assembly:
    """Choose every part: the learner's when it exists and passes its check, else the reference.

    ``attention="fused"`` swaps in PyTorch's fused attention kernel (for speed comparisons).
    """
    if attention not in ("manual", "fused"):
        raise ValueError(f"attention must be 'manual' or 'fused', got {attention!r}.")
    reference = reference_namespace()
    chosen = {name: reference[name] for name in PARTS}
    sources = {name: ("reference", "as asked") for name in PARTS}
    namespaces = [reference]

    if use_learner:
        folder = Path(chapters_dir) if chapters_dir is not None else Path("chapters")
        if not folder.is_dir():
            sources = {name: ("reference", f"no chapters folder at {folder}") for name in PARTS}
        else:
            found, learner_namespaces, problems = load_learner_parts(folder)
            namespaces += learner_namespaces
            for name in PARTS:
                if name not in found:
                    sources[name] = ("reference", problems.get(name, "not written yet"))
                    continue
                passed, note = _grade(found[name], name)
                if passed:
                    chosen[name] = found[name]
                sources[name] = ("yours" if passed else "reference", note)

    if attention == "fused":
        base = chosen["MultiHeadAttention"]
        chosen["MultiHeadAttention"] = type("FusedMultiHeadAttention", (FusedMultiHeadAttentionMixin, base), {})
        who, why = sources["MultiHeadAttention"]
        sources["MultiHeadAttention"] = (who, f"{why}; forward uses F.scaled_dot_product_attention")

    for namespace in namespaces:  # rewire: every part finds the chosen version of every other part
        namespace.update(chosen)
    return Assembly(parts=chosen, sources=sources)


def build_model(src_vocab_size: int, tgt_vocab_size: int, use_learner: bool = True,
                chapters_dir: str | Path | None = "chapters", attention: str = "manual",
                verbose: bool = True, **model_kwargs) -> torch.nn.Module:
    """The Transformer built from the learner's parts where they pass their checks (see ``assemble``);
    prints the table of which part came from whom when ``verbose``."""
    assembly = assemble(use_learner, chapters_dir, attention)
    if verbose:
        print(assembly.table())
    return assembly.model(src_vocab_size, tgt_vocab_size, **model_kwargs)
