"""sr-serve's web page in a real browser: headless Chromium (Debian's chromium and chromium-driver) driven by
Selenium. Upload a real photo, wait for the result, check its size and the download; a bad file shows the server's
error; a model with network interpolation shows the alpha slider."""

import base64
import json
import os
import shutil
import urllib.request

import numpy as np
import pytest
from conftest import tiny_generator
from PIL import Image

from sr_keras.data import sources
from sr_keras.savedmodel import writer
from sr_keras.serving import registry as registry_lib
from sr_keras.serving.limits import Limits
from sr_keras.serving.runner import BackgroundServer

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def downloads(tmp_path_factory):
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads):
    if CHROMEDRIVER is None:
        pytest.fail("chromedriver is not installed: apt-get install chromium chromium-driver (.ci/run does)")
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,900"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
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
    # A real-world GAN whose default is its L1 end (as sr_keras_real_x4): the page must start it at 0, not 1.
    writer.export(tiny_generator(3), {"model": "srgan", "scale": 4}, str(root), "real_gan", psnr_generator=psnr,
                  default_alpha=0.0)
    registries = [registry_lib.ModelRegistry(n, str(root / n)) for n in ("sr", "plain_x2", "real_gan")]
    for reg in registries:
        reg.poll()
    limits = Limits(model_pixels={"plain_x2": 20_000})  # One model with a small limit of its own.
    with BackgroundServer(registries, limits=limits, max_request_mb=2.0, poll_seconds=0.2) as bg:
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
    # Each model starts at its own default alpha, as its metadata says.
    Select(browser.find_element(By.ID, "model")).select_by_value("real_gan")
    _wait_done(browser, 4)
    assert browser.find_element(By.ID, "alpha").get_attribute("value") == "0"
    Select(browser.find_element(By.ID, "model")).select_by_value("sr")
    _wait_done(browser, 5)
    assert browser.find_element(By.ID, "alpha").get_attribute("value") == "0.5"
    meta = json.loads(urllib.request.urlopen(server.url + "/v1/models/real_gan/metadata", timeout=30).read())
    assert meta["metadata"]["sr_keras"] == {"scale": 4, "default_alpha": 0.0}


def test_a_bad_file_shows_the_servers_error(browser, server, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"this is not an image at all")
    browser.get(server.url + "/")
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "alpha-box").is_displayed())
    browser.find_element(By.ID, "file").send_keys(str(bad))
    WebDriverWait(browser, 60).until(lambda d: d.find_element(By.ID, "error").is_displayed())
    text = browser.find_element(By.ID, "error").text
    assert text.startswith("The server says:") and len(text) > len("The server says: ") + 10
    assert text.count("not an image") == 1, text  # Said once, not wrapped in itself.
    assert browser.find_element(By.ID, "download").get_attribute("hidden")


def test_the_page_has_an_icon_so_no_load_logs_a_404(browser, server):
    browser.get(server.url + "/")
    icon = browser.find_element(By.CSS_SELECTOR, "link[rel=icon]").get_attribute("href")
    for path in (icon, server.url + "/favicon.ico"):  # The linked one, and where browsers look without a link.
        with urllib.request.urlopen(path, timeout=30) as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("image/svg+xml")
            assert r.read().startswith(b"<svg")


def _photo(tmp_path, name, box):
    path = str(tmp_path / name)
    Image.open(os.path.join(sources.sample_dir(), "chelsea.png")).convert("RGB").crop(box).save(path)
    return path


def _select(browser, element_id, value):
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element(By.ID, element_id)).select_by_value(value)


def _png_of(link) -> np.ndarray:
    import io

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(link.get_attribute("href").split(",", 1)[1]))))


def test_each_models_limits_are_shown_and_a_photo_over_them_is_shrunk_first(browser, server, tmp_path):
    browser.get(server.url + "/")
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "alpha-box").is_displayed())
    limits = browser.find_element(By.ID, "limits").text
    assert limits.startswith("sr: x4; photos up to 2 MP") and "s per photo" in limits, limits
    _select(browser, "model", "plain_x2")
    WebDriverWait(browser, 30).until(lambda d: not d.find_element(By.ID, "alpha-box").is_displayed())
    limits = browser.find_element(By.ID, "limits").text
    assert limits.startswith("plain_x2: x2; photos up to 0.02 MP (e.g. 163 x 122 px)"), limits
    options = [o.get_attribute("value") for o in browser.find_elements(By.CSS_SELECTOR, "#outscale option")]
    assert options == ["auto", "2", "1"]
    big = _photo(tmp_path, "big.png", (0, 0, 200, 150))  # 30,000 pixels: over plain_x2's 20,000.
    # Asked for the model's own x2, it is refused before any upload, with the largest output size that fits.
    _select(browser, "outscale", "2")
    browser.find_element(By.ID, "file").send_keys(big)
    WebDriverWait(browser, 60).until(lambda d: d.find_element(By.ID, "error").is_displayed())
    error = browser.find_element(By.ID, "error").text
    assert error.startswith("big.png is 200 x 150 = 0.03 MP; plain_x2 takes up to 0.02 MP per photo, so at most an "
                            "output size of x1.6"), error
    # "Largest that fits" shrinks it in the page, says so, and the server takes it.
    _select(browser, "outscale", "auto")
    _wait_done(browser, 1)
    assert not browser.find_element(By.ID, "error").is_displayed()
    note = browser.find_element(By.ID, "fit").text
    assert note == ("big.png is 0.03 MP, over the 0.02 MP plain_x2 takes: shrunk to 163 x 122 first, for an output "
                    "of x1.63 the original size."), note
    assert _png_of(browser.find_element(By.ID, "download")).shape == (244, 326, 3)
    # x1 halves the photo before the x2 model: the output is the original size.
    _select(browser, "outscale", "1")
    _wait_done(browser, 2)
    assert _png_of(browser.find_element(By.ID, "download")).shape == (150, 200, 3)
    assert "shrunk to 100 x 75 first, for an output of x1 the original size" in browser.find_element(By.ID, "fit").text


