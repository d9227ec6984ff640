"""Every report page of the demo in a real headless Chromium (issue 10, Must show).

Each page is opened under ``file://`` with the network emulated offline: no request may
leave ``file:`` / ``data:``, the console has no error, every image (``<img>`` and the
``<image>`` of inline SVGs) decodes to a non-zero size, the screenshot is not blank and the
page's sections are there. Screenshots of one subject page and one group page are kept in
a folder the test prints (``GLMFLOW_REPORT_SCREENSHOTS`` if set, else pytest's tmp).

Needs Debian's ``chromium`` and ``chromium-driver`` and the ``selenium`` package; without
them the test is skipped with the reason, except where ``GLMFLOW_REQUIRE_BROWSER=1`` (CI,
``.ci/run``), where it fails.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

from glmflow.cli.main import main
from glmflow.core.report.group import GROUP_SECTIONS
from glmflow.core.report.subject import SUBJECT_SECTIONS

pytestmark = pytest.mark.slow

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
#: A blank or one-colour page has a pixel variance near 0; a page of text and figures
#: measured 2,000-6,000 (grey levels, 0-255).
MIN_PIXEL_VARIANCE = 200.0
_DECODE_ALL = """
const done = arguments[arguments.length - 1];
const sources = [...document.images].map(i => i.src).concat(
    [...document.querySelectorAll('svg image')].map(i => i.getAttribute('href')));
Promise.all(sources.map(src => { const img = new Image(); img.src = src;
    return img.decode().then(() => [src.slice(0, 30), img.naturalWidth, img.naturalHeight],
                             e => [src.slice(0, 30), 0, String(e)]); }))
    .then(done);
"""


def _browser_missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the selenium package is not installed (pip install selenium)"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).is_file():
            return f"{path} is missing (apt-get install -y chromium chromium-driver)"
    return None


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    reason = _browser_missing()
    if reason is not None:
        if os.environ.get("GLMFLOW_REQUIRE_BROWSER") == "1":
            pytest.fail(f"GLMFLOW_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--window-size=1200,1600",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    browser.set_script_timeout(60)
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    yield browser
    browser.quit()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("report-demo")
    assert main(["demo", str(out), "-q"]) == 0
    return out / "derivatives" / "glmflow"


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory):
    folder = Path(os.environ.get("GLMFLOW_REPORT_SCREENSHOTS") or tmp_path_factory.mktemp("shots"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nreport screenshots in {folder}")
    return folder


def _requests(browser) -> list[str]:
    urls = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def _full_page(browser, path: Path) -> None:
    size = browser.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
    )
    shot = browser.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1},
    })  # fmt: skip
    import base64

    path.write_bytes(base64.b64decode(shot["data"]))


def _check_page(browser, page: Path, sections: tuple[str, ...], images: bool = True) -> None:
    from PIL import Image
    from selenium.webdriver.common.by import By

    browser.get_log("performance"), browser.get_log("browser")  # drop the previous page's
    browser.get(page.as_uri())
    assert browser.execute_script("return document.readyState") == "complete"
    outside = [u for u in _requests(browser) if not u.startswith(("file://", "data:"))]
    assert outside == [], f"{page.name} asked the network for {outside}"
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], f"{page.name}: console errors {errors}"
    decoded = browser.execute_async_script(_DECODE_ALL)
    assert bool(decoded) == images, f"{page.name}: {len(decoded)} image(s)"
    bad = [d for d in decoded if not (d[1] > 0 and isinstance(d[2], int) and d[2] > 0)]
    assert bad == [], f"{page.name}: images that do not decode {bad}"
    for section in sections:
        assert browser.find_elements(By.ID, section), f"{page.name} has no section {section!r}"
    pixels = np.asarray(Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("L"))
    assert pixels.astype(float).var() > MIN_PIXEL_VARIANCE, f"{page.name} looks blank"


def test_every_demo_page_in_chromium(driver, demo, screenshots):
    subjects = sorted(demo.glob("sub-*.html"))
    groups = sorted(demo.glob("group_task-*.html"))
    assert [p.name for p in subjects] == [f"sub-0{i}.html" for i in range(1, 9)]
    assert len(groups) == 6  # one group model per first-level contrast of the demo's model
    _check_page(driver, demo / "index.html", ("subjects", "groups"), images=False)
    links = driver.execute_script("return [...document.links].map(a => a.getAttribute('href'))")
    assert sorted(links) == sorted(p.name for p in subjects + groups)
    for page in subjects:
        runs = tuple(f"run-{page.stem}_task-faces_run-{r}" for r in (1, 2))
        _check_page(driver, page, SUBJECT_SECTIONS + runs)
    for page in groups:
        _check_page(driver, page, GROUP_SECTIONS)
    for page in (subjects[0], demo / "group_task-faces_contrast-face.html"):
        driver.get(page.as_uri())
        _full_page(driver, screenshots / page.name.replace(".html", ".png"))
        assert (screenshots / page.name.replace(".html", ".png")).stat().st_size > 10_000


def test_demo_group_table_names_the_face_region(demo):
    """The group face map of the demo (8 subjects x 2 runs) peaks in the planted face
    region, and its table names the region as Harvard-Oxford labels the region's centre."""
    from test_report_pipeline import face_box_mm, face_region_labels

    from glmflow.data import load_truth

    low, high = face_box_mm(load_truth(demo.parents[1] / "bids"))
    page = demo / "group_task-faces_contrast-face.html"
    assert face_region_labels(page, "group-contrast-face", low, high)[0] == "Right Thalamus"


