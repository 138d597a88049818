"""AP (lda-c) parser, location rules, download and splits -- on synthetic text only."""

import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

from mpmkit_text import ap


def lda(text: str) -> str:
    """Test text with {D} {N} {T} for the opening DOC / DOCNO / TEXT tags and {d} {n} {t} for the closing ones."""
    return text.format(D=ap.tag("DOC"), N=ap.tag("DOCNO"), T=ap.tag("TEXT"),
                       d=ap.tag("DOC", True), n=ap.tag("DOCNO", True), t=ap.tag("TEXT", True))


SYNTHETIC = lda(
    "{D}\n{N} XX000101-0001 {n}\n{T}\n Zorblat the tiny robot painted seven fences .\n{t}\n{d}\n"
    "\n\n  {D}\r\n\t{N}XX000101-0002{n}\r\n{T} Quintor   likes\n\n  green ``tea'' .  {t}\r\n{d}"
    "{D}{N}\n  XX000101-0003\n{n}{T}{t}{d}\n\n"
)


def test_parse_synthetic_with_whitespace_quirks():
    docs = ap.parse_ap(SYNTHETIC)
    assert [d.docno for d in docs] == ["XX000101-0001", "XX000101-0002", "XX000101-0003"]
    assert docs[0].text == "Zorblat the tiny robot painted seven fences ."
    assert docs[1].text == "Quintor   likes\n\n  green ``tea'' ."
    assert docs[2].text == ""
    assert ap.parse_ap("") == [] and ap.parse_ap("\n \n") == []


@pytest.mark.parametrize(
    "text, line, fragment",
    [
        (lda("{D}\n{N} A {n}\n{T}\nwords\n"), 3, lda("{T} block opened here")),
        (lda("{D}\n{N} A {n}\n{d}\n"), 3, lda("no {T}")),
        (lda("{D}\n{N} A {n}\n{T}\nx\n{t}\n{d}\nstray words\n"), 7, "unexpected text"),
        (lda("{D}\n{N} A {n}\n{T}\nx\n{D}\n"), 5, lda("{T} opened on line 3")),
        (lda("{D}\n{N}  {n}\n"), 2, lda("empty {N}")),
        (lda("\n{t}\n"), 2, lda("expected {D}")),
        (lda("{D}\n{N} A\n{T}\n"), 3, lda("expected {n}")),
        (lda("{D}\njunk\n{N} A {n}"), 2, "unexpected text 'junk'"),
    ],
)
def test_malformed_input_names_line(text, line, fragment):
    with pytest.raises(ValueError) as err:
        ap.parse_ap(text, source="f.txt")
    assert f"f.txt, line {line}:" in str(err.value)
    assert fragment in str(err.value)


def test_read_ap_explicit_file_and_directory(tmp_path):
    (tmp_path / "ap.txt").write_text(SYNTHETIC)
    assert len(ap.read_ap(tmp_path)) == 3
    assert len(ap.read_ap(tmp_path / "ap.txt")) == 3
    with pytest.raises(FileNotFoundError) as err:
        ap.read_ap(tmp_path / "nope.txt")
    msg = str(err.value)
    assert "nope.txt" in msg and "MPMKIT_DATA_DIR" in msg and "mpmkit data fetch ap" in msg


