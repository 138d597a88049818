"""The AP corpus in David Blei's lda-c format: reading, locating, fetching, splitting.

``ap.txt`` holds one block per document (:func:`ap_block` writes one): a DOC element holding a DOCNO
element (the article's id) and then a TEXT element (its raw text), each tag on its own line in the
original file.

The articles are the Associated Press's copyright: they are read from where the
user keeps them and never shipped with mpmkit.
"""

from __future__ import annotations

import os
import re
import shutil
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mpmkit.utils import sha256_file

AP_URL = (
    "https://raw.githubusercontent.com/blei-lab/lda-c/"
    "0c46575e89092683010db077f713f8aa3b3594a2/example/ap.tgz"
)
AP_SHA256 = "92cbe192631874708540db11969211363cf2f5c0a56b2897e0229925e5d4f2a3"
AP_MEMBERS = {"ap/vocab.txt": "vocab.txt", "ap/ap.txt": "ap.txt"}  # ap.txt last: marks completion
#: sha256 of the extracted files (the data README of the shared copy lists the same)
AP_FILE_SHA256 = {"ap.txt": "5a44ed0ae1ad3e56985122404afa9377a1bd83676c3bbe82dc3a40f7799a5f23",
                  "vocab.txt": "fbf0d0f836cb2b0360bd3cae0f71c2f34b140b1dd8dd0d0bdb618a64704337f6"}

# The paper's split of the 2,246 AP documents.
PAPER_N_DOCS, PAPER_N_TRAIN, PAPER_N_VAL = 2246, 1800, 200


@dataclass(frozen=True)
class Document:
    """One article: its DOCNO and raw text (surrounding whitespace stripped)."""

    docno: str
    text: str


# --------------------------------------------------------------------------- parsing

def tag(name: str, close: bool = False) -> str:
    """The lda-c tag of element ``name`` (``DOC``, ``DOCNO`` or ``TEXT``), opening or closing."""
    return f"<{'/' if close else ''}{name}>"


def ap_block(docno: str, text: str) -> str:
    """One document in the lda-c layout, as ``ap.txt`` writes it."""
    return (f"{tag('DOC')}\n{tag('DOCNO')} {docno} {tag('DOCNO', True)}\n{tag('TEXT')}\n {text}\n"
            f"{tag('TEXT', True)}\n{tag('DOC', True)}\n")


_TAG = re.compile(r"<(/?)(DOC|DOCNO|TEXT)>")
_SEQUENCE = (tag("DOC"), tag("DOCNO"), tag("DOCNO", True), tag("TEXT"), tag("TEXT", True), tag("DOC", True))
_OPENER = {1: tag("DOC"), 2: tag("DOCNO"), 3: tag("DOC"), 4: tag("TEXT"), 5: tag("DOC")}  # open block per state


