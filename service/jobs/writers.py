"""Result files, written as a stream and byte-for-byte reproducible.

- npz (`numpy.load`): `images` uint8 [N, H, W, C], `labels` int64 (class index, -1 for
  unconditional models), `seeds` int64, `class_names` str. Stored, not compressed, so
  writing costs no CPU that inference needs; `images` is streamed chunk by chunk.
- tar: `manifest.csv` (file, seed, label) first, then one PNG per image, named by index.

Every entry has a fixed timestamp, owner and mode, so the same job gives the same bytes.
"""

from __future__ import annotations

import csv
import io
import tarfile
import zipfile
from pathlib import Path
from typing import Protocol

import numpy as np

from service.imaging import encode, to_pil
from service.jobs.spec import JobSpec

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry


class ResultWriter(Protocol):
    def write(self, start: int, pixels: np.ndarray) -> None:
        """uint8 [n, C, H, W] for images start .. start+n-1, in order."""
        ...

    def close(self) -> None: ...


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _zip_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    return info


class NpzWriter:
    def __init__(self, path: Path, spec: JobSpec) -> None:
        self.zip = zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True)
        total = spec.total
        names = np.array(spec.class_names, dtype=str) if spec.class_names else np.array([], "<U1")
        self.zip.writestr(_zip_info("labels.npy"), _npy_bytes(spec.labels(0, total)))
        self.zip.writestr(_zip_info("seeds.npy"), _npy_bytes(spec.seeds(0, total)))
        self.zip.writestr(_zip_info("class_names.npy"), _npy_bytes(names))
        self.stream = self.zip.open(_zip_info("images.npy"), "w", force_zip64=True)
        c, h, w = spec.shape
        header = {"descr": "|u1", "fortran_order": False, "shape": (total, h, w, c)}
        np.lib.format.write_array_header_1_0(self.stream, header)

    def write(self, start: int, pixels: np.ndarray) -> None:
        self.stream.write(np.ascontiguousarray(pixels.transpose(0, 2, 3, 1)).tobytes())

    def close(self) -> None:
        self.stream.close()
        self.zip.close()


def _tar_info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


class TarWriter:
    def __init__(self, path: Path, spec: JobSpec) -> None:
        self.spec = spec
        self.width = max(8, len(str(spec.total - 1)))
        self.tar = tarfile.open(path, "w", format=tarfile.USTAR_FORMAT)  # noqa: SIM115
        manifest = self._manifest()
        self.tar.addfile(_tar_info("manifest.csv", len(manifest)), io.BytesIO(manifest))

    def file_name(self, i: int) -> str:
        return f"{i:0{self.width}d}.png"

    def _label(self, k: int) -> str:
        return self.spec.class_names[k] if k >= 0 else ""

    def _manifest(self) -> bytes:
        text = io.StringIO()
        rows = csv.writer(text, lineterminator="\n")
        rows.writerow(["file", "seed", "label"])
        labels = self.spec.labels(0, self.spec.total)
        seeds = self.spec.seeds(0, self.spec.total)
        for i in range(self.spec.total):
            rows.writerow([self.file_name(i), int(seeds[i]), self._label(int(labels[i]))])
        return text.getvalue().encode()

    def write(self, start: int, pixels: np.ndarray) -> None:
        for k, image in enumerate(pixels):
            png = encode(to_pil(image.transpose(1, 2, 0)), "png")
            self.tar.addfile(_tar_info(self.file_name(start + k), len(png)), io.BytesIO(png))

    def close(self) -> None:
        self.tar.close()


def open_writer(path: Path, spec: JobSpec) -> ResultWriter:
    return NpzWriter(path, spec) if spec.format == "npz" else TarWriter(path, spec)
