"""Algorithm 1: minibatches of datasets, inner loop, outer gradient step on L^MPM.

The trainer owns the run directory: ``config.json``, ``metrics.csv``, ``tb/`` (TensorBoard),
``checkpoints/``. ``resume=True`` continues from ``checkpoints/latest.json`` exactly: model,
optimiser, scheduler, RNG states and the position inside the epoch's shuffled order.
"""
from __future__ import annotations

import collections
import csv
import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import checkpoint as ckpt
from .batch import Batch
from .components import check_solver
from .config import Config
from .errors import CheckpointError, ConfigError
from .family import Family, Splits
from .model import MPM
from .solvers import InnerProblem
from .utils import resolve_device, seed_everything


#: keys that may change when a run is resumed: budgets and logging, not the trajectory
RESUMABLE = frozenset({"epochs", "max_steps", "progress", "tensorboard", "log_every", "checkpoint_every",
                       "keep_checkpoints", "device"})


def batches_for_epoch(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Shuffled minibatches of dataset indices for one epoch; depends only on (seed, epoch)."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=gen).tolist()
    return [perm[i: i + batch_size] for i in range(0, n, batch_size)]


def iterate(datasets, collate, batch_size: int, device: torch.device):
    """Batches of a split in order (evaluation)."""
    for i in range(0, len(datasets), batch_size):
        yield collate([datasets[j] for j in range(i, min(i + batch_size, len(datasets)))]).to(device)


class MetricLog:
    """Metrics rows to ``metrics.csv`` (and TensorBoard when available)."""

    def __init__(self, run_dir: Path, tensorboard: bool, resume_step: int | None):
        self.path = run_dir / "metrics.csv"
        self.fields: list[str] | None = None
        if resume_step is not None and self.path.exists():  # drop rows written after the checkpoint
            with open(self.path) as f:
                rows = [r for r in csv.DictReader(f) if int(float(r["step"])) <= resume_step]
            if rows:
                self.fields = list(rows[0].keys())
            with open(self.path, "w", newline="") as f:
                if self.fields:
                    w = csv.DictWriter(f, fieldnames=self.fields)
                    w.writeheader()
                    w.writerows(rows)
        elif self.path.exists():
            self.path.unlink()
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(run_dir / "tb"), purge_step=resume_step)
            except Exception:  # noqa: BLE001 - tensorboard is optional at run time
                self.tb = None

    def write(self, step: int, row: dict[str, float]) -> None:
        row = {"step": step, **row}
        if self.fields is None:
            self.fields = list(row.keys())
            with open(self.path, "w", newline="") as f:
                csv.DictWriter(f, fieldnames=self.fields).writeheader()
        for k in row:
            if k not in self.fields:  # a new column: rewrite the header once
                self._add_field(k)
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.fields, restval="").writerow(row)
        if self.tb is not None:
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)) and math.isfinite(v):
                    self.tb.add_scalar(k, v, step)

    def _add_field(self, k: str) -> None:
        with open(self.path) as f:
            rows = list(csv.DictReader(f))
        self.fields.append(k)
        with open(self.path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.fields, restval="")
            w.writeheader()
            w.writerows(rows)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


