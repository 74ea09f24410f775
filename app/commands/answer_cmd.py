"""`hybrid ask`, `hybrid compare` and `hybrid correct`: answer one question (streamed), answer it in
all four modes over one retrieval, and record a correction of the last or a given answer.

Every answer is saved in the workspace (``answers/<id>.json`` and ``last_answer.json``) so
``hybrid correct`` can refer to it without loading a model.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.commands.args import add_collection
from app.settings import Settings
from domain.errors import ConfigError
from domain.plain import one_line, terminal_text
from domain.router import MODE_CHOICES

if TYPE_CHECKING:
    from domain.pipeline import Comparison
    from domain.style import StyleProfile
    from domain.types import Answer, Hit

KEEP_ANSWERS = 100
LAST_ANSWER = "last_answer.json"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ask", help="answer a question (streams the answer)")
    p.add_argument("question", help="the question")
    p.add_argument(
        "--mode", default="auto", choices=MODE_CHOICES, help="answering mode (default: the router picks)"
    )
    add_collection(p, "--index")
    p.add_argument("--json", action="store_true", help="print the answer as JSON instead of streaming")
    p.set_defaults(func=run_ask)

    p = sub.add_parser("compare", help="answer in all four modes over one shared retrieval")
    p.add_argument("question", help="the question")
    add_collection(p, "--index")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.set_defaults(func=run_compare)

    p = sub.add_parser("correct", help="record a corrected answer (the last one unless told otherwise)")
    p.add_argument("--answer-id", default=None, help="id of a saved answer (printed by ask/compare)")
    p.add_argument("--question", default=None, help="correct an answer to this question instead")
    p.add_argument(
        "--mode", default=None, choices=MODE_CHOICES[1:], help="the mode of that answer (with --question)"
    )
    p.add_argument("--corrected", required=True, help="the corrected answer text")
    add_collection(p)
    p.add_argument("--json", action="store_true", help="print the stored correction as JSON")
    p.set_defaults(func=run_correct)


# ----------------------------------------------------------------------------- saved answers
def answers_dir(settings: Settings) -> Path:
    return settings.ws.answers


def save_answer(settings: Settings, answer: Answer, answer_id: str, *, last: bool = True) -> None:
    """Keep ``answer`` as answers/<id>.json (the newest ``KEEP_ANSWERS`` are kept) and as the last answer."""
    from domain.atomic import write_json_atomic
    from domain.serialize import answer_to_json

    data = {"answer_id": answer_id, "collection": settings.collection, **answer_to_json(answer)}
    folder = answers_dir(settings)
    write_json_atomic(settings.ws.answer(answer_id), data)
    if last:
        write_json_atomic(settings.ws.root / LAST_ANSWER, data)
    old = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime)[:-KEEP_ANSWERS]
    for path in old:
        path.unlink(missing_ok=True)


def new_answer_id() -> str:
    return time.strftime("a%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def saved_collection(settings: Settings, answer_id: str | None) -> str | None:
    """The collection a saved answer (by id, or the last one) was answered in, when recorded."""
    from domain.atomic import read_json

    path = settings.ws.answer(answer_id) if answer_id is not None else settings.ws.root / LAST_ANSWER
    try:
        value = read_json(path).get("collection")
    except (OSError, ValueError, AttributeError):
        return None
    return str(value) if value else None


def load_answer(settings: Settings, answer_id: str | None) -> Answer:
    """A saved answer by id, or the last one.

    Raises:
        ConfigError: no such answer.
    """
    from domain.atomic import read_json
    from domain.serialize import answer_from_json

    path = settings.ws.answer(answer_id) if answer_id is not None else settings.ws.root / LAST_ANSWER
    if not path.is_file():
        if answer_id is not None:
            raise ConfigError(
                f"no saved answer {answer_id!r} in {answers_dir(settings)} — check the id printed by `hybrid ask`"
            )
        raise ConfigError(
            "there is no answer to correct yet — ask with `hybrid ask` first, or pass --question and --mode"
        )
    try:
        return answer_from_json(read_json(path))
    except ValueError as e:
        raise ConfigError(f"saved answer {path} is unreadable ({e}) — ask the question again") from e


# ----------------------------------------------------------------------------- rendering
def _where(hit: Hit) -> str:
    parts = [hit.chunk.path] + ([hit.chunk.heading] if hit.chunk.heading else [])
    if hit.chunk.page is not None:
        parts.append(f"page {hit.chunk.page}")
    return one_line(" | ".join(parts))


def _print_passages(hits: list[Hit]) -> None:
    if not hits:
        return
    print("passages:")
    for i, h in enumerate(hits, start=1):
        dense = "" if h.dense_score is None else f", dense {h.dense_score:.2f}"
        bm25 = "" if h.bm25_score is None else f", BM25 {h.bm25_score:.1f}"
        print(f"  [{i}] {_where(h)} (score {h.score:.3f}{dense}{bm25})")


def _print_details(answer: Answer, answer_id: str, model: str) -> None:
    _print_passages(answer.passages)
    if answer.evidence:
        e = answer.evidence
        print(f'evidence: "{one_line(e.sentence)}" → {one_line(e.path)}')
    if answer.answered_by:
        print(
            f"answered by {one_line(answer.answered_by)}: the question and its best passage are in different languages"
        )
    if answer.translated_from:
        print(f'answer line translated; as the model wrote it: "{one_line(answer.translated_from)}"')
    if answer.citations:
        print("citations:")
        for c in answer.citations:
            where = c.path + (f" | {c.heading}" if c.heading else "")
            print(f'  "{one_line(c.sentence)}" → {one_line(where)}: "{one_line(c.span)}" ({c.score:.2f})')
    t = answer.timing
    print(f"mode: {answer.mode.value} — {answer.reason}")
    if not answer.from_correction:
        print(f"model: {model}")
    if answer.from_correction:
        print("answered from your correction memory (no model was run)")
    else:
        print(
            f"timing: retrieval {t.retrieval_s:.2f} s · first token {t.first_token_s:.2f} s · "
            f"total {t.total_s:.2f} s · {t.tokens_per_s:.1f} tokens/s"
            + (f" · answer line translated in {t.translate_s:.2f} s" if t.translate_s else "")
        )
    for w in answer.warnings:
        print(f"warning: {one_line(w)}", file=sys.stderr)
    print(f'answer id: {answer_id} (fix it with `hybrid correct --corrected "..."`)')


def answer_json(answer: Answer, answer_id: str, style: StyleProfile) -> dict[str, Any]:
    from domain.serialize import answer_to_json
    from domain.style import format_score

    return {
        "answer_id": answer_id,
        **answer_to_json(answer),
        "format": format_score(answer.text, style=style),
    }


# ----------------------------------------------------------------------------- commands
def run_ask(args: argparse.Namespace, settings: Settings) -> int:
    from app.commands.progress import emit_json
    from app.wiring.answer import build_assistant
    from app.wiring.models import describe_base

    assistant = build_assistant(settings)
    stream = assistant.stream(args.question, args.mode)
    if args.json:
        answer = stream.answer()
    else:
        for piece in stream.pieces:
            sys.stdout.write(terminal_text(piece))
            sys.stdout.flush()
        print()
        answer = stream.answer()
    answer_id = new_answer_id()
    save_answer(settings, answer, answer_id)
    if args.json:
        emit_json(answer_json(answer, answer_id, assistant.options.style), None)
    else:
        _print_details(answer, answer_id, describe_base(settings))
    return 0


def comparison_json(result: Comparison, ids: dict[str, str], style: StyleProfile) -> dict[str, Any]:
    from domain.serialize import hit_to_json

    return {
        "question": result.question,
        "decision": {"mode": result.decision.mode.value, "reason": result.decision.reason},
        "retrieval_s": result.retrieval_s,
        "passages": [hit_to_json(h) for h in result.passages],
        "answers": [answer_json(a, ids[a.mode.value], style) for a in result.answers],
    }


def run_compare(args: argparse.Namespace, settings: Settings) -> int:
    from app.commands.progress import emit_json
    from app.wiring.answer import build_assistant
    from domain.style import format_score

    assistant = build_assistant(settings)
    style = assistant.options.style
    result = assistant.compare(args.question)
    base = new_answer_id()
    ids = {a.mode.value: f"{base}-{a.mode.value}" for a in result.answers}
    for a in result.answers:
        save_answer(settings, a, ids[a.mode.value], last=a.mode == result.decision.mode)
    if args.json:
        emit_json(comparison_json(result, ids, style), None)
        return 0
    from app.wiring.models import describe_base

    print(f"model: {describe_base(settings)}")
    print(f"router picks {result.decision.mode.value}: {result.decision.reason}")
    print(f"retrieval (shared by rag and tuned_rag): {result.retrieval_s:.2f} s\n")
    print(f"{'mode':10} {'latency s':>9} {'1st tok s':>9} {'tokens/s':>9} {'format':>6}  answer id")
    for a in result.answers:
        t = a.timing
        mark = " *" if a.mode == result.decision.mode else ""
        print(
            f"{a.mode.value:10} {t.total_s:>9.2f} {t.first_token_s:>9.2f} {t.tokens_per_s:>9.1f} "
            f"{format_score(a.text, style=style):>6.2f}  {ids[a.mode.value]}{mark}"
        )
    for a in result.answers:
        print(f"\n── {a.mode.value}{' (router pick)' if a.mode == result.decision.mode else ''} ──")
        print(terminal_text(a.text) or "(no answer)")
        for w in a.warnings:
            print(f"warning: {one_line(w)}")
    print()
    _print_passages(result.passages)
    return 0


def run_correct(args: argparse.Namespace, settings: Settings) -> int:
    from app.commands.progress import emit_json
    from domain.corrections import CorrectionStore
    from domain.types import Answer, Mode

    if args.question is not None and args.answer_id is not None:
        raise ConfigError("pass either --answer-id or --question, not both")
    if not args.corrected.strip():
        raise ConfigError("--corrected is empty — pass the corrected answer text")
    if args.question is not None:
        if not args.question.strip():
            raise ConfigError("--question is empty — pass the question whose answer you correct")
        if not args.mode:
            raise ConfigError("--question needs --mode (the mode whose answer you correct)")
        try:
            last = load_answer(settings, None)
        except ConfigError:
            last = None
        same = (
            last is not None
            and last.question.strip() == args.question.strip()
            and last.mode.value == args.mode
        )
        answer = last if same and last is not None else Answer(args.question.strip(), Mode(args.mode), "")
    else:
        answer = load_answer(settings, args.answer_id)
        if args.mode and args.mode != answer.mode.value:
            raise ConfigError(
                f"that answer is in mode {answer.mode.value}, not {args.mode} — drop --mode or pick another answer"
            )
    from app.wiring.answer import feedback_db
    from app.wiring.collections import with_collection

    if args.collection is None and args.question is None:
        # a saved answer's correction belongs to the collection that answered it
        settings = with_collection(settings, saved_collection(settings, args.answer_id))
    store = CorrectionStore(feedback_db(settings))
    cid = store.add(
        question=answer.question,
        mode=answer.mode.value,
        corrected=args.corrected,
        original=answer.text,
        passages=answer.passages,
    )
    if args.json:
        emit_json({"id": cid, "question": answer.question, "mode": answer.mode.value}, None)
    else:
        print(
            f'stored correction #{cid} for "{one_line(answer.question)}" ({answer.mode.value}); '
            "the same question is now answered from it — retrain with `hybrid train --from-corrections`"
        )
    return 0
