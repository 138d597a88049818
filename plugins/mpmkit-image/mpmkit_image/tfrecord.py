"""Read and write TFRecord files of ``tf.train.Example`` without TensorFlow.

A TFRecord file (optionally one GZIP stream) is a sequence of records::

    uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)

(little-endian). Each ``data`` is a serialized ``tf.train.Example``, decoded
here by hand from the protobuf wire format::

    Example   { Features features = 1; }
    Features  { map<string, Feature> feature = 1; }   // entries: key = 1, value = 2
    Feature   { oneof { BytesList bytes_list = 1; FloatList float_list = 2;
                        Int64List int64_list = 3; } }
    BytesList { repeated bytes value = 1; }
    FloatList { repeated float value = 1 [packed]; }  // unpacked also accepted
    Int64List { repeated int64 value = 1 [packed]; }  // unpacked also accepted

Every malformed input (bad CRC, truncation, broken GZIP stream, bad protobuf)
raises :class:`ValueError` naming the file and the record index.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from collections.abc import Iterable, Iterator, Mapping

import numpy as np

from mpmkit.utils import atomic_file

# --------------------------------------------------------------------------- CRC32C

_CRC_TABLE = []
for _n in range(256):
    _c = _n
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC_TABLE.append(_c)
del _n, _c


def _crc32c_py(data: bytes) -> int:
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


try:  # optional C implementation; same results, much faster
    import google_crc32c as _gcrc

    def crc32c(data: bytes) -> int:
        """CRC-32C (Castagnoli) of ``data``."""
        return _gcrc.value(bytes(data))

except ImportError:  # pragma: no cover - depends on the environment
    crc32c = _crc32c_py
    crc32c.__doc__ = "CRC-32C (Castagnoli) of ``data`` (pure Python)."


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC: rotate right by 15 bits and add a constant."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# --------------------------------------------------------------------------- files

def _normalise_compression(compression):
    if compression in (None, "", "none", "NONE"):
        return None
    if str(compression).lower() == "gzip":
        return "gzip"
    raise ValueError(f"unsupported compression {compression!r}; use 'gzip' or None")


def _open(path, compression, mode):
    if compression == "gzip":
        return gzip.open(path, mode)
    return open(path, mode)


def _read_exact(f, size: int, what: str, where: str) -> bytes:
    chunks, left = [], size
    while left:
        chunk = f.read(min(left, 1 << 20))
        if not chunk:
            raise ValueError(f"{where}: truncated {what} ({size - left} of {size} bytes)")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def iter_records(path, compression="gzip", verify: bool = True) -> Iterator[bytes]:
    """Yield the raw payload of each record; check both CRCs when ``verify``."""
    compression = _normalise_compression(compression)
    index = 0
    where = f"{os.fspath(path)}: record {index}"
    try:
        with _open(path, compression, "rb") as f:
            while True:
                where = f"{os.fspath(path)}: record {index}"
                header = f.read(8)
                if not header:
                    return  # clean end of file
                if len(header) < 8:
                    header += _read_exact(f, 8 - len(header), "length", where)
                (length_crc,) = struct.unpack("<I", _read_exact(f, 4, "length CRC", where))
                if verify and masked_crc32c(header) != length_crc:
                    raise ValueError(f"{where}: length CRC mismatch (corrupt file)")
                (length,) = struct.unpack("<Q", header)
                data = _read_exact(f, length, "data", where)
                (data_crc,) = struct.unpack("<I", _read_exact(f, 4, "data CRC", where))
                if verify and masked_crc32c(data) != data_crc:
                    raise ValueError(f"{where}: data CRC mismatch (corrupt file)")
                yield data
                index += 1
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:  # broken or truncated GZIP stream
        raise ValueError(f"{where}: cannot decompress ({e})") from e


def iter_examples(path, compression="gzip", verify: bool = True) -> Iterator[dict]:
    """Yield each ``tf.train.Example`` as ``{name: value}``.

    Values are a list of ``bytes`` (BytesList), a float32 array (FloatList) or
    an int64 array (Int64List); a Feature with no kind set gives ``[]``.
    """
    for index, data in enumerate(iter_records(path, compression, verify)):
        try:
            yield parse_example(data)
        except ValueError as e:
            raise ValueError(f"{os.fspath(path)}: record {index}: {e}") from None


def write_records(path, records: Iterable[bytes], compression="gzip") -> int:
    """Write raw payloads as TFRecords (atomically); return how many were written."""
    compression = _normalise_compression(compression)
    count = 0
    with atomic_file(path) as raw, (gzip.GzipFile(fileobj=raw, mode="wb") if compression == "gzip" else raw) as f:
        for data in records:
            header = struct.pack("<Q", len(data))
            f.write(header + struct.pack("<I", masked_crc32c(header)))
            f.write(data + struct.pack("<I", masked_crc32c(data)))
            count += 1
    return count


def write_examples(path, examples: Iterable[Mapping], compression="gzip") -> int:
    """Write ``{name: value}`` mappings as ``tf.train.Example`` records.

    ``bytes`` or a list of ``bytes`` becomes a BytesList; float data a
    FloatList (float32); integer or boolean data an Int64List.
    """
    return write_records(path, (serialize_example(e) for e in examples), compression)


# --------------------------------------------------------------------------- protobuf

def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result & 0xFFFFFFFFFFFFFFFF, pos
        shift += 7
        if shift >= 70:
            raise ValueError("varint too long")


def _fields(buf: bytes, start: int, end: int):
    """Yield (field number, wire type, value) where value is an int or a (start, end) slice."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise ValueError("invalid field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos, end)
        elif wire == 1:
            if pos + 8 > end:
                raise ValueError("truncated fixed64")
            value, pos = (pos, pos + 8), pos + 8
        elif wire == 2:
            size, pos = _varint(buf, pos, end)
            if pos + size > end:
                raise ValueError("length-delimited field runs past its message")
            value, pos = (pos, pos + size), pos + size
        elif wire == 5:
            if pos + 4 > end:
                raise ValueError("truncated fixed32")
            value, pos = (pos, pos + 4), pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield field, wire, value


