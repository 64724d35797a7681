"""Every endpoint of a real `bentoml serve` on loopback, checked against client-side ORT."""

from __future__ import annotations

import base64
import math
import re
import time

import bentoml
import numpy as np
import pytest
import requests
from PIL import Image

from harness.live_server import LiveServer
from tests.conftest import decode, grid_tiles, max_diff, model_cards, model_name

CARDS = model_cards()
CGAN = model_name(conditional=True, cards=CARDS)
DCGAN = model_name(conditional=False, cards=CARDS)
TIMEOUT = 30


def post(server: LiveServer, route: str, body: dict) -> requests.Response:
    return requests.post(f"{server.url}{route}", json=body, timeout=TIMEOUT)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image)


def grid_size(n: int, h: int = 28, w: int = 28, padding: int = 2) -> tuple[int, int]:
    columns = math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    return columns * (w + padding) + padding, rows * (h + padding) + padding


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
@pytest.mark.parametrize("model", sorted(CARDS))
def test_generate_formats_and_grid_size(server: LiveServer, model: str, fmt: str) -> None:
    r = post(server, "/generate", {"model": model, "n": 6, "seed": 3, "format": fmt})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == f"image/{fmt}"
    image = decode(r.content)
    assert image.format == fmt.upper()
    assert image.size == grid_size(6)
    if fmt == "webp":  # WebP has no grey mode: Pillow decodes it as RGB with R = G = B
        rgb = np.asarray(image)
        assert image.mode == "RGB" and (rgb[..., 0] == rgb[..., 2]).all()
    else:
        assert image.mode == "L"  # one channel, as the cards say


def test_default_request_is_one_png_image_of_the_default_model(server: LiveServer) -> None:
    r = post(server, "/generate", {})
    assert r.status_code == 200, r.text
    image = decode(r.content)
    assert image.format == "PNG" and image.size == (28, 28)
    assert r.headers["x-model"] == sorted(CARDS)[0]
    # No seed given: the one drawn is reported back and reproduces the image.
    seed = int(r.headers["x-seed"])
    again = post(server, "/generate", {"seed": seed})
    assert again.content == r.content


def test_same_seed_same_image_different_seed_different_image(server: LiveServer) -> None:
    a = post(server, "/generate", {"model": DCGAN, "n": 4, "seed": 11})
    b = post(server, "/generate", {"model": DCGAN, "n": 4, "seed": 11})
    c = post(server, "/generate", {"model": DCGAN, "n": 4, "seed": 12})
    assert a.content == b.content
    assert not np.array_equal(pixels(decode(a.content)), pixels(decode(c.content)))


@pytest.mark.parametrize("model", sorted(CARDS))
def test_served_grid_matches_client_side_numpy_and_onnxruntime(
    server: LiveServer, reference, model: str
) -> None:
    """The README recipe: image i = ORT(default_rng(seed + i).standard_normal(...))."""
    n, seed = 9, 1234
    r = post(server, "/generate", {"model": model, "n": n, "seed": seed})
    tiles = grid_tiles(pixels(decode(r.content)), n, 28, 28)
    expected = reference.from_seed(model, seed, n)[:, 0]
    assert max_diff(tiles, expected) <= 1


def test_single_image_matches_batch_of_one(server: LiveServer, reference) -> None:
    r = post(
        server, "/generate", {"model": CGAN, "seed": 77, "label": "Sneaker", "truncation": 0.7}
    )
    sneaker = CARDS[CGAN].class_names.index("Sneaker")
    expected = reference.from_seed(CGAN, 77, 1, labels=[sneaker], psi=0.7)[0, 0]
    assert max_diff(pixels(decode(r.content)), expected) <= 1


