"""The answer service: turns a question into an ``Answer`` in a chosen mode or the router's, from
the ports (a ``Retriever``, a ``Generator``, an embed function for the correction memory and a
``CorrectionStore``) and plain option values.

Order of work for one question: correction memory (a near-duplicate corrected before is answered
at once), retrieval (only when the mode or the router needs it), the route, the prompt, the
quoted evidence when quoting is on (``domain.evidence``), the answer's lines streamed as the
model writes them (``domain.answer_format``; an answer line in another language than the
question's put into it by ``translate_line``, ``domain.answer_language``), then citations and
warnings. ``compare`` answers in all four modes over one shared retrieval. The shapes it hands
back live in ``domain.answer_stream`` (re-exported here); building the real ports from settings is
``app.wiring.answer``'s job.

Above ~300 lines because it is one class that orders the steps; each step's own logic lives in
the module named beside it, so splitting the class would split that order across files.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field

from domain import evidence
from domain.answer_format import LineWriter
from domain.answer_language import LineTranslator
from domain.answer_stream import AUTO, AnswerStream, Comparison, Retrieval, parse_mode, stream_of
from domain.citations import DEFAULT_THRESHOLD, attach_citations
from domain.corrections import CorrectionStore, EmbedFn
from domain.crosslingual import TranslatingRetriever
from domain.errors import ConfigError
from domain.ports import Generator as TextGenerator
from domain.ports import Retriever
from domain.prompts import CountTokens, Prompt, build_prompt, prompt_lang
from domain.router import MODE_LABELS, AdapterState, RouterThresholds, chosen, compared, route
from domain.style import NEUTRAL, StyleProfile
from domain.types import ALL_MODES, Answer, Citation, Hit, Mode, RouteDecision, Timing

logger = logging.getLogger(__name__)

__all__ = [
    "AUTO",
    "AnswerStream",
    "Assistant",
    "AssistantOptions",
    "Comparison",
    "Retrieval",
    "parse_mode",
]

Clock = Callable[[], float]


@dataclass(frozen=True)
class AssistantOptions:
    """Plain values from settings (the pipeline never reads settings itself)."""

    top_k: int = 5
    max_new_tokens: int = 256
    temperature: float = 0.0
    context_tokens: int = 1400
    focus_segments: int = 3
    # Best-ranked passages shown whole despite focus_segments.
    whole_passages: int = 1
    # RAG (the base model) reads its passages lowest-ranked first, [1] right above the question,
    # and its worked example the same way. Tuned + RAG keeps rank order, the order its adapter
    # was trained on.
    best_passage_last: bool = True
    # Retrieval modes first quote one sentence of their passages (a constrained choice) and cite it.
    quote_evidence: bool = False
    # How the quote is chosen: "likelihood" (the most likely option whole) or "greedy" (decoding
    # under a grammar of the options).
    evidence_choice: str = "likelihood"
    # The quote is chosen among this many sentences, the ones the sentence scorer ranks best
    # (alone or two together); 0 = among every shown sentence, one at a time.
    evidence_candidates: int = 0
    correction_similarity: float = 0.92
    low_score_warning: float = 0.80
    citation_threshold: float = DEFAULT_THRESHOLD
    # The collection's answer style: its labels and lines (``domain.answer_format``) and prompts.
    style: StyleProfile = NEUTRAL


def answer_prompt(
    options: AssistantOptions, mode: Mode, question: str, hits: Sequence[Hit], count_tokens: CountTokens
) -> Prompt:
    """The prompt ``mode`` answers ``question`` from, as the assistant builds it: the retrieval
    modes' passages within the budget, in the order and layout the options and style ask for (the
    export's golden check asks the same prompts)."""
    return build_prompt(
        mode,
        question,
        hits if mode.uses_retrieval else (),
        context_tokens=options.context_tokens,
        count_tokens=count_tokens,
        focus_segments=options.focus_segments,
        whole_passages=options.whole_passages,
        best_last=options.best_passage_last and not mode.uses_adapter,
        style=options.style,
        evidence=options.quote_evidence,
    )


