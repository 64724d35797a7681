"""The studio page in a real browser: Playwright driving Debian's headless Chromium against a
real `bentoml serve` on loopback.

Needs `apt-get install chromium` (the Makefile's Debian packages); Playwright's own browser
downloads are never used. Set STUDIO_SCREENSHOT=docs/studio.png to refresh the README's
screenshot; otherwise it goes to pytest's tmp path.
"""

from __future__ import annotations

import base64
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
from playwright.sync_api import Browser, ConsoleMessage, Page, Route, expect, sync_playwright

from harness.live_server import LiveServer
from tests.conftest import decode, max_diff, model_cards

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
CARDS = model_cards()
CGAN = next(name for name, card in CARDS.items() if card.conditional)
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} missing: apt-get install -y chromium (make system-deps)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, server: LiveServer) -> Iterator[Page]:
    """A fresh browser context (empty cache) whose console errors fail the test."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert errors == [], errors


def open_studio(page: Page, server: LiveServer, hash_: str = "") -> None:
    page.goto(f"{server.url}/studio{hash_}")
    wait_for_image(page)


def wait_for_image(page: Page, src_contains: str = "") -> None:
    """Until the grid shows an image whose URL contains `src_contains`, fully decoded."""
    page.wait_for_function(
        """(part) => {
            const img = document.getElementById("grid");
            return img.src.includes(part) && img.complete && img.naturalWidth > 0 && !img.hidden;
        }""",
        arg=src_contains,
    )


def shown_pixels(page: Page, selector: str) -> np.ndarray:
    """The grey values the browser decoded: an <img> at natural size, or a canvas as drawn."""
    width, height, red = page.evaluate(
        """(selector) => {
            const el = document.querySelector(selector);
            let canvas = el;
            if (el.tagName === "IMG") {
                canvas = document.createElement("canvas");
                canvas.width = el.naturalWidth;
                canvas.height = el.naturalHeight;
                canvas.getContext("2d").drawImage(el, 0, 0);
            }
            const rgba = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
            let text = "";
            for (let i = 0; i < rgba.data.length; i += 4) text += String.fromCharCode(rgba.data[i]);
            return [canvas.width, canvas.height, btoa(text)];
        }""",
        selector,
    )
    return np.frombuffer(base64.b64decode(red), dtype=np.uint8).reshape(height, width)


def post_generate(server: LiveServer, body: dict) -> requests.Response:
    r = requests.post(f"{server.url}/generate", json=body, timeout=30)
    assert r.status_code == 200, r.text
    return r


def test_page_loads_without_console_errors(page: Page, server: LiveServer, tmp_path: Path) -> None:
    open_studio(page, server)
    assert page.url.split("#")[0] == f"{server.url}/studio/"  # relative redirect from /studio
    expect(page.locator("#model option")).to_have_count(len(CARDS))
    expect(page.locator("#card")).to_contain_text("fashion-mnist")
    expect(page.locator("a", has_text="API docs")).to_have_attribute("href", "../")
    assert requests.get(f"{server.url}/", timeout=30).status_code == 200  # docs stay at /
    # Every control has a label a screen reader can read.
    unlabelled = page.evaluate(
        """() => Array.from(document.querySelectorAll("input, select, button"))
            .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label")
                            && !el.textContent.trim())
            .map((el) => el.id || el.outerHTML)"""
    )
    assert unlabelled == []
    page.click("#make-walk")
    page.wait_for_selector("#player:not([hidden])")
    shot = Path(os.environ.get("STUDIO_SCREENSHOT", tmp_path / "studio.png"))
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_class_and_seed_show_the_post_generate_pixels(page: Page, server: LiveServer) -> None:
    open_studio(page, server)
    page.select_option("#model", CGAN)
    page.select_option("#label", "Sneaker")
    page.fill("#n", "4")
    page.fill("#seed", "7")
    page.fill("#truncation", "0.8")
    page.dispatch_event("#truncation", "input")
    wait_for_image(page, "?n=4&seed=7&label=Sneaker&truncation=0.8&format=png")
    body = {"model": CGAN, "n": 4, "seed": 7, "label": "Sneaker", "truncation": 0.8}
    expected = np.asarray(decode(post_generate(server, body).content))
    assert np.array_equal(shown_pixels(page, "#grid"), expected)


def test_keyboard_dice_draws_a_new_seed(page: Page, server: LiveServer) -> None:
    open_studio(page, server, "#seed=7")
    before = page.get_attribute("#grid", "src")
    page.focus("#dice")
    page.keyboard.press("Enter")
    assert page.input_value("#seed") != "7"
    wait_for_image(page, f"seed={page.input_value('#seed')}&")
    assert page.get_attribute("#grid", "src") != before


def test_blend_slider_changes_the_image(page: Page, server: LiveServer) -> None:
    open_studio(page, server, f"#model={CGAN}&seed=11&n=1&label=Sneaker")
    sneaker = np.array(shown_pixels(page, "#grid"))
    page.check("#blend")
    names = CARDS[CGAN].class_names
    sandal = f"#weight-{names.index('Sandal')}"
    for i, name in enumerate(names):
        page.fill(f"#weight-{i}", "50" if name in ("Sneaker", "Sandal") else "0")
    wait_for_image(page, "label=")
    half = np.array(shown_pixels(page, "#grid"))
    page.focus(sandal)
    for _ in range(6):  # the keyboard moves a slider too
        page.keyboard.press("ArrowRight")
    expect(page.locator(sandal)).to_have_value("80")
    wait_for_image(page, f"{names.index('Sandal')}%3A80")
    more_sandal = shown_pixels(page, "#grid")
    assert not np.array_equal(half, sneaker) and not np.array_equal(more_sandal, half)
    mix = {"Sneaker": 50, "Sandal": 80}
    body = {"model": CGAN, "n": 1, "seed": 11, "label": mix, "truncation": 1}
    assert np.array_equal(more_sandal, np.asarray(decode(post_generate(server, body).content)))


def test_scrubbing_the_walk_changes_the_frame(page: Page, server: LiveServer) -> None:
    open_studio(page, server, f"#model={CGAN}&seed=3&n=1&label=Bag")
    page.fill("#steps", "6")
    page.click("#make-walk")
    page.wait_for_selector("#player:not([hidden])")
    points = 3
    frames = points * 5  # a loop: 3 segments of 5 new frames each
    expect(page.locator("#scrub")).to_have_attribute("max", str(frames - 1))
    first = shown_pixels(page, "#frame")
    page.fill("#scrub", "2")
    expect(page.locator("#scrub-value")).to_have_text(f"3 / {frames}")
    third = shown_pixels(page, "#frame")
    assert not np.array_equal(first, third)
    # What the canvas shows is frame 2 of the service's own strip, scaled up.
    walk = page.evaluate("() => document.getElementById('walk-curl').textContent")
    body = shlex.split(walk.replace("\\\n", " "))
    payload = body[body.index("-d") + 1].replace('"webp"', '"png"')
    strip = requests.post(
        f"{server.url}/walk",
        data=payload,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert strip.status_code == 200, strip.text
    frame = np.asarray(decode(strip.content))[2:30, 2 + 2 * 30 : 2 + 2 * 30 + 28]
    scale = third.shape[0] // 28
    assert max_diff(third[::scale, ::scale], frame) == 0
    page.click("#play")
    expect(page.locator("#play")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#scrub-value")).not_to_have_text(f"3 / {frames}")
    page.click("#play")
    expect(page.locator("#play")).to_have_attribute("aria-pressed", "false")
    with page.expect_download() as download:
        page.click("#download-webp")
    animated = decode(Path(download.value.path()).read_bytes())
    assert animated.format == "WEBP" and animated.n_frames == frames


def test_copied_curl_and_python_return_the_shown_image(
    page: Page, server: LiveServer, tmp_path: Path
) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    open_studio(page, server, f"#model={CGAN}&seed=21&n=9&label=Dress&format=webp")
    page.click("button[data-copy='generate-curl']")
    curl = page.evaluate("() => navigator.clipboard.readText()")
    assert curl == page.text_content("#generate-curl")
    assert re.fullmatch(r"curl -s '[^']+/image/[^']+' -o grid\.webp", curl), curl
    subprocess.run(curl, shell=True, cwd=tmp_path, check=True, timeout=60)
    body = {"model": CGAN, "n": 9, "seed": 21, "label": "Dress", "truncation": 1, "format": "webp"}
    expected = post_generate(server, body).content
    assert (tmp_path / "grid.webp").read_bytes() == expected
    shown = page.evaluate(
        """async () => {
            const src = document.getElementById("grid").src;
            const bytes = new Uint8Array(await (await fetch(src)).arrayBuffer());
            return btoa(String.fromCharCode(...bytes));
        }"""
    )
    assert base64.b64decode(shown) == expected
    # The Python snippet re-encodes what the client decoded: PNG keeps the pixels exact.
    page.select_option("#format", "png")
    wait_for_image(page, "format=png")
    python = page.text_content("#generate-python")
    assert "client.generate(" in python and '"format": "png"' in python
    subprocess.run([sys.executable, "-c", python], cwd=tmp_path, check=True, timeout=120)
    saved = np.asarray(decode((tmp_path / "grid.png").read_bytes()))
    png = post_generate(server, body | {"format": "png"}).content
    assert np.array_equal(saved, np.asarray(decode(png)))


def test_second_load_of_a_seeded_image_is_a_cache_hit(page: Page, server: LiveServer) -> None:
    open_studio(page, server, f"#model={CGAN}&seed=5&n=16&label=Coat")
    src = page.get_attribute("#grid", "src")
    first = page.evaluate("(src) => performance.getEntriesByName(src)[0].transferSize", src)
    assert first > 0  # the first load came over the network
    page.reload()
    wait_for_image(page, "seed=5")
    assert page.get_attribute("#grid", "src") == src
    entry = page.evaluate(
        """(src) => {
            const e = performance.getEntriesByName(src)[0];
            return {transferSize: e.transferSize, status: e.responseStatus};
        }""",
        src,
    )
    assert entry["transferSize"] == 0 or entry["status"] == 304, entry


def test_page_works_under_a_path_prefix(page: Page, server: LiveServer) -> None:
    """Behind a proxy that serves the service at /gan/ and strips the prefix (as an ingress
    would), every URL the page uses must stay under /gan/."""
    outside: list[str] = []

    def strip_prefix(route: Route) -> None:
        url = route.request.url
        if not url.startswith(f"{server.url}/gan/"):
            outside.append(url)
            route.abort()
            return
        response = route.fetch(url=url.replace("/gan/", "/", 1), max_redirects=0)
        route.fulfill(response=response)

    # /studio redirects relatively, so a prefix survives it (Playwright does not route the
    # browser's own follow-up of a redirect, so the page is opened at its folder here).
    redirect = requests.get(f"{server.url}/studio", allow_redirects=False, timeout=30)
    assert redirect.status_code == 308 and redirect.headers["location"] == "studio/"
    page.route(f"{server.url}/**", strip_prefix)
    page.goto(f"{server.url}/gan/studio/")
    wait_for_image(page, f"{server.url}/gan/image/")
    page.click("#make-walk")
    page.wait_for_selector("#player:not([hidden])")
    assert f"'{server.url}/gan/walk'" in page.text_content("#walk-curl")
    assert f'SyncHTTPClient("{server.url}/gan")' in page.text_content("#walk-python")
    assert page.get_attribute("a:has-text('API docs')", "href") == "../"
    assert outside == []
