# %% [markdown]
# # Looking at the four datasets before training
#
# The successor of the one-notebook-per-dataset exploration: shapes, voxel sizes, intensity
# ranges, label classes, instance sizes and sections of SNEMI3D, CREMI, MICrONS and MitoEM2,
# all with the library's own calls. It opens as a notebook in Jupyter or VS Code (percent
# format: `# %%` cells) and runs as a script:
#
#     python examples/03_explore.py [WORKDIR]        # or NEURONS_JAX_EXAMPLE_DIR=WORKDIR
#
# It writes the sample workspace into `WORKDIR/native` (or reuses it); point `roots` at your own
# data (`neurons-jax download ...`) to explore the real datasets. The report of every dataset
# lands in `WORKDIR/explore/report.html` (offline; open it in a browser).

# %%
import os
import sys
from pathlib import Path

import numpy as np

import neurons_jax as nj

args = [a for a in sys.argv[1:] if not a.startswith("-")]  # Jupyter passes its own flags
work = Path(args[0] if args else os.environ.get("NEURONS_JAX_EXAMPLE_DIR", "example_out"))
roots = nj.sample.write_workspace(work / "native")  # {kind: native root}
print({k: str(v) for k, v in roots.items()})

# %% [markdown]
# ## What each root holds
# `nj.datasets.<kind>(root, split)` opens a split; every dataset has `.pairs` of image/label
# volumes with a voxel size in nm (z, y, x).

# %%
for kind, root in roots.items():
    for split in ("train", "valid", "test"):
        ds = nj.datasets.open_dataset(kind, root, split)
        for p in ds.pairs:
            extent = [round(n * v / 1000, 2) for n, v in zip(p.image.shape, p.image.voxel_size)]
            print(f"{kind:8s} {split:5s} {p.name:18s} {p.image.shape} voxel {p.image.voxel_size} nm "
                  f"= {extent} µm  image {p.image.dtype}, labels {p.label.dtype}")

# %% [markdown]
# ## Statistics, streamed
# `nj.explore` reads every volume in z slabs (bounded memory) and returns plain dicts: intensity
# percentiles, union-class shares, instances and their sizes, the boundary fraction.

# %%
stats = nj.explore([f"{k}={v}" for k, v in roots.items()], work / "explore", quiet=True)
for name, d in stats["datasets"].items():
    for split, sp in d["splits"].items():
        for v in sp["volumes"]:
            shares = {c: f"{x['share']:.1%}" for c, x in v["classes"].items() if x["share"] > 0}
            p = v["intensity"]["percentiles"]
            print(f"{name:8s} {split:5s} {v['name']:18s} intensity p1..p99 {p['1']:.0f}..{p['99']:.0f}  "
                  f"instances {v['instances']['count']:3d}  boundary {v['boundary']['fraction']:.1%}  {shares}")

# %% [markdown]
# ## MitoEM2: one row per cell type
# Pair names are `<cell type>/<case>`; `groups` merges the volumes of each cell type.

# %%
for g in stats["datasets"]["mitoem2"]["splits"]["train"]["groups"]:
    mito = g["instances"]["by_class"]["mitochondria"]
    print(f"{g['group']:6s} {len(g['volumes'])} volume(s)  voxel {g['voxel_size_nm']} nm  "
          f"{mito['count']} mitochondria, median {mito['um3']['median']:.4f} µm³  "
          f"mito share {g['classes']['mitochondria']['share']:.1%}")

# %% [markdown]
# ## Anisotropy
# A voxel of SNEMI3D is 5x longer in z than in x; MitoEM2's Beta is isotropic. The side
# sections of the report are stretched to physical aspect; here are the ratios.

# %%
for kind, root in roots.items():
    vs = nj.datasets.open_dataset(kind, root, "train").voxel_size
    print(f"{kind:8s} z/x = {vs[0] / vs[2]:g}")

# %% [markdown]
# ## One section by hand
# The same union classes the Loader gives, straight from a volume read.

# %%
ds = nj.datasets.cremi3d(roots["cremi3d"], "train")
lab = ds.label.read((slice(5, 6), slice(None), slice(None)))
classes = nj.ops.union_semantic(lab, ds.kind)
print("CREMI A z=5 classes:", {nj.UNION_CLASSES[c]: int(n) for c, n in enumerate(np.bincount(classes.ravel(), minlength=5)) if n})
print("report:", work / "explore" / "report.html")
