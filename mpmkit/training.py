"""Algorithm 1: minibatches of datasets, inner loop, outer gradient step on L^MPM.

The trainer owns the run directory: ``config.json``, ``metrics.csv``, ``tb/`` (TensorBoard),
``checkpoints/``. ``resume=True`` continues from ``checkpoints/latest.json`` exactly: model,
optimiser, scheduler, RNG states (of every rank) and the position inside the epoch's shuffled order.

Under ``torchrun`` the MPM module itself is wrapped in DistributedDataParallel, so the whole
forward pass (g_φ, the inner loop, the ELBO) runs inside DDP and the outer gradient, which
flows back through the unrolled inner loop, is all-reduced once per step by DDP's hooks on the
parameters; see :mod:`mpmkit.distributed` for how the global batch is split.
"""
from __future__ import annotations

import collections
import contextlib
import csv
import json
import math
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import checkpoint as ckpt
from . import distributed
from .batch import Batch
from .components import check_solver
from .config import Config, build_config
from .distributed import DistContext
from .errors import CheckpointError, ConfigError, DataError, DivergenceError, MPMKitError
from .family import Family, Splits
from .model import MPM
from .solvers import InnerProblem
from .utils import resolve_device, seed_everything


#: keys that may change when a run is resumed: budgets and logging, not the trajectory
RESUMABLE = frozenset({"epochs", "max_steps", "progress", "tensorboard", "log_every", "checkpoint_every",
                       "keep_checkpoints", "device", "compile", "check_data"})


