"""The data behind `workbook train`: the built-in numbers task, Multi30k (real files, checksums,
downloader against a local HTTP server), the shared BPE vocabulary and token-budget batches."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from solutions.pipeline.batching import collate, make_batches
from solutions.pipeline.bpe import BOS_IDX, EOS_IDX, PAD_IDX, decode, encode, train_bpe
from solutions.pipeline.builtin_task import english, german, numbers_corpus
from solutions.pipeline.multi30k import SHA256, ChecksumError, download, ensure_files, load_multi30k
from workbook.cli import main as workbook


# -- the built-in task ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "n, en, de",
    [
        (324, "three hundred twenty-four", "dreihundertvierundzwanzig"),
        (21, "twenty-one", "einundzwanzig"),
        (16, "sixteen", "sechzehn"),
        (1, "one", "eins"),
        (101, "one hundred one", "einhunderteins"),
        (30, "thirty", "dreißig"),
        (1000, "one thousand", "eintausend"),
        (71_017, "seventy-one thousand seventeen", "einundsiebzigtausendsiebzehn"),
        (
            999_999,
            "nine hundred ninety-nine thousand nine hundred ninety-nine",
            "neunhundertneunundneunzigtausendneunhundertneunundneunzig",
        ),
    ],
)
def test_numbers_in_english_and_german(n, en, de):
    assert english(n) == en
    assert german(n) == de


def test_numbers_corpus_is_deterministic_and_holds_out_its_test_pairs():
    a, b = numbers_corpus(num_train=2000, seed=3), numbers_corpus(num_train=2000, seed=3)
    assert a.train == b.train and a.test == b.test
    assert numbers_corpus(num_train=2000, seed=4).test != a.test
    train_sources = {s for s, _ in a.train}
    held_out = [s for s, _ in a.valid + a.test]
    assert len(a.train) == 2000 and len(a.valid) == 500 and len(a.test) == 500
    assert not train_sources & set(held_out), "a held-out number appears in training"
    assert len(set(held_out)) == len(held_out)


# -- Multi30k -------------------------------------------------------------------------------------
def test_multi30k_loader_reads_the_real_files(multi30k_dir):
    corpus = load_multi30k(data_dir=multi30k_dir)
    assert (len(corpus.train), len(corpus.valid), len(corpus.test)) == (29_000, 1_014, 1_000)
    assert (corpus.src_lang, corpus.tgt_lang) == ("de", "en")
    german_text, english_text = corpus.test[0]
    assert german_text.startswith("Ein Mann mit einem orangefarbenen Hut")
    assert english_text.startswith("A man in an orange hat")


def _write_gz(folder: Path, name: str, lines: list[str]) -> str:
    path = folder / name
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("".join(line + "\n" for line in lines))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_file_with_a_wrong_checksum_is_rejected(tmp_path, capsys):
    for name in SHA256:  # right names, wrong content
        _write_gz(tmp_path, name, ["Ein Hund läuft.", "Zwei Katzen."])
    with pytest.raises(ChecksumError, match="wrong checksum"):
        load_multi30k(data_dir=tmp_path)
    # the same through the command line: a clear message and a failing exit status, no traceback
    assert workbook(["train", "--dataset", "multi30k", "--data-dir", str(tmp_path), "--parts", "reference"]) == 1
    err = capsys.readouterr().err
    assert "wrong checksum" in err and "train.de.gz" in err


def test_a_folder_without_the_files_says_how_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="Download these six files"):
        ensure_files(data_dir=tmp_path)


@pytest.fixture
def http_folder(tmp_path):
    """A local HTTP server on 127.0.0.1 serving ``tmp_path/'served'``; yields (folder, base URL)."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_downloader_fetches_verifies_and_caches(http_folder, tmp_path):
    served, base_url = http_folder
    sentences = {
        "train": (["Ein Hund.", "Eine Katze."], ["A dog.", "A cat."]),
        "val": (["Ein Baum."], ["A tree."]),
        "test_2016_flickr": (["Ein Haus."], ["A house."]),
    }
    checksums = {}
    for stem, (de, en) in sentences.items():
        checksums[f"{stem}.de.gz"] = _write_gz(served, f"{stem}.de.gz", de)
        checksums[f"{stem}.en.gz"] = _write_gz(served, f"{stem}.en.gz", en)
    cache = tmp_path / "cache"
    corpus = load_multi30k(cache_dir=cache, base_url=base_url, checksums=checksums)
    assert corpus.train == [("Ein Hund.", "A dog."), ("Eine Katze.", "A cat.")]
    assert corpus.test == [("Ein Haus.", "A house.")]
    assert sorted(p.name for p in cache.iterdir()) == sorted(checksums)  # cached, no .part left
    for path in served.iterdir():  # a second load uses the cache: the server is not needed
        path.unlink()
    assert load_multi30k(cache_dir=cache, base_url=base_url, checksums=checksums).valid == [("Ein Baum.", "A tree.")]


