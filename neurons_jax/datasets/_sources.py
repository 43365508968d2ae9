"""Small picklable volume sources for native files: TIFF stacks, NIfTI, and a value checker.

Each follows the ``neurons_jax.volumes.Source`` protocol (``shape``, ``dtype`` in ZYX order,
``read(slices)``, ``describe()``) and keeps only paths in its pickled state, so Volumes built
on them travel to Grain's spawned workers and reopen there.

Example:
    >>> import numpy as np, tifffile, tempfile, os, neurons_jax as nj
    >>> d = tempfile.mkdtemp(); p = os.path.join(d, "s.tif")
    >>> tifffile.imwrite(p, np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    >>> src = TiffSource(p)
    >>> src.shape, src.read((slice(1, 2), slice(0, 1), slice(2, 4))).tolist()
    ((2, 3, 4), [[[14, 15]]])
"""

from __future__ import annotations

import os

import numpy as np

# nm per NIfTI spatial unit (xyzt_units)
_NIFTI_UNITS_NM = {"meter": 1e9, "mm": 1e6, "micron": 1e3}
EM_MAX_VOXEL_NM = 1e4  # no EM voxel is 10 µm wide


def nifti_zooms_nm(header, ndim: int = 3) -> tuple[tuple[float, ...], bool]:
    """``(zooms in nm, NIfTI axis order x, y, z; whether the header states a unit)``.

    An "unknown" unit is read as nm, the convention of EM data. Writers such as SimpleITK
    stamp "mm" on whatever numbers they are given (nnU-Net data is written that way), so
    when the stated unit would make an EM voxel 10 µm or more, the numbers are taken as nm.
    """
    raw = tuple(float(z) for z in header.get_zooms()[:ndim])
    scale = _NIFTI_UNITS_NM.get(header.get_xyzt_units()[0])
    if scale is None:
        return raw, False
    scaled = tuple(float(f"{z * scale:.6g}") for z in raw)  # float32 pixdim: 0.016 µm -> 16 nm
    return (raw if max(scaled, default=0.0) >= EM_MAX_VOXEL_NM else scaled), True


class TiffSource:
    """A multi-page TIFF stack (one page per z section), read page by page on demand."""

    def __init__(self, path: str | os.PathLike):
        import tifffile

        self.path = str(path)
        try:
            with tifffile.TiffFile(self.path) as tf:
                series = tf.series[0]
                shape, self.dtype = tuple(series.shape), np.dtype(series.dtype)
                self._paged = len(tf.pages) == (shape[0] if len(shape) == 3 else 1)
        except (OSError, ValueError, IndexError) as e:
            raise OSError(f"{self.path}: not a readable TIFF stack ({e})") from None
        shape = tuple(s for s in shape if s != 1) if len(shape) > 3 else shape
        if len(shape) == 2:
            shape = (1, *shape)
        if len(shape) != 3:
            raise ValueError(f"{self.path}: expected a 3D (z, y, x) TIFF stack; found shape {shape}")
        self.shape = shape
        self._file = None
        self._array = None

    def read(self, slices: tuple[slice, ...]) -> np.ndarray:
        z, yx = slices[0], slices[1:]
        if not self._paged:  # one multi-dimensional page: decode once per process
            if self._array is None:
                import tifffile

                self._array = tifffile.imread(self.path).reshape(self.shape)
            return np.array(self._array[slices], copy=True)
        if self._file is None:
            import tifffile

            self._file = tifffile.TiffFile(self.path)
        if z.stop <= z.start:
            return np.zeros((0, *(s.stop - s.start for s in yx)), self.dtype)
        pages = self._file.asarray(key=range(z.start, z.stop))
        pages = pages.reshape((z.stop - z.start, *self.shape[1:]))
        return np.ascontiguousarray(pages[(slice(None), *yx)])

    def describe(self) -> str:
        return self.path

    def files(self) -> list[str]:
        return [self.path]

    def __getstate__(self):
        return {**self.__dict__, "_file": None, "_array": None}


class NiftiSource:
    """A NIfTI volume (``.nii`` / ``.nii.gz``) seen in ZYX order (NIfTI axes i, j, k = x, y, z).

    The file is decoded on first read and kept for the life of the process (gzip streams do
    not seek); pickling sends only the path.
    """

    def __init__(self, path: str | os.PathLike):
        import nibabel as nib

        self.path = str(path)
        try:
            img = nib.load(self.path)
        except Exception as e:  # noqa: BLE001 - nibabel raises several types
            raise OSError(f"{self.path}: not a readable NIfTI file ({e})") from None
        shape = tuple(int(s) for s in img.shape)
        while len(shape) > 3 and shape[-1] == 1:
            shape = shape[:-1]
        if len(shape) != 3:
            raise ValueError(f"{self.path}: expected a 3D NIfTI volume; found shape {shape}")
        self.shape = shape[::-1]
        proxy = img.dataobj
        slope, inter = getattr(proxy, "slope", 1.0), getattr(proxy, "inter", 0.0)
        scaled = not (np.isnan(slope) or slope == 1) or not (np.isnan(inter) or inter == 0)
        self.dtype = np.dtype(np.float32) if scaled else np.dtype(img.get_data_dtype())
        zooms, _ = nifti_zooms_nm(img.header)
        self.zooms_zyx: tuple[float, float, float] = zooms[::-1]  # type: ignore[assignment]
        self._array = None

    def _load(self) -> np.ndarray:
        if self._array is None:
            import nibabel as nib

            arr = np.asanyarray(nib.load(self.path).dataobj)
            arr = arr.reshape(arr.shape[:3])
            self._array = np.ascontiguousarray(arr.T.astype(self.dtype, copy=False))
        return self._array

    def read(self, slices: tuple[slice, ...]) -> np.ndarray:
        return np.array(self._load()[slices], copy=True)

    def describe(self) -> str:
        return self.path

    def files(self) -> list[str]:
        return [self.path]

    def __getstate__(self):
        return {**self.__dict__, "_array": None}


class CheckedSource:
    """Wraps a source and rejects non-finite values in what it reads (used by ``prepare``)."""

    def __init__(self, source, what: str = "image"):
        self.source, self.what = source, what
        self.shape, self.dtype = tuple(source.shape), np.dtype(source.dtype)

    def read(self, slices: tuple[slice, ...]) -> np.ndarray:
        block = self.source.read(slices)
        if block.dtype.kind == "f" and not np.isfinite(block).all():
            bad = np.argwhere(~np.isfinite(block))[0] + [s.start for s in slices]
            raise ValueError(
                f"{self.source.describe()}: {self.what} has non-finite values (NaN or inf), "
                f"first at z, y, x = {tuple(int(b) for b in bad)}; expected finite intensities"
            )
        return block

    def describe(self) -> str:
        return self.source.describe()


def source_files(source) -> list[str]:
    """Local files (or URLs) behind a source, for provenance and change detection."""
    if hasattr(source, "files"):
        return list(source.files())
    if hasattr(source, "source"):
        return source_files(source.source)
    if hasattr(source, "path"):  # volumes.H5Source
        return [str(source.path)]
    spec = getattr(source, "spec", None)
    if isinstance(spec, dict):
        from ..volumes import describe_spec

        return [describe_spec(spec)]
    return []

