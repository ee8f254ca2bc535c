"""Load a trained checkpoint and translate with greedy decoding or beam search (section 6.1)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .bpe import tokenizer_from_json
from .parts import Assembly, reference_assembly
from .train import MAX_TOKENS_PER_SENTENCE, TrainConfig, model_kwargs, pick_device, translate_batch


@dataclass
class Translator:
    """A trained model with its tokenizer; ``translator(["Ein Mann ..."])`` -> list of translations."""

    model: torch.nn.Module
    tokenizer: object
    config: TrainConfig
    assembly: Assembly
    device: torch.device
    step: int

    def __call__(self, sentences: list[str], beam_size: int = 1, length_penalty: float | None = None) -> list[str]:
        """Greedy (``beam_size=1``) or beam search; ``length_penalty`` defaults to the run's own."""
        alpha = self.config.length_penalty if length_penalty is None else length_penalty
        return translate_batch(
            self.model, self.tokenizer, sentences, self.assembly, self.device, beam_size, length_penalty=alpha
        )


def load_translator(checkpoint: str | Path, device: str = "auto", parts: Assembly | None = None) -> Translator:
    """Rebuild the model saved in ``checkpoint`` (``last.pt`` or ``averaged.pt`` of a run) from
    ``parts`` (default the reference)."""
    path = Path(checkpoint)
    if path.is_dir():
        path = path / "averaged.pt" if (path / "averaged.pt").exists() else path / "last.pt"
    if not path.exists():
        raise FileNotFoundError(f"No checkpoint at {path}. Train one first: `workbook train`.")
    state = torch.load(path, map_location="cpu", weights_only=False)
    config = TrainConfig.from_dict(state["config"])
    tokenizer = tokenizer_from_json(state["tokenizer"])
    assembly = parts if parts is not None else reference_assembly()
    vocab = tokenizer.get_vocab_size()
    model = assembly.model(vocab, vocab, **model_kwargs(config, MAX_TOKENS_PER_SENTENCE))
    model.load_state_dict(state["model"])
    target = pick_device(device)
    return Translator(model.to(target).eval(), tokenizer, config, assembly, target, state["step"])
