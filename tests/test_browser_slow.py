"""The app in a real browser: start ``streamlit run app/streamlit_app.py`` on a free port bound to
127.0.0.1 with the real workspace, drive Debian's Chromium through selenium to ask a question on the
sample corpus, wait for the answer and its sources, and save screenshots (paths are printed).

Needs ``apt-get install -y chromium chromium-driver`` and a workspace that went through
``hybrid setup`` and ``hybrid index corpus/docs`` (``make sample-index``). Also prints each page's
first render time in the browser and the app's RSS with the models loaded.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from tests.browser_kit import AppStartError, chromium, missing_browser, start_app, stop_app

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[1]
QUESTION = "What ingress protection rating and weight does the LT-200 have?"
PAGES = ("ask", "compare", "index", "train", "deploy", "strategy")
TITLES = {
    "ask": "Ask",
    "compare": "Compare the four modes",
    "index": "Index",
    "train": "Train an adapter",
    "deploy": "Deploy",
    "strategy": "Strategy: prompt, RAG, fine-tune, or both?",
}
ANSWER_TIMEOUT_S = 900


def _workspace() -> Path:
    return Path(os.environ.get("HYBRID_WORKSPACE", ROOT / "workspace")).resolve()


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    ws = _workspace()
    if not (ws / "collections" / "sample" / "index" / "CURRENT").is_file():
        pytest.fail(
            f"no sample index in {ws} — run `hybrid setup` and `hybrid index corpus/docs` (make sample-index)"
        )
    log = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    try:
        proc, url = start_app(ws, log)
    except AppStartError as e:
        pytest.fail(str(e))
    try:
        yield url, proc
    finally:
        stop_app(proc)
        print(f"streamlit log: {log}")


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    missing = missing_browser()
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found — install Debian's browser with "
            "`apt-get install -y chromium chromium-driver`"
        )
    drv = chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield drv
    drv.quit()


def _shots_dir() -> Path:
    out = _workspace() / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    return out


def _idle(drv, timeout_s: float = 60) -> None:
    """Wait until Streamlit reports no script running (the 'Running…' widget is gone)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    time.sleep(0.5)
    WebDriverWait(drv, timeout_s).until(
        lambda d: not d.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]')
    )


def _wait_title(drv, title: str, timeout_s: float = 60) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(drv, timeout_s).until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "h1"), title))


def test_every_page_renders_in_chromium(app_url, driver):
    url, _ = app_url
    times = {}
    for name in ("train", *[p for p in PAGES if p != "train"]):  # a deep link first, on a fresh server
        t0 = time.perf_counter()
        driver.get(f"{url}/{'' if name == 'ask' else name}")
        _wait_title(driver, TITLES[name])
        times[name] = time.perf_counter() - t0
        _idle(driver)
        shot = _shots_dir() / f"page-{name}.png"
        driver.save_screenshot(str(shot))
        print(f"screenshot {name}: {shot}")
        assert not driver.find_elements("css selector", '[data-testid="stException"]'), name
        nav = driver.find_element("css selector", '[data-testid="stSidebarNav"]').text
        assert "Build" in nav and "Strategy" in nav, f"{name}: not our navigation: {nav!r}"
    print("first render in Chromium (s): " + ", ".join(f"{k} {v:.2f}" for k, v in times.items()))


def test_ask_a_question_and_see_answer_and_sources(app_url, driver):
    import psutil
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    url, proc = app_url
    driver.get(url)
    _wait_title(driver, "Ask")
    box = WebDriverWait(driver, 60).until(
        ec.element_to_be_clickable((By.CSS_SELECTOR, 'textarea[aria-label="Your question"]'))
    )
    box.click()
    box.send_keys(QUESTION)
    driver.find_element(By.XPATH, "//button[.//p[normalize-space()='RAG']]").click()  # sources guaranteed
    driver.find_element(By.XPATH, "//button[.//p[normalize-space()='Ask']]").click()
    t0 = time.perf_counter()
    shot = _shots_dir() / "ask-answer.png"
    done = (
        "//*[starts-with(normalize-space(), 'Sources (')] | //*[normalize-space()='No passages were retrieved "
        "for this mode.'] | //*[@data-testid='stException'] | //*[@data-testid='stAlertContentError']"
    )
    try:
        WebDriverWait(driver, ANSWER_TIMEOUT_S).until(lambda d: d.find_elements(By.XPATH, done))
        _idle(driver, ANSWER_TIMEOUT_S)
    finally:
        driver.save_screenshot(str(shot))
        print(f"screenshot ask answer: {shot}")
    seconds = time.perf_counter() - t0
    errors = driver.find_elements(
        By.CSS_SELECTOR, '[data-testid="stException"], [data-testid="stAlertContentError"]'
    )
    assert not errors, errors[0].text
    answer = driver.find_element(By.CSS_SELECTOR, '[data-testid="stChatMessage"]').text
    assert answer.strip(), "the answer is empty"
    sources = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stExpander"]')
    assert sources, "no source passages shown"
    assert re.search(r"\w+/[\w.-]+\.(md|txt|rst|html?|pdf|docx) §", sources[0].text), sources[0].text[:200]
    print(
        "sources: "
        + " | ".join(s.find_element(By.TAG_NAME, "summary").text.splitlines()[-1] for s in sources)
    )
    rss = psutil.Process(proc.pid).memory_info().rss
    print(f"answer shown after {seconds:.1f} s; app RSS with models loaded: {rss / 2**20:.0f} MiB")
    print(f"answer text: {answer[:300]!r}")
