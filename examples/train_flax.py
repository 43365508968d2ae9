"""Train a small Flax NNX 3D UNet on a weighted mixture of EM datasets.

Read top to bottom: config -> data (``nj.pipeline.Loader``) -> model -> step -> loop with
Orbax checkpoints holding model, optimizer and the loader's state together, so ``--resume``
continues with exactly the batches an uninterrupted run would have seen.

    python examples/train_flax.py --smoke                       # seconds, on the sample data
    python examples/train_flax.py --smoke --targets affinities lsd   # + affinity and LSD heads
    python examples/train_flax.py --steps 200 --ckpt-dir ckpt   # then: ... --resume
    neurons-jax train --dataset snemi3d=demo_out/prepared/snemi3d:1 --dataset mitoem2=demo_out/prepared/mitoem2:2

Without ``--dataset`` it trains on the sample workspace, written and prepared once into a cache
(``$NEURONS_JAX_CACHE_DIR``, else ``$XDG_CACHE_HOME/neurons_jax``, else ``~/.cache/neurons_jax``;
``--workspace DIR`` puts it elsewhere) and reused by later runs. ``--smoke`` shrinks what is
not given explicitly (``--smoke --steps 20`` runs 20 steps). With ``--workers N`` the batches
are made in spawned processes, which re-import the main script: keep the ``if __name__ ==
"__main__":`` guard at the bottom of a script like this one.

``--targets affinities`` adds an affinity head (sigmoid outputs, binary cross-entropy masked by
the batch's ``affinity_mask``), ``--targets lsd`` a head for the 10 local shape descriptors
(sigmoid outputs, squared error masked by the batch's ``mask``); the Loader computes both on
the device from the warped labels (``nj.targets``) and their losses add to the semantic one.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import nnx

import neurons_jax as nj

N_CLASSES = len(nj.UNION_CLASSES)


# ----------------------------------------------------------------------------- config
@dataclasses.dataclass
class TrainConfig:
    datasets: dict[str, tuple[str, str, float]] = dataclasses.field(default_factory=dict)
    """name -> (kind, root, weight); empty = the sample workspace, all four datasets."""
    patch_shape: tuple[int, int, int] = (8, 64, 64)
    batch_size: int = 4
    steps: int = 60
    learning_rate: float = 3e-3
    features: tuple[int, ...] = (8, 16)
    seed: int = 0
    augment: bool = True
    pad: bool = False
    """allow patches (plus the augmentation margin) larger than a volume; the padding is masked out"""
    worker_count: int = 0
    ckpt_dir: str | None = None
    ckpt_every: int = 0
    resume: bool = False
    log_every: int = 10
    workspace: str | None = None
    """where the sample workspace goes when ``datasets`` is empty (default: the cache)"""
    targets: tuple[str, ...] = ()
    """extra heads: "affinities" and/or "lsd" (see TARGETS)"""
    affinity_offsets: tuple[tuple[int, int, int], ...] = nj.targets.NEAREST
    """z, y, x offsets; nj.targets.LONG_RANGE adds 5 long-range ones (and needs more context)"""
    lsd_sigma_nm: float = 80.0


SMOKE = {"steps": 3, "patch_shape": (4, 32, 32), "batch_size": 2, "features": (4, 8), "log_every": 1,
         "lsd_sigma_nm": 16.0}
"""What ``--smoke`` sets, unless ``--steps``, ``--patch`` or ``--batch-size`` is given (a small LSD
sigma: the CPU computes LSDs in seconds per sample, and the context fits the sample volumes)."""
TARGETS = {"affinities": "affinity", "lsd": "lsd"}
"""``--targets`` name -> the batch key of the target (and the name of its head)."""


def target_specs(cfg: TrainConfig) -> dict:
    """The Loader's ``targets``: ``{batch key: nj.targets spec}`` of ``cfg.targets``."""
    make = {"affinities": lambda: nj.targets.Affinities(offsets=cfg.affinity_offsets),
            "lsd": lambda: nj.targets.LSD(sigma_nm=cfg.lsd_sigma_nm)}
    return {TARGETS[name]: make[name]() for name in cfg.targets}


def heads(cfg: TrainConfig) -> dict[str, int]:
    """Output channels per head: the union classes, then one head per target."""
    return {"semantic": N_CLASSES, **{k: spec.channels for k, spec in target_specs(cfg).items()}}


