"""An FP16 copy of a shipped model folder, for the benchmarks and the GPU tests."""

from __future__ import annotations

from pathlib import Path

from service.card import MODEL_FILE, sha256_of
from service.registry import ModelEntry


def fp16_variant(model: ModelEntry, out_dir: Path) -> ModelEntry:
    """An FP16 copy of `model` in `out_dir`, converted as `training.export --fp16` does
    (float32 inputs and outputs kept), with a matching card, so the Engine accepts it."""
    import onnx  # the `train` extra: imported here so the rest of harness works without it

    from training.fp16 import to_fp16

    folder = Path(out_dir) / f"{model.name}-fp16"
    folder.mkdir(parents=True, exist_ok=True)
    half = to_fp16(onnx.load(str(model.onnx_path)))
    onnx.checker.check_model(half)
    onnx.save(half, str(folder / MODEL_FILE))
    card = model.card.model_copy(
        update={
            "name": f"{model.name}-fp16",
            "precision": "fp16",
            "sha256": sha256_of(folder / MODEL_FILE),
        }
    )
    card.save(folder)
    return ModelEntry(card, folder)
