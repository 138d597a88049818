"""The TFRecord reader and writer: CRC, protobuf wire format, round trips, corruption."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mpmkit_image import tetrominoes as tet
from mpmkit_image import tfrecord as tfr


def test_crc32c_known_values():
    assert tfr.crc32c(b"") == 0
    assert tfr.crc32c(b"123456789") == 0xE3069283  # the standard check value
    assert tfr._crc32c_py(b"123456789") == 0xE3069283
    assert tfr.crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720 B.4 test vector
    crc = tfr.crc32c(b"abc")
    assert tfr.masked_crc32c(b"abc") == (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def test_example_wire_format_by_hand():
    # Example{features{feature{key:"a" value{int64_list{value:[1]}}}}}
    expected = bytes([0x0A, 12, 0x0A, 10, 0x0A, 1, ord("a"), 0x12, 5, 0x1A, 3, 0x0A, 1, 1])
    assert tfr.serialize_example({"a": np.array([1])}) == expected
    assert tfr.parse_example(expected)["a"].tolist() == [1]


def test_unpacked_lists_negative_ints_and_unknown_fields():
    floats = b"".join(b"\x0d" + struct.pack("<f", v) for v in (1.5, -2.0))  # unpacked FloatList
    ints = b"\x08" + tfr._encode_varint(-3) + b"\x08\x07"  # unpacked Int64List
    unknown = b"\x28\x05"  # field 5, varint: must be skipped

    def entry(name, feature):
        return tfr._delimited(1, tfr._delimited(1, name.encode()) + tfr._delimited(2, feature))

    features = entry("f", tfr._delimited(2, floats)) + entry("i", tfr._delimited(3, ints + unknown))
    ex = tfr.parse_example(tfr._delimited(1, features) + unknown)
    assert ex["f"].dtype == np.float32 and ex["f"].tolist() == [1.5, -2.0]
    assert ex["i"].dtype == np.int64 and ex["i"].tolist() == [-3, 7]


def test_generic_round_trip(tmp_path):
    examples = [
        {"b": [b"", b"xyz"], "f": np.arange(3, dtype=np.float32), "i": np.array([-(2**63), 0, 2**63 - 1])},
        {"b": b"one", "f": [0.25], "i": [True, False]},
    ]
    for compression in ("gzip", None):
        path = tmp_path / f"g{compression}.tfrecord"
        assert tfr.write_examples(path, examples, compression=compression) == 2
        got = list(tfr.iter_examples(path, compression=compression))
        assert got[0]["b"] == [b"", b"xyz"] and got[1]["b"] == [b"one"]
        assert got[0]["f"].tolist() == [0, 1, 2] and got[1]["f"].tolist() == [0.25]
        assert got[0]["i"].tolist() == [-(2**63), 0, 2**63 - 1] and got[1]["i"].tolist() == [1, 0]
    assert gzip.open(tmp_path / "ggzip.tfrecord").read(1)  # really a GZIP stream


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    """A small GZIP file with the official Tetrominoes feature names and dtypes."""
    data = tet.generate(5, seed=7)
    path = tmp_path_factory.mktemp("tfr") / "tetrominoes_train.tfrecords"
    tfr.write_examples(path, tfr.tetromino_examples(data))
    return path, data


def test_official_schema_on_disk(official):
    path, _ = official
    ex = next(tfr.iter_examples(path))
    assert set(ex) == {"image", "mask", "x", "y", "shape", "visibility", "color"}
    assert len(ex["image"]) == 35 * 35 * 3 and all(len(b) == 1 for b in ex["image"])
    assert len(ex["mask"]) == 4 * 35 * 35 * 1
    for k in ("x", "y", "shape", "visibility"):
        assert ex[k].dtype == np.float32 and ex[k].shape == (4,)
    assert ex["color"].dtype == np.float32 and ex["color"].shape == (12,)


def test_read_tetrominoes_round_trip(official):
    path, data = official
    got = tfr.read_tetrominoes(path)
    assert set(got) == set(data)
    for k in data:
        assert got[k].dtype == data[k].dtype and np.array_equal(got[k], data[k]), k
    assert np.array_equal(tfr.read_tetrominoes(path, limit=2)["mask"], data["mask"][:2])
    assert len(tfr.read_tetrominoes(path, limit=0)["image"]) == 0


def test_read_tetrominoes_accepts_single_bytes_values(tmp_path):
    data = tet.generate(2, seed=1)
    examples = [dict(e, image=data["image"][i].tobytes(), mask=data["mask"][i].tobytes())
                for i, e in enumerate(tfr.tetromino_examples(data))]
    tfr.write_examples(tmp_path / "t.tfrecords", examples)
    assert np.array_equal(tfr.read_tetrominoes(tmp_path / "t.tfrecords")["image"], data["image"])


def _raw(path):
    return gzip.decompress(Path(path).read_bytes())


def _record_offsets(raw):
    offsets, pos = [], 0
    while pos < len(raw):
        offsets.append(pos)
        pos += 16 + struct.unpack("<Q", raw[pos:pos + 8])[0]
    return offsets


def test_data_corruption_detected(official, tmp_path):
    path, _ = official
    raw = bytearray(_raw(path))
    second = _record_offsets(raw)[1]
    raw[second + 12 + 40] ^= 0x01  # one bit inside record 1's payload
    bad = tmp_path / "bad.tfrecords"
    bad.write_bytes(gzip.compress(bytes(raw)))
    it = tfr.iter_examples(bad)
    next(it)  # record 0 is fine
    with pytest.raises(ValueError, match=r"bad\.tfrecords.*record 1.*data CRC"):
        next(it)
    assert len(list(tfr.iter_records(bad, verify=False))) == 5  # framing itself is intact


def test_length_corruption_detected(official, tmp_path):
    path, _ = official
    raw = bytearray(_raw(path))
    raw[_record_offsets(raw)[2] + 1] ^= 0x80
    bad = tmp_path / "len.tfrecords"
    bad.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"len\.tfrecords.*record 2.*length CRC"):
        list(tfr.iter_records(bad, compression=None))


@pytest.mark.parametrize("cut", [3, 10, 14, 500, -2])
def test_truncation_detected(official, tmp_path, cut):
    path, _ = official
    raw = _raw(path)
    start = _record_offsets(raw)[3]
    bad = tmp_path / "cut.tfrecords"
    bad.write_bytes(raw[:start + cut] if cut > 0 else raw[:cut])
    with pytest.raises(ValueError, match=r"cut\.tfrecords.*record (3|4).*truncated"):
        list(tfr.iter_records(bad, compression=None))


def test_truncated_gzip_stream_detected(official, tmp_path):
    path, _ = official
    blob = Path(path).read_bytes()
    bad = tmp_path / "gz.tfrecords"
    bad.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match=r"gz\.tfrecords.*record \d+"):
        tfr.read_tetrominoes(bad)


def test_wrong_schema_is_a_value_error(tmp_path):
    tfr.write_examples(tmp_path / "s.tfrecords", [{"image": b"\x00" * 10}])
    with pytest.raises(ValueError, match="record 0"):
        tfr.read_tetrominoes(tmp_path / "s.tfrecords")


@pytest.fixture(scope="module")
def fuzz_path(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz") / "fuzz.tfrecords"


_fuzz = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _read_all(path, blob: bytes, compression, verify=True):
    path.write_bytes(blob)
    try:
        list(tfr.iter_examples(path, compression=compression, verify=verify))
    except ValueError:
        pass  # the only error the reader may raise on bad input


@_fuzz
@given(st.binary(max_size=300), st.sampled_from(["gzip", None]), st.booleans())
def test_fuzz_random_bytes_raise_only_value_error(fuzz_path, blob, compression, verify):
    _read_all(fuzz_path, blob, compression, verify)


@_fuzz
@given(st.binary(max_size=300), st.booleans())
def test_fuzz_gzipped_random_bytes(fuzz_path, blob, verify):
    _read_all(fuzz_path, gzip.compress(blob), "gzip", verify)


@_fuzz
@given(st.binary(max_size=200))
def test_fuzz_framed_random_payload(fuzz_path, payload):
    """Correctly framed records with random payloads reach the protobuf decoder."""
    header = struct.pack("<Q", len(payload))
    blob = header + struct.pack("<I", tfr.masked_crc32c(header)) + payload
    _read_all(fuzz_path, blob + struct.pack("<I", tfr.masked_crc32c(payload)), None)
    try:
        tfr.parse_example(payload, join_bytes=True)
    except ValueError:
        pass


@_fuzz
@given(st.data())
def test_fuzz_mutated_valid_file(fuzz_path, data):
    raw = bytearray(tfr.serialize_example({"a": [b"xy", b"z"], "f": np.ones(3, np.float32), "i": [5, -1]}))
    header = struct.pack("<Q", len(raw))
    blob = bytearray(header + struct.pack("<I", tfr.masked_crc32c(header)) + raw
                     + struct.pack("<I", tfr.masked_crc32c(bytes(raw))))
    for _ in range(data.draw(st.integers(1, 4))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    _read_all(fuzz_path, bytes(blob), None, verify=data.draw(st.booleans()))
