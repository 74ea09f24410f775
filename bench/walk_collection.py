"""A new user's walk through one collection with the real models, in Debian's Chromium: its index,
its datasets, its adapter versions with the gate's verdict, its scoreboard on Strategy, a question
on Ask, the four modes on Compare, a correction, and a near-duplicate question answered from that
correction. A screenshot of each step goes to ``<workspace>/screenshots/<collection>-*.png`` and one
line per step says what the page showed.

    python bench/walk_collection.py COLLECTION "a question" "the same question reworded" "corrected answer"
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.walkthrough import LONG_S, say, walking  # noqa: E402


def main() -> None:
    name, question, reworded, corrected = sys.argv[1:5]
    q = f"?collection={name}"
    with walking(f"{name}-") as (w, _):
        for page, title, what in (
            ("index", "Index", "documents"),
            ("datasets", "Datasets", "sets and review table"),
            ("train", "Train an adapter", "versions and gate"),
            ("strategy", "Strategy: prompt, RAG, fine-tune, or both?", "scoreboard"),
        ):
            secs = w.open(page + q, title)
            metrics = [t.replace("\n", " ") for t in w.text('[data-testid="stMetric"]')][:6]
            sidebar = w.text('[data-testid="stSidebar"] [data-testid="stSelectbox"]')
            say(page, secs, w.shot(page), f"{what}; metrics {metrics}; selector {sidebar}", w.errors())

        # Ask, then correct the answer, then ask a near-duplicate.
        w.open(q, "Ask")
        w.type_into("Your question", question)
        t0 = time.perf_counter()
        w.click("Ask")
        w.wait_for("//*[starts-with(normalize-space(), 'Sources (')] | //*[@data-testid='stException']")
        answer = " / ".join(t.replace("\n", " ") for t in w.text('[data-testid="stChatMessage"]'))
        say("ask", time.perf_counter() - t0, w.shot("ask"), f"answer: {answer[:300]!r}", w.errors())
        from selenium.webdriver.common.by import By

        w.d.find_element(By.XPATH, "//label[.//p[normalize-space()='Correct this answer']]").click()
        w.idle()
        from selenium.webdriver.common.keys import Keys

        box = w.d.find_element(By.CSS_SELECTOR, 'textarea[aria-label="Corrected answer"]')
        box.send_keys(Keys.CONTROL, "a")  # the editor is pre-filled with the answer: replace it
        box.send_keys(Keys.BACKSPACE)
        box.send_keys(corrected)
        w.click("Save correction")
        w.wait_for("//*[contains(normalize-space(), 'Saved correction')]", 120)
        say("correct", None, w.shot("correct"), "saved the correction", w.errors())

        w.open(q, "Ask")
        w.type_into("Your question", reworded)
        t0 = time.perf_counter()
        w.click("Ask")
        w.wait_for(
            "//*[starts-with(normalize-space(), 'Sources (')] | //*[contains(normalize-space(), 'correction memory')] | //*[@data-testid='stException']"
        )
        captions = " ".join(w.text('[data-testid="stCaptionContainer"]'))
        answer = " / ".join(t.replace("\n", " ") for t in w.text('[data-testid="stChatMessage"]'))
        say(
            "ask-again",
            time.perf_counter() - t0,
            w.shot("ask-again"),
            f"from correction: {'correction memory' in captions}; answer: {answer[:200]!r}",
            w.errors(),
        )

        w.open("compare" + q, "Compare the four modes")
        w.type_into("Question", question)
        t0 = time.perf_counter()
        w.click("Compare")
        w.wait_for("//*[normalize-space()='Shared retrieval']", LONG_S)
        heads = [h for h in w.text("h3") if h.strip()]
        say("compare", time.perf_counter() - t0, w.shot("compare"), f"sections: {heads}", w.errors())


if __name__ == "__main__":
    main()