def test_a_batch_of_photos_gives_one_zip_and_lists_the_failures(browser, server, tmp_path, downloads):
    import io
    import zipfile

    paths = [_photo(tmp_path, f"cat{i}.png", (40 * i, 40, 40 * i + 48, 76)) for i in range(3)]
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"not an image")
    browser.get(server.url + "/")
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "alpha-box").is_displayed())
    browser.find_element(By.ID, "file").send_keys("\n".join(paths + [str(bad)]))
    WebDriverWait(browser, 180).until(lambda d: d.execute_script("return document.body.dataset.batch") == "done")
    assert browser.find_element(By.ID, "batch-status").text == "3 of 4 done, 1 failed"
    items = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#batch-list li")]
    assert items[:3] == [f"cat{i}.png: done" for i in range(3)] and items[3].startswith("notes.png: "), items
    assert browser.find_element(By.ID, "zip").get_attribute("download") == "sr_keras_sr.zip"
    browser.find_element(By.ID, "zip").click()  # Downloaded as a user would, into the browser's folder.
    saved = downloads / "sr_keras_sr.zip"
    WebDriverWait(browser, 60).until(lambda d: saved.exists() and zipfile.is_zipfile(saved))
    archive = zipfile.ZipFile(saved)
    assert archive.testzip() is None  # Every CRC holds.
    assert archive.namelist() == [f"cat{i}_sr.png" for i in range(3)]
    outs = [np.asarray(Image.open(io.BytesIO(archive.read(name)))).astype(int) for name in archive.namelist()]
    assert [o.shape for o in outs] == [(144, 192, 3)] * 3
    assert all(np.abs(a - b).max() > 0 for a, b in zip(outs, outs[1:]))  # Each entry is its own photo's result.


def test_the_loupe_shows_the_outputs_own_pixels_next_to_the_input(browser, server, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains

    browser.get(server.url + "/")
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "alpha-box").is_displayed())
    browser.find_element(By.ID, "file").send_keys(_photo(tmp_path, "cat.png", (100, 50, 180, 110)))
    _wait_done(browser)
    out = _png_of(browser.find_element(By.ID, "download"))
    viewer = browser.find_element(By.ID, "viewer")
    for zoom in (2, 1):
        _select(browser, "zoom", str(zoom))
        ActionChains(browser).move_to_element_with_offset(viewer, 100, 40).perform()
        loupe = browser.find_element(By.ID, "loupe")
        assert loupe.is_displayed()
        x, y = int(loupe.get_attribute("data-x")), int(loupe.get_attribute("data-y"))
        pixels = np.array(browser.execute_script(
            "const c = document.getElementById('loupe');"
            "return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);"),
            np.uint8).reshape(160, 240, 4)
        right = pixels[:, 120:, :3][::zoom, ::zoom]  # One sample per output pixel.
        h, w = right.shape[:2]
        # The right half is the output at its own resolution, pixel for pixel, at the spot under the pointer.
        assert 0 <= x <= out.shape[1] - w and 0 <= y <= out.shape[0] - h
        np.testing.assert_array_equal(right[:, 1:], out[y:y + h, x + 1:x + w])
        left = pixels[:, :118, :3].astype(int)  # The input, enlarged: differs from the model's output.
        assert np.abs(left[:, :w * zoom - 2] - pixels[:, 120:118 + w * zoom, :3].astype(int)).mean() > 0.5
    _select(browser, "zoom", "0")
    ActionChains(browser).move_to_element_with_offset(viewer, 60, 30).perform()
    assert not browser.find_element(By.ID, "loupe").is_displayed()


def test_a_folder_is_a_batch_named_by_its_paths(browser, server, tmp_path, downloads):
    import zipfile

    folder = tmp_path / "trip"
    (folder / "day2").mkdir(parents=True)
    _photo(folder, "a.png", (0, 0, 40, 30))
    _photo(folder / "day2", "a.png", (40, 0, 80, 30))  # The same name in a subfolder keeps its own entry.
    (folder / "notes.txt").write_text("not a photo, and not sent")
    browser.get(server.url + "/")
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "alpha-box").is_displayed())
    browser.find_element(By.ID, "folder").send_keys(str(folder))
    WebDriverWait(browser, 180).until(lambda d: d.execute_script("return document.body.dataset.batch") == "done")
    assert browser.find_element(By.ID, "batch-status").text == "2 of 2 done"
    saved = downloads / "sr_keras_sr.zip"
    saved.unlink(missing_ok=True)
    browser.find_element(By.ID, "zip").click()
    WebDriverWait(browser, 60).until(lambda d: saved.exists() and zipfile.is_zipfile(saved))
    assert sorted(zipfile.ZipFile(saved).namelist()) == ["trip/a_sr.png", "trip/day2/a_sr.png"]
