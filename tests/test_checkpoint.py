"""Checkpoints are atomic, verified on load, and never unpickled."""
from __future__ import annotations

import json
import pickle

import pytest
import torch

from mpmkit import checkpoint as ckpt
from mpmkit.errors import CheckpointError


def write(tmp_path, name="step-00000001", pointer="latest"):
    return ckpt.save(tmp_path, name, {"model.w": torch.arange(6.0).reshape(2, 3)}, {"step": 1}, pointer=pointer)


def test_round_trip_and_pointer(tmp_path):
    write(tmp_path)
    tensors, state = ckpt.load(tmp_path)  # via latest.json
    assert torch.equal(tensors["model.w"], torch.arange(6.0).reshape(2, 3)) and state["step"] == 1
    assert ckpt.resolve(tmp_path).name == "step-00000001"
    assert not list(tmp_path.glob(".*tmp*"))


def test_truncated_tensor_file_is_detected(tmp_path):
    path = write(tmp_path)
    data = (path / ckpt.TENSORS).read_bytes()
    (path / ckpt.TENSORS).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="SHA-256"):
        ckpt.load(path)


def test_flipped_byte_is_detected(tmp_path):
    path = write(tmp_path)
    data = bytearray((path / ckpt.TENSORS).read_bytes())
    data[-1] ^= 0xFF
    (path / ckpt.TENSORS).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupted"):
        ckpt.load(path)


def test_corrupted_state_json(tmp_path):
    path = write(tmp_path)
    (path / ckpt.STATE).write_text("{not json")
    with pytest.raises(CheckpointError, match="state.json is corrupted"):
        ckpt.load(path)


def test_pickled_checkpoint_is_refused_without_unpickling(tmp_path, monkeypatch):
    evil = tmp_path / "model.pt"
    torch.save({"w": torch.ones(2)}, evil)
    called = []
    monkeypatch.setattr(pickle, "load", lambda *a, **k: called.append(1))
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: called.append(1))
    with pytest.raises(CheckpointError, match="never unpickles"):
        ckpt.load(evil)
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    with pytest.raises(CheckpointError, match="never unpickles"):
        ckpt.load(raw)
    assert not called


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not an mpmkit checkpoint"):
        ckpt.load(tmp_path)


def test_interrupted_save_leaves_previous_checkpoint_valid(tmp_path, monkeypatch):
    write(tmp_path)

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt, "atomic_write_json", boom)  # die before state.json / pointer are written
    with pytest.raises(KeyboardInterrupt):
        write(tmp_path, "step-00000002")
    monkeypatch.undo()
    tensors, state = ckpt.load(tmp_path)
    assert state["step"] == 1 and json.loads((tmp_path / "latest.json").read_text())["path"] == "step-00000001"


def test_prune_keeps_newest(tmp_path):
    for i in range(1, 5):
        write(tmp_path, f"step-{i:08d}")
    ckpt.prune(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.glob("step-*")) == ["step-00000003", "step-00000004"]
    ckpt.prune(tmp_path, keep=0, protect={"step-00000004"})  # the checkpoint a pointer names survives
    assert sorted(p.name for p in tmp_path.glob("step-*")) == ["step-00000004"]


def test_overwriting_a_checkpoint_replaces_it_and_leaves_no_debris(tmp_path):
    write(tmp_path)
    ckpt.save(tmp_path, "step-00000001", {"model.w": torch.ones(2)}, {"step": 7})
    tensors, state = ckpt.load(tmp_path)
    assert state["step"] == 7 and torch.equal(tensors["model.w"], torch.ones(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.json", "step-00000001"]


def test_overwrite_killed_between_its_renames_is_recovered(tmp_path):
    """The old copy moved aside (.NAME.old-PID) is renamed back when the pointer's target is missing."""
    write(tmp_path)
    (tmp_path / "step-00000001").rename(tmp_path / ".step-00000001.old-999")
    tensors, state = ckpt.load(tmp_path)
    assert state["step"] == 1 and (tmp_path / "step-00000001").is_dir()
    assert not list(tmp_path.glob(".*old*"))


def test_cuda_rng_states_go_to_their_own_device_and_extra_ones_warn(monkeypatch):
    """Keys sort as numbers (cuda.10 after cuda.2), and a checkpoint from more GPUs than this machine has restores
    the ones that exist and says so, instead of failing inside torch."""
    saved_tensors, meta = ckpt.rng_state()
    states = {f"rng.cuda.{i}": torch.full((4,), i, dtype=torch.uint8) for i in range(12)}
    restored = {}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 11)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda t, i: restored.__setitem__(i, int(t[0])))
    with pytest.warns(UserWarning, match="RNG states of 12 CUDA devices, this machine has 11"):
        ckpt.set_rng_state({**saved_tensors, **states}, meta)
    assert restored == {i: i for i in range(11)}
