"""An accelerator-shaped stand-in generator: the served model's exact inputs and outputs, one
linear layer + tanh inside (~0.2 MFLOP per image instead of ~100).

    python -m bench.standin OUT_DIR [--like fashion-cgan]

On a GPU the shipped generators cost next to nothing per image, so a server's request stack,
not inference, sets its throughput. This model recreates that on a CPU: a load test against
it measures what every layer between the socket and `session.run` costs. It is built at run
time into a temporary folder (never into models/), with a card whose sha256 matches, so the
service loads it through its ordinary checks.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from bench.common import shipped_models
from service.card import MODEL_FILE, ModelCard, Training, sha256_of

OPSET = 17
SEED = 0


def _graph(card: ModelCard) -> onnx.ModelProto:
    """z [N, latent_dim] (+ y [N, classes]) -> tanh(concat(z, y) @ W + b) as [N, C, H, W]."""
    im = card.image
    width_in = card.latent_dim + card.num_classes
    width_out = im.channels * im.height * im.width
    rng = np.random.default_rng(SEED)
    weight = (rng.standard_normal((width_in, width_out)) / np.sqrt(width_in)).astype(np.float32)
    bias = np.zeros(width_out, dtype=np.float32)
    shape = np.array([-1, im.channels, im.height, im.width], dtype=np.int64)
    inputs = [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", card.latent_dim])]
    nodes = []
    features = "z"
    if card.conditional:
        inputs.append(
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", card.num_classes])
        )
        nodes.append(helper.make_node("Concat", ["z", "y"], ["zy"], axis=1))
        features = "zy"
    nodes += [
        helper.make_node("MatMul", [features, "W"], ["h"]),
        helper.make_node("Add", ["h", "b"], ["hb"]),
        helper.make_node("Tanh", ["hb"], ["flat"]),
        helper.make_node("Reshape", ["flat", "shape"], [card.output_names[0]]),
    ]
    output = helper.make_tensor_value_info(
        card.output_names[0], TensorProto.FLOAT, ["N", im.channels, im.height, im.width]
    )
    graph = helper.make_graph(
        nodes,
        "standin",
        inputs,
        [output],
        initializer=[
            numpy_helper.from_array(weight, "W"),
            numpy_helper.from_array(bias, "b"),
            numpy_helper.from_array(shape, "shape"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8  # readable by every ONNX Runtime the service supports
    onnx.checker.check_model(model, full_check=True)
    return model


def build(out_dir: Path, like: str | None = None) -> Path:
    """Write `<out_dir>/<name>-standin/{model.onnx, card.json}` shaped like model `like`
    (default: the first conditional shipped model); returns the model folder."""
    models = shipped_models()
    source = next(
        (m for m in models if m.name == like)
        if like
        else (m for m in models if m.card.conditional),
        models[0],
    ).card
    folder = Path(out_dir) / f"{source.name}-standin"
    folder.mkdir(parents=True, exist_ok=True)
    model = _graph(source)
    onnx.save(model, folder / MODEL_FILE)
    params = sum(int(np.prod(t.dims)) for t in model.graph.initializer if t.name != "shape")
    card = source.model_copy(
        update={
            "name": folder.name,
            "architecture": "mlp",
            "sha256": sha256_of(folder / MODEL_FILE),
            "parameters": params,
            "precision": "fp32",
            "training": Training(command=f"python -m bench.standin {out_dir} --like {source.name}"),
            "metrics": None,
        }
    )
    ModelCard.model_validate(card.model_dump())  # the service's own schema check
    card.save(folder)
    return folder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out_dir", type=Path)
    p.add_argument("--like", default=None, help="shipped model whose interface to copy")
    args = p.parse_args()
    print(build(args.out_dir, args.like))


if __name__ == "__main__":
    main()
