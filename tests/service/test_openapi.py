"""The served OpenAPI document validates as OpenAPI 3.0 and says what the service does; the
docs page at `/` loads nothing from another host."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
import requests
from openapi_spec_validator import validate

from harness.live_server import LiveServer
from tests.conftest import model_cards, model_name

CGAN = model_name(conditional=True)
DCGAN = model_name(conditional=False)
CARDS = model_cards()
TIMEOUT = 30
STATUSES = {"200", "400", "401", "404", "408", "413", "415", "422", "500", "503"}


@pytest.fixture(scope="module")
def spec(server: LiveServer) -> dict:
    return requests.get(f"{server.url}/docs.json", timeout=TIMEOUT).json()


def component(spec: dict, name: str) -> dict:
    return spec["components"]["schemas"][name]


def test_the_document_is_valid_openapi(spec: dict) -> None:
    assert spec["openapi"].startswith("3.0")
    validate(spec)  # raises OpenAPIValidationError, naming the offending keyword


@pytest.mark.parametrize("route", ["/generate", "/samples", "/interpolate"])
def test_every_status_is_documented_with_its_body(spec: dict, route: str) -> None:
    responses = spec["paths"][route]["post"]["responses"]
    assert set(responses) >= STATUSES, sorted(responses)
    for status in STATUSES - {"200"}:
        schema = responses[status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Error"}, (status, schema)
    assert responses["503"]["headers"]["Retry-After"]["required"] is True
    assert "WWW-Authenticate" in responses["401"]["headers"]
    error = component(spec, "Error")
    assert error["properties"]["detail"]["type"] == "array"  # a list, as the bodies are


def test_request_bodies_are_split_per_model(spec: dict) -> None:
    body = spec["paths"]["/generate"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/GenerateRequest"}
    variants = [v["$ref"].rsplit("/", 1)[1] for v in component(spec, "GenerateRequest")["oneOf"]]
    assert variants == [f"GenerateRequest.{name}" for name in CARDS]
    for name, card in CARDS.items():
        props = component(spec, f"GenerateRequest.{name}")["properties"]
        latent = props["z"]["items"]
        assert latent["minItems"] == latent["maxItems"] == card.latent_dim
        assert props["z"]["nullable"] is True and props["seed"]["nullable"] is True
    cgan = component(spec, f"GenerateRequest.{CGAN}")["properties"]["label"]
    kinds = [option["type"] for option in cgan["oneOf"]]
    assert kinds == ["integer", "string", "object"]  # index | name | mixture
    assert cgan["nullable"] is True
    assert cgan["oneOf"][0]["maximum"] == CARDS[CGAN].num_classes - 1
    assert set(CARDS[CGAN].class_names) <= set(cgan["oneOf"][1]["enum"])
    assert set(cgan["oneOf"][2]["properties"]) == set(CARDS[CGAN].class_names)
    dcgan = component(spec, f"GenerateRequest.{DCGAN}")["properties"]["label"]
    assert dcgan["enum"] == [None]  # an unconditional model takes no label


def test_rules_checked_in_code_are_in_the_schema(spec: dict) -> None:
    generate = component(spec, f"GenerateRequest.{CGAN}")
    forbidden = generate["not"]["anyOf"]
    assert {"required": ["seed", "z"]}.items() <= forbidden[0].items()  # seed xor z
    assert {"required": ["n", "z"]}.items() <= forbidden[1].items()  # z sets n
    interpolate = component(spec, f"InterpolateRequest.{CGAN}")
    assert interpolate["anyOf"]  # a label at one end at least
    start = interpolate["properties"]["start"]
    assert [o["required"] for o in start["oneOf"]] == [["seed"], ["z"]]


def test_the_schema_has_no_json_schema_2020_keywords(spec: dict) -> None:
    text = requests.compat.json.dumps(spec)
    assert '"type": "null"' not in text
    assert not re.search(r'"exclusiveMinimum": [0-9]', text)
    assert "root_input" not in text


def test_models_route_is_documented(spec: dict) -> None:
    assert "200" in spec["paths"]["/models"]["get"]["responses"]


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]


def test_the_docs_page_loads_nothing_from_third_parties(server: LiveServer, spec: dict) -> None:
    page = requests.get(f"{server.url}/", timeout=TIMEOUT)
    assert page.status_code == 200 and "swagger-ui" in page.text
    links = _Links()
    links.feed(page.text)
    assert links.urls, page.text
    for url in links.urls:
        assert url.startswith("./") and "//" not in url, url
        assert requests.get(f"{server.url}/{url[2:]}", timeout=TIMEOUT).status_code == 200, url
    assert "googletagmanager" not in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    script = requests.get(f"{server.url}/docs-ui.js", timeout=TIMEOUT).text
    assert "validatorUrl: null" in script and "./docs.json" in script
    assert "http" not in spec["info"]["description"]  # no badge images from other hosts
