"""sr-serve's web page in a real browser: headless Chromium (Debian's chromium and chromium-driver) driven by
Selenium. Upload a real photo, wait for the result, check its size and the download; a bad file shows the server's
error; a model with network interpolation shows the alpha slider."""

import base64
import os
import shutil

import numpy as np
import pytest
from conftest import tiny_generator
from PIL import Image

from sr_keras.data import sources
from sr_keras.savedmodel import writer
from sr_keras.serving import registry as registry_lib
from sr_keras.serving.runner import BackgroundServer

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser():
    if CHROMEDRIVER is None:
        pytest.fail("chromedriver is not installed: apt-get install chromium chromium-driver (.ci/run does)")
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("web")
    psnr = tiny_generator(1)  # Far from the GAN end, so alpha visibly changes the output.
    rng = np.random.default_rng(1)
    psnr.set_weights([w + rng.normal(0, 0.2, w.shape).astype(w.dtype) for w in psnr.get_weights()])
    writer.export(tiny_generator(0), {"model": "srgan", "scale": 4}, str(root), "sr", psnr_generator=psnr,
                      default_alpha=0.5)
    writer.export(tiny_generator(2, scale=2), {"model": "srgan", "scale": 2}, str(root), "plain_x2")
    registries = [registry_lib.ModelRegistry(n, str(root / n)) for n in ("sr", "plain_x2")]
    for reg in registries:
        reg.poll()
    with BackgroundServer(registries, max_request_mb=2.0, poll_seconds=0.2) as bg:
        yield bg


def _wait_done(driver, results: int = 1):
    """Until the page has shown `results` results (body data-results) or an error."""
    WebDriverWait(driver, 180).until(
        lambda d: d.execute_script("return document.body.dataset.results") == str(results)
        or d.find_element(By.ID, "error").is_displayed())


def test_upload_a_photo_see_the_result_and_download_it(browser, server, tmp_path):
    photo = Image.open(os.path.join(sources.sample_dir(), "chelsea.png")).convert("RGB").crop((100, 50, 180, 110))
    path = str(tmp_path / "cat.png")
    photo.save(path)
    browser.get(server.url + "/")
    assert browser.find_element(By.ID, "model").get_attribute("value") == "sr"
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "alpha-box").is_displayed())
    assert browser.find_element(By.ID, "alpha").get_attribute("value") == "0.5"  # The export's default alpha.
    browser.find_element(By.ID, "file").send_keys(path)
    _wait_done(browser)
    assert not browser.find_element(By.ID, "error").is_displayed()
    after = browser.find_element(By.ID, "after")
    assert browser.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", after) == [320,
                                                                                                                240]
    link = browser.find_element(By.ID, "download")
    assert link.get_attribute("download") == "cat_sr.png"
    png = base64.b64decode(link.get_attribute("href").split(",", 1)[1])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    # The before/after slider moves the cut.
    slider = browser.find_element(By.ID, "slider")
    browser.execute_script("arguments[0].value = 20; arguments[0].dispatchEvent(new Event('input'))", slider)
    width = browser.execute_script("return document.getElementById('viewer').clientWidth")
    left = float(browser.find_element(By.ID, "divider").value_of_css_property("left").rstrip("px"))
    assert abs(left - 0.2 * width) < 2
    # A different alpha gives a different image (the knob reaches the server).
    browser.execute_script("const a = document.getElementById('alpha'); a.value = 0; "
                           "a.dispatchEvent(new Event('change'))")
    _wait_done(browser, 2)
    assert not browser.find_element(By.ID, "error").is_displayed()
    png0 = base64.b64decode(browser.find_element(By.ID, "download").get_attribute("href").split(",", 1)[1])
    import io

    a, b = (np.asarray(Image.open(io.BytesIO(x))) for x in (png, png0))
    assert a.shape == b.shape and np.abs(a.astype(int) - b).max() > 0
    # Another served model: picked from the list, no alpha knob, its own scale.
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element(By.ID, "model")).select_by_value("plain_x2")
    _wait_done(browser, 3)
    assert not browser.find_element(By.ID, "error").is_displayed()
    assert not browser.find_element(By.ID, "alpha-box").is_displayed()
    assert browser.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]",
                                  browser.find_element(By.ID, "after")) == [160, 120]
    assert browser.find_element(By.ID, "download").get_attribute("download") == "cat_plain_x2.png"


def test_a_bad_file_shows_the_servers_error(browser, server, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"this is not an image at all")
    browser.get(server.url + "/")
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "alpha-box").is_displayed())
    browser.find_element(By.ID, "file").send_keys(str(bad))
    WebDriverWait(browser, 60).until(lambda d: d.find_element(By.ID, "error").is_displayed())
    text = browser.find_element(By.ID, "error").text
    assert text.startswith("The server says:") and len(text) > len("The server says: ") + 10
    assert browser.find_element(By.ID, "download").get_attribute("hidden")
