"""One ONNX Runtime session per model: provider choice, graph checks, warm-up, uint8 output.

The session returns float32 in [-1, 1]; `Engine.run` converts to uint8 right after the
call, so whatever crosses a process boundary afterwards is 1 byte per pixel, not 4.

On a GPU provider the engine runs through IO binding: the output is allocated in device
memory by ORT's arena and copied to the host once, explicitly, instead of `session.run`'s
per-call output allocation and implicit copy. `bench/inference.py` measures both ways on
CUDA, so whether it pays on a given GPU is a number in BENCHMARKS.md.

On a GPU provider the engine also pads each batch up to the next of a few sizes (1, 2, 4 …
256; `GAN_BATCH_BUCKETS`) and warms every one of them at start-up: a provider's per-shape
work (cuDNN's algorithm search, TensorRT's engine builds, memory plans) then happens before
the first request, never inside one, for a few idle rows of a GPU batch. On CPU, where every
row costs compute, batches run at their own size.
"""

from __future__ import annotations

import bisect
import logging
import time

import numpy as np
import onnxruntime as ort

from service.imaging import to_uint8
from service.inputs import model_inputs
from service.metrics import record_batch
from service.registry import ModelEntry, ModelFolderError
from service.settings import batch_buckets, cudnn_conv_search

logger = logging.getLogger("service.engine")

WARMUP_BATCHES = (1, 64)
GPU_BUCKETS = tuple(2**i for i in range(9))  # 1 … 256, GAN_MAX_BATCH_SIZE's default


def _dims_match(actual: list[object], expected: list[int | None]) -> bool:
    """Symbolic dims (strings/None) match anything; fixed dims must be equal."""
    if len(actual) != len(expected):
        return False
    return all(
        e is None or not isinstance(a, int) or a == e for a, e in zip(actual, expected, strict=True)
    )


def provider_options(provider: str) -> dict[str, str]:
    """Per-provider options: the CUDA provider's cuDNN search mode (`GAN_CUDNN_CONV_SEARCH`)."""
    if provider == "CUDAExecutionProvider":
        return {"cudnn_conv_algo_search": cudnn_conv_search()}
    return {}


