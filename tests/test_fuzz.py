"""Fuzzing (hypothesis): the config loader and the data readers fail only with their documented errors.

``MPMKIT_FUZZ_EXAMPLES=5000`` runs a longer campaign (default 60 examples per test).

Config loader and ``--set`` overrides: :class:`~mpmkit.errors.ConfigError`. AP parser
(``mpmkit_text.ap.parse_ap``) and TFRecord reader (``mpmkit_image.tfrecord``): ``ValueError``.
"""
from __future__ import annotations

import gzip
import json
import os
import random

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mpmkit.config import TrainConfig, build_config, load_file, parse_overrides
from mpmkit.errors import ConfigError

FUZZ = settings(max_examples=int(os.environ.get("MPMKIT_FUZZ_EXAMPLES", 60)), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
KEYS = ["epochs", "lr", "lr_milestones", "solver", "solver_options", "backward", "progress", "amp", "seed", "grad_clip", "train",
        "options", "family", "num_datasets", "ragged", "epoch", ""]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.text(max_size=12))
values = st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(KEYS), c, max_size=3),
                      max_leaves=8)
mappings = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), values, max_size=5)


def _validate(flat):
    import toy

    build_config("toy", toy.ToyOptions, flat, toy.ToyFamily.defaults)


@FUZZ
@given(data=mappings, fmt=st.sampled_from(["yaml", "json"]))
def test_config_files_of_any_mapping(tmp_path, data, fmt):
    path = tmp_path / f"c.{fmt}"
    path.write_text(yaml.safe_dump(data) if fmt == "yaml" else json.dumps(data))
    try:
        _validate(load_file(path))
    except ConfigError:
        pass


@FUZZ
@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode), fmt=st.sampled_from(["yaml", "toml", "json", "ini"]))
def test_config_files_of_any_bytes(tmp_path, raw, fmt):
    path = tmp_path / f"c.{fmt}"
    path.write_bytes(raw)
    try:
        _validate(load_file(path))
    except ConfigError:
        pass


@FUZZ
@given(items=st.lists(st.tuples(st.sampled_from(KEYS) | st.text(max_size=6), st.sampled_from(["=", "", "=="]),
                                st.text(max_size=20) | values.map(json.dumps)).map("".join), max_size=4))
def test_overrides(items):
    try:
        _validate(parse_overrides(items))
    except ConfigError:
        pass


def test_train_config_keys_are_all_fuzzed_types():  # every core key type is one the fuzzer's coerce path knows
    import typing

    hints = typing.get_type_hints(TrainConfig)
    assert all(h in (int, float, bool, str, list[int], dict[str, typing.Any]) or typing.get_origin(h) is typing.Literal
               for h in hints.values())


# -- AP parser -----------------------------------------------------------------------------------------------
TAGS = [f"<{c}{name}>" for name in ("DOC", "DOCNO", "TEXT") for c in ("", "/")] + \
    ["<DOC", "\n", " ", "XX88-1", "words here", ">", "<"]


@FUZZ
@given(parts=st.lists(st.sampled_from(TAGS) | st.text(max_size=6), max_size=30))
def test_ap_parser_raises_only_value_error(parts):
    ap = pytest.importorskip("mpmkit_text.ap")
    try:
        docs = ap.parse_ap("".join(parts), source="fuzz.txt")
    except ValueError as e:
        assert "fuzz.txt, line " in str(e)
    else:
        assert all(d.docno for d in docs)


@FUZZ
@given(n=st.integers(0, 4), cut=st.integers(0, 400), flip=st.integers(0, 400))
def test_ap_parser_on_mutated_valid_text(n, cut, flip):
    ap = pytest.importorskip("mpmkit_text.ap")
    text = "".join(ap.ap_block(f"XX-{i}", f"word {i}") for i in range(n))
    assert len(ap.parse_ap(text)) == n
    for mutated in (text[:cut], text[:flip] + "<" + text[flip + 1:], text[:flip] + text[flip + 3:]):
        try:
            ap.parse_ap(mutated)
        except ValueError:
            pass


# -- TFRecord reader -------------------------------------------------------------------------------------------
def _read_all(path, compression, verify):
    tf = pytest.importorskip("mpmkit_image.tfrecord")
    for fn in (lambda: list(tf.iter_examples(path, compression, verify)),
               lambda: tf.read_tetrominoes(path, limit=3, compression=compression, verify=verify)):
        try:
            fn()
        except ValueError:
            pass


@FUZZ
@given(raw=st.binary(max_size=300), gz=st.booleans(), verify=st.booleans())
def test_tfrecord_random_bytes(tmp_path, raw, gz, verify):
    path = tmp_path / "f.tfrecord"
    path.write_bytes(gzip.compress(raw) if gz else raw)
    _read_all(path, "gzip" if gz else None, verify)


@FUZZ
@given(payload=st.binary(max_size=200))
def test_tfrecord_parse_example_random_protobuf(payload):
    tf = pytest.importorskip("mpmkit_image.tfrecord")
    try:
        tf.parse_example(payload)
        tf.parse_example(payload, join_bytes=True)
    except ValueError:
        pass


@FUZZ
@given(seed=st.integers(0, 2**32 - 1), gz=st.booleans(), verify=st.booleans())
def test_tfrecord_mutated_valid_file(tmp_path, seed, gz, verify):
    tf = pytest.importorskip("mpmkit_image.tfrecord")
    import numpy as np

    rng = random.Random(seed)
    path = tmp_path / "ok.tfrecord"
    ex = {"image": [bytes([rng.randrange(256)]) for _ in range(12)], "x": np.float32([1.5, 2.0]),
          "n": np.int64([rng.randrange(-5, 5)]), "name": b"scene"}
    tf.write_examples(path, [ex, ex], compression="gzip" if gz else None)
    data = bytearray(path.read_bytes())
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(3)
        i = rng.randrange(len(data))
        if op == 0:
            data[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            del data[i:]
        else:
            data[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        if not data:
            break
    path.write_bytes(bytes(data))
    _read_all(path, "gzip" if gz else None, verify)
