"""The parts a model is built from, as one object the pipeline is handed: ``Assembly``.

The pipeline (``train``, ``load_translator``, the plots) builds and decodes with whatever parts it is
given: ``assembly.Transformer``, ``assembly.TransformerLRScheduler``, ``assembly.LabelSmoothingLoss``,
``assembly.greedy_decode``, ``assembly.beam_search``. By default they are the reference
(:func:`reference_assembly`); the workbook's app hands in the learner's own parts instead
(``workbook.assembly``). This module knows nothing of learners or of the grader.

How parts find each other: a class looks up the names it uses (``Encoder`` builds ``EncoderLayer``s,
which build a ``MultiHeadAttention``...) in the global namespace where it was defined, at the moment
it runs. :func:`rewire` writes the chosen object for every name into every namespace involved, so a
reference ``Encoder`` builds a learner's ``EncoderLayer`` when that is the one chosen. With every part
from the reference, the result is ``solutions.Transformer`` exactly: the same code, so the same
weights from the same seed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

import solutions

# The parts a model and its training need, in the order the chapters build them: every exercise of
# the reference (CONTRACT.md) but the chapter-00 warm-up.
PARTS: tuple[str, ...] = tuple(solutions.__all__)


def reference_namespace() -> dict:
    """A private copy of the reference: the source of ``solutions/{training,decoding,model}.py`` run
    in one fresh namespace, so its classes can be rewired without touching ``solutions`` itself."""
    namespace: dict = {"__name__": "solutions._assembled", "__package__": "solutions"}
    package_dir = Path(solutions.__file__).parent
    for module in ("training.py", "decoding.py", "model.py"):  # model.py last: its names win
        path = package_dir / module
        exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), namespace)  # noqa: S102 - our own code
    return namespace


def rewire(namespaces: Iterable[dict], chosen: dict[str, object]) -> None:
    """Bind every chosen part in every namespace, so each part builds and calls the chosen others."""
    for namespace in namespaces:
        namespace.update(chosen)


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
    """The chosen parts (``parts[name]``) and where each came from (``sources[name] = (who, why)``)."""

    parts: dict[str, object]
    sources: dict[str, tuple[str, str]] = field(default_factory=dict)

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


def assemble_parts(
    chosen: dict[str, object], sources: dict[str, tuple[str, str]], namespaces: list[dict], attention: str = "manual"
) -> Assembly:
    """Rewire ``namespaces`` to the ``chosen`` parts (``attention="fused"``: PyTorch's fused kernel in
    the chosen ``MultiHeadAttention``) and return the assembly."""
    if attention not in ("manual", "fused"):
        raise ValueError(f"attention must be 'manual' or 'fused', got {attention!r}.")
    chosen, sources = dict(chosen), dict(sources)
    if attention == "fused":
        base = chosen["MultiHeadAttention"]
        chosen["MultiHeadAttention"] = type("FusedMultiHeadAttention", (FusedMultiHeadAttentionMixin, base), {})
        who, why = sources["MultiHeadAttention"]
        sources["MultiHeadAttention"] = (who, f"{why}; forward uses F.scaled_dot_product_attention")
    rewire(namespaces, chosen)
    return Assembly(parts=chosen, sources=sources)


def reference_assembly(attention: str = "manual", why: str = "as asked") -> Assembly:
    """Every part from the reference (a private copy of it: see :func:`reference_namespace`)."""
    reference = reference_namespace()
    return assemble_parts(
        {name: reference[name] for name in PARTS}, {name: ("reference", why) for name in PARTS}, [reference], attention
    )
