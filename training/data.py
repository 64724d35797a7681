"""Image data sets, read into memory as uint8 arrays [N, C, H, W] with integer labels.

No torchvision: IDX files (MNIST, Fashion-MNIST), CIFAR-10's pickled batches, SVHN's
`.mat` files and image folders each read in a few lines of NumPy/SciPy/Pillow.
Nothing is downloaded unless the caller passes `download=True`.
"""

from __future__ import annotations

import gzip
import os
import pickle
import tarfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

FASHION_MNIST_DIR = Path(os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip
DIGITS = [str(d) for d in range(10)]
DATASETS = ("fashion-mnist", "mnist", "svhn", "cifar10", "folder:PATH")

_URLS = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "svhn": "http://ufldl.stanford.edu/housenumbers/",
}


class DatasetError(RuntimeError):
    """A data set is missing or unreadable; the message says how to get it."""


@dataclass
class ImageDataset:
    name: str
    images: np.ndarray  # uint8 [N, C, H, W]
    labels: np.ndarray  # int64 [N]
    class_names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def image_size(self) -> int:
        return self.images.shape[2]

    def subset(self, limit: int | None) -> ImageDataset:
        if not limit or limit >= len(self):
            return self
        return ImageDataset(self.name, self.images[:limit], self.labels[:limit], self.class_names)


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped): magic, dims as big-endian int32, then data."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DatasetError(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">i4", count=ndim, offset=4)
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DatasetError(f"{path} is truncated: expected {int(np.prod(dims))} values")
    return data.reshape(dims).copy()  # writable, so torch can wrap it without a warning


def _find(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    return None


def load_idx_pair(folder: Path, split: str, hint: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if split == "train" else "t10k"
    images_path = _find(folder, f"{prefix}-images-idx3-ubyte")
    labels_path = _find(folder, f"{prefix}-labels-idx1-ubyte")
    if images_path is None or labels_path is None:
        raise DatasetError(f"no {prefix}-images/labels IDX files in {folder}. {hint}")
    images = read_idx(images_path)[:, None]
    labels = read_idx(labels_path).astype(np.int64)
    if len(images) != len(labels):
        raise DatasetError(f"{images_path}: {len(images)} images but {len(labels)} labels")
    return images, labels


def load_fashion_mnist(split: str = "train", root: Path | None = None) -> ImageDataset:
    folder = Path(root) if root else FASHION_MNIST_DIR
    hint = (
        "Install it with `sudo apt-get install dataset-fashion-mnist`, "
        "or point FASHION_MNIST_DIR (or --data-root) at the IDX files."
    )
    images, labels = load_idx_pair(folder, split, hint)
    return ImageDataset("fashion-mnist", images, labels, list(FASHION_MNIST_CLASSES))


def _download(url: str, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    print(f"downloading {url} -> {dest}", flush=True)
    tmp = dest.with_suffix(dest.suffix + ".part")
    urllib.request.urlretrieve(url, tmp)
    tmp.rename(dest)


def load_mnist(split: str, root: Path, download: bool) -> ImageDataset:
    folder = root / "mnist"
    prefix = "train" if split == "train" else "t10k"
    if download:
        for kind in ("images-idx3", "labels-idx1"):
            name = f"{prefix}-{kind}-ubyte.gz"
            if _find(folder, name.removesuffix(".gz")) is None:
                _download(_URLS["mnist"] + name, folder / name)
    hint = f"Run with --download to fetch MNIST into {folder}."
    images, labels = load_idx_pair(folder, split, hint)
    return ImageDataset("mnist", images, labels, list(DIGITS))


def load_cifar10(split: str, root: Path, download: bool) -> ImageDataset:
    folder = root / "cifar-10-batches-py"
    if not folder.exists():
        if not download:
            raise DatasetError(f"CIFAR-10 not found in {folder}. Run with --download to fetch it.")
        archive = root / "cifar-10-python.tar.gz"
        if not archive.exists():
            _download(_URLS["cifar10"], archive)
        with tarfile.open(archive) as tar:
            tar.extractall(root, filter="data")
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    images, labels = [], []
    for name in names:
        with open(folder / name, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
    return ImageDataset("cifar10", np.concatenate(images), np.concatenate(labels), CIFAR10_CLASSES)


def load_svhn(split: str, root: Path, download: bool) -> ImageDataset:
    from scipy.io import loadmat  # only SVHN needs SciPy's MATLAB reader

    name = f"{'train' if split == 'train' else 'test'}_32x32.mat"
    path = root / "svhn" / name
    if not path.exists():
        if not download:
            raise DatasetError(f"SVHN not found at {path}. Run with --download to fetch it.")
        _download(_URLS["svhn"] + name, path)
    mat = loadmat(path)
    images = np.ascontiguousarray(mat["X"].transpose(3, 2, 0, 1))  # HWCN -> NCHW
    labels = mat["y"].reshape(-1).astype(np.int64) % 10  # SVHN stores digit 0 as label 10
    return ImageDataset("svhn", images, labels, list(DIGITS))


def load_folder(path: Path, image_size: int | None) -> ImageDataset:
    """Images under PATH; one sub-folder per class gives labels, loose files give none."""
    if not path.is_dir():
        raise DatasetError(f"image folder {path} does not exist")
    suffixes = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif"}
    class_dirs = sorted(p for p in path.iterdir() if p.is_dir())
    groups = [(d.name, sorted(d.rglob("*"))) for d in class_dirs] or [("", sorted(path.iterdir()))]
    files, labels = [], []
    for index, (_, members) in enumerate(groups):
        for f in members:
            if f.suffix.lower() in suffixes:
                files.append(f)
                labels.append(index)
    if not files:
        raise DatasetError(f"no images ({', '.join(sorted(suffixes))}) found under {path}")
    with Image.open(files[0]) as first:
        mode = "L" if first.mode in ("L", "1", "I;16") else "RGB"
    size = image_size or 64
    arrays = []
    for f in files:
        with Image.open(f) as im:
            im = im.convert(mode).resize((size, size), Image.Resampling.BICUBIC)
            arr = np.asarray(im, dtype=np.uint8)
        arrays.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
    class_names = [name for name, _ in groups] if class_dirs else []
    return ImageDataset(f"folder:{path}", np.stack(arrays), np.asarray(labels), class_names)


def load(
    name: str,
    split: str = "train",
    root: str | Path | None = None,
    download: bool = False,
    image_size: int | None = None,
) -> ImageDataset:
    """Load a data set by name: fashion-mnist, mnist, svhn, cifar10 or folder:PATH."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    data_root = Path(root) if root else Path("data")
    if name == "fashion-mnist":
        return load_fashion_mnist(split, Path(root) if root else None)
    if name == "mnist":
        return load_mnist(split, data_root, download)
    if name == "cifar10":
        return load_cifar10(split, data_root, download)
    if name == "svhn":
        return load_svhn(split, data_root, download)
    if name.startswith("folder:"):
        return load_folder(Path(name.removeprefix("folder:")), image_size)
    raise DatasetError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
