"""The label and augmentation stage: raw context regions + params -> training arrays.

* ``pack_labels`` / ``unpack_labels``: one uint32 label ``(instance << 3) | semantic``, made on
  the host (``neurons_jax.transforms.HostLabels``) so a single nearest-neighbour warp moves both.
  Union mapping is pointwise and the warp samples labels by nearest neighbour, so mapping before
  the warp equals mapping after it, and every batch has one label dtype whatever the datasets.
* ``finish`` (CuPy on a GPU, NumPy on the CPU, chosen by the array type): augmentation
  (``nj.augment.apply_batch``) -> crop to the patch -> unpack semantic -> instances
  (``relabel_after_crop`` for id-labelled data, ``boundary_separated_instances`` with each
  sample's own rule classes for boundary-separated data such as MitoEM2).

Example:
    >>> import numpy as np
    >>> from neurons_jax.stage import pack_labels, unpack_labels
    >>> packed = pack_labels(np.array([0, 1, 3], np.uint8), np.array([0, 7, 2], np.uint32))
    >>> [a.tolist() for a in unpack_labels(packed)]
    [[0, 1, 3], [0, 7, 2]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .backend import array_module

SEM_BITS = 3
MAX_INSTANCES = 2 ** (32 - SEM_BITS) - 1


def pack_labels(semantic, instance):
    """One uint32 label carrying the union class (3 low bits) and an instance id."""
    xp = array_module(semantic, instance)
    out = instance.astype(xp.uint32)  # a new array: shifted and or-ed in place (two passes)
    xp.left_shift(out, SEM_BITS, out=out)
    xp.bitwise_or(out, semantic, out=out, casting="unsafe")
    return out


def unpack_labels(packed):
    """Inverse of ``pack_labels``: (semantic uint8, instance uint32)."""
    xp = array_module(packed)
    return (packed & ((1 << SEM_BITS) - 1)).astype(xp.uint8), packed >> SEM_BITS


def to_float_image(image, xp=None):
    """Images as float32 in [0, 1] for integer inputs (uint8 / 255), float32 as given."""
    xp = xp or array_module(image)
    if image.dtype.kind in "ui":
        return image.astype(xp.float32) / xp.float32(np.iinfo(image.dtype).max)
    return image.astype(xp.float32)


def center_crop(a, shape: Sequence[int], lead: int = 1):
    """Centre crop of the trailing axes of ``a`` to ``shape`` (a view)."""
    sl = [slice(None)] * lead
    for n, s in zip(a.shape[lead:], shape):
        m = (n - s) // 2
        sl.append(slice(m, m + s))
    return a[tuple(sl)]


def finish(
    images,
    packed,
    masks,
    params: Sequence | None,
    patch_shape: Sequence[int],
    instance_classes,
    timings: dict | None = None,
    boxes=None,
    targets=None,
    grow=None,
    voxel_sizes=None,
    target_params: dict | None = None,
) -> dict:
    """Augment, crop and relabel a batch on its array module.

    ``images``/``packed``/``masks`` are (B, *context) arrays (``masks`` None: every voxel is
    valid); ``params`` one AugmentParams per
    sample (or None for no augmentation); ``instance_classes`` a (B, 2) host array of the union
    classes (interior, boundary) each sample's instances are separated by, (0, 0) for samples
    whose instances are their (cropped) ids. Returns image (B, Z, Y, X, 1) float32,
    semantic uint8, instance uint32, mask uint8. On a GPU the whole stage waits for the device
    at most once (the growth of boundary-separated instances looks at its "changed" flag once
    per ``instances.ROUND`` steps) when ``masks`` is None or all ones are known on the host.

    ``boxes`` (B, 2, 3) host ints ``[origin, shape]``: the arrays hold each sample's footprint
    box (``augment.footprint``) of its own context at the low corner of its row, as
    ``transforms.ReadSample`` reads them (the rest of a row is padding, never read).

    ``targets`` (a ``target_stage.TargetPlan``): the training targets too, from the labels warped
    over the patch grown by ``grow`` (B, 3) host ints (``augment.grow``; without params the
    arrays' centre crop of that size); ``voxel_sizes`` (B, 3) and ``target_params``
    ``{key: (B, ...)}`` (random specs' numbers) as the Loader carries them.
    """
    import time

    xp = array_module(images)
    B = images.shape[0]
    t0 = time.perf_counter()
    out_msk = xp.empty((B, *patch_shape), xp.uint8)
    if params is None or boxes is None:
        out_img = xp.empty((B, *patch_shape), xp.float32)
        out_lab = xp.empty((B, *patch_shape), xp.uint32)
    if params is None:
        out_img[...] = to_float_image(center_crop(images, patch_shape))
        out_lab[...] = center_crop(packed, patch_shape)
        out_msk[...] = 1 if masks is None else center_crop(masks, patch_shape)
    else:
        from . import augment

        # the warp reads real context only, so an all-valid mask stays all-valid: skip its warp
        full_mask = masks is None or bool(masks.all())
        if boxes is not None:  # footprint boxes: one call, every sample carries its own context
            boxes = np.asarray(boxes, np.int64)
            vgroups: dict[tuple, list[int]] = {}  # one launch per voxel size (its elastic grid)
            for i, p in enumerate(params):
                vgroups.setdefault(tuple(p.voxel_size), []).append(i)
            if len(vgroups) == 1:
                out_img, out_lab, mk = augment.apply_batch(params, images, packed, None if full_mask else masks,
                                                           boxes=boxes)  # no copy
                out_msk[...] = 1 if full_mask else mk
            else:
                out_img = xp.empty((B, *patch_shape), xp.float32)
                out_lab = xp.empty((B, *patch_shape), xp.uint32)
                for idx in vgroups.values():
                    sel = xp.asarray(np.asarray(idx))
                    im, lb, mk = augment.apply_batch([params[i] for i in idx], images[sel], packed[sel],
                                                     None if full_mask else masks[sel], boxes=boxes[idx])
                    out_img[sel], out_lab[sel] = im, lb
                    out_msk[sel] = 1 if full_mask else mk
        else:
            # samples of one context shape go through one batched call (one launch per op on a GPU)
            groups: dict[tuple, list[int]] = {}
            for i, p in enumerate(params):
                groups.setdefault(tuple(p.context_shape), []).append(i)
            for ctx, idx in groups.items():
                sel = idx if len(groups) > 1 else slice(None)
                im, lb, mk = augment.apply_batch(
                    [params[i] for i in idx],
                    center_crop(images[sel], ctx),
                    center_crop(packed[sel], ctx),
                    None if full_mask else center_crop(masks[sel], ctx),
                )
                out_img[sel], out_lab[sel] = im, lb
                out_msk[sel] = 1 if full_mask else mk
    t1 = time.perf_counter()
    semantic, inst_src = unpack_labels(out_lab)
    classes = np.asarray(instance_classes, np.int64).reshape(B, 2)
    instance = instances(semantic, inst_src, classes)
    out = {"image": out_img[..., None], "semantic": semantic, "instance": instance, "mask": out_msk}
    if targets is not None:
        out.update(_targets(targets, packed, masks, params, boxes, patch_shape, classes, grow, voxel_sizes,
                            target_params or {}, out))
    if timings is not None:
        timings["augment"] = timings.get("augment", 0.0) + t1 - t0
        timings["labels"] = timings.get("labels", 0.0) + time.perf_counter() - t1
    return out


def instances(semantic, inst_src, classes: np.ndarray):
    """Instance ids of a batch: connected pieces of the instance sources (``relabel_after_crop``:
    pieces cut apart by the crop split), and for rows with (interior, boundary) classes the
    boundary-separated instances of their semantic."""
    from .ops.components import component_ids
    from .ops.instances import instance_ids

    xp = array_module(semantic)
    instance = component_ids(inst_src)
    for interior, boundary in {tuple(c) for c in classes.tolist() if c != [0, 0]}:  # rules, not labels
        sel = xp.asarray(np.flatnonzero((classes[:, 0] == interior) & (classes[:, 1] == boundary)))
        instance[sel] = instance_ids(semantic[sel], interior=interior, boundary=boundary)
    return instance


def _targets(plan, packed, masks, params, boxes, patch_shape, classes, grow, voxel_sizes, tparams, out) -> dict:
    """The targets of ``plan`` (see ``finish``), one group of rows per grow margin."""
    from . import augment
    from .target_stage import finish_targets

    xp = array_module(packed)
    B = packed.shape[0]
    grow = np.asarray(grow, np.int64).reshape(B, 3)
    full_mask = masks is None or bool(masks.all())
    vsizes = np.asarray(voxel_sizes, np.float64).reshape(B, 3)
    groups: dict[tuple, list[int]] = {}  # one label warp per (margin, voxel size)
    for i, (g, v) in enumerate(zip(grow.tolist(), vsizes.tolist())):
        groups.setdefault((tuple(g), tuple(v)), []).append(i)
    res: dict = {}
    for (g, _), rows in groups.items():
        one = len(groups) == 1
        sel = slice(None) if one else xp.asarray(np.asarray(rows))
        grown_shape = tuple(int(p + 2 * m) for p, m in zip(patch_shape, g))
        if params is None:
            lab = center_crop(packed[sel], grown_shape)
            msk = None if full_mask else center_crop(masks[sel], grown_shape)
        else:
            gp = [augment.grow(params[i], g) for i in rows]
            if boxes is not None:
                _, lab, msk = augment.apply_batch(gp, None, packed[sel], None if full_mask else masks[sel],
                                                  boxes=np.asarray(boxes, np.int64)[rows])
            else:
                ctx = tuple(gp[0].context_shape)
                _, lab, msk = augment.apply_batch(gp, None, center_crop(packed[sel], ctx),
                                                  None if full_mask else center_crop(masks[sel], ctx))
        if msk is None:
            msk = xp.ones(lab.shape, xp.uint8)
        sem_g, src_g = unpack_labels(lab)
        ids_g = instances(sem_g, src_g, classes[rows])
        patch_out = {k: out[k][sel] for k in ("instance", "semantic", "mask")}
        part = finish_targets(plan, {"ids": ids_g, "semantic": sem_g, "mask": msk}, patch_out,
                              vsizes[rows],
                              {k: np.asarray(v)[rows] for k, v in tparams.items()}, patch_shape)
        for k, v in part.items():
            if one:
                res[k] = v
            else:
                res.setdefault(k, xp.empty((B, *v.shape[1:]), v.dtype))[sel] = v
    return res
