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
    (FlashAttention / memory-efficient attention where available) while training. Same weights and
    outputs as the contract's ``MultiHeadAttention`` (up to rounding). In eval mode (decoding, the
    plots) it runs the contract's own forward instead, so ``attention_weights`` are there to plot."""

    def forward(self, query, key, value, mask=None):
        if not self.training:  # decoding and plots: the chosen part's forward, which keeps the weights
            return super().forward(query, key, value, mask)
        batch, len_q, d_model = query.shape
        heads = self.num_heads

        def split(x):  # [B, L, d] -> [B, h, L, d_k]
            return x.view(batch, x.size(1), heads, d_model // heads).transpose(1, 2)

        q, k, v = split(self.W_q(query)), split(self.W_k(key)), split(self.W_v(value))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # [B, h, S_q, d_k]
        self.attention_weights = None
        return self.W_o(out.transpose(1, 2).reshape(batch, len_q, d_model))


_FUSED_CLASSES: dict[type, type] = {}


def fused_class(attention_class: type) -> type:
    """``attention_class`` with :class:`FusedMultiHeadAttentionMixin` in front (one class per base)."""
    if issubclass(attention_class, FusedMultiHeadAttentionMixin):
        return attention_class
    if attention_class not in _FUSED_CLASSES:
        _FUSED_CLASSES[attention_class] = type(
            "FusedMultiHeadAttention", (FusedMultiHeadAttentionMixin, attention_class), {}
        )
    return _FUSED_CLASSES[attention_class]


def fusable(module: torch.nn.Module) -> str | None:
    """Why ``module`` cannot train with the fused kernel (None when it can): it must have the
    contract's ``W_q, W_k, W_v, W_o`` and ``num_heads``, and its own forward must give the fused
    kernel's output on a small probe, so that fusing never changes the maths a learner wrote."""
    missing = [n for n in ("W_q", "W_k", "W_v", "W_o") if not isinstance(getattr(module, n, None), torch.nn.Linear)]
    if missing or not isinstance(getattr(module, "num_heads", None), int):
        return f"it has no {', '.join(missing) or 'num_heads'} as the contract names them"
    d_model = module.W_q.in_features
    weight = module.W_q.weight
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, d_model, generator=generator).to(weight.device, weight.dtype)
    y = torch.randn(2, 3, d_model, generator=generator).to(weight.device, weight.dtype)
    mask = torch.ones(2, 1, 3, 3, dtype=torch.bool, device=weight.device).tril()
    was_training = module.training
    try:
        with torch.no_grad():
            module.eval()
            own = [module(x, x, x), module(y, y, y, mask)]
            module.train()  # the fused forward (a module with dropout inside would differ here: fine)
            fused = [
                FusedMultiHeadAttentionMixin.forward(module, x, x, x),
                FusedMultiHeadAttentionMixin.forward(module, y, y, y, mask),
            ]
    except Exception as error:  # noqa: BLE001 - a part that cannot run the probe keeps its own forward
        return f"the probe raised {type(error).__name__}: {error}"
    finally:
        module.train(was_training)
    if not all(torch.allclose(a, b, atol=1e-4, rtol=1e-3) for a, b in zip(own, fused, strict=True)):
        return "its output differs from the fused kernel's"
    return None


def fuse_attention(model: torch.nn.Module, attention_class: type) -> tuple[int, str | None]:
    """Let every ``attention_class`` module of a built ``model`` train with the fused kernel: its
    weights and its projections stay, and in eval mode it still runs its own forward (the plots keep
    their attention weights). Returns how many modules were switched, and why none was (or None):
    a part that does not follow the contract's names or maths keeps its own forward everywhere."""
    modules = [
        m for m in model.modules() if isinstance(m, attention_class) and not isinstance(m, FusedMultiHeadAttentionMixin)
    ]
    if not modules:
        return 0, None
    reason = fusable(modules[0])
    if reason is not None:
        return 0, reason
    for module in modules:
        module.__class__ = fused_class(type(module))
    return len(modules), None


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
        chosen["MultiHeadAttention"] = fused_class(chosen["MultiHeadAttention"])
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
