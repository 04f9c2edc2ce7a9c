"""Read Drill-down's region feature files without letting them run code.

Drill-down stores each image's bottom-up region features as ``region_36_final/<12-digit id>.npy``.
Despite the suffix these are pickles, written under Python 2, of a dict
``{"region_boxes": (R, 4), "region_feats": (R, Dv), "region_clses": (R,)}`` (R = 36, Dv = 2048).
Unpickling may call any importable function, so these files are read with an unpickler whose
``find_class`` admits only the globals that rebuilding numpy arrays, dtypes and numpy scalars needs.
Containers and plain scalars (dict, list, tuple, str, bytes, int, float, bool, None) are built by
pickle opcodes and need no global. Anything else (``os.system``, ``builtins.eval``, ...) is refused
before it is called.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from vscn.data.records import BOX_COORDS

from numpy._core import multiarray as _multiarray

PY2_TEXT_ENCODING = "latin1"  # how Python 2 ``str`` (raw bytes) must be read for numpy to rebuild arrays
NPY_MAGIC = b"\x93NUMPY"
REGION_BOXES, REGION_FEATS, REGION_CLASSES = "region_boxes", "region_feats", "region_clses"


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for a global outside the allow-list; it was refused before being called."""

    def __init__(self, source: Path, module: str, name: str) -> None:
        super().__init__(
            f"{source}: refused to load global {module}.{name}; only numpy arrays, numpy scalars, dicts, "
            "lists, tuples, str, bytes, int, float, bool and None are admitted"
        )
        self.source = source
        self.global_name = f"{module}.{name}"


def _latin1_bytes(text: str, encoding: str) -> bytes:
    """Stand-in for ``_codecs.encode``, which Python 3 pickles of protocol < 3 use to store bytes;
    it only ever turns text into latin-1 bytes, unlike the general codec machinery."""
    if not isinstance(text, str) or encoding.lower().replace("-", "") != PY2_TEXT_ENCODING:
        raise pickle.UnpicklingError(f"_codecs.encode called with {type(text).__name__} and {encoding!r}")
    return text.encode(PY2_TEXT_ENCODING)


# numpy moved its internals from numpy.core to numpy._core in 2.0; pickles name either.
_MULTIARRAY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_bytes,
    **{(module, "_reconstruct"): _multiarray._reconstruct for module in _MULTIARRAY_MODULES},
    **{(module, "scalar"): _multiarray.scalar for module in _MULTIARRAY_MODULES},
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, stream: io.BufferedIOBase, source: Path) -> None:
        super().__init__(stream, encoding=PY2_TEXT_ENCODING)
        self._source = source

    def find_class(self, module: str, name: str) -> object:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(self._source, module, name) from None

    def persistent_load(self, pid: object) -> object:
        raise pickle.UnpicklingError(f"{self._source}: persistent ids are not admitted")


def restricted_load(path: Path | str) -> object:
    """Unpickle ``path`` admitting only numpy arrays/scalars, containers and plain scalars.

    Raises :class:`UnsafePickleError` (naming the file and the refused global) for anything else,
    and ``ValueError`` naming the file when it is not a readable pickle.
    """
    path = Path(path)
    with path.open("rb") as stream:
        if stream.read(len(NPY_MAGIC)) == NPY_MAGIC:
            raise ValueError(f"{path}: a NumPy .npy array file, not a pickled dict of region features")
        stream.seek(0)
        try:
            return _RestrictedUnpickler(stream, path).load()
        except UnsafePickleError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError) as error:
            raise ValueError(f"{path}: not a readable pickle of numpy data ({error})") from error


def _shape_error(path: Path, key: str, array: np.ndarray, expected: str) -> ValueError:
    return ValueError(f"{path}: {key} has shape {array.shape} and dtype {array.dtype}; expected {expected}")


def load_region_pickle(
    path: Path | str, *, num_regions: int | None = None, feature_dim: int | None = None
) -> dict[str, np.ndarray]:
    """Load one Drill-down region file as ``{"region_boxes": (R, 4), "region_feats": (R, Dv), ...}``.

    The file is read with :func:`restricted_load`. ``region_boxes`` (real numbers) and
    ``region_feats`` (floating point) are required and must agree on R; ``region_clses``, when
    present, must be R integers. Every value must be a numpy array (numpy scalars become 0-d
    arrays). ``num_regions`` / ``feature_dim``, when given, must match R / Dv. Errors name the file.
    """
    path = Path(path)
    content = restricted_load(path)
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a pickled dict of arrays, found {type(content).__name__}")
    arrays: dict[str, np.ndarray] = {}
    for key, value in content.items():
        if not isinstance(key, str) or not isinstance(value, (np.ndarray, np.generic)):
            raise ValueError(f"{path}: entry {key!r} is a {type(value).__name__}, expected a numpy array")
        arrays[key] = np.asarray(value)
    missing = [key for key in (REGION_BOXES, REGION_FEATS) if key not in arrays]
    if missing:
        raise ValueError(f"{path}: missing {', '.join(missing)} (found keys: {', '.join(sorted(arrays)) or 'none'})")

    feats, boxes = arrays[REGION_FEATS], arrays[REGION_BOXES]
    if feats.ndim != 2 or not np.issubdtype(feats.dtype, np.floating):
        raise _shape_error(path, REGION_FEATS, feats, "(R, Dv) floating point")
    regions, dim = feats.shape
    if boxes.shape != (regions, BOX_COORDS) or not (
        np.issubdtype(boxes.dtype, np.floating) or np.issubdtype(boxes.dtype, np.integer)
    ):
        raise _shape_error(path, REGION_BOXES, boxes, f"({regions}, {BOX_COORDS}) real numbers")
    classes = arrays.get(REGION_CLASSES)
    if classes is not None and (classes.shape != (regions,) or not np.issubdtype(classes.dtype, np.integer)):
        raise _shape_error(path, REGION_CLASSES, classes, f"({regions},) integers")
    if num_regions is not None and regions != num_regions:
        raise ValueError(f"{path}: {regions} regions, expected {num_regions}")
    if feature_dim is not None and dim != feature_dim:
        raise ValueError(f"{path}: region features of dimension {dim}, expected {feature_dim}")
    return arrays