def _bytes_list(buf, start, end, join):
    payload = buf[start:end]
    n = len(payload)
    if join and n and n % 3 == 0:  # fast path: one byte per value (the official image layout)
        arr = np.frombuffer(payload, np.uint8)
        if (arr[0::3] == 0x0A).all() and (arr[1::3] == 1).all():
            return arr[2::3].tobytes()
    values = [buf[a:b] for f, w, (a, b) in _list_items(buf, start, end, wire=2)]
    return b"".join(values) if join else values


def _list_items(buf, start, end, wire):
    for field, w, value in _fields(buf, start, end):
        if field != 1:
            continue  # unknown field: skipped, as protobuf does
        if w != wire:
            raise ValueError(f"wire type {w} for a list of wire type {wire}")
        yield field, w, value


def _numeric_list(buf, start, end, kind):
    parts = []
    for field, w, value in _fields(buf, start, end):
        if field != 1:
            continue
        if kind == "float" and w == 2:  # packed
            a, b = value
            if (b - a) % 4:
                raise ValueError("packed float list length is not a multiple of 4")
            parts.append(np.frombuffer(buf[a:b], "<f4"))
        elif kind == "float" and w == 5:
            parts.append(np.frombuffer(buf[value[0]:value[1]], "<f4"))
        elif kind == "int64" and w == 2:  # packed varints
            a, b = value
            vals = []
            while a < b:
                v, a = _varint(buf, a, b)
                vals.append(v)
            parts.append(np.array(vals, np.uint64).view(np.int64))
        elif kind == "int64" and w == 0:
            parts.append(np.array([value], np.uint64).view(np.int64))
        else:
            raise ValueError(f"wire type {w} in a {kind} list")
    dtype = np.float32 if kind == "float" else np.int64
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)


def _feature(buf, start, end, join):
    value = []
    for field, w, v in _fields(buf, start, end):
        if field in (1, 2, 3) and w != 2:
            raise ValueError(f"Feature field {field} has wire type {w}")
        if field == 1:
            value = _bytes_list(buf, *v, join)
        elif field == 2:
            value = _numeric_list(buf, *v, "float")
        elif field == 3:
            value = _numeric_list(buf, *v, "int64")
    return value


def parse_example(data: bytes, join_bytes: bool = False) -> dict:
    """Decode one serialized ``tf.train.Example`` (see :func:`iter_examples`).

    With ``join_bytes`` each BytesList comes back as one concatenated ``bytes``.
    """
    buf = bytes(data)
    out = {}
    for field, w, v in _fields(buf, 0, len(buf)):
        if field != 1:
            continue
        if w != 2:
            raise ValueError(f"Example.features has wire type {w}")
        for f2, w2, entry in _fields(buf, *v):
            if f2 != 1:
                continue
            if w2 != 2:
                raise ValueError(f"Features.feature has wire type {w2}")
            key, value = b"", []
            for f3, w3, kv in _fields(buf, *entry):
                if f3 in (1, 2) and w3 != 2:
                    raise ValueError(f"map entry field {f3} has wire type {w3}")
                if f3 == 1:
                    key = buf[kv[0]:kv[1]]
                elif f3 == 2:
                    value = _feature(buf, *kv, join_bytes)
            try:
                name = key.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"feature name is not UTF-8: {key!r}") from e
            out[name] = value
    return out


def _key(field: int, wire: int) -> bytes:
    return _encode_varint((field << 3) | wire)


