"""A new user's walk through every page with the real models, in Debian's Chromium.

Starts the app on a free 127.0.0.1 port over the real workspace, then: asks a Chinese question in
auto mode (the router's badge, the streamed answer, its sources), compares the four modes on an
English question, looks at the Index page's document table and searches it, opens Train (dataset,
versions, scoreboard), Deploy (exported files, command lines) and Strategy (self-test, measured
scoreboard). A screenshot of each step goes to ``<workspace>/screenshots/walk-*.png`` and one line
per step says what the page showed.

    python bench/walkthrough.py
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser_kit import chromium, start_app, stop_app  # noqa: E402

ASK_ZH = "LT-350 屏幕显示 E-417，应该怎么处理？"
COMPARE_EN = "How many days of annual leave can be carried over to the next year?"
SEARCH = "warranty period LT-200"
LONG_S = 900


def workspace() -> Path:
    """The workspace the walk runs over: ``HYBRID_WORKSPACE``, else the project's."""
    return Path(os.environ.get("HYBRID_WORKSPACE", ROOT / "workspace")).resolve()


@contextmanager
def walking(prefix: str = "walk-") -> Iterator[tuple[Walk, Any]]:
    """The app started over ``workspace()`` and a Chromium on it, as a ``Walk`` whose screenshots
    go to ``<workspace>/screenshots/<prefix><step>.png``, with the app's process; both stop on leaving."""
    import tempfile

    shots = workspace() / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="walk-"))
    proc, url = start_app(workspace(), tmp / "streamlit.log")
    try:
        drv = chromium(tmp / "profile", window="1500,2200")
        try:
            yield Walk(drv, url, shots, prefix), proc
        finally:
            drv.quit()
    finally:
        stop_app(proc)


class Walk:
    def __init__(self, drv, url: str, shots: Path, prefix: str = "walk-") -> None:
        self.d, self.url, self.shots, self.prefix = drv, url, shots, prefix

    def idle(self, timeout_s: float = 120) -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        time.sleep(0.8)
        WebDriverWait(self.d, timeout_s).until(
            lambda d: not d.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]')
        )

    def open(self, page: str, title: str) -> float:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        t0 = time.perf_counter()
        self.d.get(f"{self.url}/{page}")
        WebDriverWait(self.d, 60).until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "h1"), title))
        seconds = time.perf_counter() - t0
        self.idle()
        return seconds

    def click(self, label: str) -> None:
        from selenium.webdriver.common.by import By

        self.d.find_element(By.XPATH, f"//button[.//p[normalize-space()='{label}']]").click()

    def type_into(self, aria_label: str, text: str) -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        box = WebDriverWait(self.d, 60).until(
            ec.element_to_be_clickable(
                (By.CSS_SELECTOR, f'textarea[aria-label="{aria_label}"], input[aria-label="{aria_label}"]')
            )
        )
        box.click()
        box.send_keys(text)

    def wait_for(self, xpath: str, timeout_s: float = LONG_S) -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(self.d, timeout_s).until(lambda d: d.find_elements(By.XPATH, xpath))
        self.idle(timeout_s)

    def shot(self, name: str) -> Path:
        path = self.shots / f"{self.prefix}{name}.png"
        self.d.save_screenshot(str(path))
        return path

    def errors(self) -> list[str]:
        from selenium.webdriver.common.by import By

        found = self.d.find_elements(
            By.CSS_SELECTOR, '[data-testid="stException"], [data-testid="stAlertContentError"]'
        )
        return [e.text.strip().splitlines()[0] for e in found if e.text.strip()]

    def text(self, css: str) -> list[str]:
        from selenium.webdriver.common.by import By

        return [e.text for e in self.d.find_elements(By.CSS_SELECTOR, css)]


def say(step: str, seconds: float | None, shot: Path, what: str, errors: list[str]) -> None:
    took = f" ({seconds:.1f} s)" if seconds is not None else ""
    print(f"[{step}]{took} {what} -> {shot.name}" + (f"  ERRORS: {errors}" if errors else ""), flush=True)


def main() -> None:
    import psutil

    with walking() as (w, proc):
        # 1. Ask, auto mode, Chinese question about an English document
        w.open("", "Ask")
        w.type_into("Your question", ASK_ZH)
        t0 = time.perf_counter()
        w.click("Ask")
        w.wait_for(
            "//*[starts-with(normalize-space(), 'Sources (')] | //*[normalize-space()='No passages were retrieved for this mode.'] | //*[@data-testid='stException']"
        )
        answer = " / ".join(t.replace("\n", " ") for t in w.text('[data-testid="stChatMessage"]'))
        badges = " ".join(w.text('[data-testid="stCaptionContainer"]'))[:200]
        say(
            "ask",
            time.perf_counter() - t0,
            w.shot("ask"),
            f"answer: {answer[:240]!r}; captions: {badges!r}",
            w.errors(),
        )
        print(f"  app RSS with models loaded: {psutil.Process(proc.pid).memory_info().rss / 2**20:.0f} MiB")

        # 2. Compare the four modes
        w.open("compare", "Compare the four modes")
        w.type_into("Question", COMPARE_EN)
        t0 = time.perf_counter()
        w.click("Compare")
        w.wait_for("//*[normalize-space()='Shared retrieval']")
        heads = [h for h in w.text("h3") if h.strip()]
        say("compare", time.perf_counter() - t0, w.shot("compare"), f"sections: {heads}", w.errors())

        # 3. Index: documents table, a search
        secs = w.open("index", "Index")
        shot = w.shot("index")
        say("index", secs, shot, f"sections: {[h for h in w.text('h3') if h.strip()]}", w.errors())
        try:
            w.type_into("Keywords or a question", SEARCH)
            w.click("Search")
            w.idle()
            say("index-search", None, w.shot("index-search"), f"searched {SEARCH!r}", w.errors())
        except Exception as e:  # the search box label may differ; the page itself was checked above
            print(f"[index-search] skipped: {type(e).__name__}: {str(e)[:120]}")

        # 4. Train, 5. Deploy, 6. Strategy
        for page, title in (
            ("train", "Train an adapter"),
            ("deploy", "Deploy"),
            ("strategy", "Strategy: prompt, RAG, fine-tune, or both?"),
        ):
            secs = w.open(page, title)
            say(page, secs, w.shot(page), f"sections: {[h for h in w.text('h3') if h.strip()]}", w.errors())
        print(f"app RSS at the end: {psutil.Process(proc.pid).memory_info().rss / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