def batches_for_epoch(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Shuffled minibatches of dataset indices for one epoch; depends only on (seed, epoch)."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=gen).tolist()
    return [perm[i: i + batch_size] for i in range(0, n, batch_size)]


def iterate(datasets, collate, batch_size: int, device: torch.device, indices=None):
    """Batches of a split (or of ``indices`` into it) in order (evaluation)."""
    indices = list(range(len(datasets))) if indices is None else list(indices)
    for i in range(0, len(indices), batch_size):
        yield to_device(collate([datasets[j] for j in indices[i: i + batch_size]]), device)


def to_device(batch: Batch, device: torch.device) -> Batch:
    """Move a batch; on CUDA through pinned memory with a non-blocking copy."""
    if device.type == "cuda":
        return batch.pin_memory().to(device, non_blocking=True)
    return batch.to(device)


def check_data(splits: Splits, collate, num_slots: int, chunk: int = 64) -> None:
    """Refuse NaN/Inf values and datasets without observations (naming split and index); warn when K > N_i.

    K larger than a dataset's number of observations is allowed (the extra slots get no
    data and stay at their prior/initial position) but reported once as a warning.
    """
    few: list[tuple[int, int]] = []
    for split in ("train", "val", "test"):
        data = getattr(splits, split)
        for start in range(0, len(data), chunk):
            idx = list(range(start, min(start + chunk, len(data))))
            batch = collate([data[i] for i in idx])
            counts = batch.mask.sum(1).tolist()
            for row, i in enumerate(idx):
                if counts[row] == 0:
                    raise DataError(f"{split} dataset {i} has no observations; remove it from the collection "
                                    "(every dataset needs at least one observation)")
                if split == "train" and counts[row] < num_slots:
                    few.append((i, int(counts[row])))
            for name, t in _float_tensors(batch.x, "x"):
                if t.dim() == 0 or t.shape[0] != len(idx):
                    continue
                if t.dim() >= 2 and t.shape[:2] == batch.mask.shape:  # [B, N, ...]: padding is known
                    finite = torch.isfinite(t.reshape(*t.shape[:2], -1)).all(-1)
                    if bool((~finite & ~batch.mask).any()):
                        raise DataError(f"{split}: the collate function pads {name} with NaN/Inf; padded entries "
                                        "pass through g_φ and the likelihood before they are masked, so pad with a "
                                        "finite value (e.g. pad_datasets(..., pad_value=0.0)); nothing was trained "
                                        "or written")
                    bad = ~finite.all(1)
                else:
                    bad = ~torch.isfinite(t.reshape(len(idx), -1)).all(1)
                if bool(bad.any()):
                    row = int(bad.nonzero()[0])
                    vals = t[row]
                    kind = "NaN" if bool(torch.isnan(vals).any()) else "Inf"
                    raise DataError(f"{split} dataset {idx[row]} contains {kind} values in {name} "
                                    f"({int((~torch.isfinite(vals)).sum())} of {vals.numel()}); clean or drop it "
                                    "before training (nothing was trained or written)")
    if few:
        i, n = min(few, key=lambda p: p[1])
        warnings.warn(f"{len(few)} of {len(splits.train)} training datasets have fewer observations than the "
                      f"K={num_slots} slots (smallest: dataset {i} with {n}); the extra slots stay empty. "
                      "Lower the number of slots if that is not intended.", stacklevel=2)


def _float_tensors(x, name: str):
    if torch.is_tensor(x):
        if x.is_floating_point() or x.is_complex():
            yield name, x
    elif isinstance(x, dict):
        for k, v in x.items():
            yield from _float_tensors(v, f"{name}[{k!r}]")
    elif isinstance(x, (list, tuple)):
        for k, v in enumerate(x):
            yield from _float_tensors(v, f"{name}[{k}]")


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

                # as metrics.csv: keep events up to the checkpoint's step, drop the ones after it
                purge = None if resume_step is None else resume_step + 1
                self.tb = SummaryWriter(str(run_dir / "tb"), purge_step=purge)
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


class _NoLog:
    """The metric log of ranks other than 0."""

    def write(self, step: int, row: dict[str, float]) -> None:
        pass

    def close(self) -> None:
        pass


class Trainer:
    """Runs Algorithm 1 for a family and a config in ``run_dir`` (one process or one torchrun rank)."""

    def __init__(self, family: Family, cfg: Config, run_dir: str | Path, resume: bool = False):
        self.family, self.cfg, self.run_dir, self.resume = family, cfg, Path(run_dir), resume
        self.device = resolve_device(cfg.train.device)
        family.check(cfg)  # option combinations, before any data is built or anything written
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.ctx = DistContext()
        self._last_saved: tuple[int, str] | None = None

    # -- setup -----------------------------------------------------------------------------
    def _check_run_dir(self) -> None:
        """Rank 0 checks the run directory (writes nothing); its verdict is shared so all ranks stop together."""
        error = None
        if self.ctx.is_main:
            try:
                self._check_run_dir_main()
            except Exception as exc:  # noqa: BLE001 - re-raised below, after telling the other ranks
                error = exc
        msg = distributed.broadcast_error(None if error is None else f"{type(error).__name__}\0{error}", self.ctx)
        if error is not None:
            raise error
        if msg is not None:
            kind, text = msg.split("\0", 1)
            raise {"ConfigError": ConfigError, "CheckpointError": CheckpointError}.get(kind, RuntimeError)(text)

    def _default_flat(self) -> dict[str, Any]:
        """This family's default config, flat (core training keys under the family's defaults, plus its options)."""
        fam = type(self.family)
        return build_config(self.cfg.family_name, fam.options, {}, fam.defaults).flat()

    def _check_run_dir_main(self) -> None:
        cfg_path = self.run_dir / "config.json"
        if self.resume:
            if not cfg_path.exists():
                raise CheckpointError(f"cannot resume: {str(cfg_path)!r} not found; is {str(self.run_dir)!r} a run directory?")
            try:
                saved = json.loads(cfg_path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise CheckpointError(f"cannot resume: {str(cfg_path)!r} is corrupted ({exc}); restore it from the "
                                      "checkpoint's state.json (key 'config')") from exc
            if saved.get("family") != self.cfg.family_name:
                raise CheckpointError(f"cannot resume: {str(self.run_dir)!r} is a {saved.get('family')!r} run, "
                                      f"not {self.cfg.family_name!r}")
            before = {**saved.get("train", {}), **saved.get("options", {})}
            # compared as config.json holds them (tuples become lists)
            now, default = ckpt.plain(self.cfg.flat()), ckpt.plain(self._default_flat())
            # a key the saved run lacks was added to mpmkit after it started: fine while it keeps its default
            diff = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k) and k not in RESUMABLE
                          and not (k not in before and now.get(k) == default.get(k)))
            if diff:
                raise ConfigError(f"cannot resume {str(self.run_dir)!r} with a different config (keys differ: "
                                  f"{', '.join(diff)}); only {', '.join(sorted(RESUMABLE))} may change on resume")
        elif (self.ckpt_dir / "latest.json").exists():
            raise ConfigError(f"{str(self.run_dir)!r} already holds a run; pass --resume to continue it "
                              "or choose a new --out directory (nothing was overwritten)")

    def setup(self) -> tuple[MPM, Splits]:
        seed_everything(self.cfg.train.seed)
        splits = self.family.build_data(self.cfg)
        if len(splits.train) == 0:
            raise DataError(f"family {self.cfg.family_name!r} produced an empty training split; "
                            "check the data path and split sizes (num_datasets, num_val, num_test)")
        model = self.family.build_model(self.cfg).to(self.device)
        if self.cfg.train.check_data:
            check_data(splits, splits.collate, model.num_slots)
        if self.cfg.train.compile:
            _compile(model)
        return model, splits

    def _wrap(self, model: MPM) -> nn.Module:
        """The module the training forward goes through: ``model`` itself, or DDP around it."""
        if not self.ctx.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = distributed.sync_batchnorm(model, self.device, self.ctx)
        # find_unused_parameters: truncated/implicit backward give λ⁰ no gradient, and families
        # may leave parts unused; DDP then marks those ready instead of waiting forever.
        return DDP(model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                   find_unused_parameters=True)

    def _autocast(self):
        if not self.cfg.train.amp:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    # -- main loop ---------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        self.ctx = distributed.setup(self.device)
        self._check_run_dir()
        cfg, tc, ctx = self.cfg, self.cfg.train, self.ctx
        model, splits = self.setup()
        self.model, self.splits = model, splits
        opt = torch.optim.Adam(model.parameters(), lr=tc.lr)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(tc.lr_milestones), gamma=tc.lr_gamma)
        step, epoch, pos, best = 0, 0, 0, math.inf
        if self.resume:
            tensors, state = ckpt.load(ckpt.resolve(self.ckpt_dir, "latest"))
            self._restore(model, opt, sched, tensors, state)
            step, epoch, pos, best = state["step"], state["epoch"], state["batch_in_epoch"], state["best_val"]
        if ctx.is_main:  # data, model and checkpoint are good: only now touch the run directory
            self.run_dir.mkdir(parents=True, exist_ok=True)
            ckpt.atomic_write_json(self.run_dir / "config.json", self.cfg.to_dict())
            ckpt.clean_temporary(self.ckpt_dir)
        log = MetricLog(self.run_dir, tc.tensorboard, resume_step=step if self.resume else None) \
            if ctx.is_main else _NoLog()
        n_batches = math.ceil(len(splits.train) / tc.batch_size)
        total = tc.max_steps or n_batches * tc.epochs
        bar = _progress(total, step, tc.progress and ctx.is_main, desc=f"fit {cfg.family_name}")
        ckpt_every = tc.checkpoint_every or n_batches
        check_solver(model.solver, InnerProblem(g=None, mask=None, prior=model.prior, potential=model.potential,
                                                lam0=None, log_pz=model.log_pz, model=model))
        fwd = self._wrap(model)
        t0 = time.perf_counter()
        try:
            while epoch < tc.epochs and (not tc.max_steps or step < tc.max_steps):
                order = batches_for_epoch(len(splits.train), tc.batch_size, tc.seed, epoch)
                model.train()
                while pos < len(order) and (not tc.max_steps or step < tc.max_steps):
                    own, real = distributed.shard(order[pos], ctx)
                    batch = to_device(splits.collate([splits.train[i] for i in own]), self.device)
                    if not real:  # a weight-zero stand-in: models with side effects (online EM) skip its statistics
                        batch.extras["stand_in"] = True
                    row = self._step(model, fwd, opt, batch, 1.0 if real else 0.0, step, epoch)
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
                    log.write(step, {"epoch": epoch, "val_loss": val})  # the epoch it ends, as its training rows
                    epoch, pos = epoch + 1, 0
                    sched.step()
                    if val < best:
                        best = val
                        self._save(model, opt, sched, step, epoch, pos, best, pointer="best")
                    self._save(model, opt, sched, step, epoch, pos, best)
                else:  # stopped by max_steps mid-epoch
                    self._save(model, opt, sched, step, epoch, pos, best)
        finally:
            bar.close()
            log.close()
        distributed.barrier(ctx)
        return {"step": step, "epoch": epoch, "best_val": best}

    def _step(self, model: MPM, fwd: nn.Module, opt: torch.optim.Optimizer, batch: Batch, weight: float,
              step: int, epoch: int) -> dict[str, float]:
        """One outer step; under DDP the loss is rescaled so the averaged gradient is the global batch's."""
        opt.zero_grad(set_to_none=True)
        with self._autocast():
            loss, terms, inference = fwd(batch)
        loss = loss.float()
        row = {"loss": float(loss.detach()), **terms.metrics(),
               "inner_residual": inference.trace.get("residual", float("nan"))}
        elbos = inference.trace.get("surrogate_elbo") or []
        if elbos:
            row["surrogate_elbo"] = elbos[-1]
        finite = math.isfinite(row["loss"])
        if self.ctx.enabled:
            n = float(terms.n_obs.sum()) * weight
            keys = list(row)
            sums = distributed.all_sum([n, float(not finite)] + [row[k] * n for k in keys], self.ctx, self.device)
            n_global, finite = sums[0], sums[1] == 0
            row = {k: v / max(n_global, 1.0) for k, v in zip(keys, sums[2:])}
            loss = loss * (self.ctx.world * n / max(n_global, 1.0))
        if not finite:
            self._diverged(step, epoch, f"the loss is {row['loss']}")
        loss.backward()
        bad = _first_nonfinite_grad(model)
        if bad is not None:
            self._diverged(step, epoch, f"the gradient of parameter {bad!r} is not finite")
        if self.cfg.train.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), self.cfg.train.grad_clip)
        opt.step()
        return row

    def _diverged(self, step: int, epoch: int, what: str) -> None:
        try:
            last = f"the last good checkpoint, {ckpt.resolve(self.ckpt_dir, 'latest').name!r}, is kept"
        except CheckpointError:
            last = "no checkpoint had been written yet"
        raise DivergenceError(f"training stopped at step {step + 1} (epoch {epoch}): {what}; {last} in "
                              f"{str(self.ckpt_dir)!r} and nothing after it was written. Lower lr, set grad_clip, "
                              "or check the data; then start a new run (--out) or resume (--resume).")

    @torch.no_grad()
    def validate(self, model: MPM, splits: Splits) -> float:
        """Mean training objective per observation on the validation split (train split if empty), over all
        ranks: the negative ELBO with −KL(q ‖ p(z | λ)) scaled by β (the true negative ELBO at β = 1)."""
        data = splits.val if len(splits.val) else splits.train
        model.eval()
        total, n = 0.0, 0.0
        own = range(self.ctx.rank, len(data), self.ctx.world)
        for batch in iterate(data, splits.collate, self.cfg.train.batch_size, self.device, own):
            with self._autocast():
                _, terms, _ = model(batch)
            total += float((-terms.total).sum())
            n += float(terms.n_obs.sum())
        total, n = distributed.all_sum([total, n], self.ctx, self.device)
        model.train()
        return total / max(n, 1.0)

    # -- checkpoints -------------------------------------------------------------------------
    def _save(self, model, opt, sched, step, epoch, pos, best, pointer: str = "latest") -> None:
        """Rank 0 writes; every rank contributes its RNG state (gathered first)."""
        rngs = distributed.gather_objects(ckpt.rng_state(), self.ctx)
        if not self.ctx.is_main or self._last_saved == (step, pointer):
            return
        tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
        opt_t, opt_meta = ckpt.optimizer_tensors(opt)
        rng_t, rng_meta = rngs[0]
        for r, (t, _) in enumerate(rngs[1:], start=1):
            rng_t.update({f"rank{r}.{k}": v for k, v in t.items()})
        state = {"family": self.cfg.family_name, "config": self.cfg.to_dict(), "step": step, "epoch": epoch,
                 "batch_in_epoch": pos, "best_val": best, "optimizer": opt_meta, "rng": rng_meta,
                 "rng_ranks": [m for _, m in rngs[1:]], "world_size": self.ctx.world,
                 "scheduler": _jsonable(sched.state_dict())}
        name = f"step-{step:08d}" if pointer == "latest" else f"best-{step:08d}"
        ckpt.save(self.ckpt_dir, name, {**tensors, **opt_t, **rng_t}, state, pointer=pointer,
                  pointer_extra={"val_loss": best} if pointer == "best" else None)
        self._last_saved = (step, pointer)
        if pointer == "latest":
            ckpt.prune(self.ckpt_dir, self.cfg.train.keep_checkpoints, protect={name})
        else:
            for p in self.ckpt_dir.glob("best-*"):
                if p.name != name:
                    shutil.rmtree(p, ignore_errors=True)

    def _restore(self, model, opt, sched, tensors, state) -> None:
        if state.get("family") != self.cfg.family_name:
            raise CheckpointError(f"checkpoint is from family {state.get('family')!r}, not {self.cfg.family_name!r}; "
                                  "resume it with that family, or start a new run with --out")
        load_model_tensors(model, tensors)
        try:
            ckpt.load_optimizer(opt, tensors, state["optimizer"])
            sd = state["scheduler"]
            sd["milestones"] = collections.Counter({int(k): v for k, v in sd["milestones"].items()})
            sched.load_state_dict(sd)
        except (KeyError, ValueError, TypeError) as exc:
            raise CheckpointError(f"checkpoint optimiser/scheduler state does not fit this run ({exc}); "
                                  "was it written by another config?") from exc
        r, saved_world = self.ctx.rank, state.get("world_size", 1)
        if r and saved_world == self.ctx.world:
            own = {k[len(f"rank{r}."):]: v for k, v in tensors.items() if k.startswith(f"rank{r}.rng.")}
            ckpt.set_rng_state(own, state["rng_ranks"][r - 1])
        else:
            if saved_world != self.ctx.world and self.ctx.is_main:
                warnings.warn(f"resuming a {saved_world}-process run with {self.ctx.world} processes: the "
                              "result is equivalent but not bit-identical", stacklevel=2)
            ckpt.set_rng_state(tensors, state["rng"])