def test_labels_by_name_index_and_mixture(server: LiveServer, reference) -> None:
    card = CARDS[CGAN]
    by_name = post(server, "/generate", {"model": CGAN, "seed": 5, "label": "sNeAkEr"})
    by_index = post(
        server,
        "/generate",
        {
            "model": CGAN,
            "seed": 5,
            "label": card.class_names.index("Sneaker"),
        },
    )
    assert by_name.status_code == by_index.status_code == 200
    assert by_name.content == by_index.content
    mix = {"Sneaker": 0.5, "Sandal": 0.5}
    r = post(server, "/generate", {"model": CGAN, "seed": 5, "label": mix})
    assert r.status_code == 200, r.text
    y = np.zeros((1, card.num_classes), np.float32)
    y[0, card.class_names.index("Sneaker")] = y[0, card.class_names.index("Sandal")] = 0.5
    expected = reference.images(CGAN, reference.latent(5, card.latent_dim)[None], y)[0, 0]
    assert max_diff(pixels(decode(r.content)), expected) <= 1


def test_explicit_z_reproduces_the_seeded_image(server: LiveServer) -> None:
    card = CARDS[DCGAN]
    z = np.random.default_rng(21).standard_normal(card.latent_dim, dtype=np.float32)
    by_z = post(server, "/generate", {"model": DCGAN, "z": [z.tolist()]})
    by_seed = post(server, "/generate", {"model": DCGAN, "seed": 21})
    assert by_z.status_code == 200, by_z.text
    assert "x-seed" not in by_z.headers
    assert max_diff(pixels(decode(by_z.content)), pixels(decode(by_seed.content))) <= 1


def test_samples_returns_each_image_with_its_seed_and_label(server: LiveServer) -> None:
    r = post(server, "/samples", {"model": CGAN, "n": 3, "seed": 40})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == CGAN and len(body["images"]) == 3
    grid = pixels(decode(post(server, "/generate", {"model": CGAN, "n": 3, "seed": 40}).content))
    tiles = grid_tiles(grid, 3, 28, 28)
    for i, sample in enumerate(body["images"]):
        assert sample["seed"] == 40 + i
        assert sample["label"] == CARDS[CGAN].class_names[i % CARDS[CGAN].num_classes]
        image = decode(base64.b64decode(sample["image"]))
        assert image.size == (28, 28) and image.mode == "L"
        assert max_diff(pixels(image), tiles[i]) == 0
    labelled = post(server, "/samples", {"model": CGAN, "n": 2, "seed": 1, "label": 2}).json()
    assert [s["label"] for s in labelled["images"]] == [CARDS[CGAN].class_names[2]] * 2
    plain = post(server, "/samples", {"model": DCGAN, "n": 2, "seed": 1, "format": "jpeg"}).json()
    assert [s["label"] for s in plain["images"]] == [None, None]


def test_interpolate_png_strip(server: LiveServer, reference) -> None:
    r = post(
        server,
        "/interpolate",
        {"model": DCGAN, "start": {"seed": 1}, "end": {"seed": 2}, "steps": 5, "method": "lerp"},
    )
    assert r.status_code == 200, r.text
    strip = decode(r.content)
    assert strip.format == "PNG" and strip.size == (5 * 30 + 2, 32)
    card = CARDS[DCGAN]
    ends = reference.images(DCGAN, np.stack([reference.latent(s, card.latent_dim) for s in (1, 2)]))
    frames = np.asarray(strip)
    assert max_diff(frames[2:30, 2:30], ends[0, 0]) <= 1  # first frame is the start seed
    assert max_diff(frames[2:30, 4 * 30 + 2 : 4 * 30 + 30], ends[1, 0]) <= 1


def test_interpolate_gif_between_classes(server: LiveServer) -> None:
    body = {
        "model": CGAN,
        "start": {"seed": 3, "label": "Sandal"},
        "end": {"seed": 3, "label": "Sneaker"},
        "steps": 6,
        "format": "gif",
    }
    r = post(server, "/interpolate", body)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/gif"
    gif = decode(r.content)
    assert gif.format == "GIF" and gif.size == (28, 28)
    # Forward then back, ends not repeated: 2 * steps - 2 frames of 80 ms. Pillow merges
    # identical consecutive frames (adding their durations), so count time, not frames.
    durations = []
    for i in range(gif.n_frames):
        gif.seek(i)
        durations.append(gif.info["duration"])
    assert sum(durations) == (2 * 6 - 2) * 80
    assert 2 <= gif.n_frames <= 2 * 6 - 2


