"""A new user's first steps with their own folder, in Debian's Chromium, one stage per run (the
long ones run in the background between stages):

    python bench/walk_new_collection.py create NAME FOLDER   # Index page: create and index it
    python bench/walk_new_collection.py build NAME           # Datasets page: start 60 + 200 rows
    python bench/walk_new_collection.py watch NAME           # Datasets page: the build's progress
    python bench/walk_new_collection.py resume NAME          # Datasets page: resume a stopped build
    python bench/walk_new_collection.py review NAME DROP_ID [EDIT_ID "new question"]
    python bench/walk_new_collection.py train NAME           # Train page: 1 epoch, then the gate

``review`` unticks the row DROP_ID in the evaluation table (and rewrites EDIT_ID's question),
saves, and checks the file. A screenshot of each step goes to
``<workspace>/screenshots/<NAME>-new-*.png`` and one line per step says what the page showed.
``bench/walk_collection.py`` goes on from there (Strategy, Ask, a correction, Compare).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.walkthrough import Walk  # noqa: E402
from tests.browser_kit import chromium, start_app, stop_app  # noqa: E402

TRAIN_WAIT_S = 3600


def say(step: str, seconds: float | None, shot: Path, what: str, errors: list[str]) -> None:
    took = f" ({seconds:.1f} s)" if seconds is not None else ""
    print(f"[{step}]{took} {what} -> {shot.name}" + (f"  ERRORS: {errors}" if errors else ""), flush=True)


def workspace() -> Path:
    return Path(os.environ.get("HYBRID_WORKSPACE", ROOT / "workspace")).resolve()


def metrics(w: Walk) -> list[str]:
    return [t.replace("\n", " ") for t in w.text('[data-testid="stMetric"]')]


def create(w: Walk, name: str, folder: str) -> None:
    from selenium.webdriver.common.by import By

    w.open("index", "Index")
    w.d.find_element(By.XPATH, "//summary[.//p[contains(., 'New collection from a folder')]]").click()
    w.idle()
    w.type_into("Name", name)
    w.type_into("Folder with documents (or leave empty and upload)", folder)
    t0 = time.perf_counter()
    w.click("Create and index")
    w.wait_for(f"//*[contains(normalize-space(), 'Built from {folder}')]", 1800)
    seconds = time.perf_counter() - t0
    selector = w.text('[data-testid="stSidebar"] [data-testid="stSelectbox"]')
    say("create", seconds, w.shot("create"), f"metrics {metrics(w)[:4]}; selector {selector}", w.errors())


def build(w: Walk, name: str) -> None:
    w.open(f"datasets?collection={name}", "Datasets")
    say("datasets-empty", None, w.shot("datasets-empty"), f"metrics {metrics(w)[:4]}", w.errors())
    w.click("Build in the background")
    w.wait_for("//*[contains(normalize-space(), 'passages read')]", 300)
    progress = [t for t in w.text('[data-testid="stProgress"]') if t.strip()]
    say("build-started", None, w.shot("build-started"), f"progress {progress}", w.errors())


def watch(w: Walk, name: str) -> None:
    w.open(f"datasets?collection={name}", "Datasets")
    progress = [t.replace("\n", " ") for t in w.text('[data-testid="stProgress"]') if t.strip()]
    notes = [t.replace("\n", " ") for t in w.text('[data-testid="stAlertContainer"]')][:3]
    say("build", None, w.shot("build"), f"metrics {metrics(w)[:4]}; progress {progress}; {notes}", w.errors())


def resume(w: Walk, name: str) -> None:
    w.open(f"datasets?collection={name}", "Datasets")
    w.click("Resume the build")
    w.wait_for("//*[contains(normalize-space(), 'passages read')]", 300)
    progress = [t.replace("\n", " ") for t in w.text('[data-testid="stProgress"]') if t.strip()]
    say("build-resumed", None, w.shot("build-resumed"), f"progress {progress}", w.errors())


def _grid_click(w: Walk, row: int, column_x: int, *, double: bool = False) -> None:
    """A click on the data editor's canvas at ``column_x`` pixels from its left, on body row ``row``."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    grid = w.d.find_element(By.CSS_SELECTOR, '[data-testid="stDataFrameResizable"]')
    w.d.execute_script("arguments[0].scrollIntoView({block: 'start'});", grid)
    height = w.d.execute_script("return arguments[0].getBoundingClientRect().height;", grid)
    width = w.d.execute_script("return arguments[0].getBoundingClientRect().width;", grid)
    y = 35 + 35 * row + 17  # the header row, then 35-pixel rows
    if y > height - 10:
        raise SystemExit(f"row {row} is below the visible part of the table; pick an earlier row")
    chain = ActionChains(w.d).move_to_element_with_offset(grid, column_x - width / 2, y - height / 2)
    (chain.double_click() if double else chain.click()).perform()
    time.sleep(0.5)


