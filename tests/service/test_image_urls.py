"""GET /image/{model}: the /generate image at a cacheable URL, against a real `bentoml serve`."""

from __future__ import annotations

import re

import numpy as np
import pytest
import requests

from harness.live_server import LiveServer
from service.image_urls import IMMUTABLE, etag_matches, parse_label
from tests.conftest import decode, grid_tiles, max_diff, model_cards

CARDS = model_cards()
CGAN = next(name for name, card in CARDS.items() if card.conditional)
DCGAN = next(name for name, card in CARDS.items() if not card.conditional)
TIMEOUT = 30


def get(server: LiveServer, path: str, headers: dict | None = None) -> requests.Response:
    return requests.get(f"{server.url}{path}", headers=headers or {}, timeout=TIMEOUT)


def post(server: LiveServer, route: str, body: dict) -> requests.Response:
    return requests.post(f"{server.url}{route}", json=body, timeout=TIMEOUT)


def images_generated(server: LiveServer, model: str) -> float:
    metrics = get(server, "/metrics").text
    found = re.search(rf'^gan_images_generated_total{{model="{model}"}} (\S+)$', metrics, re.M)
    return float(found.group(1)) if found else 0.0


def test_get_answers_the_bytes_of_post_generate(server: LiveServer) -> None:
    r = get(server, f"/image/{CGAN}?seed=7&label=Sneaker&n=16&truncation=0.8&format=webp")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/webp"
    assert r.headers["x-seed"] == "7" and r.headers["x-model"] == CGAN
    assert r.headers["cache-control"] == IMMUTABLE
    body = {"model": CGAN, "seed": 7, "label": "Sneaker", "n": 16, "truncation": 0.8}
    assert r.content == post(server, "/generate", body | {"format": "webp"}).content


def test_get_pixels_match_client_side_onnxruntime(server: LiveServer, reference) -> None:
    r = get(server, f"/image/{DCGAN}?seed=1234&n=9")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    tiles = grid_tiles(np.asarray(decode(r.content)), 9, 28, 28)
    assert max_diff(tiles, reference.from_seed(DCGAN, 1234, 9)[:, 0]) <= 1


def test_blend_in_a_url_is_the_json_mixture(server: LiveServer) -> None:
    names = CARDS[CGAN].class_names
    sneaker, sandal = names.index("Sneaker"), names.index("Sandal")
    by_index = get(server, f"/image/{CGAN}?seed=5&label={sneaker}:1,{sandal}:3")
    by_name = get(server, f"/image/{CGAN}?seed=5&label=Sneaker:0.25,Sandal:0.75")
    posted = post(
        server, "/generate", {"model": CGAN, "seed": 5, "label": {"Sneaker": 1, "Sandal": 3}}
    )
    assert by_index.status_code == by_name.status_code == posted.status_code == 200
    assert by_index.content == by_name.content == posted.content
    assert by_index.headers["etag"] == by_name.headers["etag"]


def test_etag_names_the_answer(server: LiveServer) -> None:
    """The same answer (however the label is spelled) has one ETag; any other answer another."""
    same = [
        f"/image/{CGAN}?seed=3&n=4&label=Sneaker",
        f"/image/{CGAN}?label=sneaker&n=4&seed=3",
        f"/image/{CGAN}?seed=3&n=4&label={CARDS[CGAN].class_names.index('Sneaker')}",
        f"/image/{CGAN}?seed=3&n=4&label=Sneaker:2&truncation=1",
    ]
    tags = {get(server, path).headers["etag"] for path in same}
    assert len(tags) == 1
    tag = tags.pop()
    assert re.fullmatch(r'"[0-9a-f]{40}"', tag)  # strong: no W/ prefix
    others = [
        f"/image/{CGAN}?seed=4&n=4&label=Sneaker",
        f"/image/{CGAN}?seed=3&n=5&label=Sneaker",
        f"/image/{CGAN}?seed=3&n=4&label=Sandal",
        f"/image/{CGAN}?seed=3&n=4",
        f"/image/{CGAN}?seed=3&n=4&label=Sneaker&truncation=0.9",
        f"/image/{CGAN}?seed=3&n=4&label=Sneaker&format=webp",
        f"/image/{DCGAN}?seed=3&n=4",
    ]
    other_tags = [get(server, path).headers["etag"] for path in others]
    assert tag not in other_tags and len(set(other_tags)) == len(others)


def test_if_none_match_gets_a_304_without_running_the_model(server: LiveServer) -> None:
    path = f"/image/{DCGAN}?seed=99&n=8"
    first = get(server, path)
    tag = first.headers["etag"]
    before = images_generated(server, DCGAN)
    for header in (tag, f"W/{tag}", f'"0000", {tag}', "*"):
        r = get(server, path, {"If-None-Match": header})
        assert r.status_code == 304, header
        assert r.content == b""
        assert r.headers["etag"] == tag and r.headers["cache-control"] == IMMUTABLE
    assert images_generated(server, DCGAN) == before
    changed = get(server, path, {"If-None-Match": '"0000"'})
    assert changed.status_code == 200 and changed.content == first.content
    assert images_generated(server, DCGAN) == before + 8


