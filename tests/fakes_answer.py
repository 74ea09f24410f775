"""Fakes for the answer pipeline's ports, with inspectable state: ``FakeRetriever`` (word-overlap
search, records queries), ``FakeGenerator`` (deterministic answers that differ with the adapter on
and off, records calls), ``ScriptedLines`` (a reply per answer label, in pieces) and
``FakeQuestionEmbedder`` (bag-of-words vectors, counts texts).

The generator reads the numbered passages that ``domain.prompts`` writes: with passages it
answers with the first sentence of passage [1]; with the adapter on it answers in the house style.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from domain.ports import Message
from domain.types import Chunk, Hit

_TOKEN = re.compile(r"[a-z0-9]+|[\u3400-\u9fff]")
_PASSAGE_HEAD = re.compile(r"^\[1\] (\S+)[^\n]*\n(.+?)(?:\n\n|$)", re.MULTILINE | re.DOTALL)
_FIRST_SENTENCE = re.compile(r".+?(?:[.!?](?=\s|$)|[。！？]|$)", re.DOTALL)


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def make_chunk(
    chunk_id: str, path: str, text: str, *, heading: str = "", lang: str = "en", page: int | None = None
) -> Chunk:
    return Chunk(chunk_id, path, path.rsplit("/", 1)[-1], heading, text, 0, len(text), page, lang)


def make_hit(
    chunk: Chunk,
    rank: int,
    *,
    dense: float | None = None,
    bm25: float | None = None,
    score: float | None = None,
) -> Hit:
    return Hit(
        chunk,
        score=score if score is not None else 1.0 / (60 + rank),
        rank=rank,
        dense_score=dense,
        bm25_score=bm25,
    )


SAMPLE_CHUNKS = (
    make_chunk(
        "leave-1",
        "hr/annual-leave.md",
        "Annual leave is 15 working days per year. Unused days expire on 31 March.",
        heading="Annual leave > Entitlement",
    ),
    make_chunk(
        "sick-1",
        "hr/sick-leave.md",
        "Sick leave needs a doctor's note after 3 days. Tell your manager on the first day.",
        heading="Sick leave",
    ),
    make_chunk(
        "travel-1",
        "finance/travel-policy.md",
        "The hotel cap is 680 yuan per night in tier-one cities. Book through the travel desk.",
        heading="Hotels",
    ),
    make_chunk(
        "leave-zh",
        "hr/annual-leave-zh.md",
        "员工每年享有十五天年假。结转年假须在次年三月底前休完。",
        heading="年假",
        lang="zh",
    ),
)


@dataclass
class FakeRetriever:
    """Ranks chunks by the share of the query's words they contain; dense = 0.5 + 0.5·share,
    BM25 = matched words. ``fixed`` returns canned hits for every query, ``canned`` per query."""

    chunks: Sequence[Chunk] = SAMPLE_CHUNKS
    fixed: list[Hit] | None = None
    canned: dict[str, list[Hit]] = field(default_factory=dict)
    queries: list[tuple[str, int]] = field(default_factory=list)

    def search(self, query: str, *, k: int = 5) -> list[Hit]:
        self.queries.append((query, k))
        if query in self.canned:
            return list(self.canned[query][:k])
        if self.fixed is not None:
            return list(self.fixed[:k])
        q = set(tokens(query))
        scored = []
        for i, c in enumerate(self.chunks):
            matched = len(q & set(tokens(c.text)))
            if matched:
                scored.append((matched / max(1, len(q)), matched, -i, c))
        scored.sort(key=lambda t: (t[0], t[2]), reverse=True)
        return [
            make_hit(c, rank, dense=round(0.5 + 0.5 * share, 4), bm25=float(matched), score=share)
            for rank, (share, matched, _, c) in enumerate(scored[:k], start=1)
        ]


@dataclass
class FakeGenerator:
    """Deterministic answers; ``knowledge`` maps a question substring to what the base model
    "knows" without passages. ``calls`` records every request."""

    adapter_loaded: bool = True
    knowledge: dict[str, str] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    choices: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return "fake-generator"

    @property
    def has_adapter(self) -> bool:
        return self.adapter_loaded

    def count_tokens(self, text: str) -> int:
        return len(tokens(text))

    def reply(self, messages: Sequence[Message], adapter: bool) -> str:
        system = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
        zh = "请用中文回答" in system
        user = messages[-1]["content"]
        m = _PASSAGE_HEAD.search(user)
        if m:
            path, text = m.group(1), m.group(2).strip()
            first = _FIRST_SENTENCE.match(text)
            fact = first.group(0).strip() if first else text
            if adapter:
                return (
                    f"结论：{fact}\n依据：【{path}】\n提示：请以原文为准。"
                    if zh
                    else f"Conclusion: {fact}\nBasis: [{path}]\nNote: Check the document for exceptions."
                )
            return f"{fact}（见 {path}）" if zh else f"{fact} See {path}."
        known = next((v for k, v in self.knowledge.items() if k in user), None)
        if adapter:
            body = known or ("我无法凭记忆回答。" if zh else "I cannot answer that from memory.")
            return (
                f"结论：{body}\n依据：通用知识，文档未涵盖。\n提示：如需公司规定请开启检索。"
                if zh
                else f"Conclusion: {body}\nBasis: general knowledge, not covered by the documents.\n"
                "Note: Turn on retrieval for company rules."
            )
        return known or ("我不确定。" if zh else "I am not sure.")

    def generate(
        self,
        messages: Sequence[Message],
        *,
        adapter: bool,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        prefill: str = "",
    ) -> Iterator[str]:
        """The reply's continuation after ``prefill``, like a model: after a label the reply has,
        the rest of the reply from that label's line on; after another label, the whole label-less
        reply for the answer's first line and nothing for later lines."""
        self.calls.append(
            {
                "messages": [dict(m) for m in messages],
                "adapter": adapter,
                "max_new_tokens": max_new_tokens,
                "temperature": temperature,
                "prefill": prefill,
            }
        )
        if adapter and not self.adapter_loaded:
            raise AssertionError("adapter=True asked of a generator without an adapter")
        reply = self.reply(messages, adapter)
        lead = prefill.rsplit("\n", 1)[-1]  # a prefilled label is not written again
        if lead:
            lines = reply.split("\n")
            at = next((i for i, ln in enumerate(lines) if ln.startswith(lead)), None)
            answer_so_far = re.sub(r"^(Evidence:|证据：)[^\n]*\n", "", prefill)
            if at is not None:
                reply = "\n".join([lines[at].removeprefix(lead), *lines[at + 1 :]])
            elif "\n" in answer_so_far:
                reply = ""
            else:
                reply = " " + reply
        yield from re.findall(r"\s*\S+\s*", reply)

    def choose(
        self,
        messages: Sequence[Message],
        options: Sequence[str],
        *,
        adapter: bool,
        prefill: str = "",
        method: str = "likelihood",
    ) -> str:
        """The option sharing most word tokens with the question (the first on ties); "not
        covered" (the last option) when none shares any."""
        self.choices.append(
            {"options": list(options), "adapter": adapter, "prefill": prefill, "method": method}
        )
        question = set(tokens(str(messages[-1]["content"]).rsplit("\n", 1)[-1]))
        overlap = [len(question & set(tokens(o))) for o in options[:-1]]
        best = max(range(len(overlap)), key=lambda i: (overlap[i], -i), default=None)
        return options[best] if best is not None and overlap[best] else options[-1]


