"""A new user's first steps with their own folder, in Debian's Chromium, one stage per run (the
long ones run in the background between stages):

    python bench/walk_new_collection.py create NAME FOLDER   # Index page: create and index it
    python bench/walk_new_collection.py build NAME           # Datasets page: start 60 + 200 rows
    python bench/walk_new_collection.py watch NAME           # Datasets page: the build's progress
    python bench/walk_new_collection.py resume NAME          # Datasets page: resume a stopped build
    python bench/walk_new_collection.py review NAME ROW_ID COLUMN "new text" [...] [--drop ROW_ID]
    python bench/walk_new_collection.py train NAME           # Train page: 1 epoch, then the gate

``review`` rewrites cells of the evaluation table (COLUMN is "question" or "key facts"; key
facts are separated by " | "), optionally unticks a row, saves, and checks the file. A screenshot of each step goes to
``<workspace>/screenshots/<NAME>-new-*.png`` and one line per step says what the page showed.
``bench/walk_collection.py`` goes on from there (Strategy, Ask, a correction, Compare).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.walkthrough import Walk, say, walking, workspace  # noqa: E402

TRAIN_WAIT_S = 3600


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


COLUMNS = ["keep", "id", "lang", "question", "key facts", "reference", "source", "split"]


def _grid_cell(w: Walk, row: int, column: str) -> None:
    """Select the evaluation table's cell (``row``, ``column``) with the keyboard: a click on the
    first row's id cell (read-only, so the click changes nothing), then arrow keys (the grid scrolls
    to the cell)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    grid = WebDriverWait(w.d, 60).until(
        lambda d: d.find_element(By.CSS_SELECTOR, '[data-testid="stDataFrameResizable"] canvas')
    )
    grid = w.d.find_element(By.CSS_SELECTOR, '[data-testid="stDataFrameResizable"]')
    time.sleep(1.0)  # the canvas draws its rows after it appears
    w.d.execute_script("arguments[0].scrollIntoView({block: 'center'});", grid)
    box = w.d.execute_script(
        "const r = arguments[0].getBoundingClientRect(); return [r.width, r.height];", grid
    )
    x, y = 95 - box[0] / 2, 35 + 17 - box[1] / 2  # the id column of the first body row
    ActionChains(w.d).move_to_element_with_offset(grid, x, y).click().perform()
    time.sleep(0.3)
    keys = [Keys.ARROW_RIGHT] * (COLUMNS.index(column) - 1) + [Keys.ARROW_DOWN] * row
    chain = ActionChains(w.d)
    for key in keys:
        chain = chain.send_keys(key).pause(0.05)
    chain.perform()
    time.sleep(0.3)


def _save(w: Walk) -> None:
    w.click("Save the reviewed rows")
    w.wait_for("//*[starts-with(normalize-space(), 'Saved ')]", 120)


def review(w: Walk, name: str, edits: list[tuple[str, str, str]], drop: str | None) -> None:
    """Edit cells (row id, column, new text) and untick ``drop``'s keep box, saving after each
    change (a fresh page starts the keyboard walk from the table's first cell)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    eval_set = workspace() / "collections" / name / "datasets" / "eval.jsonl"

    def rows() -> list[dict[str, Any]]:
        return [json.loads(x) for x in eval_set.read_text(encoding="utf-8").splitlines() if x.strip()]

    before = rows()
    for step, (rid, column, text) in enumerate(edits, start=1):
        w.open(f"datasets?collection={name}", "Datasets")
        _grid_cell(w, [r["id"] for r in rows()].index(rid), column)
        ActionChains(w.d).send_keys(Keys.ENTER).pause(0.4).key_down(Keys.CONTROL).send_keys("a").key_up(
            Keys.CONTROL
        ).send_keys(text).pause(0.2).send_keys(Keys.ENTER).perform()
        w.idle()
        say(
            f"review-edit-{step}",
            None,
            w.shot(f"review-edit-{step}"),
            f"{rid} {column} -> {text!r}",
            w.errors(),
        )
        _save(w)
    if drop:
        w.open(f"datasets?collection={name}", "Datasets")
        _grid_cell(w, [r["id"] for r in rows()].index(drop), "id")
        ActionChains(w.d).send_keys(Keys.ARROW_LEFT).pause(0.2).send_keys(Keys.SPACE).perform()  # keep box
        w.idle()
        kept = " ".join(t for t in w.text('[data-testid="stCaptionContainer"]') if "rows kept" in t)
        say("review-drop", None, w.shot("review-drop"), f"{drop} unticked: {kept!r}", w.errors())
        _save(w)
    after = rows()
    by_id = {r["id"]: r for r in after}
    changed = {
        rid: (by_id.get(rid, {}).get("question"), by_id.get(rid, {}).get("key_facts")) for rid, _, _ in edits
    }
    backups = sorted(p.name for p in (eval_set.parent / "backups").glob("eval-*.jsonl"))
    say(
        "review-saved",
        None,
        w.shot("review-saved"),
        f"rows {len(before)} -> {len(after)}; dropped {sorted({r['id'] for r in before} - set(by_id))}; "
        f"edited {changed}; {len(backups)} backups, newest {backups[-1:]}",
        w.errors(),
    )


def train(w: Walk, name: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    w.open(f"train?collection={name}", "Train an adapter")
    box = WebDriverWait(w.d, 60).until(
        lambda d: d.find_element(By.CSS_SELECTOR, 'input[aria-label="epochs"]')
    )
    time.sleep(1.0)
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
    stage, name, *rest = sys.argv[1:]
    with walking(f"{name}-new-") as (w, _):
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
                drop = rest[rest.index("--drop") + 1] if "--drop" in rest else None
                cells = [
                    x for i, x in enumerate(rest) if x != "--drop" and (i == 0 or rest[i - 1] != "--drop")
                ]
                review(w, name, [tuple(cells[i : i + 3]) for i in range(0, len(cells) - 2, 3)], drop)  # type: ignore[misc]
            elif stage == "train":
                train(w, name)
            else:
                raise SystemExit(f"unknown stage {stage!r}")
        except Exception:
            print(f"failed; the page is in {w.shot('failed')}", flush=True)
            raise


if __name__ == "__main__":
    main()