# ----------------------------------------------------------------------------- model
class ConvBlock(nnx.Module):
    def __init__(self, cin: int, cout: int, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(cin, cout, (3, 3, 3), rngs=rngs)
        self.conv2 = nnx.Conv(cout, cout, (3, 3, 3), rngs=rngs)
        self.norm = nnx.GroupNorm(cout, num_groups=min(8, cout), rngs=rngs)

    def __call__(self, x):
        x = nnx.relu(self.conv1(x))
        return nnx.relu(self.norm(self.conv2(x)))


class UNet3D(nnx.Module):
    """Channels-last 3D UNet; pools in-plane only (EM sections are thick). Returns ``{head:
    logits}``; the heads (``{name: channels}``) share one 1x1x1 output convolution."""

    def __init__(self, features=(8, 16), in_channels=1, heads=None, *, rngs: nnx.Rngs):
        self.heads = dict(heads or {"semantic": N_CLASSES})
        chans = (in_channels, *features)
        self.down = nnx.List([ConvBlock(a, b, rngs) for a, b in zip(chans[:-1], chans[1:])])
        self.up = nnx.List([
            nnx.ConvTranspose(b, a, (1, 2, 2), strides=(1, 2, 2), rngs=rngs)
            for a, b in zip(features[:-1], features[1:])
        ])
        self.merge = nnx.List([ConvBlock(2 * a, a, rngs) for a in features[:-1]])
        self.head = nnx.Conv(features[0], sum(self.heads.values()), (1, 1, 1), rngs=rngs)

    def __call__(self, x):
        skips = []
        for i, block in enumerate(self.down):
            x = block(x)
            if i < len(self.down) - 1:
                skips.append(x)
                x = nnx.max_pool(x, (1, 2, 2), strides=(1, 2, 2))
        for up, merge, skip in zip(reversed(self.up), reversed(self.merge), reversed(skips)):
            x = merge(jnp.concatenate([up(x), skip], axis=-1))
        splits = np.cumsum(list(self.heads.values()))[:-1].tolist()
        return dict(zip(self.heads, jnp.split(self.head(x), splits, axis=-1)))


# ----------------------------------------------------------------------------- data
def make_loader(cfg: TrainConfig, mesh=None) -> nj.pipeline.Loader:
    sources = nj.datasets.sources_from_specs(cfg.datasets or sample_datasets(cfg), "train")
    return nj.pipeline.Loader(
        sources, cfg.patch_shape, cfg.batch_size, seed=cfg.seed, mesh=mesh,
        augment=nj.augment.AugmentConfig() if cfg.augment else None, worker_count=cfg.worker_count,
        pad=cfg.pad, targets=target_specs(cfg) or None,
    )


def cache_dir() -> Path:
    """Where the sample workspace is cached: ``$NEURONS_JAX_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/neurons_jax``, else ``~/.cache/neurons_jax``."""
    if os.environ.get("NEURONS_JAX_CACHE_DIR"):
        return Path(os.environ["NEURONS_JAX_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "neurons_jax"


def sample_datasets(cfg: TrainConfig) -> dict[str, tuple[str, str, float]]:
    """The sample datasets, written and prepared once under ``cfg.workspace`` (default: the
    cache, one workspace per seed) and reused by later runs."""
    root = Path(cfg.workspace or cache_dir() / f"sample_workspace_seed{cfg.seed}").expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:  # two first runs at once: one writes, the other waits
        try:
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)
        except ImportError:  # no flock (Windows): runs should not start side by side
            pass
        fresh = not (root / "prepared").is_dir()
        native = nj.sample.write_workspace(root / "native", seed=cfg.seed)
        specs = {k: (k, str(nj.datasets.prepare(k, native[k], root / "prepared" / k, progress=False)), 1.0)
                 for k in native}
    print(f"sample data: {root} ({'written' if fresh else 'reused'}; native files in native/, "
          "prepared zarr3 in prepared/)", file=sys.stderr)
    return specs


# ----------------------------------------------------------------------------- step
def masked_mean(x, mask):
    mask = jnp.broadcast_to(mask, x.shape).astype(jnp.float32)
    return jnp.sum(x * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def loss_fn(model: UNet3D, batch):
    """The total loss and its terms: semantic cross-entropy, plus affinity BCE, LSD MSE."""
    out = model(batch["image"])
    mask = batch["mask"][..., None]
    ce = optax.softmax_cross_entropy_with_integer_labels(out["semantic"], batch["semantic"].astype(jnp.int32))
    terms = {"semantic": masked_mean(ce[..., None], mask)}
    if "affinity" in out:  # sigmoid outputs; the mask is 0 where a voxel pair is not both known
        bce = optax.sigmoid_binary_cross_entropy(out["affinity"], batch["affinity"].astype(jnp.float32))
        terms["affinity"] = masked_mean(bce, batch["affinity_mask"])
    if "lsd" in out:  # LSDs lie in [0, 1]: sigmoid outputs
        terms["lsd"] = masked_mean((nnx.sigmoid(out["lsd"]) - batch["lsd"]) ** 2, mask)
    return sum(terms.values()), terms


@nnx.jit
def train_step(model: UNet3D, optimizer: nnx.Optimizer, batch):
    (loss, terms), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model, batch)
    optimizer.update(model, grads)
    return loss, terms


# ----------------------------------------------------------------------------- checkpoints
def checkpoint_manager(cfg: TrainConfig) -> ocp.CheckpointManager | None:
    if not cfg.ckpt_dir:
        return None
    return ocp.CheckpointManager(Path(cfg.ckpt_dir).resolve(), options=ocp.CheckpointManagerOptions(max_to_keep=2))


def save(mngr, step: int, model, optimizer, loader) -> None:
    import grain

    state = nnx.state((model, optimizer))
    mngr.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), loader=grain.checkpoint.CheckpointSave(loader.iterator)))
    mngr.wait_until_finished()


