"""Multi30k, task 1: 31,014 German-English image descriptions (Elliott et al., 2016).

"Multi30K: Multilingual English-German Image Descriptions". Partly derived from Flickr30K; provided
for non-commercial research and/or educational purposes (the dataset's terms of use).

Six gzipped text files, one sentence a line, line N of ``X.de.gz`` translating line N of ``X.en.gz``:
train (29,000 pairs), val (1,014) and test_2016_flickr (1,000). They are downloaded once into a
cache folder (default ``~/.cache/transformer-workbook/multi30k``, or ``$WORKBOOK_CACHE``), and every
file's SHA-256 is checked against the values below, so a truncated or altered file is never used.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from .corpus import ParallelCorpus

BASE_URL = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw/"

SHA256: dict[str, str] = {
    "train.de.gz": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
    "train.en.gz": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
    "val.de.gz": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
    "val.en.gz": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
    "test_2016_flickr.de.gz": "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
    "test_2016_flickr.en.gz": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
}
SPLITS = {"train": "train", "valid": "val", "test": "test_2016_flickr"}


class ChecksumError(RuntimeError):
    """A data file's content is not the published one."""


def default_cache_dir() -> Path:
    root = os.environ.get("WORKBOOK_CACHE") or Path.home() / ".cache" / "transformer-workbook"
    return Path(root) / "multi30k"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: Path, expected: str) -> None:
    """Raise ``ChecksumError`` with what to do when ``path``'s SHA-256 is not ``expected``."""
    actual = sha256_of(path)
    if actual != expected:
        raise ChecksumError(
            f"{path} has the wrong checksum:\n  expected sha256 {expected}\n  found    sha256 {actual}\n"
            "The file is damaged, truncated or a different version. Delete it and run again to download "
            "it anew, or put the original file there by hand."
        )


def manual_instructions(folder: Path, base_url: str) -> str:
    files = "\n".join(f"  {base_url}{name}" for name in SHA256)
    return (
        f"Download these six files (with a browser or `curl -O`) and put them in {folder}:\n{files}\n"
        f"or pass --data-dir FOLDER to read them from a folder of your choice."
    )


def download(
    name: str, folder: Path, base_url: str = BASE_URL, expected: str | None = None, timeout: float = 60.0
) -> Path:
    """Fetch ``base_url + name`` into ``folder``, verify it against ``expected`` (default: the published
    SHA-256), and only then give it its final name: a failed download never leaves a file behind."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    partial = folder / (name + ".part")
    try:
        with urllib.request.urlopen(base_url + name, timeout=timeout) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out)
    except (urllib.error.URLError, OSError) as error:
        partial.unlink(missing_ok=True)
        raise ConnectionError(
            f"Could not download {base_url + name} ({error}). Are you offline?\n"
            + manual_instructions(folder, base_url)
        ) from error
    try:
        verify(partial, expected or SHA256[name])
    except ChecksumError:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, target)
    return target


def ensure_files(
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    base_url: str | None = None,
    checksums: dict[str, str] | None = None,
) -> Path:
    """The folder holding all six verified files.

    With ``data_dir`` the files must already be there (nothing is downloaded); otherwise missing files
    are downloaded into ``cache_dir`` (default ``~/.cache/transformer-workbook/multi30k``). Every file
    is checked against its published SHA-256 either way (``checksums`` replaces that table, for tests).
    """
    checksums = checksums or SHA256
    base_url = base_url or os.environ.get("WORKBOOK_MULTI30K_URL") or BASE_URL
    if data_dir is not None:
        folder = Path(data_dir)
        missing = [name for name in checksums if not (folder / name).exists()]
        if missing:
            raise FileNotFoundError(f"{folder} lacks {', '.join(missing)}.\n" + manual_instructions(folder, base_url))
    else:
        folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        for name in checksums:
            if not (folder / name).exists():
                print(f"Downloading {name} into {folder} ...")
                download(name, folder, base_url, checksums[name])
    for name, expected in checksums.items():
        verify(folder / name, expected)
    return folder


def read_lines(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [line.rstrip("\n") for line in handle]


def load_multi30k(
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    base_url: str | None = None,
    checksums: dict[str, str] | None = None,
) -> ParallelCorpus:
    """German -> English Multi30k as a ``ParallelCorpus`` (train 29,000 / valid 1,014 / test 1,000)."""
    folder = ensure_files(data_dir, cache_dir, base_url, checksums)
    splits = {}
    for split, stem in SPLITS.items():
        german, english = read_lines(folder / f"{stem}.de.gz"), read_lines(folder / f"{stem}.en.gz")
        if len(german) != len(english):
            raise ValueError(f"{stem}: {len(german)} German lines but {len(english)} English lines.")
        splits[split] = [(de.strip(), en.strip()) for de, en in zip(german, english)]
    return ParallelCorpus(name="multi30k", src_lang="de", tgt_lang="en", **splits)
