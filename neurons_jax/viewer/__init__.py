"""Neuroglancer views of datasets and batches: ``nj.view(...)``, ``neurons-jax view``.

Modules: ``layers`` (what is shown: lazy image / labels / classes / instances, batch samples),
``server`` (``view``: the viewer on 127.0.0.1 with physical voxel sizes), ``browser`` (a headless
Chromium for ``--screenshot`` and report pictures). Needs ``pip install 'neurons-jax[view]'``
(the ``neuroglancer`` package, which bundles its web client) and, for screenshots, Chromium.

Example:
    >>> import neurons_jax as nj
    >>> viewer = nj.view("mitoem2=demo_out/prepared/mitoem2", volume="Beta/beta_000")   # doctest: +SKIP
    >>> nj.view("snemi3d=demo_out/prepared/snemi3d", screenshot="snemi3d.png")           # doctest: +SKIP
"""

from __future__ import annotations

from .server import MISSING, build_viewer, dataset_layers, view

__all__ = ["MISSING", "build_viewer", "dataset_layers", "view"]