def restore(mngr, model, optimizer, loader) -> int:
    import grain

    step = mngr.latest_step()
    if step is None:
        return 0
    abstract = nnx.state((model, optimizer))
    got = mngr.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), loader=grain.checkpoint.CheckpointRestore(loader.iterator)))
    nnx.update((model, optimizer), got["state"])
    return int(step)


# ----------------------------------------------------------------------------- loop
def replicate(model, optimizer, mesh) -> None:
    """Data parallel: parameters and optimizer state replicated on every device of the mesh."""
    from jax.sharding import NamedSharding, PartitionSpec

    state = nnx.state((model, optimizer))
    nnx.update((model, optimizer), jax.device_put(state, NamedSharding(mesh, PartitionSpec())))


def train(cfg: TrainConfig) -> dict:
    loader = make_loader(cfg)
    try:  # the loader's workers stop even when a step fails
        return _train(cfg, loader)
    finally:
        loader.close()


def _train(cfg: TrainConfig, loader: nj.pipeline.Loader) -> dict:
    model = UNet3D(cfg.features, heads=heads(cfg), rngs=nnx.Rngs(cfg.seed))
    optimizer = nnx.Optimizer(model, optax.adamw(cfg.learning_rate), wrt=nnx.Param)
    replicate(model, optimizer, loader.mesh)
    mngr = checkpoint_manager(cfg)
    start = restore(mngr, model, optimizer, loader) if (mngr and cfg.resume) else 0
    losses, terms, waits, steps_s, seen = [], [], [], [], []
    t_prev = time.perf_counter()
    for step in range(start, cfg.steps):
        t0 = time.perf_counter()
        batch = next(loader)
        t1 = time.perf_counter()
        loss, parts = train_step(model, optimizer, batch)
        loss = float(loss)
        t2 = time.perf_counter()
        if not np.isfinite(loss):  # the images are checked for NaN/inf as they are read: this diverged
            raise FloatingPointError(f"step {step}: the loss is {loss} (the batch's images are finite; "
                                     f"lower the learning rate, --lr {cfg.learning_rate:g})")
        losses.append(loss)
        terms.append({k: float(parts[k]) for k in model.heads})
        waits.append(t1 - t0)
        steps_s.append(t2 - t_prev)
        t_prev = t2
        seen.append({"position": np.asarray(batch["position"]).tolist(), "dataset": np.asarray(batch["dataset"]).tolist()})
        if cfg.log_every and (step % cfg.log_every == 0 or step == cfg.steps - 1):
            sps = cfg.batch_size / max(steps_s[-1], 1e-9)
            each = "".join(f" {k} {v:.4f}" for k, v in terms[-1].items()) if len(terms[-1]) > 1 else ""
            print(f"step {step:5d}  loss {loss:.4f}{each}  {sps:7.1f} samples/s  data wait {waits[-1] / max(steps_s[-1], 1e-9):5.1%}")
        if mngr and cfg.ckpt_every and (step + 1) % cfg.ckpt_every == 0:
            save(mngr, step + 1, model, optimizer, loader)
    if mngr and cfg.steps > start:
        save(mngr, cfg.steps, model, optimizer, loader)
    timed = steps_s[1:] or steps_s  # the first step includes compilation
    result = {
        "steps": cfg.steps, "start": start, "losses": losses, "loss_terms": terms,
        "samples_per_s": cfg.batch_size * len(timed) / max(sum(timed), 1e-9),
        "data_wait_share": sum(waits[1:] or waits) / max(sum(timed), 1e-9),
        "batches": seen, "timings": loader.timings(),
        "datasets": loader.names, "weights": loader.weights,
        "params": jax.tree.map(np.asarray, nnx.state(model, nnx.Param)),
    }
    return result


