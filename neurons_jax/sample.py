"""The sample workspace: small synthetic EM data in the datasets' *native* formats.

``write_workspace(path, seed=0)`` writes one folder per registered kind with a sample writer
(``nj.datasets.register_kind(..., sample=writer)``; the writers of the built-ins are here),
deterministically per seed::

    snemi3d/  AC4_inputs.h5, AC4_labels.h5 (50x192x192), AC3_* (32x160x160)  key "main", 30x6x6 nm
    cremi3d/  sample_{A,B}_20160501.hdf (50x192x192), sample_C_... (32x160x160), 40x4x4 nm:
              volumes/raw, volumes/labels/{neuron_ids, clefts, mitochondria} + resolution attrs;
              clefts use uint64 max as "no data" outside the synapses (like CREMI)
    microns/  em/ (precomputed, jpeg; scales 4x4x40 and 8x8x40 nm), seg_m1300/ and seg_m343/
              (compressed_segmentation, 8x8x40 nm, uint64 ids > 2**59), x, y, z = 288x144x40
              segmentation voxels at voxel_offset (70000, 50000, 20000); the EM covers a margin
              more. The default reader crop is 144x144x40 (train/valid), its +x neighbour is test.
    mitoem2/  Dataset001_ME2-Beta (FIB-SEM 16 nm; 2 train 40x160x160, 1 test 32x128x128) and
              Dataset004_ME2-Mossy (8x8x30 nm; 1 train 48x160x160, 1 test), nnU-Net layout,
              *_0000.nii.gz images, labels 0/1/2 (2 = where two mitochondria touch)

about 14 MB in all, written in about 4 s on two cores. Rendering: instances are a Voronoi
partition of seeds drifting along z (neurite-like tubes), membranes are dark on in-plane
label boundaries, cytoplasm is textured noise, mitochondria are dark blobs with a darker rim,
synaptic clefts darken stretches of some membranes. Everything is vectorised (distance
transforms with nearest-seed indices); nothing loops over labels. Writing goes to a
temporary directory renamed into place; a workspace already written with the same seed is
returned as it is.

Example:
    >>> import neurons_jax as nj
    >>> roots = nj.sample.write_workspace("/tmp/nj_ws", seed=0)                  # doctest: +SKIP
    >>> sorted(roots)                                                            # doctest: +SKIP
    ['cremi3d', 'microns', 'mitoem2', 'snemi3d']
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from scipy import ndimage

from .rules import U64_MAX

MARKER = "workspace.json"
VERSION = 1
MICRONS_OFFSET = (70000, 50000, 20000)  # x, y, z of the segmentation (8x8x40 nm)
MICRONS_SEG = (288, 144, 40)  # x, y, z voxels: a 144x144x40 crop and its +x neighbour
MICRONS_MARGIN = (4, 4, 2)  # x, y, z voxels of EM beyond the segmentation on each side
MICRONS_ID_BASE = 864691135000000000


def sample_kinds() -> tuple[str, ...]:
    """The kinds written by :func:`write_workspace`: registered kinds with a sample writer."""
    from .datasets.registry import kind_names

    return kind_names("sample")


def __getattr__(name: str):
    if name == "KINDS":  # derived from the dataset-kind registry
        return sample_kinds()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def write_workspace(path: str | os.PathLike, seed: int = 0) -> dict[str, Path]:
    """Write the native sample datasets (one per kind with a sample writer) under ``path``;
    ``{kind: root}``. Kind ``i`` of :func:`sample_kinds` draws from ``rng([seed, i])``."""
    from .datasets.registry import get_kind

    kinds = sample_kinds()
    writers = {k: get_kind(k, "sample").sample_writer() for k in kinds}
    path = Path(path).expanduser()
    roots = {k: path / k for k in kinds}
    marker = path / MARKER
    todo, done = list(kinds), {}
    if marker.is_file():
        try:
            done = json.loads(marker.read_text())
        except ValueError:
            done = {}
        if done.get("seed") == seed and done.get("version") == VERSION:
            todo = [k for k in kinds if not roots[k].is_dir()]  # kinds registered since are added
            if not todo:
                return roots
        else:
            done = {}
    clash = [str(roots[k]) for k in todo if roots[k].exists()]
    if clash:
        raise FileExistsError(f"{path}: already holds {clash} (not a sample workspace of seed {seed}); "
                              "choose an empty directory")
    path.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".workspace.tmp-", dir=path))
    moved: list[Path] = []
    try:
        for kind in todo:
            (tmp / kind).mkdir()
            writers[kind](tmp / kind, np.random.default_rng([seed, kinds.index(kind)]))
        for kind in todo:
            os.replace(tmp / kind, roots[kind])
            moved.append(roots[kind])
        sizes = {**done.get("bytes", {}), **{k: _du(roots[k]) for k in todo}}
        info = {"seed": seed, "version": VERSION, "bytes": sizes}
        (tmp / MARKER).write_text(json.dumps(info, indent=2))
        os.replace(tmp / MARKER, marker)
    except BaseException:
        for r in moved:
            shutil.rmtree(r, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return roots


def _du(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


# ----------------------------------------------------------------------------- geometry
def tubes(shape, rng: np.random.Generator, cell_px: float, drift: float = 0.35) -> np.ndarray:
    """Instance ids 1..n (uint32): a per-section Voronoi partition of seeds drifting along z."""
    nz, ny, nx = shape
    n = max(4, int(round(ny * nx / cell_px**2)))
    z = np.arange(nz, dtype=np.float32)[:, None]
    pos = []
    for extent in (ny, nx):
        start = rng.uniform(0, extent, n)
        vel = rng.normal(0, drift, n)
        amp, w, ph = rng.uniform(0, 0.25 * cell_px, n), rng.uniform(0.05, 0.2, n), rng.uniform(0, 6.3, n)
        pos.append(np.round(start + vel * (z - nz / 2) + amp * np.sin(w * z + ph)).astype(np.int64))
    born = np.where(rng.random(n) < 0.2, rng.integers(0, nz // 2 + 1, n), 0)
    dies = np.where(rng.random(n) < 0.2, rng.integers(nz // 2, nz + 1, n), nz)
    zz = np.broadcast_to(np.arange(nz)[:, None], (nz, n))
    ids = np.broadcast_to(np.arange(1, n + 1, dtype=np.uint32), (nz, n))
    alive = (zz >= born) & (zz < dies) & (pos[0] >= 0) & (pos[0] < ny) & (pos[1] >= 0) & (pos[1] < nx)
    alive[:, 0] = True  # seed 1 lives everywhere so that every section has one
    seeds = np.zeros(shape, np.uint32)
    seeds[zz[alive], np.clip(pos[0], 0, ny - 1)[alive], np.clip(pos[1], 0, nx - 1)[alive]] = ids[alive]
    return _nearest(seeds, (1e4, 1.0, 1.0))


def _nearest(seeds: np.ndarray, sampling) -> np.ndarray:
    _, ind = ndimage.distance_transform_edt(seeds == 0, sampling=sampling, return_indices=True)
    return seeds[tuple(ind)]


def blobs(shape, voxel_size, rng, n: int, radius_nm: float, pair_fraction: float = 0.4,
          host: np.ndarray | None = None) -> np.ndarray:
    """Mitochondria-like blobs with ids 1..n (uint32), some in touching pairs.

    Each voxel belongs to its nearest blob centre when within that blob's radius (so touching
    blobs meet on a flat interface); with ``host``, a blob stays inside its centre's cell.
    """
    vs = np.asarray(voxel_size, float)
    n_pairs = int(n * pair_fraction / 2)
    n_single = n - 2 * n_pairs
    centres = rng.uniform(0, 1, (n_single + n_pairs, 3)) * (np.asarray(shape) - 1)
    radius = radius_nm * rng.uniform(0.7, 1.2, n_single + 2 * n_pairs)
    d = rng.normal(size=(n_pairs, 3)) * [0.3, 1, 1]
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    partner = centres[n_single:] + d * (1.6 * radius[n_single:n_single + n_pairs, None]) / vs
    centres = np.clip(np.concatenate([centres, partner]), 0, np.asarray(shape) - 1)
    idx = np.round(centres).astype(np.int64)
    seeds = np.zeros(shape, np.uint32)
    seeds[tuple(idx.T)] = np.arange(1, len(idx) + 1, dtype=np.uint32)
    dist, ind = ndimage.distance_transform_edt(seeds == 0, sampling=vs, return_indices=True)
    owner = seeds[tuple(ind)]
    r = np.concatenate([[0.0], radius])
    out = np.where(dist <= r[owner], owner, 0).astype(np.uint32)
    if host is not None:
        home = np.concatenate([[0], host[tuple(idx.T)]])
        out[host != home[out]] = 0
    return out


def boundaries(lab: np.ndarray, axes=(1, 2)) -> np.ndarray:
    """Voxels with a different label across a face along ``axes`` (both sides marked)."""
    b = np.zeros(lab.shape, bool)
    for ax in axes:
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[ax], hi[ax] = slice(0, -1), slice(1, None)
        d = lab[tuple(lo)] != lab[tuple(hi)]
        b[tuple(lo)] |= d
        b[tuple(hi)] |= d
    return b


def touching(ids: np.ndarray) -> np.ndarray:
    """Voxels of a blob with a face neighbour in a different blob (6-connectivity)."""
    t = np.zeros(ids.shape, bool)
    for ax in range(3):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[ax], hi[ax] = slice(0, -1), slice(1, None)
        a, b = ids[tuple(lo)], ids[tuple(hi)]
        d = (a != b) & (a > 0) & (b > 0)
        t[tuple(lo)] |= d
        t[tuple(hi)] |= d
    return t


def render(cells: np.ndarray, rng, mito: np.ndarray | None = None, cleft: np.ndarray | None = None,
           membrane: np.ndarray | None = None) -> np.ndarray:
    """EM-like uint8 image: textured cytoplasm, dark membranes, mitochondria and clefts."""
    nz, ny, nx = cells.shape
    shade = rng.normal(0, 9, 4096).astype(np.float32)
    img = 172 + shade[cells % 4096]
    low = rng.standard_normal((nz, ny // 8 + 2, nx // 8 + 2), dtype=np.float32)
    img += 8 * ndimage.zoom(low, (1, ny / low.shape[1], nx / low.shape[2]), order=1)[:, :ny, :nx]
    if membrane is None:
        membrane = boundaries(cells)
    img[membrane] = 62
    if mito is not None:
        m = mito > 0
        img[m] = 118
        img[m & (boundaries(mito, (0, 1, 2)) | boundaries(m, (1, 2)))] = 72
    if cleft is not None:
        img[ndimage.binary_dilation(cleft > 0, np.ones((1, 3, 3), bool))] = 30
    img = ndimage.gaussian_filter(img, (0, 0.7, 0.7))
    img += rng.standard_normal(img.shape, dtype=np.float32) * 4
    return np.clip(img, 0, 255).astype(np.uint8)


def _unique_ids(rng, n: int, high: int, base: int = 0) -> np.ndarray:
    """A lookup table: compact id k -> a random distinct id (0 stays 0)."""
    ids = rng.choice(high - 1, size=n, replace=False).astype(np.uint64) + np.uint64(base + 1)
    return np.concatenate([[np.uint64(0)], ids])


# ----------------------------------------------------------------------------- writers
def _h5(path: Path, datasets: dict[str, tuple[np.ndarray, tuple | None]]) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        for key, (arr, res) in datasets.items():
            d = f.create_dataset(key, data=arr, chunks=True, compression="gzip", compression_opts=1)
            if res is not None:
                d.attrs["resolution"] = np.asarray(res, np.float64)


def _snemi3d(root: Path, rng) -> None:
    for name, shape in (("AC4", (50, 192, 192)), ("AC3", (32, 160, 160))):
        cells = tubes(shape, rng, cell_px=34)
        membrane = boundaries(cells)
        labels = cells.copy()  # a one-voxel background seam on one side of each boundary
        labels[:, :-1][cells[:, :-1] != cells[:, 1:]] = 0
        labels[:, :, :-1][cells[:, :, :-1] != cells[:, :, 1:]] = 0
        _h5(root / f"{name}_inputs.h5", {"main": (render(cells, rng, membrane=membrane), None)})
        _h5(root / f"{name}_labels.h5", {"main": (labels, None)})


def _cremi3d(root: Path, rng) -> None:
    vs = (40.0, 4.0, 4.0)
    for name, shape in (("A", (50, 192, 192)), ("B", (50, 192, 192)), ("C", (32, 160, 160))):
        cells = tubes(shape, rng, cell_px=48)
        membrane = boundaries(cells)
        mito = blobs(shape, vs, rng, n=20, radius_nm=110, pair_fraction=0.25, host=cells)
        mito[membrane] = 0
        # clefts: stretches of membrane near a few random membrane voxels
        sites = np.flatnonzero(membrane)[rng.choice(int(membrane.sum()), 6, replace=False)]
        seeds = np.zeros(shape, np.uint32)
        seeds.flat[sites] = np.arange(1, 7, dtype=np.uint32)
        dist, ind = ndimage.distance_transform_edt(seeds == 0, sampling=vs, return_indices=True)
        cleft = np.where(membrane & (dist < 160), seeds[tuple(ind)], 0)
        neuron_ids = _unique_ids(rng, int(cells.max()), 999_999)[cells]
        clefts = np.where(cleft > 0, cleft.astype(np.uint64) + np.uint64(10), np.uint64(U64_MAX))
        clefts[: shape[0] // 5] = np.where(cleft[: shape[0] // 5] > 0, clefts[: shape[0] // 5], 0)
        img = render(cells, rng, mito=mito, cleft=cleft, membrane=membrane)
        _h5(root / f"sample_{name}_20160501.hdf", {
            "volumes/raw": (img, vs),
            "volumes/labels/neuron_ids": (neuron_ids, vs),
            "volumes/labels/clefts": (clefts, vs),
            "volumes/labels/mitochondria": (mito.astype(np.uint64), vs),
        })


def _microns(root: Path, rng) -> None:
    import tensorstore as ts

    from .volumes import PRECOMPUTED

    mx, my, mz = MICRONS_MARGIN
    sx, sy, sz = MICRONS_SEG
    shape8 = (sz + 2 * mz, sy + 2 * my, sx + 2 * mx)  # z, y, x of the EM extent at 8 nm
    cells = tubes(shape8, rng, cell_px=24)
    fine = np.repeat(np.repeat(cells, 2, axis=1), 2, axis=2)  # the same partition at 4 nm
    em4 = render(fine, rng)
    em8 = em4.reshape(shape8[0], shape8[1], 2, shape8[2], 2).mean(axis=(2, 4)).round().astype(np.uint8)
    ox, oy, oz = MICRONS_OFFSET
    e8_offset = [ox - mx, oy - my, oz - mz]
    scales = (
        ([4, 4, 40], em4, [2 * e8_offset[0], 2 * e8_offset[1], e8_offset[2]]),
        ([8, 8, 40], em8, e8_offset),
    )
    for res, arr, offset in scales:
        _precomputed(ts, PRECOMPUTED, root / "em", "image", "uint8", res, arr, offset,
                     {"encoding": "jpeg", "jpeg_quality": 90})
    table = _unique_ids(rng, int(cells.max()), 10**9, MICRONS_ID_BASE)
    seg = cells[mz:mz + sz, my:my + sy, mx:mx + sx]
    older = table.copy()  # v343: some segments still merged into a neighbour id
    merged = rng.choice(np.arange(1, len(table)), size=len(table) // 6, replace=False)
    older[merged] = table[rng.integers(1, len(table), merged.size)]
    for layer, tab in (("seg_m1300", table), ("seg_m343", older)):
        _precomputed(ts, PRECOMPUTED, root / layer, "segmentation", "uint64", [8, 8, 40], tab[seg],
                     [ox, oy, oz], {"encoding": "compressed_segmentation",
                                    "compressed_segmentation_block_size": [8, 8, 8]})


def _precomputed(ts, driver, path, kind, dtype, res, zyx, offset, extra) -> None:
    spec = {
        "driver": driver,
        "kvstore": {"driver": "file", "path": str(path) + "/"},
        "multiscale_metadata": {"data_type": dtype, "num_channels": 1, "type": kind},
        "scale_metadata": {"resolution": res, "size": list(zyx.shape[::-1]), "voxel_offset": offset,
                           "chunk_size": [64, 64, 8], **extra},
    }
    store = ts.open(spec, create=True).result()
    store[...].write(zyx.T[..., None]).result()


def _mitoem2(root: Path, rng) -> None:
    import nibabel as nib

    subsets = (
        ("Dataset001_ME2-Beta", "beta", (16.0, 16.0, 16.0), [(40, 160, 160)] * 2, [(32, 128, 128)]),
        ("Dataset004_ME2-Mossy", "mossy", (30.0, 8.0, 8.0), [(48, 160, 160)], [(32, 128, 128)]),
    )
    for folder, stem, vs, train, test in subsets:
        base = root / folder
        case = 0
        for part, shapes in (("Tr", train), ("Ts", test)):
            (base / f"images{part}").mkdir(parents=True)
            (base / f"labels{part}").mkdir(parents=True)
            for shape in shapes:
                cells = tubes(shape, rng, cell_px=90 if vs[0] == vs[1] else 70, drift=0.2)
                n = max(6, int(np.prod(shape) * np.prod(vs) / 1.5e8))
                mito = blobs(shape, vs, rng, n=n, radius_nm=150, pair_fraction=0.5)
                label = np.where(touching(mito), 2, (mito > 0).astype(np.uint8)).astype(np.uint8)
                img = render(cells, rng, mito=mito)
                name = f"{stem}_{case:03d}"
                affine = np.diag([vs[2], vs[1], vs[0], 1.0])
                for arr, sub, fname in ((img, "images", f"{name}_0000.nii.gz"), (label, "labels", f"{name}.nii.gz")):
                    nii = nib.Nifti1Image(np.ascontiguousarray(arr.T), affine)
                    nii.header.set_zooms(vs[::-1])
                    nib.save(nii, base / f"{sub}{part}" / fname)
                case += 1
        meta = {
            "name": folder + " (synthetic sample)",
            "channel_names": {"0": "EM"},
            "labels": {"background": 0, "mitochondria": 1, "boundary": 2},
            "numTraining": len(train),
            "file_ending": ".nii.gz",
            "spacing": list(vs[::-1]),
        }
        (base / "dataset.json").write_text(json.dumps(meta, indent=2))