def test_without_a_seed_the_answer_is_not_stored(server: LiveServer) -> None:
    r = get(server, f"/image/{DCGAN}?n=2&format=jpeg")
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    assert "etag" not in r.headers
    seed = int(r.headers["x-seed"])
    again = get(server, f"/image/{DCGAN}?n=2&format=jpeg&seed={seed}")
    assert again.content == r.content  # the reported seed reproduces it
    # An unseeded request ignores If-None-Match: there is nothing it could match.
    assert get(server, f"/image/{DCGAN}", {"If-None-Match": "*"}).status_code == 200


# (query, status, the field the message names, the same request as a JSON body or None;
# JSON is strict about types, so "many" is a type error there and a parse error here)
BAD_QUERIES = [
    (f"{CGAN}?n=0", 400, "n", {"model": CGAN, "n": 0}),
    (f"{CGAN}?n=65", 400, "n", {"model": CGAN, "n": 65}),
    (f"{CGAN}?n=many", 400, "n", {"model": CGAN, "n": "many"}),
    (f"{CGAN}?seed=-1", 400, "seed", {"model": CGAN, "seed": -1}),
    (f"{CGAN}?seed=1.5", 400, "seed", {"model": CGAN, "seed": "1.5"}),
    (f"{CGAN}?truncation=0", 400, "truncation", {"model": CGAN, "truncation": 0}),
    (f"{CGAN}?truncation=nan", 400, "truncation", {"model": CGAN, "truncation": "nan"}),
    (f"{CGAN}?format=bmp", 400, "format", {"model": CGAN, "format": "bmp"}),
    (f"{CGAN}?seeds=1", 400, "seeds", {"model": CGAN, "seeds": 1}),
    (f"{CGAN}?label=Sneaker:-1", 400, "label", {"model": CGAN, "label": {"Sneaker": -1}}),
    ("nope?seed=1", 404, "model", {"model": "nope", "seed": 1}),
    (f"{CGAN}?label=Boot", 422, "label", {"model": CGAN, "label": "Boot"}),
    (f"{CGAN}?label=10", 422, "label", {"model": CGAN, "label": 10}),
    (f"{DCGAN}?label=0", 422, "label", {"model": DCGAN, "label": 0}),
    (f"{CGAN}?seed=4294967295&n=2", 422, "seed", {"model": CGAN, "seed": 2**32 - 1, "n": 2}),
    # Only a URL can get these wrong.
    (f"{CGAN}?n=1&n=2", 400, "n", None),
    (f"{CGAN}?model={DCGAN}", 400, "model", None),
    (f"{CGAN}?z=0", 400, "z", None),
    (f"{CGAN}?label=Sneaker:", 400, "label", None),
    (f"{CGAN}?label=:1", 400, "label", None),
]


@pytest.mark.parametrize(("query", "status", "field", "body"), BAD_QUERIES)
def test_bad_query_gets_the_post_error_shape(
    server: LiveServer, query: str, status: int, field: str, body: dict | None
) -> None:
    r = get(server, f"/image/{query}")
    assert r.status_code == status, r.text
    error = r.json()
    assert set(error) == {"error", "detail"}
    assert error["error"].startswith(field), error
    assert any(d["loc"][0] == field for d in error["detail"]), error
    if body is not None:  # the same request as JSON gets the same status, for the same field
        posted = post(server, "/generate", body)
        assert posted.status_code == status
        assert [d["loc"] for d in posted.json()["detail"]] == [d["loc"] for d in error["detail"]]
        if status != 400:  # the same message too, where no query string is parsed
            assert posted.json()["error"] == error["error"]


def test_openapi_documents_the_get_routes(server: LiveServer) -> None:
    spec = get(server, "/docs.json").json()
    assert "get" in spec["paths"]["/models"]
    image = spec["paths"]["/image/{model}"]["get"]
    params = {p["name"]: p for p in image["parameters"]}
    assert {"model", "n", "seed", "label", "truncation", "format", "If-None-Match"} <= set(params)
    assert params["n"]["schema"]["maximum"] == 64 and params["n"]["schema"]["minimum"] == 1
    assert params["format"]["schema"]["enum"] == ["png", "jpeg", "webp"]
    assert {"200", "304", "400", "404", "422"} <= set(image["responses"])
    assert "image/png" in image["responses"]["200"]["content"]
    schemas = spec["components"]["schemas"]
    assert {"ErrorBody", "WalkRequest"} <= set(schemas)
    assert "post" in spec["paths"]["/walk"]


def test_models_is_unchanged_by_the_move(server: LiveServer) -> None:
    body = get(server, "/models").json()
    assert set(body) == {"default", "batching", "models"}
    assert {m["name"] for m in body["models"]} == set(CARDS)


def test_parse_label_and_etag_matching() -> None:
    assert parse_label("Sneaker") == "Sneaker"
    assert parse_label("T-shirt/top:1,7:0.5") == {"T-shirt/top": "1", "7": "0.5"}
    assert not etag_matches(None, '"a"')
    assert etag_matches('W/"a", "b"', '"a"')
    assert not etag_matches('"ab"', '"a"')