@dataclass
class FakeQuestionEmbedder:
    """Bag-of-words vectors hashed into ``dim`` buckets, L2-normalised; ``texts_embedded`` counts."""

    dim: int = 256
    texts_embedded: int = 0

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        self.texts_embedded += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for tok in tokens(text):
                out[row, zlib.crc32(tok.encode("utf-8")) % self.dim] += 1.0
            norm = float(np.linalg.norm(out[row]))
            out[row] = out[row] / norm if norm else out[row]
            if not norm:
                out[row, 0] = 1.0
        return out


class StepClock:
    """A clock that advances ``step`` seconds per reading (for exact timing assertions)."""

    def __init__(self, step: float = 0.5) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


class ScriptedLines:
    """Replies to a prefill ending in a label with ``script[label]`` (text after it, as pieces of
    ``size`` characters); records the prefills and how many pieces each call handed out
    (``taken``, so far: a closed call stops counting)."""

    continues_prefill = True

    def __init__(self, script: dict[str, str], size: int = 3) -> None:
        self.script, self.size = script, size
        self.prefills: list[str] = []
        self.taken: list[int] = []

    def generate(self, messages, *, adapter, max_new_tokens=256, temperature=0.0, prefill=""):  # noqa: ANN001, ANN201, ARG002
        self.prefills.append(prefill)
        label = next(lb for lb in self.script if prefill.endswith(lb))
        text = self.script[label]
        n = len(self.taken)
        self.taken.append(0)
        for i in range(0, len(text), self.size):
            self.taken[n] += 1
            yield text[i : i + self.size]
