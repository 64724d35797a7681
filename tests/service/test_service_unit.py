"""Service building blocks without a server: latents, labels, settings, registry checks."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from service.card import CARD_FILE, MODEL_FILE
from service.errors import RequestError
from service.latents import (
    MAX_SEED,
    LabelError,
    SeedRangeError,
    class_index,
    class_vector,
    describe_label,
    image_seeds,
    latents_from_seed,
    lerp,
    slerp,
)
from service.plan import plan_generate
from service.registry import ModelFolderError, load_registry
from service.schemas import GenerateRequest
from service.settings import Settings, SettingsError, parse_providers, usable_cpus
from tests.conftest import MODELS_DIR, ROOT

CLASSES = ["T-shirt/top", "Trouser", "Sandal", "Sneaker"]


def run_python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter at the repository root (importing service.app there
    keeps this process's modules and settings out of it); fails the test unless it exits 0."""
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_importing_the_service_loads_neither_torch_nor_training() -> None:
    run_python(
        "import sys, service.app; "
        "bad = [m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'training'))]; "
        "assert not bad, bad"
    )


def test_latents_follow_the_documented_recipe() -> None:
    z = latents_from_seed(41, 3, 100, truncation=0.5)
    for i in range(3):
        expected = np.random.default_rng(41 + i).standard_normal(100, dtype=np.float32) * 0.5
        np.testing.assert_array_equal(z[i], expected)
    assert z.dtype == np.float32
    # Row i depends only on seed + i: a longer request repeats the shorter one's rows.
    np.testing.assert_array_equal(latents_from_seed(41, 5, 100, 0.5)[:3], z)


def test_image_seeds_are_seed_plus_i_and_stay_within_max_seed() -> None:
    assert image_seeds(5, 3) == [5, 6, 7]
    assert image_seeds(MAX_SEED - 2, 3) == [MAX_SEED - 2, MAX_SEED - 1, MAX_SEED]
    with pytest.raises(SeedRangeError, match=f"largest seed for n=3 is {MAX_SEED - 2}"):
        image_seeds(MAX_SEED - 1, 3)


def test_a_seed_whose_last_image_passes_max_seed_is_a_422_naming_seed() -> None:
    """/generate and /samples share this plan, so neither can report a seed it would refuse."""
    registry = load_registry(MODELS_DIR)
    top = plan_generate(registry, GenerateRequest(n=4, seed=MAX_SEED - 3))
    assert top.seeds == [MAX_SEED - 3, MAX_SEED - 2, MAX_SEED - 1, MAX_SEED]
    assert plan_generate(registry, GenerateRequest(seed=MAX_SEED)).seeds == [MAX_SEED]
    with pytest.raises(RequestError) as info:
        plan_generate(registry, GenerateRequest(n=4, seed=MAX_SEED - 2))
    error = info.value
    assert error.field == "seed" and error.status == 422
    assert f"largest seed for n=4 is {MAX_SEED - 3}" in error.message
    body = json.loads(error.response().body)
    assert body["detail"][0]["loc"] == ["seed"] and body["error"].startswith("seed: ")


def test_labels_by_index_name_and_mixture() -> None:
    assert class_index(3, CLASSES) == 3
    assert class_index("sNeAkEr", CLASSES) == 3
    assert class_index("2", CLASSES) == 2
    np.testing.assert_array_equal(class_vector("Trouser", CLASSES), [0, 1, 0, 0])
    mix = class_vector({"Sneaker": 1.0, "sandal": 3.0}, CLASSES)
    np.testing.assert_allclose(mix, [0, 0, 0.75, 0.25])
    assert describe_label({"Sneaker": 1, "Sandal": 1}, CLASSES) == {"Sandal": 0.5, "Sneaker": 0.5}
    for bad in ("boot", 4, -1, {"Sneaker": 0.0}, {}):
        with pytest.raises(LabelError):
            class_vector(bad, CLASSES)
    with pytest.raises(LabelError, match="Sneaker"):  # the message lists the valid classes
        class_index("boot", CLASSES)