def _encode_varint(value: int) -> bytes:
    value &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _delimited(field: int, payload: bytes) -> bytes:
    return _key(field, 2) + _encode_varint(len(payload)) + payload


def _encode_feature(value) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = [bytes(value)]
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (bytes, bytearray)) for v in value):
        body = b"".join(_delimited(1, bytes(v)) for v in value)
        return _delimited(1, body)
    arr = np.asarray(value).ravel()
    if arr.dtype.kind == "f":
        return _delimited(2, _delimited(1, arr.astype("<f4").tobytes()))
    if arr.dtype.kind in "iub":
        body = b"".join(_encode_varint(int(v)) for v in arr)
        return _delimited(3, _delimited(1, body))
    raise TypeError(f"cannot encode a feature of dtype {arr.dtype}")


def serialize_example(features: Mapping) -> bytes:
    """Encode ``{name: value}`` as a serialized ``tf.train.Example`` (keys sorted)."""
    entries = b"".join(
        _delimited(1, _delimited(1, name.encode("utf-8")) + _delimited(2, _encode_feature(features[name])))
        for name in sorted(features)
    )
    return _delimited(1, entries)


# --------------------------------------------------------------------------- Tetrominoes

_TETROMINO_FLOATS = ("x", "y", "shape", "visibility")


def tetromino_examples(data: Mapping[str, np.ndarray]) -> Iterator[dict]:
    """Official-schema examples from a dict of arrays (as :func:`generate` returns).

    Like the official file, ``image`` and ``mask`` are BytesLists of one-byte
    strings (``tf.FixedLenFeature([35, 35, 3], tf.string)`` then ``decode_raw``).
    """
    for i in range(len(data["image"])):
        ex = {
            "image": [bytes([b]) for b in np.asarray(data["image"][i], np.uint8).tobytes()],
            "mask": [bytes([b]) for b in np.asarray(data["mask"][i], np.uint8).tobytes()],
            "color": np.asarray(data["color"][i], np.float32),
        }
        for k in _TETROMINO_FLOATS:
            ex[k] = np.asarray(data[k][i], np.float32)
        yield ex


def read_tetrominoes(path, limit: int | None = None, compression="gzip", verify: bool = True) -> dict:
    """Load the official Tetrominoes TFRecord into the generator's dict-of-arrays layout.

    Reads the first ``limit`` examples (all when None). ``image`` and ``mask``
    may be stored as one bytes value or as one-byte values.
    """
    from .tetrominoes import IMAGE_SIZE

    hw = IMAGE_SIZE * IMAGE_SIZE
    cols = {k: [] for k in ("image", "mask", "color", *_TETROMINO_FLOATS)}
    if limit is not None and limit <= 0:
        records = iter(())
    else:
        records = iter_records(path, compression, verify)
    for index, data in enumerate(records):
        where = f"{os.fspath(path)}: record {index}"
        try:
            ex = parse_example(data, join_bytes=True)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        missing = [k for k in cols if k not in ex]
        if missing:
            raise ValueError(f"{where}: missing features {missing}")
        image, mask = ex["image"], ex["mask"]
        if not isinstance(image, bytes) or len(image) != hw * 3:
            raise ValueError(f"{where}: image must be {hw * 3} bytes")
        if not isinstance(mask, bytes) or len(mask) == 0 or len(mask) % hw:
            raise ValueError(f"{where}: mask must be a multiple of {hw} bytes")
        entities = len(mask) // hw
        if cols["mask"] and entities != cols["mask"][0].shape[0]:
            raise ValueError(f"{where}: {entities} entities, earlier records had {cols['mask'][0].shape[0]}")
        cols["image"].append(np.frombuffer(image, np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE, 3))
        cols["mask"].append(np.frombuffer(mask, np.uint8).reshape(entities, IMAGE_SIZE, IMAGE_SIZE, 1))
        for k in _TETROMINO_FLOATS:
            v = ex[k]
            if not isinstance(v, np.ndarray) or v.dtype != np.float32 or v.size != entities:
                raise ValueError(f"{where}: {k} must be {entities} float32 values")
            cols[k].append(v)
        color = ex["color"]
        if not isinstance(color, np.ndarray) or color.dtype != np.float32 or color.size != entities * 3:
            raise ValueError(f"{where}: color must be {entities}x3 float32 values")
        cols["color"].append(color.reshape(entities, 3))
        if limit is not None and index + 1 >= limit:
            break
    if not cols["image"]:
        return {
            "image": np.zeros((0, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8),
            "mask": np.zeros((0, 4, IMAGE_SIZE, IMAGE_SIZE, 1), np.uint8),
            "color": np.zeros((0, 4, 3), np.float32),
            **{k: np.zeros((0, 4), np.float32) for k in _TETROMINO_FLOATS},
        }
    return {k: np.stack(v) for k, v in cols.items()}
