"""`hybrid eval`: retrieval evaluation (``--retrieval``), per-mode answer evaluation, and router
fitting (``--fit-router``). Argument parsing lives here; the work lives in ``app.evaluation``
(``retrieval`` and ``modes``).
"""

from __future__ import annotations

import argparse

from app.commands.args import add_collection, positive_int
from app.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="score retrieval and the four answering modes on an eval set")
    p.add_argument("--retrieval", action="store_true", help="only evaluate retrieval (dense, BM25, hybrid)")
    p.add_argument("--fit-router", action="store_true", help="fit the router's thresholds and store them")
    p.add_argument(
        "--refit",
        metavar="ROWS_JSONL",
        default=None,
        help="fit the router again from a saved run's per-row results (modes-*.rows.jsonl; no model runs)",
    )
    p.add_argument("--modes", default="prompt,rag,tuned,tuned_rag,auto", help="comma-separated modes")
    p.add_argument(
        "--eval-set",
        default=None,
        help="JSONL in the eval.jsonl schema (default: the collection's evaluation set)",
    )
    add_collection(p, "--index")
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N rows")
    p.add_argument("--kinds", default=None, help="comma-separated row kinds to keep")
    p.add_argument(
        "--split",
        choices=("tune", "heldout"),
        default=None,
        help="only rows of this split: choose between variants on 'tune', report on 'heldout'",
    )
    p.add_argument(
        "--k",
        type=positive_int,
        default=None,
        help="passages retrieved per question, for the answers and the retrieval scores (default: the "
        "setting index.top_k)",
    )
    p.add_argument(
        "--json", dest="json_path", default=None, help="write the report as JSON here ('-' = stdout)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.retrieval:
        from app.evaluation.retrieval import run_retrieval_eval

        return run_retrieval_eval(args, settings)
    from app.evaluation.modes import run_mode_eval, run_refit

    if args.refit:
        return run_refit(args, settings)
    return run_mode_eval(args, settings)