def review(w: Walk, name: str, drop_id: str, edit: tuple[str, str] | None) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    eval_set = workspace() / "collections" / name / "datasets" / "eval.jsonl"
    before = [json.loads(x) for x in eval_set.read_text(encoding="utf-8").splitlines() if x.strip()]
    ids = [r["id"] for r in before]
    w.open(f"datasets?collection={name}", "Datasets")
    w.d.execute_script("window.scrollTo(0, document.body.scrollHeight);")
    _grid_click(w, ids.index(drop_id), 25)  # the "keep" tick box
    w.idle()
    if edit:
        edit_id, question = edit
        _grid_click(w, ids.index(edit_id), 260, double=True)  # the question cell
        box = w.d.switch_to.active_element
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(question)
        box.send_keys(Keys.ENTER)
        w.idle()
    kept = " ".join(t for t in w.text('[data-testid="stCaptionContainer"]') if "rows kept" in t)
    say("review", None, w.shot("review"), f"before saving: {kept!r}", w.errors())
    w.click("Save the reviewed rows")
    w.wait_for("//*[starts-with(normalize-space(), 'Saved ')]", 120)
    after = [json.loads(x) for x in eval_set.read_text(encoding="utf-8").splitlines() if x.strip()]
    dropped = sorted(set(ids) - {r["id"] for r in after})
    edited = next((r["question"] for r in after if edit and r["id"] == edit[0]), None)
    backups = sorted(p.name for p in (eval_set.parent / "backups").glob("eval-*.jsonl"))
    say(
        "review-saved",
        None,
        w.shot("review-saved"),
        f"rows {len(before)} -> {len(after)}; dropped {dropped}; edited question {edited!r}; "
        f"backups {backups[-1:]}",
        w.errors(),
    )
    w.d.find_element(By.TAG_NAME, "body")  # the page is still there


def train(w: Walk, name: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    w.open(f"train?collection={name}", "Train an adapter")
    box = w.d.find_element(By.CSS_SELECTOR, 'input[aria-label="epochs"]')
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys("1")
    box.send_keys(Keys.TAB)
    w.idle()
    say("train-form", None, w.shot("train-form"), f"metrics {metrics(w)[:4]}", w.errors())
    t0 = time.perf_counter()
    w.click("Start training")
    w.wait_for(
        "//*[starts-with(normalize-space(), 'Finished: version')] | //*[starts-with(normalize-space(), 'Training failed')]",
        TRAIN_WAIT_S,
    )
    gate = [t for t in w.text('[data-testid="stCaptionContainer"]') if t.startswith("Gate:")]
    done = [t for t in w.text('[data-testid="stAlertContainer"]') if "Finished" in t or "failed" in t]
    say("train", time.perf_counter() - t0, w.shot("train"), f"{done} {gate}", w.errors())


def main() -> None:
    import tempfile

    stage, name, *rest = sys.argv[1:]
    shots = workspace() / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="walk-"))
    proc, url = start_app(workspace(), tmp / "streamlit.log")
    drv = chromium(tmp / "profile", window="1500,2200")
    w = Walk(drv, url, shots)
    w.shot = lambda step: _shot(w, shots / f"{name}-new-{step}.png")  # type: ignore[method-assign]
    try:
        if stage == "create":
            create(w, name, rest[0])
        elif stage == "build":
            build(w, name)
        elif stage == "watch":
            watch(w, name)
        elif stage == "resume":
            resume(w, name)
        elif stage == "review":
            review(w, name, rest[0], (rest[1], rest[2]) if len(rest) >= 3 else None)
        elif stage == "train":
            train(w, name)
        else:
            raise SystemExit(f"unknown stage {stage!r}")
    finally:
        drv.quit()
        stop_app(proc)


def _shot(w: Walk, path: Path) -> Path:
    w.d.save_screenshot(str(path))
    return path


if __name__ == "__main__":
    main()