class Trainer:
    """Runs Algorithm 1 for a family and a config in ``run_dir``."""

    def __init__(self, family: Family, cfg: Config, run_dir: str | Path, resume: bool = False):
        self.family, self.cfg, self.run_dir, self.resume = family, cfg, Path(run_dir), resume
        self.device = resolve_device(cfg.train.device)
        self.ckpt_dir = self.run_dir / "checkpoints"

    # -- setup -----------------------------------------------------------------------------
    def _check_run_dir(self) -> None:
        cfg_path = self.run_dir / "config.json"
        if self.resume:
            if not cfg_path.exists():
                raise CheckpointError(f"cannot resume: {str(cfg_path)!r} not found; is {str(self.run_dir)!r} a run directory?")
            saved = json.loads(cfg_path.read_text())
            if saved.get("family") != self.cfg.family_name:
                raise CheckpointError(f"cannot resume: {str(self.run_dir)!r} is a {saved.get('family')!r} run, "
                                      f"not {self.cfg.family_name!r}")
            before = {**saved.get("train", {}), **saved.get("options", {})}
            now = self.cfg.flat()
            diff = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k) and k not in RESUMABLE)
            if diff:
                raise ConfigError(f"cannot resume {str(self.run_dir)!r} with a different config (keys differ: "
                                  f"{', '.join(diff)}); only {', '.join(sorted(RESUMABLE))} may change on resume")
            ckpt.atomic_write_json(cfg_path, self.cfg.to_dict())
        else:
            if (self.ckpt_dir / "latest.json").exists():
                raise ConfigError(f"{str(self.run_dir)!r} already holds a run; pass --resume to continue it "
                                  "or choose a new --out directory (nothing was overwritten)")
            self.run_dir.mkdir(parents=True, exist_ok=True)
            ckpt.atomic_write_json(cfg_path, self.cfg.to_dict())

    def setup(self) -> tuple[MPM, Splits]:
        seed_everything(self.cfg.train.seed)
        splits = self.family.build_data(self.cfg)
        if len(splits.train) == 0:
            raise ValueError(f"family {self.cfg.family_name!r} produced an empty training split; "
                             "check the data path and split sizes")
        model = self.family.build_model(self.cfg).to(self.device)
        return model, splits

    # -- main loop ---------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        self._check_run_dir()
        cfg, tc = self.cfg, self.cfg.train
        model, splits = self.setup()
        self.model, self.splits = model, splits
        opt = torch.optim.Adam(model.parameters(), lr=tc.lr)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(tc.lr_milestones), gamma=tc.lr_gamma)
        step, epoch, pos, best = 0, 0, 0, math.inf
        if self.resume:
            tensors, state = ckpt.load(ckpt.resolve(self.ckpt_dir, "latest"))
            self._restore(model, opt, sched, tensors, state)
            step, epoch, pos, best = state["step"], state["epoch"], state["batch_in_epoch"], state["best_val"]
        log = MetricLog(self.run_dir, tc.tensorboard, resume_step=step if self.resume else None)
        n_batches = math.ceil(len(splits.train) / tc.batch_size)
        total = tc.max_steps or n_batches * tc.epochs
        bar = _progress(total, step, tc.progress, desc=f"fit {cfg.family_name}")
        ckpt_every = tc.checkpoint_every or n_batches
        check_solver(model.solver, InnerProblem(g=None, mask=None, prior=model.prior, potential=model.potential,
                                                lam0=None, log_pz=model.log_pz, model=model))
        t0 = time.perf_counter()
        try:
            while epoch < tc.epochs and (not tc.max_steps or step < tc.max_steps):
                order = batches_for_epoch(len(splits.train), tc.batch_size, tc.seed, epoch)
                model.train()
                while pos < len(order) and (not tc.max_steps or step < tc.max_steps):
                    batch = splits.collate([splits.train[i] for i in order[pos]]).to(self.device)
                    row = self._step(model, opt, batch)
                    step, pos = step + 1, pos + 1
                    bar.update(1)
                    bar.set_postfix(loss=f"{row['loss']:.4g}", epoch=epoch)
                    if step % tc.log_every == 0:
                        log.write(step, {"epoch": epoch, "lr": opt.param_groups[0]["lr"], **row,
                                         "time": time.perf_counter() - t0})
                    if pos < len(order) and step % ckpt_every == 0:
                        self._save(model, opt, sched, step, epoch, pos, best)
                if pos >= len(order):  # epoch finished
                    val = self.validate(model, splits)
                    epoch, pos = epoch + 1, 0
                    sched.step()
                    log.write(step, {"epoch": epoch, "val_loss": val})
                    if val < best:
                        best = val
                        self._save(model, opt, sched, step, epoch, pos, best, pointer="best")
                    self._save(model, opt, sched, step, epoch, pos, best)
                else:  # stopped by max_steps mid-epoch
                    self._save(model, opt, sched, step, epoch, pos, best)
        finally:
            bar.close()
            log.close()
        return {"step": step, "epoch": epoch, "best_val": best}

    def _step(self, model: MPM, opt: torch.optim.Optimizer, batch: Batch) -> dict[str, float]:
        opt.zero_grad(set_to_none=True)
        loss, terms, inference = model(batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {float(loss)} at this step; the last good checkpoint is kept "
                                     f"in {str(self.ckpt_dir)!r}. Lower lr or check the data for NaN/Inf.")
        loss.backward()
        if self.cfg.train.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), self.cfg.train.grad_clip)
        opt.step()
        row = {"loss": float(loss.detach()), **terms.metrics(), "inner_residual": inference.trace.get("residual", float("nan"))}
        elbos = inference.trace.get("surrogate_elbo") or []
        if elbos:
            row["surrogate_elbo"] = elbos[-1]
        return row

    @torch.no_grad()
    def validate(self, model: MPM, splits: Splits) -> float:
        """Mean negative ELBO per observation on the validation split (train split if empty)."""
        data = splits.val if len(splits.val) else splits.train
        model.eval()
        total, n = 0.0, 0.0
        for batch in iterate(data, splits.collate, self.cfg.train.batch_size, self.device):
            _, terms, _ = model(batch)
            total += float((-terms.total).sum())
            n += float(terms.n_obs.sum())
        model.train()
        return total / max(n, 1.0)

    # -- checkpoints -------------------------------------------------------------------------
    def _save(self, model, opt, sched, step, epoch, pos, best, pointer: str = "latest") -> None:
        tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
        opt_t, opt_meta = ckpt.optimizer_tensors(opt)
        rng_t, rng_meta = ckpt.rng_state()
        state = {"family": self.cfg.family_name, "config": self.cfg.to_dict(), "step": step, "epoch": epoch,
                 "batch_in_epoch": pos, "best_val": best, "optimizer": opt_meta, "rng": rng_meta,
                 "scheduler": _jsonable(sched.state_dict())}
        name = f"step-{step:08d}" if pointer == "latest" else f"best-{step:08d}"
        ckpt.save(self.ckpt_dir, name, {**tensors, **opt_t, **rng_t}, state, pointer=pointer,
                  pointer_extra={"val_loss": best} if pointer == "best" else None)
        if pointer == "latest":
            ckpt.prune(self.ckpt_dir, self.cfg.train.keep_checkpoints)
        else:
            for p in self.ckpt_dir.glob("best-*"):
                if p.name != name:
                    shutil.rmtree(p, ignore_errors=True)

    def _restore(self, model, opt, sched, tensors, state) -> None:
        if state.get("family") != self.cfg.family_name:
            raise CheckpointError(f"checkpoint is from family {state.get('family')!r}, not {self.cfg.family_name!r}")
        load_model_tensors(model, tensors)
        ckpt.load_optimizer(opt, tensors, state["optimizer"])
        sd = state["scheduler"]
        sd["milestones"] = collections.Counter({int(k): v for k, v in sd["milestones"].items()})
        sched.load_state_dict(sd)
        ckpt.set_rng_state(tensors, state["rng"])


def load_model_tensors(model: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Load ``model.*`` tensors of a checkpoint, naming missing/unexpected keys on mismatch."""
    sd = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(sd)), sorted(set(sd) - set(own))
    bad_shape = [k for k in set(own) & set(sd) if own[k].shape != sd[k].shape]
    if missing or unexpected or bad_shape:
        raise CheckpointError(
            "checkpoint does not fit this model (another family or config?): "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shape {sorted(bad_shape)[:5]}")
    model.load_state_dict(sd)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if torch.is_tensor(obj):
        return obj.tolist()
    return obj


def _progress(total: int, initial: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, desc=desc, dynamic_ncols=True, leave=False)
