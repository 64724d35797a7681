"""POST /walk: latent walks through waypoints, against a real `bentoml serve`."""

from __future__ import annotations

import bentoml
import numpy as np
import pytest
import requests
from PIL import Image

from harness.live_server import LiveServer
from service.walk import MAX_FRAMES, frame_count
from tests.conftest import decode, max_diff, model_cards

CARDS = model_cards()
CGAN = next(name for name, card in CARDS.items() if card.conditional)
DCGAN = next(name for name, card in CARDS.items() if not card.conditional)
TIMEOUT = 60
SIZE = 28


def post(server: LiveServer, route: str, body: dict) -> requests.Response:
    return requests.post(f"{server.url}{route}", json=body, timeout=TIMEOUT)


def strip_frames(strip: Image.Image, count: int) -> np.ndarray:
    """Cut a PNG strip (one row, 2 px gaps) into [count, H, W] frames."""
    pixels = np.asarray(strip)
    return np.stack(
        [pixels[2 : 2 + SIZE, 2 + i * (SIZE + 2) : 2 + i * (SIZE + 2) + SIZE] for i in range(count)]
    )


def animation_frames(image: Image.Image) -> tuple[np.ndarray, list[int]]:
    frames, durations = [], []
    for i in range(image.n_frames):
        image.seek(i)
        frames.append(np.asarray(image.convert("L")))
        durations.append(image.info["duration"])
    return np.stack(frames), durations


THREE = [{"seed": 1, "label": "Sneaker"}, {"seed": 2, "label": "Sandal"}, {"seed": 3}]


@pytest.mark.parametrize("loop", [False, True])
def test_walk_strip_passes_through_every_waypoint(
    server: LiveServer, reference, loop: bool
) -> None:
    body = {"model": CGAN, "points": THREE, "steps": 5, "loop": loop}
    r = post(server, "/walk", body)
    assert r.status_code == 200, r.text
    count = frame_count(3, 5, loop)
    assert count == (12 if loop else 9)
    assert r.headers["x-frames"] == str(count)
    strip = decode(r.content)
    assert strip.format == "PNG" and strip.size == (count * (SIZE + 2) + 2, SIZE + 4)
    frames = strip_frames(strip, count)
    card = CARDS[CGAN]
    # Waypoint k sits at frame k * (steps - 1); the third carries the second's class.
    labels = [card.class_names.index(c) for c in ("Sneaker", "Sandal", "Sandal")]
    for k in range(3):
        expected = reference.from_seed(CGAN, k + 1, 1, labels=[labels[k]])[0, 0]
        assert max_diff(frames[4 * k], expected) <= 1, k
    assert not np.array_equal(frames[1], frames[0])  # frames between are not copies


def test_two_point_walk_is_interpolate(server: LiveServer) -> None:
    ends = {"start": {"seed": 4}, "end": {"seed": 9}}
    common = {"model": DCGAN, "steps": 7, "method": "lerp", "truncation": 0.9}
    walk = post(server, "/walk", common | {"points": list(ends.values())})
    strip = post(server, "/interpolate", common | ends)
    assert walk.status_code == strip.status_code == 200, walk.text
    assert max_diff(np.asarray(decode(walk.content)), np.asarray(decode(strip.content))) <= 1


@pytest.mark.parametrize("fmt", ["gif", "webp"])
def test_animations_time_each_frame(server: LiveServer, fmt: str) -> None:
    points = [{"seed": 10}, {"seed": 11}, {"seed": 12}]
    body = {"model": DCGAN, "points": points, "steps": 4, "loop": True}
    strip = strip_frames(decode(post(server, "/walk", body).content), 9)
    r = post(server, "/walk", body | {"format": fmt, "frame_ms": 50, "hold_ms": 300})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == f"image/{fmt}"
    image = decode(r.content)
    assert image.format == fmt.upper() and image.is_animated and image.size == (SIZE, SIZE)
    frames, durations = animation_frames(image)
    # Three waypoint frames held 350 ms, six more at 50 ms; Pillow's GIF writer may merge
    # identical neighbours (adding their times), so count time.
    assert sum(durations) == 3 * 350 + 6 * 50
    if fmt == "webp":  # lossless: every frame is the strip's frame
        assert durations == [350, 50, 50] * 3
        assert np.array_equal(frames, strip)