def parse_ap(text: str, source: str = "<string>") -> list[Document]:
    """Parse lda-c AP text into documents.

    Tags must come in the order of ``_SEQUENCE`` (DOC, DOCNO, /DOCNO, TEXT, /TEXT, /DOC)
    with any whitespace (including none, or newlines) around them. Text outside
    DOCNO / TEXT, an unexpected or unclosed tag, a missing TEXT or an empty
    DOCNO raises :class:`~mpmkit.errors.DataError` (a ``ValueError``) naming ``source`` and the
    1-based line.
    """
    from mpmkit.errors import DataError
    docs: list[Document] = []
    state = 0  # index into _SEQUENCE of the next expected tag
    pos = 0  # end of the previous tag
    docno = ""
    opened_at: dict[str, int] = {}  # opening tag -> offset

    def fail(msg: str, offset: int) -> DataError:
        return DataError(f"{source}, line {text.count(chr(10), 0, offset) + 1}: {msg}")

    def stray(start: int, end: int, where: str) -> None:
        chunk = text[start:end]
        if chunk.strip():
            off = start + len(chunk) - len(chunk.lstrip())
            raise fail(f"unexpected text {chunk.strip()[:30]!r} {where}", off)

    for m in _TAG.finditer(text):
        tag = m.group(0)
        if state in (0, 1, 3, 5):  # outside DOCNO / TEXT content
            stray(pos, m.start(), "between documents" if state == 0 else f"in document {docno or '?'}")
        if tag != _SEQUENCE[state]:
            if state == 0:
                raise fail(f"expected <DOC>, found {tag}", m.start())
            if state == 3 and tag == "</DOC>":
                raise fail(f"document {docno!r} has no <TEXT> block", m.start())
            opener = _OPENER[state]
            line = text.count("\n", 0, opened_at[opener]) + 1
            raise fail(f"expected {_SEQUENCE[state]}, found {tag} "
                       f"({opener} opened on line {line} is not closed properly)", m.start())
        if tag == "</DOCNO>":
            docno = text[pos : m.start()].strip()
            if not docno:
                raise fail(f"empty {_SEQUENCE[1]}", m.start())
        elif tag == "</TEXT>":
            docs.append(Document(docno, text[pos : m.start()].strip()))
        elif not tag.startswith("</"):
            opened_at[tag] = m.start()
        state = (state + 1) % len(_SEQUENCE)
        pos = m.end()

    if state != 0:
        opener = _OPENER[state]
        raise fail(f"end of input inside the {opener} block opened here "
                   f"(expected {_SEQUENCE[state]})", opened_at[opener])
    stray(pos, len(text), "after the last document" if docs else "(no <DOC> block in the file)")
    return docs


# --------------------------------------------------------------------------- locating