def parse_args(argv=None) -> TrainConfig:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(p)
    return config_from_args(p.parse_args(argv))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", action="append", default=[], metavar="KIND=ROOT[:WEIGHT]",
                   help=f"a dataset to mix (repeatable; KIND one of {', '.join(nj.datasets.kind_names())}); "
                        "default: the sample workspace (cached)")
    p.add_argument("--steps", type=int, default=None, help=f"training steps (default {TrainConfig.steps}, "
                   f"--smoke {SMOKE['steps']})")
    p.add_argument("--batch-size", type=int, default=None, help=f"global batch size (default "
                   f"{TrainConfig.batch_size}, --smoke {SMOKE['batch_size']})")
    p.add_argument("--patch", type=int, nargs=3, default=None, metavar=("Z", "Y", "X"),
                   help=f"patch shape (default {' '.join(map(str, TrainConfig.patch_shape))}, "
                        f"--smoke {' '.join(map(str, SMOKE['patch_shape']))})")
    p.add_argument("--pad", action="store_true",
                   help="allow patches larger than a volume (the padding is masked out)")
    p.add_argument("--lr", type=float, default=TrainConfig.learning_rate)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--ckpt-dir")
    p.add_argument("--ckpt-every", type=int, default=0)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--workspace", help="where the sample workspace goes when no --dataset is given "
                   "(default: the cache, $NEURONS_JAX_CACHE_DIR or ~/.cache/neurons_jax)")
    p.add_argument("--targets", action="extend", nargs="+", default=[], choices=tuple(TARGETS),
                   help="extra heads and losses: affinities (z/y/x nearest-neighbour offsets, masked BCE), "
                        "lsd (10 local shape descriptors, masked MSE); both allowed")
    p.add_argument("--smoke", action="store_true",
                   help="a few tiny steps (seconds); --steps, --patch, --batch-size given explicitly still apply")


def config_from_args(a: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of parsed arguments; ``--smoke`` fills in only what was not given."""
    datasets = nj.datasets.specs_by_name(a.dataset)
    base = {**dataclasses.asdict(TrainConfig()), **(SMOKE if getattr(a, "smoke", False) else {})}
    given = {"steps": a.steps, "batch_size": a.batch_size,
             "patch_shape": None if a.patch is None else tuple(a.patch)}
    sizes = {k: base[k] if v is None else v for k, v in given.items()}
    return TrainConfig(datasets=datasets, **sizes, learning_rate=a.lr, seed=a.seed, worker_count=a.workers,
                       augment=not a.no_augment, pad=getattr(a, "pad", False), ckpt_dir=a.ckpt_dir,
                       ckpt_every=a.ckpt_every, resume=a.resume, workspace=a.workspace,
                       features=tuple(base["features"]), log_every=base["log_every"],
                       targets=tuple(dict.fromkeys(getattr(a, "targets", None) or ())),
                       lsd_sigma_nm=base["lsd_sigma_nm"])


def main(argv=None) -> int:
    cfg = parse_args(argv)
    out = train(cfg)
    summary = {k: out[k] for k in ("steps", "samples_per_s", "data_wait_share")}
    summary["loss_first_last"] = [out["losses"][0], out["losses"][-1]] if out["losses"] else []
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
