"""The restricted unpickler: Drill-down-style region files load (including Python 2 pickles read as
latin-1); pickles that would call anything else are refused before the call happens."""

from __future__ import annotations

import codecs
import io
import os
import pickle
import struct

import numpy as np
import pytest

from vscn.data.safe_pickle import UnsafePickleError, load_region_pickle, restricted_load

REGIONS, FEATURE_DIM = 36, 2048


def region_dict(rng: np.random.Generator, regions: int = REGIONS, dim: int = FEATURE_DIM) -> dict[str, np.ndarray]:
    return {
        "region_boxes": rng.uniform(0, 500, size=(regions, 4)).astype(np.float32),
        "region_feats": rng.standard_normal((regions, dim)).astype(np.float32),
        "region_clses": rng.integers(0, 1600, size=regions),
    }


class Python2StylePickler(pickle._Pickler):
    """Writes text and bytes as Python 2 ``str`` opcodes and numpy globals under their numpy 1.x
    module names, as the pickles Drill-down wrote under Python 2 hold them."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj: str | bytes) -> None:
        raw = obj.encode("latin-1") if isinstance(obj, str) else obj
        if self.proto == 0:  # Python 2's default protocol: quoted, escaped text
            self.write(pickle.STRING + b"'" + codecs.escape_encode(raw)[0] + b"'\n")
        elif len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[str] = save_py2_str
    dispatch[bytes] = save_py2_str

    def save_global(self, obj: object, name: str | None = None) -> None:
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)


def python2_style_pickle(obj: object, protocol: int) -> bytes:
    stream = io.BytesIO()
    Python2StylePickler(stream, protocol=protocol).dump(obj)
    return stream.getvalue()


class CallsSystem:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class CallsEval:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


def assert_same(loaded: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert sorted(loaded) == sorted(expected)
    for key, array in expected.items():
        assert loaded[key].dtype == array.dtype and np.array_equal(loaded[key], array), key


@pytest.mark.parametrize("protocol", [2, 4])
def test_python3_pickles_of_region_dicts_load(tmp_path, protocol):
    expected = region_dict(np.random.default_rng(protocol))
    path = tmp_path / "000000000001.npy"
    path.write_bytes(pickle.dumps(expected, protocol=protocol))
    assert_same(load_region_pickle(path, num_regions=REGIONS, feature_dim=FEATURE_DIM), expected)


@pytest.mark.parametrize("protocol", [0, 2])
def test_python2_style_pickle_loads_as_latin1(tmp_path, protocol):
    expected = region_dict(np.random.default_rng(2), dim=16)
    data = python2_style_pickle(expected, protocol)
    assert b"numpy.core.multiarray\n_reconstruct" in data and b"_codecs" not in data
    path = tmp_path / "000000000002.npy"
    path.write_bytes(data)
    assert_same(load_region_pickle(path), expected)


def test_numpy_scalars_become_arrays(tmp_path):
    content = {**region_dict(np.random.default_rng(3), dim=8), "score": np.float32(0.5)}
    path = tmp_path / "r.npy"
    path.write_bytes(pickle.dumps(content, protocol=2))
    assert load_region_pickle(path)["score"] == np.float32(0.5)


def test_pickle_calling_os_system_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "000000000003.npy"
    content = {**region_dict(np.random.default_rng(4), dim=8), "x": CallsSystem(str(marker))}
    path.write_bytes(pickle.dumps(content, protocol=2))
    with pytest.raises(UnsafePickleError) as caught:
        load_region_pickle(path)
    assert str(path) in str(caught.value)
    assert caught.value.global_name == f"{os.system.__module__}.system"  # posix.system on Linux
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_pickle_calling_eval_is_refused(tmp_path, protocol):
    path = tmp_path / "r.npy"
    path.write_bytes(pickle.dumps([CallsEval()], protocol=protocol))
    with pytest.raises(UnsafePickleError, match=r"r\.npy: refused to load global (builtins|__builtin__)\.eval"):
        restricted_load(path)


def test_codec_other_than_latin1_is_refused(tmp_path):
    # _codecs.encode("x", "rot13") through the bytes path that protocol-2 pickles use
    path = tmp_path / "r.npy"
    path.write_bytes(b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00xX\x05\x00\x00\x00rot13\x86R.")
    with pytest.raises(ValueError, match=r"r\.npy: not a readable pickle.*rot13"):
        restricted_load(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("region_feats"), "missing region_feats"),
        (lambda d: d.update(region_boxes=np.zeros((REGIONS, 5), np.float32)), r"region_boxes has shape \(36, 5\)"),
        (lambda d: d.update(region_boxes=np.zeros((REGIONS - 1, 4), np.float32)), r"expected \(36, 4\)"),
        (lambda d: d.update(region_feats=np.zeros((REGIONS, 8), np.int64)), "region_feats .* floating point"),
        (lambda d: d.update(region_clses=np.zeros(REGIONS, np.float32)), r"region_clses .* expected \(36,\) integers"),
        (lambda d: d.update(extra=[1, 2]), "entry 'extra' is a list"),
    ],
)
def test_malformed_region_dicts_are_reported(tmp_path, change, message):
    content = region_dict(np.random.default_rng(5), dim=8)
    change(content)
    path = tmp_path / "r.npy"
    path.write_bytes(pickle.dumps(content, protocol=2))
    with pytest.raises(ValueError, match=message) as caught:
        load_region_pickle(path)
    assert str(caught.value).startswith(str(path))


def test_expected_sizes_are_enforced(tmp_path):
    path = tmp_path / "r.npy"
    path.write_bytes(pickle.dumps(region_dict(np.random.default_rng(6), dim=8), protocol=2))
    with pytest.raises(ValueError, match="36 regions, expected 10"):
        load_region_pickle(path, num_regions=10)
    with pytest.raises(ValueError, match="dimension 8, expected 2048"):
        load_region_pickle(path, feature_dim=FEATURE_DIM)


def test_non_dict_npy_and_garbage_are_reported(tmp_path):
    listed = tmp_path / "list.npy"
    listed.write_bytes(pickle.dumps([np.zeros(3)], protocol=2))
    with pytest.raises(ValueError, match="expected a pickled dict of arrays, found list"):
        load_region_pickle(listed)
    real_npy = tmp_path / "real.npy"
    np.save(real_npy, np.zeros((36, 4)))
    with pytest.raises(ValueError, match="real.npy: a NumPy .npy array file"):
        load_region_pickle(real_npy)
    truncated = tmp_path / "truncated.npy"
    truncated.write_bytes(pickle.dumps(region_dict(np.random.default_rng(7), dim=8), protocol=2)[:100])
    with pytest.raises(ValueError, match="truncated.npy: not a readable pickle"):
        load_region_pickle(truncated)
