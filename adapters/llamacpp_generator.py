"""The llama.cpp answering backend: one base GGUF in memory, its GGUF LoRA loaded once and switched
on (scale 1.0) or off per request on the context, so the same weights serve base and tuned answers.

Owns prompt formatting with the model's own chat template (from the GGUF metadata), streaming text
pieces with UTF-8 kept intact across tokens, and the context's memory: a request evaluates only
the tokens after the prefix it shares with the previous one (llama.cpp keeps the rest), and
switching the adapter on or off clears it, so base and tuned never share a cached token.

Reuse never changes an answer. A prompt is evaluated in batches that start only at its own
boundaries: after each end-of-turn token (the system prompt and worked example end there) and every
``n_batch`` tokens within a turn. A request keeps the cached tokens up to the last such boundary it
shares with what the context holds, and only tokens that were themselves evaluated in such
batches, so it runs the very same batches as a cold start and gets the same numbers; its last
prompt token is always evaluated alone. Which model and adapter to load is the wiring's business.

Above ~300 lines because it is one class, the backend: prompt formatting, streaming, the adapter
switch and the prefix reuse all act on the one llama.cpp context and must agree on what it holds.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from adapters.chat_pieces import Piece, chat_pieces, encode_chat
from adapters.choice import best_option, check_choice, greedy_option, log_softmax, option_score
from adapters.llama_tools import llama_output_captured
from adapters.token_text import TokenTextDecoder
from domain.errors import GenerationError, ModelMissingError, SetupError

if TYPE_CHECKING:
    from domain.ports import Message

logger = logging.getLogger(__name__)

# Used only when a GGUF carries no chat template; every model this project ships has one.
CHATML_FALLBACK = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
PIECE_BUFFER_BYTES = 64
GREEDY_TOP_K = 1
SAMPLING_TOP_K = 40


class LlamaCppGenerator:
    """A ``domain.ports.Generator`` on llama.cpp (one model, adapter switched per request).

    Args:
        model_path: the base model GGUF.
        lora_path: a GGUF LoRA converted against that base (None = no adapter).
        n_threads: CPU threads for prompt evaluation and generation.
        n_ctx: context window in tokens (prompt + answer).
        seed: sampling seed (used only when temperature > 0).
        adapter_label: how the adapter is named to users ("v3", "default").

    Raises:
        ModelMissingError: ``model_path`` or ``lora_path`` is not a file.
        SetupError: llama-cpp-python is missing, or a file is not a GGUF llama.cpp can load.
    """

    def __init__(
        self,
        model_path: Path,
        *,
        lora_path: Path | None = None,
        n_threads: int = 2,
        n_ctx: int = 4096,
        seed: int = 0,
        adapter_label: str | None = None,
    ) -> None:
        model_path = Path(model_path)
        if not model_path.is_file():
            raise ModelMissingError(
                f"base model GGUF {model_path} not found — run `hybrid setup` "
                "(or point HYBRID_MODELS__BASE_GGUF at a GGUF file)"
            )
        if lora_path is not None and not Path(lora_path).is_file():
            raise ModelMissingError(
                f"adapter GGUF {lora_path} not found — retrain (`hybrid train`) or activate "
                "another version (`hybrid adapters activate`)"
            )
        try:
            import llama_cpp
        except ImportError as e:
            raise SetupError("llama-cpp-python is not installed — run `make install`") from e
        self._lib = llama_cpp
        self._lock = threading.Lock()
        self.model_path = model_path
        self.lora_path = Path(lora_path) if lora_path is not None else None
        self.adapter_label = adapter_label or (self.lora_path.parent.name if self.lora_path else None)
        self.n_ctx = n_ctx
        t0 = time.perf_counter()
        try:
            self._llm: Any = llama_cpp.Llama(
                str(model_path),
                n_threads=n_threads,
                n_threads_batch=n_threads,
                n_ctx=n_ctx,
                seed=seed,
                verbose=False,
            )
        except (ValueError, RuntimeError) as e:
            raise SetupError(
                f"llama.cpp could not load {model_path} ({e}) — re-run `hybrid setup --force` "
                "or point HYBRID_MODELS__BASE_GGUF at a valid GGUF"
            ) from e
        self._vocab = llama_cpp.llama_model_get_vocab(self._llm.model)
        self._adapter: Any = None
        if self.lora_path is not None:
            # With the AMX weight buffers llama.cpp prints a line per LoRA tensor it keeps in
            # plain CPU memory instead (12 for Qwen2.5-0.5B); that belongs in our debug log.
            with llama_output_captured() as notes:
                self._adapter = llama_cpp.llama_adapter_lora_init(
                    self._llm.model, str(self.lora_path).encode("utf-8")
                )
            for line in notes:
                logger.debug("llama.cpp: %s", line)
            if not self._adapter:
                self._llm.close()
                raise SetupError(
                    f"llama.cpp could not load the adapter {self.lora_path} for base {model_path.name} — "
                    "it was converted for another base model; retrain with `hybrid train`"
                )
            self._adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(self._adapter)
            self._scales = (ctypes.c_float * 1)(1.0)
        self._adapter_on = False
        self._aligned = 0  # leading tokens held whose memory came from boundary-aligned batches
        self._newline = self._llm.tokenize(b"\n", add_bos=False, special=False)[-1]
        self._piece_cache: dict[int, tuple[bytes, bool]] = {}
        self._formatter = self._chat_formatter()
        logger.info(
            "loaded %s%s with llama.cpp (%d threads, n_ctx %d) in %.1f s",
            model_path.name,
            f" + adapter {self.adapter_label}" if self._adapter else "",
            n_threads,
            n_ctx,
            time.perf_counter() - t0,
        )

    # ------------------------------------------------------------------ the Generator port
    @property
    def name(self) -> str:
        return f"llama.cpp:{self.model_path.stem}"

    @property
    def has_adapter(self) -> bool:
        return self._adapter is not None

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in a prompt (no BOS; special markers counted as text)."""
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def _pieces(self, messages: Sequence[Message]) -> list[Piece]:
        def render(masked: list[dict[str, Any]]) -> str:
            try:
                return str(self._formatter(messages=masked).prompt)
            except Exception as e:  # jinja2 errors (e.g. a template rejecting a role order)
                raise GenerationError(
                    f"the chat template rejected the messages ({e}) — check their roles"
                ) from e

        return chat_pieces(render, messages)

    def format_prompt(self, messages: Sequence[Message]) -> str:
        """The chat rendered with the model's template, ending with the assistant turn opened."""
        return "".join(p.text for p in self._pieces(messages))

    def encode_prompt(self, messages: Sequence[Message]) -> list[int]:
        """The token ids of the formatted chat: BOS as the GGUF says, the template's chat markers as
        tokens, and the messages' text as text (a marker typed into it stays ordinary tokens)."""
        pieces = self._pieces(messages)
        bos = self._formatter.bos_token
        add_bos = not (bos and "".join(p.text for p in pieces).startswith(bos))  # a template may write BOS

        def encode(text: str, markup: bool) -> list[int]:
            return list(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=markup))

        def whole(prompt: str) -> list[int]:
            return list(self._llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True))

        head = list(self._llm.tokenize(b"", add_bos=True, special=True)) if add_bos else []
        return head + encode_chat(pieces, encode, whole)

    def generate(
        self,
        messages: Sequence[Message],
        *,
        adapter: bool,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        prefill: str = "",
    ) -> Iterator[str]:
        """Stream the answer to ``messages`` as text pieces (greedy when ``temperature`` is 0).
        ``prefill`` is text the answer already starts with (not streamed again).

        Raises:
            GenerationError: ``adapter=True`` without an adapter, or the prompt does not fit n_ctx.
        """
        return self.generate_from_ids(
            self.encode_prompt(messages) + (self._encode_text(prefill) if prefill else []),
            adapter=adapter,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
        )

    def generate_from_ids(
        self,
        prompt_ids: Sequence[int],
        *,
        adapter: bool,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
    ) -> Iterator[str]:
        """``generate`` for an already tokenized prompt (errors are raised here, before streaming)."""
        if adapter and self._adapter is None:
            raise GenerationError(
                "no adapter is loaded — train one (`hybrid train`) or answer in mode prompt or rag"
            )
        room = self.n_ctx - len(prompt_ids)
        if room < 1:
            raise GenerationError(
                f"the prompt has {len(prompt_ids)} tokens but the context holds {self.n_ctx} — "
                "lower HYBRID_GENERATION__CONTEXT_TOKENS or raise HYBRID_GENERATION__N_CTX"
            )
        return self._stream(
            list(prompt_ids),
            adapter=adapter,
            max_new_tokens=min(max_new_tokens, room),
            temperature=temperature,
        )

    def choose(
        self,
        messages: Sequence[Message],
        options: Sequence[str],
        *,
        adapter: bool,
        prefill: str = "",
        method: str = "likelihood",
    ) -> str:
        """The continuation of the answer after ``prefill`` that is exactly one of ``options``,
        chosen by ``method`` (``adapters.choice``).

        Raises:
            GenerationError: no options, an adapter requested without one, or the prompt does not fit.
        """
        if not options:
            raise GenerationError("a constrained choice needs at least one option")
        tail = self._encode_text(prefill) if prefill else []
        encoded = [self._encode_text(o) + [self._newline] for o in options]
        ids = self.encode_prompt(messages) + tail
        return options[self.choose_from_ids(ids, encoded, adapter=adapter, method=method)]

    def choose_from_ids(
        self,
        prompt_ids: Sequence[int],
        encoded: Sequence[Sequence[int]],
        *,
        adapter: bool,
        method: str = "likelihood",
    ) -> int:
        """``choose`` for an already tokenized prompt (prefill included) and options (line break
        included): the index of the chosen option; the prompt is evaluated once."""
        check_choice(method, encoded, adapter_missing=adapter and self._adapter is None)
        if len(prompt_ids) + max(len(e) for e in encoded) > self.n_ctx:
            raise GenerationError(
                f"the prompt has {len(prompt_ids)} tokens but the context holds {self.n_ctx}"
            )
        llm, n_vocab = self._llm, self._lib.llama_vocab_n_tokens(self._vocab)
        with self._lock:
            self._switch_adapter(adapter)
            try:
                self._evaluate(list(prompt_ids))
                if method == "greedy":
                    return greedy_option(self._scores_after(llm.n_tokens, n_vocab), encoded)
                first = log_softmax(np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n_vocab,)))
                n_past, scores = llm.n_tokens, []
                for tokens in encoded:
                    llm._ctx.kv_cache_seq_rm(-1, n_past, -1)
                    llm._batch.set_batch(batch=list(tokens), n_past=n_past, logits_all=True)
                    llm._ctx.decode(llm._batch)
                    rows = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(len(tokens), n_vocab))
                    scores.append(option_score(first, rows, list(tokens)))
            except RuntimeError as e:  # llama_decode failed
                self._reset()
                raise GenerationError(f"llama.cpp failed while choosing ({e}) — retry the question") from e
            finally:  # keep the prompt but its last token, so the next request refreshes the scores
                self._keep(len(prompt_ids) - 1)
        return best_option(scores)

    def _scores_after(self, n_past: int, n_vocab: int) -> Any:
        """``next_scores`` for ``greedy_option`` over the evaluated prompt: None gives the prompt's
        last scores, a token is decoded after what came before and gives the scores after it."""
        llm = self._llm

        def next_scores(token: int | None) -> np.ndarray:
            nonlocal n_past
            if token is not None:
                llm._batch.set_batch(batch=[token], n_past=n_past, logits_all=True)
                llm._ctx.decode(llm._batch)
                n_past += 1
            return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n_vocab,)).copy()

        return next_scores

    # ------------------------------------------------------------------ internals
    def _stream(
        self, prompt_ids: list[int], *, adapter: bool, max_new_tokens: int, temperature: float
    ) -> Iterator[str]:
        with self._lock:
            self._switch_adapter(adapter)
            try:
                self._prime(prompt_ids[:-1])
            except RuntimeError as e:  # llama_decode failed
                self._reset()
                raise GenerationError(
                    f"llama.cpp failed while reading the prompt ({e}) — retry the question"
                ) from e
            # The context now holds all but the last prompt token: llama-cpp-python evaluates that
            # one alone and generates.
            tokens = self._llm.generate(
                prompt_ids,
                top_k=GREEDY_TOP_K if temperature <= 0 else SAMPLING_TOP_K,
                top_p=1.0,
                min_p=0.0,
                temp=0.0 if temperature <= 0 else temperature,
                repeat_penalty=1.0,
                reset=True,
            )
            try:
                yield from self.stream_text(tokens, max_new_tokens=max_new_tokens)
            except RuntimeError as e:  # llama_decode failed
                self._reset()
                raise GenerationError(f"llama.cpp failed while generating ({e}) — retry the question") from e
            finally:
                tokens.close()

    def _evaluate(self, ids: list[int]) -> None:
        """Bring the context to exactly ``ids`` evaluated, reusing what it may (``_prime``); the
        last token is evaluated alone, so the scores are fresh."""
        self._prime(ids[:-1])
        self._llm.eval(ids[-1:])

    def _batch_starts(self, ids: Sequence[int]) -> list[int]:
        """Where evaluation batches of ``ids`` start: 0, after every end-of-turn token, and every
        ``n_batch`` tokens within a turn. They depend on the prompt alone, never on the cache."""
        ends = [i + 1 for i, t in enumerate(ids) if self._lib.llama_vocab_is_eog(self._vocab, int(t))]
        turns = [0, *(e for e in ends if e < len(ids))]
        step = max(1, int(self._llm.n_batch))
        starts: list[int] = []
        for a, b in zip(turns, [*turns[1:], len(ids)], strict=True):
            starts.extend(range(a, b, step))
        return starts

    def _prime(self, ids: Sequence[int]) -> None:
        """Hold exactly ``ids`` evaluated: keep the cached tokens up to the last batch start they
        share with ``ids`` (counting only tokens that came from aligned batches), evaluate the rest
        batch by batch from there."""
        llm = self._llm
        ids = list(ids)
        same = 0
        for a, b in zip(llm.input_ids[: llm.n_tokens].tolist(), ids, strict=False):
            if a != b:
                break
            same += 1
        usable = min(same, self._aligned)
        starts = self._batch_starts(ids)
        keep = max((p for p in starts if p <= usable), default=0)
        self._keep(keep)
        for a, b in zip(starts, [*starts[1:], len(ids)], strict=True):
            if a >= keep:
                llm.eval(ids[a:b])
        self._aligned = len(ids)

    def _keep(self, n: int) -> None:
        """Forget every evaluated token after the first ``n`` (never claims more than it holds)."""
        n = max(0, min(n, self._llm.n_tokens))
        if n == 0:
            self._reset()
            return
        self._llm._ctx.kv_cache_seq_rm(-1, n, -1)
        self._llm.n_tokens = n
        self._aligned = min(self._aligned, n)

    def _encode_text(self, text: str) -> list[int]:
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def stream_text(self, tokens: Iterable[int], *, max_new_tokens: int | None = None) -> Iterator[str]:
        """Turn generated token ids into text pieces: stops at an end-of-generation token or after
        ``max_new_tokens``; characters split across tokens come out whole (see ``TokenTextDecoder``)."""
        decoder = TokenTextDecoder()
        for n, token in enumerate(tokens, start=1):
            if self._lib.llama_vocab_is_eog(self._vocab, token):
                break
            piece, is_byte = self._piece(token)
            text = decoder.feed(piece, byte_token=is_byte)
            if text:
                yield text
            if max_new_tokens is not None and n >= max_new_tokens:
                break
        tail = decoder.finish()
        if tail:
            yield tail

    def _switch_adapter(self, on: bool) -> None:
        """Apply the adapter or not; a switch clears the context's memory."""
        if on == self._adapter_on:
            return
        self._reset()
        lib = self._lib
        rc = (
            lib.llama_set_adapters_lora(self._llm.ctx, self._adapters, 1, self._scales)
            if on
            else lib.llama_set_adapters_lora(self._llm.ctx, None, 0, None)
        )
        if rc != 0:
            raise GenerationError(
                f"llama.cpp could not switch the adapter {'on' if on else 'off'} (code {rc})"
            )
        self._adapter_on = on

    def forget(self) -> None:
        """Clear the context's memory, so the next request evaluates its whole prompt (benchmarks
        compare cold prompts)."""
        with self._lock:
            self._reset()

    def _reset(self) -> None:
        """Forget every token of the previous request: position counter and the whole KV memory."""
        self._aligned = 0
        self._llm.reset()
        memory = self._lib.llama_get_memory(self._llm.ctx)
        if memory is not None:
            self._lib.llama_memory_clear(memory, True)

    def _piece(self, token: int) -> tuple[bytes, bool]:
        """(the token's bytes, whether it is a SentencePiece byte-fallback token), cached."""
        known = self._piece_cache.get(token)
        if known is None:
            size = PIECE_BUFFER_BYTES
            while True:
                buf = ctypes.create_string_buffer(size)
                n = self._lib.llama_token_to_piece(self._vocab, token, buf, size, 0, False)
                if n >= 0:
                    break
                size = -n  # llama.cpp returns minus the size it needs
            is_byte = bool(
                self._lib.llama_vocab_get_attr(self._vocab, token) & self._lib.LLAMA_TOKEN_ATTR_BYTE
            )
            known = self._piece_cache[token] = (buf.raw[:n], is_byte)
        return known

    def _chat_formatter(self) -> Any:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = self._llm.metadata.get("tokenizer.chat_template")
        if not template:
            logger.warning("%s carries no chat template; using ChatML", self.model_path.name)
            template = CHATML_FALLBACK
        lib, vocab = self._lib, self._vocab

        def text_of(token: int) -> str:
            return lib.llama_vocab_get_text(vocab, token).decode("utf-8", "replace") if token >= 0 else ""

        return Jinja2ChatFormatter(
            template=template,
            eos_token=text_of(lib.llama_vocab_eos(vocab)),
            bos_token=text_of(lib.llama_vocab_bos(vocab)),
            add_generation_prompt=True,
        )

    def close(self) -> None:
        """Free the adapter and the model (the object is unusable afterwards)."""
        with self._lock:
            if self._adapter is not None:
                self._switch_adapter(False)
                self._lib.llama_adapter_lora_free(self._adapter)
                self._adapter = None
            self._llm.close()
