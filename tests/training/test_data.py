"""Data loading: the Debian Fashion-MNIST files, IDX parsing, image folders, clear errors."""

import gzip
import struct

import numpy as np
import pytest
from PIL import Image

from training import data


def test_fashion_mnist_from_the_debian_package() -> None:
    test = data.load("fashion-mnist", "test")
    assert test.images.shape == (10_000, 1, 28, 28) and test.images.dtype == np.uint8
    assert sorted(set(test.labels.tolist())) == list(range(10))
    assert test.class_names[7] == "Sneaker"


def test_idx_round_trip_and_truncation(tmp_path) -> None:
    values = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = struct.pack(">BBBB", 0, 0, 8, 3) + struct.pack(">iii", 2, 3, 4) + values.tobytes()
    path = tmp_path / "x-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(raw))
    assert (data.read_idx(path) == values).all()
    path.write_bytes(gzip.compress(raw[:-5]))
    with pytest.raises(data.DatasetError, match="truncated"):
        data.read_idx(path)


def test_image_folder_with_class_subfolders(tmp_path) -> None:
    for cls, shade in (("cats", 30), ("dogs", 200)):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.new("RGB", (40, 40), (shade, i, 0)).save(tmp_path / cls / f"{i}.png")
    ds = data.load(f"folder:{tmp_path}", image_size=32)
    assert ds.images.shape == (6, 3, 32, 32)
    assert ds.class_names == ["cats", "dogs"]
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1]


@pytest.mark.parametrize(
    ("name", "needle"),
    [("imagenet", "unknown data set"), ("cifar10", "--download"), ("mnist", "--download")],
)
def test_missing_or_unknown_data_sets_say_what_to_do(tmp_path, name, needle) -> None:
    with pytest.raises(data.DatasetError, match=needle):
        data.load(name, root=tmp_path)


def test_missing_fashion_mnist_names_the_apt_package(tmp_path) -> None:
    with pytest.raises(data.DatasetError, match="apt-get install dataset-fashion-mnist"):
        data.load("fashion-mnist", root=tmp_path)