def test_interpolation_hits_both_ends() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(16).astype(np.float32), rng.standard_normal(16).astype(np.float32)
    t = np.linspace(0, 1, 5, dtype=np.float32)
    for fn in (slerp, lerp):
        path = fn(a, b, t)
        assert path.shape == (5, 16) and path.dtype == np.float32
        np.testing.assert_allclose(path[0], a, atol=1e-5)
        np.testing.assert_allclose(path[-1], b, atol=1e-5)
    # slerp keeps the norm between the ends' norms (lerp cuts the corner).
    norms = np.linalg.norm(slerp(a, b, t), axis=1)
    assert norms.min() >= min(np.linalg.norm(a), np.linalg.norm(b)) - 1e-4


def test_provider_setting() -> None:
    assert parse_providers("cuda,cpu") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert parse_providers("cpu") == ["CPUExecutionProvider"]
    assert parse_providers("TensorRT, cuda")[-1] == "CPUExecutionProvider"
    with pytest.raises(SettingsError, match="rocm"):
        parse_providers("rocm")


def test_cuda_sessions_get_the_cudnn_search_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """HEURISTIC unless GAN_CUDNN_CONV_SEARCH says otherwise; other providers get no options."""
    from service.engine import provider_options

    monkeypatch.delenv("GAN_CUDNN_CONV_SEARCH", raising=False)
    cuda = "CUDAExecutionProvider"
    assert provider_options(cuda) == {"cudnn_conv_algo_search": "HEURISTIC"}
    monkeypatch.setenv("GAN_CUDNN_CONV_SEARCH", "Exhaustive")
    assert provider_options(cuda) == {"cudnn_conv_algo_search": "EXHAUSTIVE"}
    assert provider_options("CPUExecutionProvider") == {}
    monkeypatch.setenv("GAN_CUDNN_CONV_SEARCH", "fastest")
    with pytest.raises(SettingsError, match="GAN_CUDNN_CONV_SEARCH='fastest'"):
        provider_options(cuda)


def test_registry_loads_the_shipped_models() -> None:
    registry = load_registry(MODELS_DIR)
    assert set(registry) == {p.name for p in MODELS_DIR.glob(f"*/{CARD_FILE}") for p in [p.parent]}


@pytest.mark.parametrize(
    ("damage", "named_file"),
    [
        (
            lambda f: (f / MODEL_FILE).write_bytes((f / MODEL_FILE).read_bytes()[:500]),
            MODEL_FILE,
        ),
        (lambda f: (f / MODEL_FILE).unlink(), MODEL_FILE),
        (lambda f: (f / CARD_FILE).write_text("{not json"), CARD_FILE),
    ],
    ids=["truncated", "missing-model", "bad-card"],
)
def test_registry_names_the_broken_file(tmp_path: Path, damage, named_file: str) -> None:
    folder = tmp_path / "fashion-dcgan"
    shutil.copytree(MODELS_DIR / "fashion-dcgan", folder)
    damage(folder)
    with pytest.raises(ModelFolderError) as info:
        load_registry(tmp_path)
    assert str(folder / named_file) in str(info.value)


def test_empty_models_dir_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelFolderError, match="no model folders"):
        load_registry(tmp_path)