def test_models_lists_cards_with_the_provider_in_use(server: LiveServer) -> None:
    r = requests.get(f"{server.url}/models", timeout=TIMEOUT)
    assert r.status_code == 200
    body = r.json()
    assert {m["name"] for m in body["models"]} == set(CARDS)
    for m in body["models"]:
        assert m["provider"] in (
            "CPUExecutionProvider",
            "CUDAExecutionProvider",
            "TensorrtExecutionProvider",
        )
        assert m["sha256"] == CARDS[m["name"]].sha256
        assert m["class_names"] == CARDS[m["name"]].class_names
    assert body["default"] == sorted(CARDS)[0]


def test_health_metrics_and_openapi(server: LiveServer) -> None:
    assert requests.get(f"{server.url}/livez", timeout=TIMEOUT).status_code == 200
    assert requests.get(f"{server.url}/readyz", timeout=TIMEOUT).status_code == 200
    post(server, "/generate", {"model": DCGAN, "n": 2, "seed": 1})
    metrics = requests.get(f"{server.url}/metrics", timeout=TIMEOUT).text
    for name in (
        "gan_images_generated_total",
        "gan_batch_images_bucket",
        "gan_inference_seconds_bucket",
        "gan_queue_seconds_bucket",
        "bentoml_service_request_duration_seconds_bucket",
    ):
        assert name in metrics, name
    assert f'gan_images_generated_total{{model="{DCGAN}"}}' in metrics
    spec = requests.get(f"{server.url}/docs.json", timeout=TIMEOUT).json()
    assert {"/generate", "/samples", "/interpolate"} <= set(spec["paths"])
    schemas = spec["components"]["schemas"]
    assert schemas["GenerateRequest"]["example"]["n"] == 16
    assert "example" in schemas["InterpolateRequest"] and "example" in schemas["SamplesResponse"]


def gc_pause_count(metrics: str, generation: int) -> float:
    pattern = rf'^gan_gc_pause_seconds_count\{{generation="{generation}"[^}}]*\}} (\S+)$'
    return sum(float(v) for v in re.findall(pattern, metrics, flags=re.MULTILINE))


@pytest.mark.parametrize("fixture", ["server", "adaptive_server"])
def test_workers_freeze_their_startup_heap_and_export_gc_pauses(
    request: pytest.FixtureRequest, fixture: str
) -> None:
    live: LiveServer = request.getfixturevalue(fixture)
    frozen = [int(n) for n in re.findall(r"froze (\d+) start-up objects", live.output())]
    # Every API worker, and in adaptive mode the batching process too, froze a real heap.
    assert frozen and min(frozen) > 10_000, live.output()[-2000:]
    if fixture == "adaptive_server":
        assert len(frozen) >= 2
    assert "young generation collected every 7000 allocations" in live.output()
    # The freeze began with a full collection; the workers flush pauses once a second.
    deadline = time.monotonic() + 10
    while True:
        metrics = requests.get(f"{live.url}/metrics", timeout=TIMEOUT).text
        if gc_pause_count(metrics, 2) >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert gc_pause_count(metrics, 2) >= 1, metrics[-2000:]


