"""Phases 3 and 4 of blockwise connected components: the hierarchical merge, up then down.

Up, level by level (``plan.Hierarchy``: groups of ``group_shape`` neighbouring groups of the
level below; level 0 are the blocks): the task of a group reads its members' *summaries*, joins
the members' components through the face pairs whose level is this one, and writes its own
summary for the level above. A summary holds only what touches the group's outer faces: its
open nodes (codes of block-local components on a face the group shares with another group,
with their face masks), each node's component as its *home* (the smallest code in it: first
block in C order, then first in that block's raster order) and *key* (the global C-order index
of its first voxel), and the face pairs still to join above (both ends are open nodes). So a
task's memory is set by the ids on its members' faces, never by the volume. The group also
keeps its own resolution (``res/L/g``): each member component and the component it joined.

Down, from the top (one group, nothing open) to level 1: a group gets the final (home, key) of
its open components from its parent's record, gives its closed ones their own, and writes, for
each member, the final (home, key) of each of that member's open components
(``down/L-1/member``). Level 0 then knows the final component of each of its open local ids.
A level-1 task also finds its member blocks' face pairs first (up) and counts its member blocks
last (down, ``numbering.count_block``), so no phase has one task per block besides the label
and write phases.

Example:
    >>> import numpy as np
    >>> from neurons_jax.ops.blockwise.hierarchy import join
    >>> # items 10, 20, 30 (homes), 20 and 30 joined: components {10}, {20, 30}
    >>> comp, home = join(np.array([10, 20, 30]), np.array([[1, 2]]))
    >>> comp.tolist(), home.tolist()
    ([0, 1, 1], [10, 20])
"""

from __future__ import annotations

import numpy as np

from .job import Job
from .merge import LOCAL_BITS, code
from .plan import Hierarchy

_EMPTY = {
    "node": np.zeros(0, np.int64), "mask": np.zeros(0, np.uint8), "home": np.zeros(0, np.int64),
    "key": np.zeros(0, np.int64), "pairs": np.zeros((0, 2), np.int64), "level": np.zeros(0, np.uint8),
}  # fmt: skip


def hierarchy(job: Job) -> Hierarchy:
    return Hierarchy(job.grid.grid, job.options["group_shape"])


def _get(job: Job, key: str) -> dict:
    rec = job.state.get_arrays(key)
    if rec is None:
        raise RuntimeError(f"{job.state.describe()}: record {key} is missing (an earlier phase)")
    return rec


def summary(job: Job, level: int, gid: int) -> dict:
    """The summary of group ``gid`` at ``level`` (level 0: built from block ``gid``'s records)."""
    if level > 0:
        return _get(job, f"up/{level}/{gid}.rec")
    lab = _get(job, f"label/{gid}.rec")
    faces = _get(job, f"faces/{gid}.rec") if job.grid.n_blocks > 1 else _EMPTY
    node = code(gid, lab["open"])
    keys = lab["keys"][lab["open"].astype(np.int64) - 1]
    return {"node": node, "mask": lab["mask"], "home": node, "key": keys,
            "pairs": faces["pairs"], "level": faces["level"]}  # fmt: skip