@dataclass
class Assistant:
    """Answers questions in four modes. Thread-safe as long as the ports are."""

    retriever: Retriever | None
    generator: TextGenerator
    embed_fn: EmbedFn | None = None
    corrections: CorrectionStore | None = None
    options: AssistantOptions = field(default_factory=AssistantOptions)
    thresholds: RouterThresholds = field(default_factory=RouterThresholds)
    adapter: AdapterState | None = None
    clock: Clock = time.perf_counter
    # Ranks the sentences a quote may be (``domain.evidence.ranked``); None = no ranking.
    sentence_scorer: evidence.SentenceScorer | None = None
    # Puts an answer line written in another language than the question's into the question's
    # (``domain.answer_language``); None = answer lines stay as the model wrote them.
    translate_line: LineTranslator | None = None
    # A larger model that answers in the retrieval modes when the question and its best passage
    # are in different languages (``other_language_label`` names it in the reason); None = the
    # generator answers every question.
    other_language_generator: TextGenerator | None = None
    other_language_label: str = ""
    other_language_adapter: str = ""  # the label of its adapter, named when a tuned mode uses it
    # The collection's indexed files: a source a mode without passages names is checked against them.
    collection_files: Sequence[str] = ()

    def __post_init__(self) -> None:
        if self.adapter is None:
            self.adapter = AdapterState(active=self.generator.has_adapter)

    @property
    def adapter_state(self) -> AdapterState:
        return self.adapter or AdapterState()

    # ------------------------------------------------------------------ steps
    def retrieve(self, question: str) -> Retrieval:
        """Search once for ``question``.

        Raises:
            ConfigError: no retriever was given (no index).
        """
        if self.retriever is None:
            raise ConfigError(
                "no index is open — build one with `hybrid index FOLDER` or pick --mode prompt/tuned"
            )
        start = self.clock()
        searched_as: dict[str, str] = {}
        if isinstance(self.retriever, TranslatingRetriever):
            found, searched_as = self.retriever.search_translated(question, k=self.options.top_k)
        else:
            found = self.retriever.search(question, k=self.options.top_k)
        hits = sorted(found, key=lambda h: h.rank)
        return Retrieval(question, hits, self.clock() - start, searched_as)

    def decide(self, question: str, mode: Mode | str, retrieval: Retrieval) -> RouteDecision:
        """The router's pick for "auto", else the user's mode marked as overridden."""
        fixed = parse_mode(mode)
        if fixed is None:
            return route(question, retrieval.hits, self.adapter_state, self.thresholds, retrieval.searched_as)
        return chosen(fixed, question, retrieval.hits, retrieval.searched_as)

    def from_memory(self, question: str) -> Answer | None:
        """The stored correction of a near-duplicate question (same language), or None."""
        if self.corrections is None or self.embed_fn is None:
            return None
        found = self.corrections.find_similar(question, self.embed_fn, self.options.correction_similarity)
        if found is None:
            return None
        rec = found.correction
        try:
            mode = Mode(rec.mode)
        except ValueError:
            mode = Mode.PROMPT
        hits = rec.passage_hits()
        reason = f"From correction #{rec.id} (similarity {found.similarity:.2f} to an earlier question)"
        logger.info("answered from correction %d (similarity %.3f)", rec.id, found.similarity)
        return Answer(
            question=question,
            mode=mode,
            text=rec.corrected,
            reason=reason,
            passages=hits,
            citations=attach_citations(rec.corrected, hits, threshold=self.options.citation_threshold),
            from_correction=True,
        )

    def _no_adapter(self) -> str:
        """Why the tuned modes cannot answer: the wiring's reason, else that none is loaded."""
        return self.adapter_state.note or "no adapter is loaded — train one with `hybrid train`"

    def _check_adapter(self, mode: Mode) -> None:
        if mode.uses_adapter and not self.generator.has_adapter:
            raise ConfigError(
                f"mode {mode.value} needs a LoRA adapter: {self._no_adapter()} (or answer in mode prompt or rag)"
            )

    def _warnings(self, mode: Mode, prompt: Prompt, retrieval: Retrieval) -> list[str]:
        if not mode.uses_retrieval:
            return []
        if not retrieval.hits:
            return ["nothing was retrieved — is the index built for these documents?"]
        dense = [h.dense_score for h in retrieval.hits if h.dense_score is not None]
        out = []
        if dense and max(dense) < self.options.low_score_warning:
            out.append(
                f"best passage scores low ({max(dense):.2f} < {self.options.low_score_warning:.2f}): "
                "the documents may not cover this question"
            )
        if not prompt.passages:
            out.append("no passage fit the prompt's token budget; answered without passages")
        return out

    def _run(
        self,
        question: str,
        decision: RouteDecision,
        prompt: Prompt,
        retrieval: Retrieval,
    ) -> Generator[str, None, Answer]:
        """Yield the generator's pieces, then return the finished ``Answer``."""
        mode = decision.mode
        start = self.clock()
        first: float | None = None
        parts: list[str] = []
        model, note = self._model_for(mode, question, prompt)
        quoted, prefill = self._quote(question, mode, prompt, model)
        passages = prompt.passages if mode.uses_retrieval else []
        threshold = self.options.citation_threshold

        def source(text: str) -> list[str]:
            cited = quoted if prefill else attach_citations(text, passages, threshold=threshold)
            return list(dict.fromkeys(c.path for c in cited))

        writer = LineWriter(
            self.options.style,
            prompt_lang(question),
            passages=passages,
            files=self.collection_files,
            source=source,
            translate=self.translate_line,
            clock=self.clock,
        )
        for piece in writer.write(
            model,
            prompt.messages,
            adapter=mode.uses_adapter,
            max_new_tokens=self.options.max_new_tokens,
            temperature=self.options.temperature,
            prefill=prefill,
        ):
            if first is None:
                first = self.clock() - start
            parts.append(piece)
            yield piece
        total = self.clock() - start
        text = "".join(parts).strip()
        timing = Timing(
            retrieval_s=retrieval.retrieval_s,
            first_token_s=first if first is not None else total,
            total_s=total,
            tokens=model.count_tokens(writer.model_text) if text else 0,
            model_first_s=None if writer.first_piece_at is None else writer.first_piece_at - start,
            translate_s=writer.translate_s,
        )
        if not mode.uses_retrieval:
            citations = []
        elif prefill:  # the quote's passages are the citations, by construction
            citations = quoted
        else:  # found from the model's own words, not from a translation of its answer line
            citations = attach_citations(
                writer.model_text.strip(), prompt.passages, threshold=self.options.citation_threshold
            )
        return Answer(
            question=question,
            mode=mode,
            text=text,
            reason=decision.reason + note,
            passages=list(prompt.passages),
            citations=citations,
            timing=timing,
            warnings=self._warnings(mode, prompt, retrieval) + writer.warnings,
            evidence=quoted[0] if quoted else None,
            searched_as=dict(retrieval.searched_as) if mode.uses_retrieval else {},
            translated_from=writer.translated_from,
            answered_by=self._other_name(mode, model) if note else "",
        )

    def _model_for(self, mode: Mode, question: str, prompt: Prompt) -> tuple[TextGenerator, str]:
        """The model that answers, and what the reason should add: the other-language model in a
        retrieval mode whose best passage is in another language than the question (with its own
        adapter for the tuned modes, else not at all); else the generator, adding nothing."""
        other = self.other_language_generator
        if other is None or not mode.uses_retrieval or not prompt.passages:
            return self.generator, ""
        if mode.uses_adapter and not other.has_adapter:
            return self.generator, ""
        lang = prompt_lang(question)
        best = min(prompt.passages, key=lambda h: h.rank)
        if best.chunk.lang == lang:
            return self.generator, ""
        names = {"en": "English", "zh": "Chinese"}
        return other, (
            f"; answered by {self._other_name(mode, other)}: the question is in "
            f"{names.get(lang, lang)}, its best passage in {names.get(best.chunk.lang, best.chunk.lang)}"
        )

    def _other_name(self, mode: Mode, other: TextGenerator) -> str:
        """The other-language model's label, with its adapter's in a tuned mode."""
        name = self.other_language_label or other.name
        if mode.uses_adapter and self.other_language_adapter:
            name += f" with adapter {self.other_language_adapter}"
        return name

    def _quote(
        self, question: str, mode: Mode, prompt: Prompt, model: TextGenerator
    ) -> tuple[list[Citation], str]:
        """``evidence.quote_first`` in a retrieval mode with passages when quoting is on."""
        if not (self.options.quote_evidence and mode.uses_retrieval and prompt.passages):
            return [], ""
        return evidence.quote_first(
            model,
            prompt,
            question,
            adapter=mode.uses_adapter,
            method=self.options.evidence_choice,
            scorer=self.sentence_scorer,
            keep=self.options.evidence_candidates,
        )

    def stream_with(self, question: str, decision: RouteDecision, retrieval: Retrieval) -> AnswerStream:
        """Generate in ``decision.mode`` over an existing retrieval (no correction memory)."""
        self._check_adapter(decision.mode)
        prompt = answer_prompt(
            self.options, decision.mode, question, retrieval.hits, self.generator.count_tokens
        )
        if prompt.dropped:
            logger.debug("prompt budget dropped %d passages", prompt.dropped)
        return AnswerStream(decision, prompt.passages, self._run(question, decision, prompt, retrieval))

    def answer_with(self, question: str, mode: Mode | str, retrieval: Retrieval) -> Answer:
        """A complete answer in ``mode`` ("auto" routes) over an existing retrieval, no memory."""
        return self.stream_with(question, self.decide(question, mode, retrieval), retrieval).answer()

    # ------------------------------------------------------------------ entry points
    def stream(self, question: str, mode: Mode | str = AUTO, *, use_memory: bool = True) -> AnswerStream:
        """Start answering ``question``: the route and passages are settled before this returns.

        Raises:
            ConfigError: empty question, unknown mode, a tuned mode without an adapter, no index.
        """
        question = question.strip()
        if not question:
            raise ConfigError("the question is empty — type a question first")
        fixed = parse_mode(mode)
        if use_memory:
            remembered = self.from_memory(question)
            if remembered is not None:
                return stream_of(remembered)
        if fixed is not None:
            self._check_adapter(fixed)
        needs_retrieval = fixed is None or fixed.uses_retrieval
        retrieval = self.retrieve(question) if needs_retrieval else Retrieval(question, [], 0.0)
        return self.stream_with(question, self.decide(question, mode, retrieval), retrieval)

    def answer(self, question: str, mode: Mode | str = AUTO, *, use_memory: bool = True) -> Answer:
        """The complete answer (see ``stream``)."""
        return self.stream(question, mode, use_memory=use_memory).answer()

    def answer_stream(self, question: str, mode: Mode | str = AUTO) -> Iterator[str | Answer]:
        """Text pieces as they come, then the final ``Answer`` as the last item."""
        s = self.stream(question, mode)
        yield from s.pieces
        yield s.answer()

    def compare(self, question: str) -> Comparison:
        """All four modes over ONE retrieval (no correction memory); modes that need an adapter
        come back empty with a warning when none is loaded."""
        question = question.strip()
        if not question:
            raise ConfigError("the question is empty — type a question first")
        retrieval = self.retrieve(question)
        picked = self.decide(question, AUTO, retrieval)
        answers = []
        for mode in ALL_MODES:
            if mode.uses_adapter and not self.generator.has_adapter:
                answers.append(
                    Answer(
                        question,
                        mode,
                        "",
                        reason=f"{MODE_LABELS[mode.value]}: no adapter loaded",
                        warnings=[self._no_adapter()],
                    )
                )
                continue
            answers.append(self.stream_with(question, compared(mode, picked), retrieval).answer())
        return Comparison(question, picked, list(retrieval.hits), answers, retrieval.retrieval_s)

    def correct(self, answer: Answer, corrected: str) -> int:
        """Store a correction of ``answer``; the same question is answered from it from now on.

        Raises:
            ConfigError: no corrections store is configured.
            DataError: the corrected text is empty.
        """
        if self.corrections is None:
            raise ConfigError("no corrections store is configured — set a workspace")
        return self.corrections.add(
            question=answer.question,
            mode=answer.mode.value,
            corrected=corrected,
            original=answer.text,
            passages=answer.passages,
        )