@pytest.fixture(scope="module")
def more_pages(demo, tmp_path_factory):
    """The BIDS Stats Model and connectivity pages: the packaged faces BSM on two of the
    demo's subjects, and a connectivity model on a 2-subject resting-state dataset."""
    import warnings
    from importlib.resources import files

    from glmflow.data.rest import add_resting_state
    from glmflow.runners.bsm import run_bids_stats_model
    from glmflow.runners.rest import run_connectivity, run_connectivity_group

    root = tmp_path_factory.mktemp("more-pages")
    model = root / "faces_smdl.json"
    model.write_text((files("glmflow.data") / "models" / "faces_smdl.json").read_text())
    bsm = run_bids_stats_model(bids_dir=demo.parents[1] / "bids", output_dir=root / "bsm",
                               model=model, work_dir=root / "bsm-work",
                               participant_label=["01", "02"], progress=False)  # fmt: skip
    rest = add_resting_state(root / "rest-bids", n_subjects=2, n_runs=1, n_volumes=60)
    truth = rest / "derivatives/truth"
    spec = {"connectivity": {
        "name": "rest", "task": "rest", "plots": False, "measures": ["correlation"],
        "atlas": {"labels_img": str(truth / "atlas-rest_dseg.nii.gz"),
                  "labels_tsv": str(truth / "atlas-rest_dseg.tsv"), "label": "synth"},
        "confounds": {"strategy": ["motion", "scrub"], "motion": "basic"},
        "group": {"design": "one-sample"},
    }}  # fmt: skip
    common = dict(work_dir=root / "rest-work", plugin="Linear", progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_connectivity(rest, root / "rest", spec, **common)
        run_connectivity_group(rest, root / "rest", spec, **common)
    return bsm.output_dir, root / "rest" / "glmflow"


def test_bsm_and_connectivity_pages_in_chromium(driver, more_pages):
    bsm, rest = more_pages
    assert sorted(p.name for p in bsm.glob("*.html")) == [
        "group_node-dataset.html", "index.html", "sub-01.html", "sub-02.html"]
    for page in ("sub-01.html", "sub-02.html"):
        _check_page(driver, bsm / page, SUBJECT_SECTIONS + ("run-sub-01_task-faces_run-1",)
                    if page == "sub-01.html" else SUBJECT_SECTIONS)  # fmt: skip
    _check_page(driver, bsm / "group_node-dataset.html", GROUP_SECTIONS)
    links = driver.execute_script("return [...document.links].map(a => a.getAttribute('href'))")
    assert links == ["index.html"]  # the group page's link back (the index: as the demo's)
    assert sorted(p.name for p in rest.glob("*.html")) == [
        "group_task-rest_desc-rest_connectivity.html", "index.html",
        "sub-01_task-rest_desc-rest_connectivity.html",
        "sub-02_task-rest_desc-rest_connectivity.html"]
    for page in ("sub-01", "sub-02"):
        _check_page(driver, rest / f"{page}_task-rest_desc-rest_connectivity.html",
                    ("methods", "runs", "matrices", "warnings"))  # fmt: skip
    _check_page(driver, rest / "group_task-rest_desc-rest_connectivity.html",
                ("design", "subjects", "maps", "warnings"))  # fmt: skip