def test_a_mixed_batch_runs_one_call_per_model_and_keeps_row_order() -> None:
    """The adaptive path's batch function on rows from both models, interleaved."""
    from service.batching.adaptive import run_rows
    from service.batching.wire import WireFormat
    from service.engine import build_engines

    registry = load_registry(MODELS_DIR)
    engines = build_engines(registry, ["CPUExecutionProvider"], threads=1)
    wire = WireFormat([entry.card for entry in registry.values()])
    parts, expected = [], []
    for i in range(6):
        card = wire.cards[i % len(wire.cards)]
        z = np.random.default_rng(i).standard_normal((2, card.latent_dim), dtype=np.float32)
        y = np.eye(card.num_classes, dtype=np.float32)[[i, i + 1]] if card.conditional else None
        parts.append(wire.pack_request(card.name, z, y, 0.0))
        expected.append((card, engines[card.name].run(z, y)))  # this request alone
    answer = run_rows(wire, engines, np.concatenate(parts))
    assert answer.dtype == np.uint8 and len(answer) == 12
    for k, (card, alone) in enumerate(expected):
        images = wire.unpack_answer(answer[2 * k : 2 * k + 2], card.name)
        assert images.shape == alone.shape
        assert int(np.abs(images.astype(int) - alone.astype(int)).max()) <= 1  # batch-invariant


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from service.settings import Settings

    monkeypatch.setenv("GAN_MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("GAN_BATCHING", "adaptive")
    monkeypatch.setenv("GAN_ORT_THREADS", "2")
    assert Settings.from_env().batches_in_flight == 2  # the default
    monkeypatch.setenv("GAN_BATCHES_IN_FLIGHT", "3")
    settings = Settings.from_env()
    assert settings.models_dir == tmp_path
    assert settings.batching == "adaptive" and settings.ort_threads == 2
    assert settings.batches_in_flight == 3 and settings.io_binding is None
    monkeypatch.setenv("GAN_IO_BINDING", "off")
    assert Settings.from_env().io_binding is False
    assert settings.workers == 1  # adaptive: the API workers do no inference
    monkeypatch.setenv("GAN_PROVIDERS", "cpu")
    monkeypatch.setenv("GAN_BATCHING", "auto")
    assert Settings.from_env().batching == "inprocess"  # no GPU provider asked for
    assert Settings.from_env().workers == min(usable_cpus(), 8)  # one per core in-process
    monkeypatch.setenv("GAN_WORKERS", "3")
    assert Settings.from_env().workers == 3
    bad = [
        ("GAN_BATCHING", "sometimes"),
        ("GAN_ORT_THREADS", "-1"),
        ("GAN_BATCHES_IN_FLIGHT", "0"),
        ("GAN_IO_BINDING", "maybe"),
        ("GAN_CUDNN_CONV_SEARCH", "fastest"),
        ("GAN_CONNECTION_SPREAD", "sometimes"),
        ("GAN_BATCH_BUCKETS", "1,two"),
        ("GAN_BATCH_BUCKETS", "0,8"),
    ]
    for name, value in bad:
        monkeypatch.setenv(name, value)
        with pytest.raises(SettingsError, match=name):
            Settings.from_env()
        monkeypatch.delenv(name)


def test_io_binding_gives_the_same_pixels_as_session_run() -> None:
    """The GPU path's IO binding, checked on CPU where it has to match `session.run` exactly."""
    from service.engine import Engine
    from service.registry import load_entry

    entry = load_entry(MODELS_DIR / "fashion-cgan")
    cpu = ["CPUExecutionProvider"]
    assert not Engine(entry, cpu, announce=False).io_binding  # auto: only on a GPU provider
    plain = Engine(entry, cpu, announce=False, io_binding=False)
    bound = Engine(entry, cpu, announce=False, io_binding=True)
    rng = np.random.default_rng(3)
    z = rng.standard_normal((12, 2 * entry.card.latent_dim), dtype=np.float32)[:, ::2]
    y = np.eye(entry.card.num_classes, dtype=np.float32)[rng.integers(0, 10, 12)]
    expected = plain.run_float(np.ascontiguousarray(z), y)
    np.testing.assert_array_equal(bound.run_float(z, y), expected)  # strided z is accepted
    np.testing.assert_array_equal(bound.run(z, y), plain.run(np.ascontiguousarray(z), y))


def test_batches_pad_up_to_the_buckets_with_the_same_pixels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bucketed engine runs the graph at the next bucket and returns only the real rows,
    pixel for pixel what the unpadded run gives; past the largest bucket it runs as is."""
    from service.engine import GPU_BUCKETS, Engine
    from service.registry import load_entry
    from service.settings import batch_buckets

    monkeypatch.delenv("GAN_BATCH_BUCKETS", raising=False)
    assert batch_buckets() is None  # auto: decided per engine
    monkeypatch.setenv("GAN_BATCH_BUCKETS", "16, 4,4")
    assert batch_buckets() == (4, 16)
    monkeypatch.setenv("GAN_BATCH_BUCKETS", "off")
    assert batch_buckets() == ()

    entry = load_entry(MODELS_DIR / "fashion-cgan")
    cpu = ["CPUExecutionProvider"]
    plain = Engine(entry, cpu, announce=False, buckets=())
    monkeypatch.delenv("GAN_BATCH_BUCKETS")
    assert Engine(entry, cpu, announce=False).buckets == ()  # auto on CPU: every row costs
    assert GPU_BUCKETS == (1, 2, 4, 8, 16, 32, 64, 128, 256)
    padded = Engine(entry, cpu, announce=False, buckets=(4, 16))
    shapes: list[int] = []
    run = padded.session.run
    monkeypatch.setattr(
        padded.session,
        "run",
        lambda names, feeds: shapes.append(len(feeds["z"])) or run(names, feeds),
    )
    rng = np.random.default_rng(5)
    for n in (3, 4, 9, 20):
        z = rng.standard_normal((n, entry.card.latent_dim), dtype=np.float32)
        y = np.eye(entry.card.num_classes, dtype=np.float32)[rng.integers(0, 10, n)]
        images = padded.run(z, y)
        assert images.shape[0] == n
        np.testing.assert_array_equal(images, plain.run(z, y))
    assert shapes == [4, 4, 16, 20]


def cpu_settings(batching: str) -> Settings:
    return dataclasses.replace(
        Settings.from_env(), providers=["CPUExecutionProvider"], batching=batching
    )


def test_both_backends_answer_the_seam_with_the_same_pixels() -> None:
    """One request per model through each backend: identical pixels, identical providers."""
    from service.batching import GanGenerator, make_backend
    from service.batching.adaptive import AdaptiveBackend
    from service.batching.inprocess import InProcessBackend
    from service.engine import build_engines

    registry = load_registry(MODELS_DIR)
    inprocess = make_backend(cpu_settings("inprocess"), registry, generator=None)
    # BentoML's local instance of the batching service: the same calls without the HTTP hop.
    local = GanGenerator()
    local.engines = build_engines(registry, ["CPUExecutionProvider"], threads=1)
    adaptive = make_backend(cpu_settings("adaptive"), registry, generator=local)
    assert isinstance(inprocess.backend, InProcessBackend)
    assert isinstance(adaptive.backend, AdaptiveBackend)

    inputs = {}
    for name, entry in registry.items():
        card = entry.card
        y = np.eye(card.num_classes, dtype=np.float32)[:5] if card.conditional else None
        inputs[name] = (latents_from_seed(7, 5, card.latent_dim), y)

    async def through_seam() -> dict[str, tuple[np.ndarray, np.ndarray]]:
        calls = [
            (b.run(name, z, y)) for name, (z, y) in inputs.items() for b in (inprocess, adaptive)
        ]
        answers = await asyncio.gather(*calls)
        return {name: (answers[2 * k], answers[2 * k + 1]) for k, name in enumerate(inputs)}

    for name, (a, b) in asyncio.run(through_seam()).items():
        im = registry[name].card.image
        assert a.dtype == np.uint8 and a.shape == (5, im.channels, im.height, im.width)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, local.engines[name].run(*inputs[name]))
    cpu = {name: "CPUExecutionProvider" for name in registry}
    assert asyncio.run(inprocess.providers()) == asyncio.run(adaptive.providers()) == cpu


@pytest.mark.parametrize("batching", ["inprocess", "adaptive"])
def test_the_service_graph_is_the_same_in_every_batching_mode(batching: str) -> None:
    """A bento records the services declared at build time and serves them in any mode, so
    the declaration must not depend on where it was built (`GAN_BATCHING` there)."""
    code = "import service.app as app; print(sorted(app.GanService.all_services()))"
    env = {**os.environ, "GAN_BATCHING": batching, "GAN_PROVIDERS": "cpu"}
    result = run_python(code, env)
    assert result.stdout.strip().splitlines()[-1] == "['gan_generator', 'gan_service']"


def test_api_signatures_are_computed_once_and_match_the_functions() -> None:
    """BentoML reads `inspect.signature` of an API function on every request; each one
    carries its own `__signature__` (service/signatures.py), equal to what inspect computes
    from the function itself."""
    code = (
        "import inspect, service.app as app\n"
        "for svc in (app.GanService, app.GanGenerator):\n"
        "    for name, api in svc.apis.items():\n"
        "        kept = api.func.__dict__['__signature__']\n"
        "        del api.func.__signature__\n"
        "        assert kept == inspect.signature(api.func), name\n"
        "        assert inspect.signature(api.func) is not kept, name\n"
        "        print(name)\n"
    )
    result = run_python(code)
    assert {"generate", "samples", "interpolate", "walk", "generate_batch"} <= set(
        result.stdout.split()
    )
