"""``view(data)``: a Neuroglancer viewer of datasets or of one batch sample, served on 127.0.0.1.

The ``neuroglancer`` package (``pip install 'neurons-jax[view]'``) serves its bundled client and
the layers' chunks from this process (``neuroglancer.LocalVolume`` over lazy reads); nothing is
fetched from the network. ``data`` is what ``nj.explore`` takes (a Dataset, ``"KIND=ROOT"``, a
prepared root, a list or mapping of them: one volume each, ``volume=`` picks it by name or
index) or a Loader batch (``sample=`` picks the sample; ``voxel_size=`` or ``loader=`` gives its
voxel size). The global coordinates are x, y, z in nm at the first layer's voxel size; every
layer carries its own voxel size, so datasets of different resolution line up in nm.

Example:
    >>> import neurons_jax as nj
    >>> viewer = nj.view("snemi3d=demo_out/prepared/snemi3d")               # doctest: +SKIP
    >>> print(viewer.get_viewer_url())                                      # doctest: +SKIP
    http://127.0.0.1:40123/v/.../
    >>> nj.view(batch, sample=1, loader=loader, screenshot="sample1.png")    # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from .layers import Layer, batch_layers, pair_layers

MISSING = "the viewer needs the neuroglancer package: pip install 'neurons-jax[view]'"
BIND = "127.0.0.1"
LAYOUTS = ("4panel", "xy", "xz", "yz", "3d", "xy-3d", "xz-3d", "yz-3d")


def neuroglancer_module():
    """``import neuroglancer``, or an ImportError naming ``pip install 'neurons-jax[view]'``."""
    try:
        import neuroglancer
    except ImportError:
        raise ImportError(MISSING) from None
    return neuroglancer


def _pick(ds, volume: str | int | None):
    if volume is None:
        return ds.pairs[0]
    names = [p.name for p in ds.pairs]
    if isinstance(volume, int) or (isinstance(volume, str) and volume.isdigit()):
        i = int(volume)
        if not 0 <= i < len(names):
            raise ValueError(f"volume {volume}: {ds.kind}/{ds.split} has {len(names)} volume(s): {names}")
        return ds.pairs[i]
    if volume not in names:
        raise ValueError(f"volume {volume!r}: not in {ds.kind}/{ds.split}; volumes: {names}")
    return ds.pairs[names.index(volume)]


def dataset_layers(data: Any, *, split: str = "train", volume: str | int | None = None,
                   kind: str | None = None) -> tuple[list[Layer], list[str]]:
    """(layers, notes) of the datasets in ``data`` (one volume each)."""
    from ..exploration.core import resolve

    resolved = resolve(data, kind, (split,))
    layers, notes = [], []
    for name, (_, _, by_split) in resolved.items():
        ds = next(iter(by_split.values()))
        if isinstance(ds, str):
            raise ValueError(f"{name}: split {split!r} is unavailable ({ds})")
        prefix = f"{name} " if len(resolved) > 1 else ""
        got, why = pair_layers(_pick(ds, volume), ds.kind, prefix)
        layers += got
        notes += why
    return layers, notes


def _local_volume_class(ng):
    """``LocalVolume`` without meshes: a mesh needs the whole volume in memory, and these layers
    read by region (the 3D panel shows the cross sections)."""

    class SectionVolume(ng.LocalVolume):
        def get_object_mesh(self, object_id):
            raise ng.local_volume.MeshesNotSupportedForVolume()

    return SectionVolume


def build_viewer(layers: Sequence[Layer], *, layout: str = "4panel", port: int = 0):
    """A ``neuroglancer.Viewer`` on 127.0.0.1 (``port`` 0: any free one) showing ``layers``."""
    ng = neuroglancer_module()
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}; got {layout!r}")
    if not layers:
        raise ValueError("view: no layers to show")
    ng.set_server_bind_address(BIND, bind_port=int(port))
    volume = _local_volume_class(ng)
    viewer = ng.Viewer()
    first = layers[0]
    vz, vy, vx = first.voxel_size
    shape = first.data.shape[:3]
    with viewer.txn() as s:
        s.dimensions = ng.CoordinateSpace(names=["x", "y", "z"], units="nm", scales=[vx, vy, vz])
        s.position = [shape[2] / 2, shape[1] / 2, shape[0] / 2]
        # zoom in x voxels per screen pixel: the XY, XZ and YZ extents fit a ~360 px panel
        extent = max(shape[2], shape[1] * vy / vx, shape[0] * vz / vx)
        s.cross_section_scale = extent / 360.0
        s.projection_scale = extent * 1.3
        s.layout = layout
        for layer in layers:
            space = ng.CoordinateSpace(names=["z", "y", "x"], units="nm", scales=list(layer.voxel_size))
            if layer.kind == "image":
                source = volume(layer.data, dimensions=space, volume_type="image")
                s.layers[layer.name] = ng.ImageLayer(source=source)
            else:
                source = volume(layer.data, dimensions=space, volume_type="segmentation")
                kw: dict = {}  # no segment is selected: sections show every id (selected ids
                # would ask for meshes, which these region-read layers do not make)
                if layer.colours:
                    kw["segment_colors"] = dict(layer.colours)
                s.layers[layer.name] = ng.SegmentationLayer(source=source, selected_alpha=0.45, **kw)
            s.layers[layer.name].visible = layer.visible
        if len(layers) > 1:
            s.selected_layer.layer = layers[-1].name
    return viewer


def view(data: Any, *, sample: int = 0, loader: Any = None, voxel_size: Sequence[float] | None = None,
         split: str = "train", volume: str | int | None = None, kind: str | None = None,
         layout: str = "4panel", port: int = 0, screenshot: str | os.PathLike | None = None,
         size: tuple[int, int] = (1024, 768), timeout: float = 120.0):
    """A Neuroglancer viewer of ``data`` (see the module); returns the ``neuroglancer.Viewer``.

    With ``screenshot``, a headless Chromium renders the view to that PNG first
    (``neurons_jax.viewer.browser``). The server runs in a background thread of this process
    for as long as the process lives.
    """
    neuroglancer_module()
    notes: list[str] = []
    if isinstance(data, Mapping) and "image" in data:
        if voxel_size is None and loader is not None:
            import numpy as np

            which = int(np.asarray(data["dataset"])[int(sample)]) if "dataset" in data else 0
            vol = int(np.asarray(data["volume"])[int(sample)]) if "volume" in data else 0
            ds = loader.datasets[which]
            voxel_size = ds.pairs[vol].image.voxel_size if 0 <= vol < len(ds.pairs) else ds.voxel_size
        layers = batch_layers(data, sample, voxel_size)
    else:
        layers, notes = dataset_layers(data, split=split, volume=volume, kind=kind)
    viewer = build_viewer(layers, layout=layout, port=port)
    viewer.notes = notes
    if screenshot is not None:
        from .browser import screenshot as _shot

        _shot(viewer, screenshot, size, timeout)
    return viewer