def test_downloader_rejects_a_file_with_the_wrong_checksum(http_folder, tmp_path):
    served, base_url = http_folder
    _write_gz(served, "val.de.gz", ["Nicht die echte Datei."])
    with pytest.raises(ChecksumError, match="wrong checksum"):
        download("val.de.gz", tmp_path, base_url)  # checked against the published SHA-256
    assert not (tmp_path / "val.de.gz").exists() and not (tmp_path / "val.de.gz.part").exists()


def test_offline_download_explains_how_to_place_the_files(tmp_path):
    with pytest.raises(ConnectionError, match="put them in") as error:
        download("val.de.gz", tmp_path / "cache", "http://127.0.0.1:9/", timeout=5)
    assert "val.de.gz" in str(error.value) and "--data-dir" in str(error.value)


# -- BPE and batches ------------------------------------------------------------------------------
def test_bpe_is_shared_and_round_trips_both_languages():
    corpus = numbers_corpus(num_train=1000, seed=0)
    tokenizer = train_bpe((text for pair in corpus.train for text in pair), vocab_size=250)
    assert tokenizer.get_vocab_size() <= 250
    for source, target in corpus.test[:50] + [("zwölf hunde", "tree dogs")]:
        for text in (source, target):
            ids = encode(tokenizer, text, add_bos_eos=True)
            assert ids[0] == BOS_IDX and ids[-1] == EOS_IDX
            assert decode(tokenizer, ids + [PAD_IDX, PAD_IDX]) == text
    # subwords, not characters: a frequent German word piece is one token
    assert len(encode(tokenizer, "dreihundert")) <= 3 < len("dreihundert")
    assert decode(tokenizer, encode(tokenizer, "Ein Hund!")) == "in und"  # unseen E, H, ! -> <unk>, dropped


def test_batches_group_similar_lengths_within_the_token_budget():
    lengths = [(1 + (i * 7) % 23, 2 + (i * 5) % 19) for i in range(500)]
    batches = make_batches(lengths, max_tokens=120, seed=1, epoch=0)
    assert sorted(i for batch in batches for i in batch) == list(range(500))  # each example once
    spreads = []
    for batch in batches:
        longest = max(max(lengths[i]) for i in batch)
        assert len(batch) * longest <= 120 or len(batch) == 1
        spreads.append(longest - min(max(lengths[i]) for i in batch))
    assert sum(spreads) / len(spreads) < 1.0  # similar lengths together (random batches: about 10)
    assert make_batches(lengths, 120, seed=1, epoch=0) == batches  # deterministic
    assert make_batches(lengths, 120, seed=1, epoch=1) != batches  # a new order each epoch


def test_collate_pads_and_shifts_the_target():
    batch = collate([([5, 6, 7], [BOS_IDX, 9, EOS_IDX]), ([5], [BOS_IDX, 8, 9, 10, EOS_IDX])])
    assert batch["src"].tolist() == [[5, 6, 7], [5, PAD_IDX, PAD_IDX]]
    assert batch["tgt_in"].tolist() == [[BOS_IDX, 9, EOS_IDX, PAD_IDX], [BOS_IDX, 8, 9, 10]]
    assert batch["tgt_out"].tolist() == [[9, EOS_IDX, PAD_IDX, PAD_IDX], [8, 9, 10, EOS_IDX]]
    assert batch["src_mask"].shape == (2, 1, 1, 3) and batch["tgt_mask"].shape == (2, 1, 4, 4)
    assert not batch["src_mask"][1, 0, 0, 1] and not batch["tgt_mask"][0, 0, 3, 3]
