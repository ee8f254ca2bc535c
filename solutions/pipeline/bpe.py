"""A shared subword vocabulary for both languages: byte-pair encoding (section 5.1; Sennrich et al., 2016).

BPE starts from single characters and repeatedly merges the most frequent adjacent pair into a new
token until the vocabulary has the size asked for. Spaces become the visible mark "▁" glued to the
next word (as in SentencePiece), so decoding is exact: ``decode(encode(text)) == text`` for text
with single spaces. A character never seen in training becomes ``<unk>``.
Frequent words become one token, rare words split into pieces: "dreihundertvierundzwanzig" may
become "drei" "hundert" "vier" "und" "zwanzig". One vocabulary serves source and target, so the
model can share its embedding matrices (section 3.4).

We use Hugging Face's ``tokenizers`` library; the trained tokenizer is plain JSON, saved inside
the checkpoint, and ``decode`` gives back the exact text (detokenized output for reading and BLEU).
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIAL_TOKENS = [PAD, BOS, EOS, UNK]  # ids 0, 1, 2, 3: pad_idx = 0 as in the contract
PAD_IDX, BOS_IDX, EOS_IDX, UNK_IDX = 0, 1, 2, 3


def train_bpe(texts: Iterable[str], vocab_size: int = 8000, min_frequency: int = 2) -> Tokenizer:
    """Learn a BPE vocabulary of (at most) ``vocab_size`` tokens from ``texts``: every character
    seen, then the most frequent merges."""
    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()  # "a cat" -> "▁a", "▁cat"
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIAL_TOKENS, show_progress=False
    )
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def tokenizer_from_json(text: str) -> Tokenizer:
    """Rebuild a tokenizer saved with ``tokenizer.to_str()`` (as stored in a checkpoint)."""
    return Tokenizer.from_str(text)


def encode(tokenizer: Tokenizer, text: str, add_bos_eos: bool = False) -> list[int]:
    """Text -> token ids (optionally wrapped as ``<s> ... </s>``)."""
    ids = tokenizer.encode(text).ids
    return [BOS_IDX, *ids, EOS_IDX] if add_bos_eos else ids


def decode(tokenizer: Tokenizer, ids: Iterable[int]) -> str:
    """Token ids -> text, dropping ``<s>``, padding and everything from ``</s>`` on."""
    kept = []
    for i in ids:
        i = int(i)
        if i == EOS_IDX:
            break
        if i not in (PAD_IDX, BOS_IDX):
            kept.append(i)
    return tokenizer.decode(kept).strip()
