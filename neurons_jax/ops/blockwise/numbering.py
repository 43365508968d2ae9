"""Phase 5 of blockwise connected components: per-block counts, then per-block tables.

After the merge every block knows, for each open local id, the *home* (smallest code) and key
(first voxel in global C order) of its final component; a closed local id (on no shared face)
is a component of its own. A local id is *homed* when it is its component's home.

``order="blocks"``: components are numbered by their home: by block (C order of the block
grid), then by raster order inside that block (the block's local ids are in that order), compact
1..n. Block b's homed ids get ``offset[b] + rank``, the offsets being the prefix sum of the
blocks' homed counts; an id homed elsewhere takes its home's number, read from the home
block's record of non-homed ids. ``order="raster"``: components are numbered by key, which is
the in-memory (cc3d) numbering; it needs the sorted keys of all components in one process.

Example:
    >>> import numpy as np
    >>> from neurons_jax.ops.blockwise.numbering import ranks
    >>> ranks(np.array([2, 3], np.uint32), np.array([1, 4, 5]))  # ids 2, 3 not homed
    array([1, 2, 3])
"""

from __future__ import annotations

import numpy as np

from .hierarchy import _get
from .job import Job
from .merge import code, split


def ranks(demoted: np.ndarray, local: np.ndarray) -> np.ndarray:
    """Rank of homed local ids ``local`` among a block's homed ids (1-based): the id minus
    the number of non-homed (``demoted``, sorted) ids below it."""
    local = np.asarray(local, np.int64)
    return local - np.searchsorted(np.asarray(demoted, np.int64), local)


def finals(job: Job, bid: int, lab: dict) -> tuple[np.ndarray, np.ndarray]:
    """(final home, final key) of each open local id of block ``bid``."""
    codes = code(bid, lab["open"])
    if job.options["top"] == 0 or len(codes) == 0:
        return codes, lab["keys"][lab["open"].astype(np.int64) - 1]
    d = _get(job, f"down/0/{bid}.rec")
    if not np.array_equal(d["home"], codes):
        raise RuntimeError(f"block {bid}: the merge's record does not list the block's open ids")
    return d["fhome"], d["fkey"]


def count_block(job: Job, bid: int) -> tuple[int, np.ndarray, np.ndarray | None]:
    """Count task -> (homed components of block ``bid``, other blocks holding homes of its
    open ids, for ``order="raster"`` the keys of its homed components)."""
    rec = job.state.get_arrays(f"rank/{bid}.rec")
    raster = job.options["order"] == "raster"
    if rec is None:
        lab = _get(job, f"label/{bid}.rec")
        fhome, fkey = finals(job, bid, lab)
        homed = fhome == code(bid, lab["open"])
        demoted = lab["open"][~homed]
        hb = np.unique(split(fhome[~homed])[0])
        rec = {"demoted": demoted, "count": np.array(int(lab["n"]) - len(demoted)), "foreign": hb[hb != bid]}
        if raster:
            keys = lab["keys"].copy()
            keys[lab["open"].astype(np.int64) - 1] = fkey
            drop = np.zeros(len(keys), bool)
            drop[demoted.astype(np.int64) - 1] = True
            rec["keys"] = keys[~drop]
        job.state.put_arrays(f"rank/{bid}.rec", compress=True, **rec)
    return int(rec["count"]), rec["foreign"], rec.get("keys")


_KEYS: dict[str, np.ndarray] = {}


def raster_keys(job: Job) -> np.ndarray:
    """The sorted keys of all components (``order="raster"``), cached per process."""
    where = job.options["run"]
    if where not in _KEYS:
        _KEYS.clear()
        _KEYS[where] = _get(job, "merge/keys.rec")["keys"]
    return _KEYS[where]


def block_table(job: Job, bid: int, offsets: dict[int, int], dtype) -> np.ndarray:
    """Final id of each local id 0..n of block ``bid`` (``offsets``: the prefix sums of the
    homed counts of this block and of the blocks holding homes of its ids)."""
    lab = _get(job, f"label/{bid}.rec")
    n = int(lab["n"])
    fhome, fkey = finals(job, bid, lab)
    table = np.zeros(n + 1, dtype)
    local = np.arange(1, n + 1, dtype=np.int64)
    if job.options["order"] == "raster":
        keys = lab["keys"].copy()
        keys[lab["open"].astype(np.int64) - 1] = fkey
        allk = raster_keys(job)
        pos = np.searchsorted(allk, keys)
        if n and (pos.max() >= len(allk) or np.any(allk[pos] != keys)):
            raise RuntimeError(f"block {bid}: a component key is missing from merge/keys.rec")
        table[1:] = pos + 1
        return table
    own = _get(job, f"rank/{bid}.rec")["demoted"]
    table[1:] = offsets[bid] + ranks(own, local)
    hb, hl = split(fhome)
    for b in np.unique(hb):
        sel = hb == b
        dem = own if b == bid else _get(job, f"rank/{int(b)}.rec")["demoted"]
        table[lab["open"][sel].astype(np.int64)] = offsets[int(b)] + ranks(dem, hl[sel])
    return table