BAD_INPUTS = [
    # (route, body, status, field the message must name)
    ("/generate", {"n": 0}, 400, "n"),
    ("/generate", {"n": 65}, 400, "n"),
    ("/generate", {"n": "many"}, 400, "n"),
    ("/generate", {"seed": -1}, 400, "seed"),
    ("/generate", {"truncation": 0}, 400, "truncation"),
    ("/generate", {"truncation": 1.5}, 400, "truncation"),
    ("/generate", {"format": "bmp"}, 400, "format"),
    ("/generate", {"seeds": 1}, 400, "seeds"),
    ("/generate", {"seed": 1, "z": [[0.0] * 100]}, 400, "seed"),
    ("/generate", {"z": [[0.0] * 3]}, 422, "z"),
    ("/generate", {"n": 2, "z": [[0.0] * 100]}, 400, "z"),
    ("/generate", {"model": "nope"}, 404, "model"),
    ("/generate", {"model": CGAN, "label": "Boot"}, 422, "label"),
    ("/generate", {"model": CGAN, "label": 10}, 422, "label"),
    ("/generate", {"model": CGAN, "label": {"Sneaker": -1}}, 400, "label"),
    ("/generate", {"model": CGAN, "label": True}, 400, "label"),
    ("/generate", {"model": CGAN, "label": 1.5}, 400, "label"),
    ("/generate", {"model": DCGAN, "label": 0}, 422, "label"),
    ("/samples", {"n": 100}, 400, "n"),
    ("/interpolate", {"start": {"seed": 1}}, 400, "end"),
    ("/interpolate", {"start": {"seed": 1, "z": [0.0]}, "end": {"seed": 2}}, 400, "start"),
    (
        "/interpolate",
        {"model": DCGAN, "start": {"seed": 1}, "end": {"seed": 2}, "steps": 1},
        400,
        "steps",
    ),
    (
        "/interpolate",
        {"model": DCGAN, "start": {"seed": 1}, "end": {"seed": 2}, "steps": 65},
        400,
        "steps",
    ),
    (
        "/interpolate",
        {"model": DCGAN, "start": {"seed": 1}, "end": {"seed": 2}, "method": "cubic"},
        400,
        "method",
    ),
    (
        "/interpolate",
        {"model": DCGAN, "start": {"z": [0.0] * 5}, "end": {"seed": 2}},
        422,
        "start.z",
    ),
    (
        "/interpolate",
        {"model": DCGAN, "start": {"seed": 1, "label": 1}, "end": {"seed": 2}},
        422,
        "start.label",
    ),
    ("/interpolate", {"model": CGAN, "start": {"seed": 1}, "end": {"seed": 2}}, 422, "label"),
    (
        "/interpolate",
        {"model": CGAN, "start": {"seed": 1, "label": "x"}, "end": {"seed": 2}},
        422,
        "start.label",
    ),
]


@pytest.mark.parametrize(("route", "body", "status", "field"), BAD_INPUTS)
def test_bad_input_gets_a_4xx_naming_the_field(
    server: LiveServer, route: str, body: dict, status: int, field: str
) -> None:
    r = post(server, route, body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert field in error, error
    if "label" in field and body.get("model") == CGAN and status == 422:
        assert "Sneaker" in error  # lists the valid classes


def test_non_finite_latent_is_a_400(server: LiveServer) -> None:
    raw = '{"z": [[' + ", ".join(["1e400"] * 100) + "]]}"  # JSON overflow -> inf
    r = requests.post(
        f"{server.url}/generate",
        data=raw,
        headers={"content-type": "application/json"},
        timeout=TIMEOUT,
    )
    assert r.status_code == 400, r.text
    assert "z" in r.json()["error"]


def test_malformed_json_is_a_400(server: LiveServer) -> None:
    r = requests.post(
        f"{server.url}/generate",
        data=b"{n: 1",
        headers={"content-type": "application/json"},
        timeout=TIMEOUT,
    )
    assert r.status_code == 400
    assert "JSON" in r.json()["error"]


def test_bentoml_client(server: LiveServer) -> None:
    with bentoml.SyncHTTPClient(server.url) as client:
        assert client.is_ready()
        grid = client.generate({"model": DCGAN, "n": 4, "seed": 9})
        assert isinstance(grid, Image.Image) and grid.size == grid_size(4)
        direct = decode(post(server, "/generate", {"model": DCGAN, "n": 4, "seed": 9}).content)
        assert np.array_equal(np.asarray(grid), np.asarray(direct))
        samples = client.samples({"model": CGAN, "n": 2, "seed": 9, "label": "Bag"})
        assert [s["label"] for s in samples["images"]] == ["Bag", "Bag"]
        gif = client.interpolate(
            {"model": DCGAN, "start": {"seed": 1}, "end": {"seed": 2}, "format": "gif"}
        )
        assert gif.format == "GIF"
        with pytest.raises(bentoml.exceptions.BentoMLException) as info:
            client.generate({"n": 100})
        assert "n" in str(info.value)