def open_session(entry: ModelEntry, providers: list[str], threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    available = set(ort.get_available_providers())
    wanted = [p for p in providers if p in available] or ["CPUExecutionProvider"]
    try:
        return ort.InferenceSession(
            str(entry.onnx_path),
            sess_options=options,
            providers=wanted,
            provider_options=[provider_options(p) for p in wanted],
        )
    except Exception as exc:  # ORT raises its own types for protobuf/graph errors
        raise ModelFolderError(f"{entry.onnx_path}: ONNX Runtime cannot load it: {exc}") from exc


def check_graph(session: ort.InferenceSession, entry: ModelEntry) -> None:
    """The graph's input/output names and shapes must be what the card promises."""
    card, path = entry.card, entry.onnx_path
    inputs = {i.name: i.shape for i in session.get_inputs()}
    outputs = {o.name: o.shape for o in session.get_outputs()}
    if list(inputs) != card.input_names:
        raise ModelFolderError(
            f"{path}: inputs {list(inputs)} != card input_names {card.input_names}"
        )
    if list(outputs)[: len(card.output_names)] != card.output_names:
        raise ModelFolderError(
            f"{path}: outputs {list(outputs)} != card output_names {card.output_names}"
        )
    expected = {"z": [None, card.latent_dim], "y": [None, card.num_classes]}
    for name, shape in inputs.items():
        if not _dims_match(shape, expected[name]):
            raise ModelFolderError(f"{path}: input {name} shape {shape} != {expected[name]}")
    im = card.image
    image_shape = [None, im.channels, im.height, im.width]
    if not _dims_match(outputs[card.output_names[0]], image_shape):
        raise ModelFolderError(
            f"{path}: output shape {outputs[card.output_names[0]]} != {image_shape}"
        )


# ORT device names for `IOBinding.bind_output`, per provider that keeps outputs on a GPU.
DEVICE_OF_PROVIDER = {"CUDAExecutionProvider": "cuda", "TensorrtExecutionProvider": "cuda"}


class Engine:
    """A warmed-up ONNX Runtime session for one model folder.

    `io_binding`: None (default) uses it exactly when the graph runs on a GPU provider;
    True or False forces it (True works on CPU too, where it is only a parity check).
    `buckets`: batch sizes to pad up to; None (default) reads `GAN_BATCH_BUCKETS`, whose
    `auto` means `GPU_BUCKETS` on a GPU provider and none on CPU; () pads nothing.
    """

    def __init__(
        self,
        entry: ModelEntry,
        providers: list[str],
        threads: int = 1,
        announce: bool = True,
        io_binding: bool | None = None,
        buckets: tuple[int, ...] | None = None,
    ) -> None:
        self.entry = entry
        self.card = entry.card
        self.session = open_session(entry, providers, threads)
        # The first provider ORT actually attached is the one that runs the graph.
        self.provider = self.session.get_providers()[0]
        self.output_device = DEVICE_OF_PROVIDER.get(self.provider, "cpu")
        self.io_binding = self.output_device != "cpu" if io_binding is None else io_binding
        if buckets is None:
            buckets = batch_buckets()
        if buckets is None:
            buckets = GPU_BUCKETS if self.output_device != "cpu" else ()
        self.buckets = tuple(sorted(buckets))
        check_graph(self.session, entry)
        self._warm_up()
        if announce:
            binding = " with IO binding" if self.io_binding else ""
            logger.info("model %s runs on %s%s", self.card.name, self.provider, binding)

    def _warm_up(self) -> None:
        im = self.card.image
        for n in self.buckets or WARMUP_BATCHES:
            feeds = model_inputs(self.card, n)
            out = self.run_float(feeds["z"], feeds.get("y"))
            if out.shape != (n, im.channels, im.height, im.width):
                raise ModelFolderError(
                    f"{self.entry.onnx_path}: batch {n} gave shape {out.shape}, card says "
                    f"{(n, im.channels, im.height, im.width)}"
                )

    def padded_size(self, n: int) -> int:
        """The batch size a batch of n runs at: the next bucket, or n past the largest."""
        i = bisect.bisect_left(self.buckets, n)
        return self.buckets[i] if i < len(self.buckets) else n

    def run_float(self, z: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        """The graph's float32 output for these inputs, [N, C, H, W] in [-1, 1]."""
        n = len(z)
        size = self.padded_size(n)
        if size > n:  # zero rows: each image depends on its own row only (eval-mode graph)
            z = np.concatenate([z, np.zeros((size - n, z.shape[1]), z.dtype)])
            if y is not None:
                y = np.concatenate([y, np.zeros((size - n, y.shape[1]), y.dtype)])
            return self._run_graph(z, y)[:n]
        return self._run_graph(z, y)

    def _run_graph(self, z: np.ndarray, y: np.ndarray | None) -> np.ndarray:
        feeds = {"z": z} if y is None else {"z": z, "y": y}
        output = self.card.output_names[0]
        if not self.io_binding:
            return self.session.run([output], feeds)[0]
        # A binding per call: the in-process batcher may run several batches at once.
        binding = self.session.io_binding()
        for name, value in feeds.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(value))
        binding.bind_output(output, self.output_device)
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    def run(self, z: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        """Latents [N, latent_dim] (+ class vectors [N, classes]) -> uint8 images [N, C, H, W]."""
        start = time.perf_counter()
        images = to_uint8(self.run_float(z, y))
        record_batch(self.card.name, len(z), time.perf_counter() - start)
        return images


def build_engines(
    entries: dict[str, ModelEntry],
    providers: list[str],
    threads: int,
    io_binding: bool | None = None,
    buckets: tuple[int, ...] | None = None,
) -> dict[str, Engine]:
    return {
        name: Engine(entry, providers, threads, io_binding=io_binding, buckets=buckets)
        for name, entry in entries.items()
    }


def verify_models(entries: dict[str, ModelEntry]) -> None:
    """Open each model on CPU, check its graph and run it; raises ModelFolderError.

    Called at import so `bentoml serve` exits, naming the file, before it spawns workers:
    a worker failing in its own start-up would be restarted over and over instead.
    """
    for entry in entries.values():
        Engine(entry, ["CPUExecutionProvider"], threads=1, announce=False)
