"""The app in a real browser: start ``streamlit run app/streamlit_app.py`` on a free port bound to
127.0.0.1 with the real workspace, drive Debian's Chromium through selenium to ask a question on the
sample corpus, wait for the answer and its sources, and save screenshots (paths are printed).

Needs ``apt-get install -y chromium chromium-driver`` and a workspace that went through
``hybrid setup`` and ``hybrid index corpus/docs`` (``make sample-index``). Also prints each page's
first render time in the browser and the app's RSS with the models loaded.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited with {proc.returncode}; log:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"streamlit did not become healthy within {timeout_s} s; log:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    ws = _workspace()
    if not (ws / "index" / "default" / "CURRENT").is_file():
        pytest.fail(
            f"no sample index in {ws} — run `hybrid setup` and `hybrid index corpus/docs` (make sample-index)"
        )
    port = _free_port()
    log = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    env = dict(
        os.environ,
        HYBRID_WORKSPACE=str(ws),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
    )
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                "app/streamlit_app.py",
                "--server.address",
                "127.0.0.1",
                "--server.port",
                str(port),
                "--server.headless",
                "true",
                "--browser.gatherUsageStats",
                "false",
            ],
            cwd=ROOT,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        print(f"streamlit log: {log}")


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found — install Debian's browser with "
            "`apt-get install -y chromium chromium-driver`"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--window-size=1500,1900",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
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
    assert ".md" in sources[0].text
    print(
        "sources: "
        + " | ".join(s.find_element(By.TAG_NAME, "summary").text.splitlines()[-1] for s in sources)
    )
    rss = psutil.Process(proc.pid).memory_info().rss
    print(f"answer shown after {seconds:.1f} s; app RSS with models loaded: {rss / 2**20:.0f} MiB")
    print(f"answer text: {answer[:300]!r}")
