"""The studio in a real browser: headless Chromium (Debian's chromium and chromium-driver, driven
by Selenium) paints strokes, picks exemplars and moves the slider, and the page's output image
must be the generator's own output for the layout and exemplars the page holds.

Skipped, with the reason, where chromium or chromedriver is absent (.ci/run installs both).
``MSCA_FAST_STUDIO_CHECKPOINT=runs/cpu-demo`` runs it on a trained model instead of a tiny
random one, and ``MSCA_FAST_STUDIO_SCREENSHOT=docs/studio.png`` saves the page as the test saw
it (the README's screenshot is made so).
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import socket
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("uvicorn", reason="the studio needs uvicorn (requirements.txt)")
webdriver = pytest.importorskip("selenium.webdriver", reason="the browser tests need selenium (requirements.txt)")
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER), reason="needs Debian's chromium and chromium-driver (apt-get install)"
)

import uvicorn  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

from msca_fast.models.labels import one_hot  # noqa: E402
from msca_fast.serving.app import build_app  # noqa: E402
from msca_fast.serving.engine import StudioEngine, image_png  # noqa: E402
from msca_fast.synthesis import interpolate_styles, synthesize  # noqa: E402

from synthesis_models import responsive_generator, write_checkpoint  # noqa: E402

TIMEOUT_S = 60


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> StudioEngine:
    checkpoint = os.environ.get("MSCA_FAST_STUDIO_CHECKPOINT")
    if not checkpoint:
        checkpoint = tmp_path_factory.mktemp("run")
        generator = responsive_generator()
        write_checkpoint(checkpoint, generator, generator)
    return StudioEngine.open(checkpoint, gallery_size=8)


@pytest.fixture(scope="module")
def server(engine):
    """The studio on a free port of 127.0.0.1, in a thread of this process."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(build_app(engine), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + TIMEOUT_S
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=TIMEOUT_S)


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    flags = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1600,1300")
    for flag in flags:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def settle(driver, after: int) -> None:
    """Wait until the page has shown more than ``after`` outputs and no change is waiting."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        if driver.execute_script("return window.studio.settled && window.studio.requests > arguments[0]", after):
            return
        time.sleep(0.05)
    error = driver.find_element(By.ID, "error").text
    raise AssertionError(f"the page did not show a new output within {TIMEOUT_S} s (page error: {error!r})")


def shown_output(driver) -> np.ndarray:
    url = driver.find_element(By.ID, "output").get_attribute("src")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def page_layout(driver) -> torch.Tensor:
    height, width, ids = driver.execute_script("const s = window.studio; return [s.height, s.width, Array.from(s.ids)]")
    return torch.tensor(ids).view(height, width)


def expected(image: torch.Tensor) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(image_png(image))))


def paint_stroke(driver, points: list[tuple[int, int]]) -> None:
    """Press at the first point (offsets from the canvas's centre, screen pixels), drag through the rest."""
    canvas = driver.find_element(By.ID, "canvas")
    chain = ActionChains(driver).move_to_element_with_offset(canvas, *points[0]).click_and_hold()
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        chain = chain.move_by_offset(x1 - x0, y1 - y0)
    chain.release().perform()


def test_painting_picking_and_the_slider_show_the_generators_output(browser, server, engine):
    browser.get(server)
    settle(browser, 0)
    first = shown_output(browser)
    exemplar = engine.gallery_exemplar(0)

    def generator_output(layout: torch.Tensor, a, b=None, mix: float = 0.0) -> np.ndarray:
        c1 = one_hot(layout[None], engine.num_classes)
        with torch.inference_mode():
            if b is None:
                return expected(synthesize(engine.generator, c1, a.image, a.labels))
            pair = (a.image, a.labels), (b.image, b.labels)
            return expected(interpolate_styles(engine.generator, c1, *pair, [mix])[0])

    np.testing.assert_array_equal(first, generator_output(page_layout(browser), exemplar))

    # Paint water across the middle with a wide brush, then a road up from the bottom.
    layout_before = page_layout(browser)
    browser.find_element(By.CSS_SELECTOR, f"#palette button[data-id='{5}']").click()
    browser.execute_script("document.getElementById('brush').value = 12")
    count = browser.execute_script("return window.studio.requests")
    paint_stroke(browser, [(-230, 0), (-100, 10), (50, -10), (230, 0)])
    browser.find_element(By.CSS_SELECTOR, f"#palette button[data-id='{9}']").click()
    paint_stroke(browser, [(0, 250), (10, 150), (20, 60)])
    settle(browser, count)
    layout = page_layout(browser)
    assert (layout != layout_before).sum() > 200  # the strokes changed the layout
    assert (layout == 5).sum() > (layout_before == 5).sum()
    painted = shown_output(browser)
    assert np.abs(painted.astype(int) - first.astype(int)).mean() > 0.5
    np.testing.assert_array_equal(painted, generator_output(layout, exemplar))
    stroke_latency = browser.execute_script("return window.studio.lastLatency")

    # Exemplar A from the gallery, then B with shift-click and the slider half-way.
    count = browser.execute_script("return window.studio.requests")
    browser.find_element(By.CSS_SELECTOR, "#gallery img[data-id='2']").click()
    settle(browser, count)
    picked = shown_output(browser)
    assert np.abs(picked.astype(int) - painted.astype(int)).mean() > 0.5
    np.testing.assert_array_equal(picked, generator_output(layout, engine.gallery_exemplar(2)))
    count = browser.execute_script("return window.studio.requests")
    ActionChains(browser).key_down(Keys.SHIFT).click(
        browser.find_element(By.CSS_SELECTOR, "#gallery img[data-id='3']")
    ).key_up(Keys.SHIFT).perform()
    settle(browser, count)
    count = browser.execute_script("return window.studio.requests")
    slider = browser.find_element(By.ID, "mix")
    ActionChains(browser).click_and_hold(slider).move_by_offset(0, 0).release().perform()  # the middle: 0.5
    settle(browser, count)
    mix = float(slider.get_attribute("value")) / 100
    assert 0.3 < mix < 0.7
    blended = shown_output(browser)
    a, b = engine.gallery_exemplar(2), engine.gallery_exemplar(3)
    np.testing.assert_array_equal(blended, generator_output(layout, a, b, mix))
    assert np.abs(blended.astype(int) - picked.astype(int)).mean() > 0.5

    # The attention of a clicked output pixel.
    ActionChains(browser).move_to_element_with_offset(browser.find_element(By.ID, "output"), 0, 200).click().perform()
    deadline = time.monotonic() + TIMEOUT_S
    while not browser.find_element(By.ID, "region").text.startswith("region ") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert browser.find_element(By.ID, "region").text.startswith("region ")
    assert browser.find_element(By.ID, "spatial").get_attribute("src").startswith("data:image/png")
    assert browser.find_element(By.ID, "error").is_displayed() is False

    screenshot = os.environ.get("MSCA_FAST_STUDIO_SCREENSHOT")
    if screenshot:
        browser.save_screenshot(screenshot)
    generator_ms = browser.execute_script("return window.studio.lastGeneratorMs")
    print(f"studio: stroke to image {stroke_latency} ms (last generator call {generator_ms} ms)")


def test_a_bad_upload_shows_its_error_in_the_page(browser, server, tmp_path):
    browser.get(server)
    settle(browser, 0)
    wrong = tmp_path / "wrong_size.png"
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(wrong)
    browser.find_element(By.ID, "upload-layout").send_keys(str(wrong))
    deadline = time.monotonic() + TIMEOUT_S
    while not browser.find_element(By.ID, "error").is_displayed() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "422: label: expected the canvas size" in browser.find_element(By.ID, "error").text


def test_fill_and_undo_edit_the_layout(browser, server):
    browser.get(server)
    settle(browser, 0)
    before = page_layout(browser)
    y, x = 5, 32  # sky, at the top of every synthetic scene
    region_class = int(before[y, x])
    browser.find_element(By.CSS_SELECTOR, "#palette button[data-id='6']").click()  # sand
    browser.find_element(By.ID, "fill").click()
    canvas = browser.find_element(By.ID, "canvas")
    size = canvas.size
    count = browser.execute_script("return window.studio.requests")
    ActionChains(browser).move_to_element_with_offset(
        canvas, (x + 0.5) * size["width"] / before.shape[1] - size["width"] / 2,
        (y + 0.5) * size["height"] / before.shape[0] - size["height"] / 2,
    ).click().perform()  # fmt: skip
    settle(browser, count)
    filled = page_layout(browser)
    assert filled[y, x] == 6 and region_class != 6
    assert ((filled != before) <= (before == region_class)).all()  # only that class changed...
    assert (filled != before).sum() > 50  # ...a whole connected region of it
    browser.find_element(By.ID, "undo").click()
    torch.testing.assert_close(page_layout(browser), before)