def default_data_dir() -> Path:
    """``$MPMKIT_DATA_DIR`` if set, else ``$XDG_DATA_HOME/mpmkit`` (``~/.local/share/mpmkit``)."""
    env = os.environ.get("MPMKIT_DATA_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "mpmkit"


def _upward(start: Path) -> list[Path]:
    return [d / "shared" / "data" / "ap" / "ap.txt" for d in (start, *start.parents)]


def candidate_paths() -> list[Path]:
    """Where :func:`find_ap` looks, in order, when no path is given."""
    out = [default_data_dir() / "ap" / "ap.txt"]
    for start in (Path.cwd().resolve(), Path(__file__).resolve().parent):
        out += [p for p in _upward(start) if p not in out]
    return out


def find_ap(path=None) -> Path:
    """The ``ap.txt`` to read.

    An explicit ``path`` (the file or its directory) wins; otherwise the first
    existing of ``$MPMKIT_DATA_DIR/ap/ap.txt`` (or the default data dir), then
    ``shared/data/ap/ap.txt`` in the current directory or any parent, then the
    same upward from this package. Raises ``FileNotFoundError`` listing every
    place tried.
    """
    if path is not None:
        p = Path(path).expanduser()
        tried = [p / "ap.txt" if p.is_dir() else p]
    else:
        tried = candidate_paths()
    for p in tried:
        if p.is_file():
            return p
    places = "\n  ".join(str(p) for p in tried)
    raise FileNotFoundError(
        f"AP corpus (ap.txt) not found. Tried:\n  {places}\n"
        "Fix: pass the path (read_ap('/path/to/ap') or the file), set MPMKIT_DATA_DIR "
        "to a directory holding ap/ap.txt, or download it with `mpmkit data fetch ap`."
    )


def read_ap(path=None) -> list[Document]:
    """Read the AP corpus from ``path`` or the default locations (see :func:`find_ap`)."""
    from mpmkit.errors import DataError

    p = find_ap(path)
    docs = parse_ap(p.read_text(encoding="utf-8", errors="replace"), source=str(p))
    if not docs:
        example = ap_block("id", "text").replace("\n", "").replace(" ", "")
        raise DataError(f"{p}: no {tag('DOC')} blocks; an AP file holds {example} "
                        "blocks (set data_path to such a file)")
    return docs


# --------------------------------------------------------------------------- fetching

def _download(url: str, dest: Path) -> None:
    with urllib.request.urlopen(url, timeout=60) as r, open(dest, "wb") as f:
        shutil.copyfileobj(r, f)


def fetch_ap(dest=None, url: str | None = None, sha256: str | None = None, force: bool = False) -> Path:
    """Download lda-c's ``ap.tgz``, check its sha256, extract ``ap.txt`` and ``vocab.txt``.

    ``dest`` defaults to ``default_data_dir() / "ap"``; ``url`` and ``sha256`` to lda-c's archive
    (:data:`AP_URL`, :data:`AP_SHA256`). Nothing is downloaded when
    ``dest/ap.txt`` exists (unless ``force``). The archive is downloaded and
    unpacked in a temporary directory inside ``dest``; only when the checksum
    matches and both files are out are they renamed into place, ``ap.txt`` last,
    so a failed or interrupted fetch never leaves a partial ``ap.txt``. Returns
    the path of ``ap.txt``.
    """
    url, sha256 = url or AP_URL, sha256 or AP_SHA256
    dest = Path(dest).expanduser() if dest is not None else default_data_dir() / "ap"
    target = dest / "ap.txt"
    if target.is_file() and not force:
        return target
    missing = [d for d in (dest, *dest.parents) if not d.exists()]  # what this call creates, deepest first
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(dir=dest, prefix=".fetch-") as tmp:
            tgz = Path(tmp) / "ap.tgz"
            _download(url, tgz)
            got = sha256_file(tgz)
            if got != sha256:
                raise ValueError(f"checksum mismatch for {url}: sha256 {got}, expected {sha256}")
            with tarfile.open(tgz, "r:gz") as tar:
                for member, name in AP_MEMBERS.items():
                    try:
                        src = tar.extractfile(member)
                    except KeyError:
                        src = None
                    if src is None:
                        raise ValueError(f"{url} has no regular file {member}")
                    with src, open(Path(tmp) / name, "wb") as f:
                        shutil.copyfileobj(src, f)
            for name in AP_MEMBERS.values():  # all extracted: move into place, ap.txt last
                os.replace(Path(tmp) / name, dest / name)
    except BaseException:
        for d in missing:  # a failed first fetch leaves no empty folder behind, parents included
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()
        raise
    return target


# --------------------------------------------------------------------------- splitting

def split_sizes(n: int) -> tuple[int, int, int]:
    """(train, val, test) sizes for ``n`` documents.

    ``n >= 2246`` (the AP corpus): 1,800 / 200 / rest, as in the paper. Smaller
    corpora keep the paper's proportions, ``floor(n * 1800 / 2246)`` and
    ``floor(n * 200 / 2246)``, but with at least one validation and one test
    document (taken from train). Needs ``n >= 3``.
    """
    if n < 3:
        from mpmkit.errors import DataError

        raise DataError(f"need at least 3 documents to split into train / validation / test, got {n}")
    if n >= PAPER_N_DOCS:
        return PAPER_N_TRAIN, PAPER_N_VAL, n - PAPER_N_TRAIN - PAPER_N_VAL
    n_train = n * PAPER_N_TRAIN // PAPER_N_DOCS
    n_val = max(1, n * PAPER_N_VAL // PAPER_N_DOCS)
    n_train = min(n_train, n - n_val - 1)
    return n_train, n_val, n - n_train - n_val


def split_documents(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random train / validation / test document indices for ``n`` documents.

    One permutation from ``numpy.random.default_rng(seed)`` is cut at the sizes
    of :func:`split_sizes`; each part is returned sorted (int64).
    """
    n_train, n_val, _ = split_sizes(int(n))
    perm = np.random.default_rng(seed).permutation(int(n))
    cuts = (perm[:n_train], perm[n_train : n_train + n_val], perm[n_train + n_val :])
    return tuple(np.sort(c).astype(np.int64) for c in cuts)