def test_walk_level_label_and_mixtures(server: LiveServer, reference) -> None:
    card = CARDS[CGAN]
    points = [{"seed": 20}, {"seed": 21, "label": {"Bag": 1, "Trouser": 1}}]
    r = post(server, "/walk", {"model": CGAN, "points": points, "label": "Bag", "steps": 3})
    assert r.status_code == 200, r.text
    frames = strip_frames(decode(r.content), 3)
    y = np.zeros((2, card.num_classes), np.float32)
    y[0, card.class_names.index("Bag")] = 1
    y[1, card.class_names.index("Bag")] = y[1, card.class_names.index("Trouser")] = 0.5
    z = np.stack([reference.latent(s, card.latent_dim) for s in (20, 21)])
    expected = reference.images(CGAN, z, y)[:, 0]
    assert max_diff(frames[[0, 2]], expected) <= 1


BAD_WALKS = [
    # (body, status, the field the message names)
    ({"model": DCGAN, "points": [{"seed": 1}]}, 400, "points"),
    ({"model": DCGAN, "points": [{"seed": 1}] * 17}, 400, "points"),
    ({"model": DCGAN, "points": [{"seed": 1}] * 16, "steps": 20}, 400, "steps"),
    ({"model": DCGAN, "points": [{"seed": 1}] * 2, "steps": 65}, 400, "steps"),
    ({"model": DCGAN, "points": [{"seed": 1}] * 2, "steps": "5"}, 400, "steps"),
    ({"model": DCGAN, "points": [{"seed": 1}] * 2, "frame_ms": 10}, 400, "frame_ms"),
    ({"model": DCGAN, "points": [{"seed": 1}] * 2, "hold_ms": -1}, 400, "hold_ms"),
    ({"model": DCGAN, "points": [{"seed": 1}] * 2, "format": "bmp"}, 400, "format"),
    ({"model": DCGAN, "points": [{"seed": 1}, {"seed": 2, "z": [0.0]}]}, 400, "points"),
    ({"model": DCGAN, "points": [{"seed": 1}, {"z": [0.0] * 3}]}, 422, "points.1.z"),
    ({"model": DCGAN, "points": [{"seed": 1}, {"seed": 2, "label": 1}]}, 422, "points.1.label"),
    ({"model": DCGAN, "points": [{"seed": 1}, {"seed": 2}], "label": 1}, 422, "label"),
    ({"model": CGAN, "points": [{"seed": 1}, {"seed": 2}]}, 422, "label"),
    ({"model": CGAN, "points": [{"seed": 1}, {"seed": 2, "label": "x"}]}, 422, "points.1.label"),
    ({"model": "nope", "points": [{"seed": 1}, {"seed": 2}]}, 404, "model"),
]


@pytest.mark.parametrize(("body", "status", "field"), BAD_WALKS)
def test_bad_walk_gets_a_4xx_naming_the_field(
    server: LiveServer, body: dict, status: int, field: str
) -> None:
    r = post(server, "/walk", body)
    assert r.status_code == status, r.text
    error = r.json()
    assert error["error"].startswith(field), error
    assert ".".join(str(p) for p in error["detail"][0]["loc"]).startswith(field)


def test_most_frames_fit_one_request(server: LiveServer) -> None:
    points = [{"seed": s} for s in range(16)]
    steps = MAX_FRAMES // 16 + 1  # 16 segments when looping: exactly MAX_FRAMES frames
    r = post(server, "/walk", {"model": DCGAN, "points": points, "steps": steps, "loop": True})
    assert r.status_code == 200, r.text
    assert r.headers["x-frames"] == str(MAX_FRAMES)


def test_bentoml_client_walks(server: LiveServer) -> None:
    with bentoml.SyncHTTPClient(server.url) as client:
        walk = client.walk(
            {"model": DCGAN, "points": [{"seed": 1}, {"seed": 2}], "steps": 3, "format": "gif"}
        )
    assert isinstance(walk, Image.Image) and walk.format == "GIF" and walk.n_frames >= 2
