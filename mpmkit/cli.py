"""The ``mpmkit`` command line: plugins, fit, evaluate, data."""
from __future__ import annotations

import http.client
import json
import math
import sys
from pathlib import Path

import click

from .errors import MPMKitError


def _fail(exc: Exception) -> None:
    raise click.ClickException(str(exc)) from exc


@click.group()
@click.version_option(package_name="mpmkit")
def main() -> None:
    """mpmkit: meta-probabilistic modeling."""


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins(as_json: bool) -> None:
    """List plugins, their versions, what they register, and load errors."""
    from .plugins import host

    try:
        h = host()
    except MPMKitError as exc:  # strict mode (MPMKIT_STRICT_PLUGINS=1): a clean error, not a traceback
        _fail(exc)
    if as_json:
        click.echo(json.dumps({
            "plugins": [{"name": p.name, "version": p.version, "source": p.source, "registers": p.registers}
                        for p in h.plugins.values()],
            "errors": [{"name": e.name, "error": e.error} for e in h.load_errors],
        }, indent=2))
        return
    for p in h.plugins.values():
        click.echo(f"{p.name} {p.version or ''} ({p.source})".replace("  ", " "))
        for kind, names in sorted(p.registers.items()):
            click.echo(f"  {kind}: {', '.join(names)}")
        if not p.registers:
            click.echo("  registers nothing: are its hook functions (register_families, ...) marked @mpmkit.hookimpl?")
    for e in h.load_errors:
        click.echo(f"{e.name}: FAILED TO LOAD: {e.error}")


@main.command()
@click.argument("family")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML/TOML/JSON config file.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override one config key (repeatable).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run directory.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its latest checkpoint.")
@click.option("--evaluate/--no-evaluate", "then_evaluate", default=True, help="Evaluate on the test split at the end.")
def fit(family: str, config_file: str | None, overrides: tuple[str, ...], out: str, resume: bool,
        then_evaluate: bool) -> None:
    """Train FAMILY with Algorithm 1 into --out.

    Data-parallel on N GPUs/processes: ``torchrun --nproc_per_node N -m mpmkit fit ...``
    (the global batch stays batch_size; rank 0 writes metrics, checkpoints and evaluates).
    """
    from . import distributed
    from .config import load_file, parse_overrides
    from .errors import ConfigError
    from .runs import config_for, evaluate_run, family_class, make_family
    from .training import Trainer

    try:
        family_class(family)  # an unknown name lists the families before anything else is read
        values = {}
        if resume and (Path(out) / "config.json").exists():  # start from the run's own config
            try:
                saved = json.loads((Path(out) / "config.json").read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{str(Path(out) / 'config.json')!r} is corrupted ({exc}); restore it from a "
                                  "checkpoint's state.json (key 'config')") from exc
            if saved.get("family", family) != family:  # before its keys are read as this family's
                raise ConfigError(f"{out!r} is a {saved['family']!r} run, not {family!r}; resume it with "
                                  f"`mpmkit fit {saved['family']} --out {out} --resume`")
            values = {**saved.get("train", {}), **saved.get("options", {})}
        values.update(load_file(config_file) if config_file else {})
        values.update(parse_overrides(list(overrides)))
        cfg = config_for(family, values)
        trainer = Trainer(make_family(family), cfg, out, resume=resume)
        summary = trainer.fit()
        if trainer.ctx.is_main:
            best = summary["best_val"]
            val = (f"best validation loss {best:.4f}" if math.isfinite(best) else
                   "no validation pass yet (max_steps stopped inside the first epoch; `evaluate` uses the latest "
                   "checkpoint)")
            click.echo(f"trained {family}: {summary['step']} steps, {val} -> {out}")
            if then_evaluate:
                metrics = evaluate_run(out)
                click.echo(json.dumps(metrics, indent=2))
    except (MPMKitError, FileNotFoundError) as exc:
        _fail(exc)
    finally:
        distributed.teardown()


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--checkpoint", "which", type=click.Choice(["best", "latest"]), default="best")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="evaluate with these keys changed, e.g. --set solver=pyro-nuts (the weights must still fit)")
def evaluate(run_dir: str, which: str, overrides: tuple[str, ...]) -> None:
    """Evaluate RUN_DIR on its test split; write RUN_DIR/metrics.json.

    With --set: RUN_DIR/metrics-KEY=VALUE.json and the outputs in RUN_DIR/eval-KEY=VALUE/.
    """
    from .config import parse_overrides
    from .runs import evaluate_run

    try:
        metrics = evaluate_run(run_dir, which, overrides=parse_overrides(list(overrides)))
    except (MPMKitError, FileNotFoundError) as exc:
        _fail(exc)
    click.echo(json.dumps(metrics, indent=2))


@main.group()
def data() -> None:
    """Registered datasets: where their files are, and downloading the ones that can be fetched."""


@data.command("list")
def data_list() -> None:
    """Each registered dataset: found (and where), missing, or in code (generated / a path you pass)."""
    from .datasets import DatasetSource, check_files, where
    from .plugins import registry

    reg = registry("dataset")
    for name in reg.names():
        loader = reg.get(name)
        state, path = where(loader)
        line = f"{name}: " + (f"found at {path}" if path else state if state == "missing" else
                               "in code (generated, or read from a path you pass)")
        if path is not None and loader.files:
            checks = check_files(loader, path)
            bad = [f for f, ok in checks.items() if ok is False]
            line += (f" [sha256 differs from the original: {', '.join(bad)}]" if bad else
                     f" [sha256 of {', '.join(f for f, ok in checks.items() if ok)} as published]"
                     if any(checks.values()) else "")
        if isinstance(loader, DatasetSource) and loader.fetch is not None:
            line += f" (fetch: mpmkit data fetch {name}" + (f"; {loader.url}" if loader.url else "") + ")"
        click.echo(line)


@data.command("fetch")
@click.argument("name")
@click.option("--dest", type=click.Path(file_okay=False), default=None,
              help="Directory to write into (default: the dataset's own default, e.g. $MPMKIT_DATA_DIR/NAME).")
@click.option("--force", is_flag=True, help="Download again even if the files are there.")
def data_fetch(name: str, dest: str | None, force: bool) -> None:
    """Download dataset NAME, check its sha256 and unpack it (nothing is left half-written)."""
    from .datasets import DatasetSource
    from .plugins import registry

    reg = registry("dataset")
    try:
        loader = reg.get(name)
    except MPMKitError as exc:
        _fail(exc)
    if not isinstance(loader, DatasetSource) or loader.fetch is None:
        can = [n for n in reg.names() if isinstance(reg.get(n), DatasetSource) and reg.get(n).fetch is not None]
        raise click.ClickException(f"dataset {name!r} cannot be fetched (it is generated, or read from a path you "
                                   f"pass); datasets that can: {', '.join(can) or 'none'}")
    try:
        path = loader.fetch(dest=dest, force=force)
    except ValueError as exc:  # checksum mismatch or a malformed archive
        raise click.ClickException(f"{exc}; nothing was written") from exc
    except (OSError, http.client.HTTPException) as exc:  # no network, refused, cut off, disk full
        where_from = f" from {loader.url}" if loader.url else ""
        raise click.ClickException(f"could not download {name!r}{where_from}: {exc}. Download it by hand and "
                                   "point the dataset at it (e.g. MPMKIT_DATA_DIR), or retry") from exc
    check = f" (every download is checked against sha256 {loader.sha256[:12]}…)" if loader.sha256 else ""
    click.echo(f"{name}: ready at {path}{check}; --force downloads it again")


if __name__ == "__main__":
    sys.exit(main())
