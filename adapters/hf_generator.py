"""The reference answering backend on transformers + peft: the base model loaded once, the LoRA
adapter wrapped around it and disabled per request (peft's ``disable_adapter``) instead of reloading.

Owns prompt formatting with the tokenizer's chat template and streaming through
``TextIteratorStreamer`` from a worker thread. Which model and adapter to load is the wiring's
business; the llama.cpp backend is the fast default, this one is the reference it is checked against.

Above ~300 lines because it is one class, the backend: its chat formatting, streaming thread and
adapter switching all act on the one loaded model.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adapters.chat_pieces import chat_pieces, encode_chat, hf_encoder
from adapters.choice import best_option, check_choice, greedy_option, log_softmax, option_score
from domain.errors import GenerationError, ModelMissingError, SetupError

if TYPE_CHECKING:
    from domain.ports import Message

logger = logging.getLogger(__name__)

STREAM_TIMEOUT_S = 600.0


class TransformersGenerator:
    """A ``domain.ports.Generator`` on transformers (fp32) with an optional peft LoRA adapter.

    Args:
        model_dir: a Hugging Face causal-LM folder (config.json, weights, tokenizer, chat template).
        adapter_dir: a peft adapter folder saved against that base (None = no adapter).
        n_threads: torch CPU threads (process-wide: torch has one setting per process).
        seed: sampling seed (used only when temperature > 0).
        adapter_label: how the adapter is named to users ("v3", "default").

    Raises:
        ModelMissingError: a folder is missing its config file.
        SetupError: the model or adapter cannot be loaded.
    """

    def __init__(
        self,
        model_dir: Path,
        *,
        adapter_dir: Path | None = None,
        n_threads: int = 2,
        seed: int = 0,
        adapter_label: str | None = None,
    ) -> None:
        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise ModelMissingError(
                f"base model folder {model_dir} has no config.json — run `hybrid setup` "
                "(or point HYBRID_MODELS__BASE_HF at a Hugging Face model folder)"
            )
        if adapter_dir is not None and not (Path(adapter_dir) / "adapter_config.json").is_file():
            raise ModelMissingError(
                f"adapter folder {adapter_dir} has no adapter_config.json — retrain (`hybrid train`) "
                "or activate another version (`hybrid adapters activate`)"
            )
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(n_threads)
        self._torch = torch
        self._lock = threading.Lock()
        self.model_dir = model_dir
        self.adapter_dir = Path(adapter_dir) if adapter_dir is not None else None
        self.adapter_label = adapter_label or (self.adapter_dir.name if self.adapter_dir else None)
        self.seed = seed
        t0 = time.perf_counter()
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
            model: Any = AutoModelForCausalLM.from_pretrained(
                str(model_dir), dtype=torch.float32, local_files_only=True
            )
            if self.adapter_dir is not None:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, str(self.adapter_dir), is_trainable=False)
        except (OSError, ValueError, RuntimeError) as e:
            raise SetupError(
                f"transformers could not load {model_dir}"
                + (f" with adapter {self.adapter_dir}" if self.adapter_dir else "")
                + f" ({e}) — re-run `hybrid setup --force` or retrain the adapter"
            ) from e
        self._model: Any = model.eval()
        self._eos_ids = self._stop_token_ids()
        logger.info(
            "loaded %s%s with transformers (%d threads) in %.1f s",
            model_dir.name,
            f" + adapter {self.adapter_label}" if self.adapter_dir else "",
            n_threads,
            time.perf_counter() - t0,
        )

    # ------------------------------------------------------------------ the Generator port
    @property
    def name(self) -> str:
        return f"transformers:{self.model_dir.name}"

    @property
    def has_adapter(self) -> bool:
        return self.adapter_dir is not None

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in a prompt (no special tokens added)."""
        return len(hf_encoder(self._tokenizer)(text, False))

    def _render(self, messages: list[dict[str, Any]]) -> str:
        if not self._tokenizer.chat_template:
            raise SetupError(f"{self.model_dir} has no chat template — use an instruct model folder")
        try:
            return str(
                self._tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            )
        except Exception as e:  # jinja2 errors (e.g. a template rejecting a role order)
            raise GenerationError(f"the chat template rejected the messages ({e}) — check their roles") from e

    def format_prompt(self, messages: Sequence[Message]) -> str:
        """The chat rendered with the tokenizer's template, ending with the assistant turn opened."""
        return "".join(p.text for p in chat_pieces(self._render, messages))

    def encode_prompt(self, messages: Sequence[Message]) -> list[int]:
        """The token ids of the formatted chat: the template's chat markers as tokens, the messages'
        text as text (a marker typed into it stays ordinary tokens), and BOS/EOS added by the
        tokenizer's own rule (as llama.cpp follows the GGUF's add_bos flag)."""
        pieces = chat_pieces(self._render, messages)
        encode = hf_encoder(self._tokenizer)
        prefix, suffix = self._affixes
        return prefix + encode_chat(pieces, encode, lambda prompt: encode(prompt, True)) + suffix

    @functools.cached_property
    def _affixes(self) -> tuple[list[int], list[int]]:
        """The special tokens the tokenizer puts before and after a text (e.g. BOS)."""
        plain = list(self._tokenizer("a", add_special_tokens=False).input_ids)
        full = list(self._tokenizer("a").input_ids)
        for i in range(len(full) - len(plain) + 1):
            if full[i : i + len(plain)] == plain:
                return full[:i], full[i + len(plain) :]
        return [], []

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
            GenerationError: ``adapter=True`` without an adapter.
        """
        return self.generate_from_ids(
            self.encode_prompt(messages) + (hf_encoder(self._tokenizer)(prefill, False) if prefill else []),
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
        if adapter and self.adapter_dir is None:
            raise GenerationError(
                "no adapter is loaded — train one (`hybrid train`) or answer in mode prompt or rag"
            )
        return self._stream(
            list(prompt_ids), adapter=adapter, max_new_tokens=max_new_tokens, temperature=temperature
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
            GenerationError: no options, or an adapter requested without one.
        """
        if not options:
            raise GenerationError("a constrained choice needs at least one option")
        encode = hf_encoder(self._tokenizer)
        tail = encode(prefill, False) if prefill else []
        newline = encode("\n", False)[-1:]
        encoded = [encode(o, False) + newline for o in options]
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
        check_choice(method, encoded, adapter_missing=adapter and self.adapter_dir is None)
        torch, scores = self._torch, []
        with self._lock, torch.inference_mode(), self._adapter_state(adapter):
            out = self._model(input_ids=torch.tensor([list(prompt_ids)]), use_cache=True)
            if method == "greedy":
                state = {"logits": out.logits[0, -1], "cache": out.past_key_values}

                def next_scores(token: int | None) -> Any:
                    if token is not None:
                        step = self._model(
                            input_ids=torch.tensor([[token]]), past_key_values=state["cache"], use_cache=True
                        )
                        state["logits"], state["cache"] = step.logits[0, -1], step.past_key_values
                    return state["logits"].float().numpy()

                return greedy_option(next_scores, encoded)
            first, cache = log_softmax(out.logits[0, -1].float().numpy()), out.past_key_values
            for tokens in encoded:
                step = torch.tensor([list(tokens)])
                rows = self._model(input_ids=step, past_key_values=cache, use_cache=True).logits
                cache.crop(-len(tokens))
                scores.append(option_score(first, rows[0].float().numpy(), list(tokens)))
        return best_option(scores)

    # ------------------------------------------------------------------ internals
    def _stream(
        self, prompt_ids: list[int], *, adapter: bool, max_new_tokens: int, temperature: float
    ) -> Iterator[str]:
        with self._lock:
            started = False
            pieces = self._run(
                prompt_ids, adapter=adapter, max_new_tokens=max_new_tokens, temperature=temperature
            )
            with contextlib.closing(pieces):  # an abandoned stream stops the worker at once
                for text in pieces:
                    if not started:  # an answer never starts with whitespace (SentencePiece's word mark)
                        text = text.lstrip()
                        started = bool(text)
                    if text:
                        yield text

    def _run(
        self, prompt_ids: list[int], *, adapter: bool, max_new_tokens: int, temperature: float
    ) -> Generator[str, None, None]:
        from transformers import (
            GenerationConfig,
            StoppingCriteria,
            StoppingCriteriaList,
            TextIteratorStreamer,
        )

        cancel = threading.Event()

        class _Stop(StoppingCriteria):
            def __call__(self, *_args: Any, **_kwargs: Any) -> bool:
                return cancel.is_set()

        sampling = temperature > 0
        config = GenerationConfig(  # type: ignore[no-untyped-call]
            max_new_tokens=max_new_tokens,
            do_sample=sampling,
            temperature=temperature if sampling else None,
            top_k=None,
            top_p=None,
            repetition_penalty=1.0,
            eos_token_id=self._eos_ids,
            pad_token_id=self._tokenizer.pad_token_id
            if self._tokenizer.pad_token_id is not None
            else self._eos_ids[0],
        )
        streamer = TextIteratorStreamer(
            self._tokenizer, skip_prompt=True, timeout=STREAM_TIMEOUT_S, skip_special_tokens=True
        )
        failure: list[BaseException] = []
        ids = self._torch.tensor([prompt_ids], dtype=self._torch.long)

        def work() -> None:
            try:
                with self._torch.inference_mode(), self._adapter_state(adapter):
                    if sampling:
                        self._torch.manual_seed(self.seed)
                    self._model.generate(
                        input_ids=ids,
                        attention_mask=self._torch.ones_like(ids),
                        generation_config=config,
                        streamer=streamer,
                        stopping_criteria=StoppingCriteriaList([_Stop()]),
                    )
            except BaseException as e:  # handed to the consumer, which re-raises it
                failure.append(e)
                streamer.text_queue.put(streamer.stop_signal)

        worker = threading.Thread(target=work, name="hf-generate", daemon=True)
        worker.start()
        try:
            yield from streamer
        finally:
            cancel.set()
            worker.join()
        if failure:
            raise GenerationError(f"transformers generation failed: {failure[0]}") from failure[0]

    def _adapter_state(self, on: bool) -> Any:
        if self.adapter_dir is None or on:
            return contextlib.nullcontext()
        return self._model.disable_adapter()

    def _stop_token_ids(self) -> list[int]:
        ids: list[int] = []
        candidates: list[Any] = [self._tokenizer.eos_token_id]
        gen_eos = getattr(getattr(self._model, "generation_config", None), "eos_token_id", None)
        candidates += gen_eos if isinstance(gen_eos, list) else [gen_eos]
        for marker in ("<|im_end|>", "<|endoftext|>"):
            tok_id = self._tokenizer.convert_tokens_to_ids(marker)
            if isinstance(tok_id, int) and tok_id != self._tokenizer.unk_token_id:
                candidates.append(tok_id)
        for c in candidates:
            if isinstance(c, int) and c >= 0 and c not in ids:
                ids.append(c)
        if not ids:
            raise SetupError(
                f"{self.model_dir} defines no end-of-sequence token — fix its tokenizer_config.json"
            )
        return ids