def join(items: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Components of ``items`` (sorted homes) joined by ``edges`` (pairs of item indices) ->
    (component of each item, home of each component = its smallest item), numbered in the
    order of their homes."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    m = len(items)
    if m == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    graph = coo_matrix((np.ones(len(edges), np.int8), (edges[:, 0], edges[:, 1])), shape=(m, m))
    n, comp = connected_components(graph, directed=False)
    # renumber by first item: items are sorted, so the first item of a component is its home
    first = np.full(n, m, np.int64)
    np.minimum.at(first, comp, np.arange(m))
    order = np.argsort(first, kind="stable")
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    return rank[comp], items[first[order]]


def up_task(job: Job, level: int, gid: int) -> tuple[int, int]:
    """Merge task of group ``gid`` at ``level`` -> the (open nodes, face pairs) it held."""
    done = job.state.get_arrays(f"up/{level}/{gid}.rec")
    if done is not None:
        return int(done["held"][0]), int(done["held"][1])
    hier = hierarchy(job)
    members = hier.children(level, gid)
    if level == 1:  # the face pairs of the member blocks first (once: they are recorded)
        from .merge import face_block

        for b in members:
            face_block(job, b)
    parts = [summary(job, level - 1, c) for c in members]
    node = np.concatenate([p["node"] for p in parts])
    home = np.concatenate([p["home"] for p in parts])
    key = np.concatenate([p["key"] for p in parts])
    mask = np.concatenate([p["mask"] for p in parts])
    member = np.repeat(np.arange(len(parts)), [len(p["node"]) for p in parts])
    pairs = np.concatenate([p["pairs"].reshape(-1, 2) for p in parts])
    plev = np.concatenate([p["level"] for p in parts])
    here = plev == level

    items, item_of_node = np.unique(home, return_inverse=True)
    order = np.argsort(node, kind="stable")
    sorted_nodes = node[order]
    ends = pairs[here].reshape(-1)
    pos = np.clip(np.searchsorted(sorted_nodes, ends), 0, max(0, len(node) - 1))
    if len(ends) and (len(node) == 0 or np.any(sorted_nodes[pos] != ends)):
        raise RuntimeError(
            f"level {level} group {gid}: a face pair names a component that no member reports "
            f"as open (records in {job.state.describe()} are inconsistent)"
        )
    edges = item_of_node[order[pos]].reshape(-1, 2) if len(ends) else np.zeros((0, 2), np.int64)
    comp, comp_home = join(items, edges)
    item_key = np.full(len(items), np.iinfo(np.int64).max, np.int64)
    np.minimum.at(item_key, item_of_node, key)
    comp_key = np.full(len(comp_home), np.iinfo(np.int64).max, np.int64)
    np.minimum.at(comp_key, comp, item_key)

    opened = hier.open_at(node >> LOCAL_BITS, mask, level)
    node_comp = comp[item_of_node]
    comp_open = np.zeros(len(comp_home), bool)
    comp_open[node_comp[opened]] = True
    item_member = np.zeros(len(items), np.int32)
    item_member[item_of_node] = member
    job.state.put_arrays(
        f"res/{level}/{gid}.rec", compress=True, items=items, member=item_member, comp=comp,
        home=comp_home, key=comp_key, open=comp_open,
    )
    keep = np.argsort(node[opened], kind="stable")
    out = {
        "node": node[opened][keep], "mask": mask[opened][keep],
        "home": comp_home[node_comp[opened]][keep], "key": comp_key[node_comp[opened]][keep],
        "pairs": pairs[~here], "level": plev[~here], "held": np.array([len(node), len(pairs)]),
    }  # fmt: skip
    job.state.put_arrays(f"up/{level}/{gid}.rec", compress=True, **out)  # the done-marker
    return len(node), len(pairs)


def down_task(job: Job, level: int, gid: int) -> list | None:
    """Hand the final (home, key) of its members' open components down from group ``gid``;
    at level 1 then count its member blocks -> [(block, ``numbering.count_block``), ...]."""
    hier = hierarchy(job)
    members = hier.children(level, gid)
    if not job.state.has(f"downdone/{level}/{gid}"):
        _down(job, level, gid, hier, members)
    if level == 1:
        from .numbering import count_block

        return [(b, count_block(job, b)) for b in members]
    return None


def _down(job: Job, level: int, gid: int, hier: Hierarchy, members: list[int]) -> None:
    res = _get(job, f"res/{level}/{gid}.rec")
    fhome, fkey = res["home"].copy(), res["key"].copy()
    opened = np.flatnonzero(res["open"])
    if level == hier.top:
        if len(opened):
            raise RuntimeError(f"top group: {len(opened)} components still open (inconsistent records)")
    elif len(opened):
        above = _get(job, f"down/{level}/{gid}.rec")
        pos = np.searchsorted(above["home"], res["home"][opened])
        if np.any(pos >= len(above["home"])) or np.any(above["home"][np.minimum(pos, len(above["home"]) - 1)] != res["home"][opened]):
            raise RuntimeError(f"level {level} group {gid}: the parent's record lacks an open component")
        fhome[opened], fkey[opened] = above["fhome"][pos], above["fkey"][pos]
    items, member, comp = res["items"], res["member"], res["comp"]
    for i, c in enumerate(members):
        sel = member == i
        job.state.put_arrays(
            f"down/{level - 1}/{c}.rec", compress=True, home=items[sel], fhome=fhome[comp[sel]],
            fkey=fkey[comp[sel]],
        )
    job.state.put(f"downdone/{level}/{gid}", b"")