def _isolate(monkeypatch, tmp_path):
    """Point every default location at empty places under tmp_path."""
    monkeypatch.delenv("MPMKIT_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(ap, "__file__", str(tmp_path / "site" / "mpmkit_text" / "ap.py"))
    # The upward search must not leave tmp_path: a real corpus above it (e.g. /tmp/shared beside a
    # checkout in /tmp) would otherwise be found.
    upward = ap._upward
    monkeypatch.setattr(ap, "_upward", lambda start: [p for p in upward(start) if tmp_path in p.parents])
    work = tmp_path / "repo" / "sub"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    return work


def test_default_locations(monkeypatch, tmp_path):
    work = _isolate(monkeypatch, tmp_path)
    with pytest.raises(FileNotFoundError) as err:
        ap.read_ap()
    msg = str(err.value)
    for p in ap.candidate_paths():
        assert str(p) in msg
    assert str(tmp_path / "shared" / "data" / "ap" / "ap.txt") in msg

    shared = tmp_path / "shared" / "data" / "ap"  # ../../shared from the cwd
    shared.mkdir(parents=True)
    (shared / "ap.txt").write_text(SYNTHETIC)
    assert ap.find_ap() == shared / "ap.txt"

    env = tmp_path / "env"
    (env / "ap").mkdir(parents=True)
    (env / "ap" / "ap.txt").write_text(SYNTHETIC.split("\n\n")[0])
    monkeypatch.setenv("MPMKIT_DATA_DIR", str(env))
    assert ap.find_ap() == env / "ap" / "ap.txt"  # the environment wins
    assert len(ap.read_ap()) == 1
    assert work.exists()


def test_split_sizes_and_determinism():
    assert ap.split_sizes(2246) == (1800, 200, 246)
    assert ap.split_sizes(5000) == (1800, 200, 3000)
    assert ap.split_sizes(100) == (80, 8, 12)
    assert ap.split_sizes(10) == (8, 1, 1)
    assert ap.split_sizes(3) == (1, 1, 1)
    with pytest.raises(ValueError):
        ap.split_sizes(2)
    for n in (3, 7, 50, 2245, 2246, 2300):
        tr, va, te = ap.split_documents(n, seed=0)
        assert (len(tr), len(va), len(te)) == ap.split_sizes(n)
        assert min(len(va), len(te)) >= 1
        assert np.array_equal(np.sort(np.concatenate([tr, va, te])), np.arange(n))
    a, b, c = ap.split_documents(2246, 1), ap.split_documents(2246, 1), ap.split_documents(2246, 2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[2], c[2])


def _make_tgz(path: Path, members: dict[str, bytes]) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_fetch_verifies_checksum_and_extracts_atomically(tmp_path, monkeypatch):
    tgz = tmp_path / "src" / "ap.tgz"
    tgz.parent.mkdir()
    digest = _make_tgz(tgz, {"ap/ap.txt": SYNTHETIC.encode(), "ap/vocab.txt": b"zorblat\nrobot\n",
                             "ap/ap.dat": b"2 0:1 1:1\n"})
    calls = []

    def fake_download(url, dest):
        calls.append(url)
        Path(dest).write_bytes(tgz.read_bytes())

    monkeypatch.setattr(ap, "_download", fake_download)
    dest = tmp_path / "data" / "ap"

    with pytest.raises(ValueError, match="checksum mismatch"):
        ap.fetch_ap(dest, sha256="0" * 64)
    assert not (dest / "ap.txt").exists()

    out = ap.fetch_ap(dest, sha256=digest)
    assert out == dest / "ap.txt"
    assert sorted(p.name for p in dest.iterdir()) == ["ap.txt", "vocab.txt"]  # no temp leftovers
    assert len(ap.read_ap(dest)) == 3
    n = len(calls)
    ap.fetch_ap(dest, sha256=digest)  # already there: no download
    assert len(calls) == n
    ap.fetch_ap(dest, sha256=digest, force=True)
    assert len(calls) == n + 1

    monkeypatch.setenv("MPMKIT_DATA_DIR", str(tmp_path / "env"))
    assert ap.fetch_ap(sha256=digest) == tmp_path / "env" / "ap" / "ap.txt"


def test_fetch_rejects_archive_without_members(tmp_path, monkeypatch):
    tgz = tmp_path / "bad.tgz"
    digest = _make_tgz(tgz, {"ap/vocab.txt": b"x\n"})
    monkeypatch.setattr(ap, "_download", lambda url, dest: Path(dest).write_bytes(tgz.read_bytes()))
    with pytest.raises(ValueError, match="ap/ap.txt"):
        ap.fetch_ap(tmp_path / "d", sha256=digest)
    assert not (tmp_path / "d").exists()  # nothing left behind, not even the folder the fetch created


def test_default_checksum_is_the_readme_one():
    assert ap.AP_SHA256 == "92cbe192631874708540db11969211363cf2f5c0a56b2897e0229925e5d4f2a3"
    assert "0c46575e89092683010db077f713f8aa3b3594a2" in ap.AP_URL


REAL_AP = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "ap" / "ap.txt"


@pytest.mark.skipif(not REAL_AP.is_file(), reason="AP corpus not present at ../shared/data/ap")
def test_real_ap_corpus_if_present():
    docs = ap.read_ap(REAL_AP)
    assert len(docs) == 2246
    assert len({d.docno for d in docs}) == 2246
    assert all(d.text for d in docs)


def test_cli_data_list_and_fetch(tmp_path, monkeypatch):
    """``mpmkit data``: where the corpus is found, a checked download, and errors that say what exists."""
    from click.testing import CliRunner

    from mpmkit.cli import main

    tgz = tmp_path / "src" / "ap.tgz"
    tgz.parent.mkdir()
    digest = _make_tgz(tgz, {"ap/ap.txt": SYNTHETIC.encode(), "ap/vocab.txt": b"zorblat\nrobot\n"})
    monkeypatch.setattr(ap, "_download", lambda url, dest: Path(dest).write_bytes(tgz.read_bytes()))
    run = CliRunner().invoke

    # the real checksum does not match the synthetic archive: a clean error, nothing written
    r = run(main, ["data", "fetch", "ap", "--dest", str(tmp_path / "bad")])
    assert r.exit_code == 1 and "checksum mismatch" in r.output and "nothing was written" in r.output
    assert not (tmp_path / "bad" / "ap.txt").exists()

    monkeypatch.setattr(ap, "AP_SHA256", digest)  # read at call time by fetch_ap
    r = run(main, ["data", "fetch", "ap", "--dest", str(tmp_path / "ok")])
    assert r.exit_code == 0, r.output
    assert f"ap: ready at {tmp_path / 'ok' / 'ap.txt'}" in r.output and "checked against sha256" in r.output
    assert len(ap.read_ap(tmp_path / "ok")) == 3

    monkeypatch.setenv("MPMKIT_DATA_DIR", str(tmp_path / "home"))
    assert run(main, ["data", "fetch", "ap"]).exit_code == 0  # default destination: $MPMKIT_DATA_DIR/ap
    r = run(main, ["data", "list"])
    assert f"ap: found at {tmp_path / 'home' / 'ap' / 'ap.txt'}" in r.output and "mpmkit data fetch ap" in r.output
    assert "[sha256 differs from the original: ap.txt, vocab.txt]" in r.output  # the synthetic copy is not lda-c's
    assert "spiral: in code" in r.output

    import http.client

    def cut_off(url, dest):
        raise http.client.IncompleteRead(b"x", 10)

    monkeypatch.setattr(ap, "_download", cut_off)
    r = run(main, ["data", "fetch", "ap", "--dest", str(tmp_path / "cut")])
    assert r.exit_code == 1 and "could not download 'ap'" in r.output and not (tmp_path / "cut").exists()

    r = run(main, ["data", "fetch", "spiral"])
    assert r.exit_code == 1 and "cannot be fetched" in r.output and "datasets that can: ap" in r.output
    r = run(main, ["data", "fetch", "apx"])
    assert r.exit_code == 1 and "unknown dataset 'apx'" in r.output and "Did you mean 'ap'" in r.output


def test_registered_ap_dataset_reads_the_corpus(tmp_path):
    from mpmkit import DatasetSource
    from mpmkit.plugins import registry

    d = tmp_path / "ap"
    d.mkdir()
    (d / "ap.txt").write_text(SYNTHETIC)
    loader = registry("dataset").get("ap")
    assert isinstance(loader, DatasetSource) and loader.sha256 == ap.AP_SHA256
    assert [doc.docno for doc in loader(d)] == [doc.docno for doc in ap.read_ap(d)]


@pytest.mark.skipif(not REAL_AP.is_file(), reason="AP corpus not present at ../shared/data/ap")
def test_shared_copy_matches_the_published_checksums():
    from mpmkit.datasets import check_files
    from mpmkit.plugins import registry

    assert check_files(registry("dataset").get("ap"), REAL_AP) == {"ap.txt": True, "vocab.txt": True}


def test_a_failed_first_fetch_removes_the_parent_folders_it_created(tmp_path, monkeypatch):
    def offline(url, dest):
        raise OSError("no network")

    monkeypatch.setattr(ap, "_download", offline)
    (tmp_path / "keep").mkdir()
    with pytest.raises(OSError, match="no network"):
        ap.fetch_ap(tmp_path / "keep" / "data" / "dir" / "ap")
    assert list(tmp_path.iterdir()) == [tmp_path / "keep"] and not any((tmp_path / "keep").iterdir())