def _first_nonfinite_grad(model: nn.Module) -> str | None:
    """Name of the first parameter whose gradient has a NaN/Inf (one device sync when all are finite)."""
    named = [(n, p.grad) for n, p in model.named_parameters() if p.grad is not None]
    if not named:
        return None
    flags = torch.stack([torch.isfinite(g).all() for _, g in named])
    if bool(flags.all()):
        return None
    return named[int((~flags).nonzero()[0])][0]


def _compile(model: MPM) -> None:
    """torch.compile the recognition network and the likelihood in place (parameter names unchanged).

    ``MPMKIT_COMPILE_BACKEND`` picks the backend (default ``inductor``; ``eager`` checks capture only).
    """
    backend = os.environ.get("MPMKIT_COMPILE_BACKEND", "inductor")
    rec = model.potential.recognition
    if not isinstance(rec, nn.Identity):
        rec.compile(backend=backend)
    lik = model.likelihood
    object.__setattr__(lik, "log_prob", torch.compile(lik.log_prob, backend=backend))


def load_model_tensors(model: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Load ``model.*`` tensors of a checkpoint, naming missing/unexpected keys on mismatch."""
    sd = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(sd)), sorted(set(sd) - set(own))
    bad_shape = [k for k in set(own) & set(sd) if own[k].shape != sd[k].shape]
    if missing or unexpected or bad_shape:
        raise CheckpointError(
            "checkpoint does not fit this model (another family or config?): "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shape {sorted(bad_shape)[:5]}. Use the config "
            "that wrote it (key 'config' of its state.json) or start a new run with another --out")
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
