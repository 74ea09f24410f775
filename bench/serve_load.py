"""Load on `hybrid serve`: ``--clients`` concurrent streaming clients (the official ``openai``
client), each asking ``--questions`` questions of a collection's evaluation set in one mode, against
a server this script starts on 127.0.0.1 (a free port) and stops at the end.

Per request: time to the first streamed text and to the end; errors are counted, not retried. The
server answers one request at a time, so latency grows with the queue: p50/p95 are what a client
sees under that load. The server's peak resident memory is sampled every 0.2 s (the process and its
children). Prints one line per figure and writes ``--json FILE``.

With ``--same N`` it first asks N questions in every mode both ways, whole through the API and
with `hybrid ask --mode M --json` (a separate process), and reports how many texts are equal.

Run: ``python bench/serve_load.py --collection sample --mode rag [--clients 8] [--questions 5] [--same 2]``
(needs `hybrid setup` and the collection's index; about 10-20 minutes on 2 cores with the 0.5B).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.browser_kit import free_port  # noqa: E402


def questions(collection: str, n: int) -> list[str]:
    from app.settings import load_settings
    from app.wiring.collections import with_collection
    from app.wiring.dataset_rows import load_rows

    rows = load_rows(with_collection(load_settings(), collection), "eval")
    return [r["question"] for r in rows if r.get("kind", "fact") == "fact"][:n]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--collection", default="sample")
    ap.add_argument("--mode", default="rag")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--questions", type=int, default=5)
    ap.add_argument("--same", type=int, default=0, help="questions asked in every mode both ways first")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import psutil
    from openai import OpenAI

    asked = questions(args.collection, args.clients * args.questions)
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "app.cli", "serve", "--collection", args.collection, "--port", str(port)]
    server = subprocess.Popen(cmd, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        proc = psutil.Process(server.pid)
        while not done.is_set():
            try:
                rss = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
                peak[0] = max(peak[0], rss)
            except psutil.Error:
                pass
            time.sleep(0.2)

    threading.Thread(target=sample, daemon=True).start()
    api = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=1800)
    deadline = time.monotonic() + 120
    while True:
        try:
            api.models.list()
            break
        except Exception:
            if time.monotonic() > deadline or server.poll() is not None:
                print(
                    "the server did not start:",
                    server.stderr.read() if server.stderr else "",
                    file=sys.stderr,
                )
                return 1
            time.sleep(0.5)

    same = []
    for q in asked[: args.same]:
        for mode in ("prompt", "rag", "tuned", "tuned_rag", "auto"):
            via_api = api.chat.completions.create(
                model=f"{args.collection}:{mode}", messages=[{"role": "user", "content": q}]
            )
            cli = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "app.cli",
                    "ask",
                    q,
                    "--mode",
                    mode,
                    "--json",
                    "--collection",
                    args.collection,
                ],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            text = json.loads(cli.stdout)["text"]
            same.append({"question": q, "mode": mode, "equal": via_api.choices[0].message.content == text})
            print(f"{mode:9} equal={same[-1]['equal']}  {q[:60]}")

    results: list[dict[str, Any]] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        for i in range(args.questions):
            q = asked[(n * args.questions + i) % len(asked)]
            start, first, text, error = time.monotonic(), None, [], None
            try:
                stream = api.chat.completions.create(
                    model=f"{args.collection}:{args.mode}",
                    messages=[{"role": "user", "content": q}],
                    stream=True,
                )
                for chunk in stream:
                    piece = chunk.choices[0].delta.content if chunk.choices else None
                    if piece and first is None:
                        first = time.monotonic() - start
                    text.append(piece or "")
            except Exception as e:  # counted, not retried
                error = f"{type(e).__name__}: {e}"
            with lock:
                results.append(
                    {
                        "client": n,
                        "question": q,
                        "first_s": first,
                        "total_s": time.monotonic() - start,
                        "chars": len("".join(text)),
                        "error": error,
                    }
                )

    wall = time.monotonic()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - wall
    done.set()
    server.terminate()
    server.wait(timeout=60)

    ok = [r for r in results if r["error"] is None and r["chars"] > 0]
    totals = [r["total_s"] for r in ok]
    firsts = [r["first_s"] for r in ok if r["first_s"] is not None]
    report = {
        "collection": args.collection,
        "mode": args.mode,
        "clients": args.clients,
        "questions_per_client": args.questions,
        "requests": len(results),
        "completed": len(ok),
        "errors": [r["error"] for r in results if r["error"]],
        "wall_s": round(wall, 1),
        "latency_s_p50": round(statistics.median(totals), 2) if totals else None,
        "latency_s_p95": round(pct(totals, 0.95), 2) if totals else None,
        "first_text_s_p50": round(statistics.median(firsts), 2) if firsts else None,
        "first_text_s_p95": round(pct(firsts, 0.95), 2) if firsts else None,
        "server_peak_rss_mib": round(peak[0] / 2**20),
        "same_as_ask": {"asked": len(same), "equal": sum(x["equal"] for x in same), "rows": same},
        "cpu": {"cores": os.cpu_count()},
        "rows": results,
    }
    for key in (
        "requests",
        "completed",
        "wall_s",
        "latency_s_p50",
        "latency_s_p95",
        "first_text_s_p50",
        "first_text_s_p95",
        "server_peak_rss_mib",
    ):
        print(f"{key}: {report[key]}")
    print(f"errors: {len(report['errors'])}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0 if len(ok) == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
