"""A ``Generator`` over any OpenAI-compatible chat server (llama.cpp's server, llama-cpp-python's
``llama_cpp.server``, vLLM, …), for when the model runs on another machine.

The base modes ask the server's ``base_model``; the tuned modes ask ``tuned_model``, the name under
which the server serves the base with our LoRA (a second model entry of ``llama_cpp.server``, a
LoRA module of vLLM). What a remote server cannot do is said here rather than faked:

- a ``prefill`` cannot be written into the server's reply, so a reply that starts with the prefill
  has it cut off (the caller puts it back) and one that does not is passed on as it is; the
  answer's lines then come from one reply (``continues_prefill`` is False, see
  ``domain.answer_format``);
- ``choose`` (evidence quoting) needs token likelihoods: it raises ``GenerationError``;
- token counts are estimated from the text (a CJK character or four other characters a token),
  so prompt budgets stay on the safe side without the server's tokenizer.

The server applies its own chat template to the messages, and some tokenize the result with their
special markers parsed; so every ``<|…|>``, ``<s>``/``</s>`` and ``[INST]`` in a message has a zero
width space put into it first, and text stays text.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Sequence
from typing import Any

from domain.errors import GenerationError
from domain.ports import Message

_MARKERS = re.compile(r"<\|[^<>|\s]{1,40}\|>|</?s>|\[/?INST\]|<start_of_turn>|<end_of_turn>")
_CJK = re.compile(r"[\u3000-\u30ff\u3400-\u9fff\uf900-\ufaff\uff00-\uffef]")
ZWSP = "\u200b"


def neutralize(text: str) -> str:
    """``text`` with a zero width space after the first character of every chat marker in it.

    >>> neutralize("hi <|im_end|> [INST] x") == "hi <\\u200b|im_end|> [\\u200bINST] x"
    True
    """
    return _MARKERS.sub(lambda m: m.group(0)[0] + ZWSP + m.group(0)[1:], text)


def estimate_tokens(text: str) -> int:
    """A CJK character per token, four other characters per token (rounded up)."""
    cjk = len(_CJK.findall(text))
    return cjk + math.ceil((len(text) - cjk) / 4)


class RemoteGenerator:
    """Answers through ``{url}/chat/completions`` (``url`` ends in ``/v1``), streamed."""

    def __init__(
        self,
        url: str,
        *,
        base_model: str,
        tuned_model: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 600.0,
    ) -> None:
        import httpx

        self.url = url.rstrip("/")
        self.base_model, self.tuned_model = base_model, tuned_model or None
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout_s, connect=10.0))

    @property
    def name(self) -> str:
        return f"remote {self.base_model} at {self.url}"

    @property
    def has_adapter(self) -> bool:
        return self.tuned_model is not None

    # The server writes its reply from the start: a prefill is not continued (module docstring).
    continues_prefill = False

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)

    def generate(
        self,
        messages: Sequence[Message],
        *,
        adapter: bool,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        prefill: str = "",
    ) -> Iterator[str]:
        if adapter and self.tuned_model is None:
            raise GenerationError(
                "the remote server has no tuned model configured — set HYBRID_REMOTE__TUNED_MODEL "
                "or use the prompt/rag modes"
            )
        body = {
            "model": self.tuned_model if adapter else self.base_model,
            "messages": [{"role": m["role"], "content": neutralize(m["content"])} for m in messages],
            "max_tokens": max_new_tokens,
            "temperature": temperature,
            "stream": True,
        }
        return self._stream(body, prefill)

    def _stream(self, body: dict[str, Any], prefill: str) -> Iterator[str]:
        import httpx

        head: str | None = ""  # the reply's start, held while it may still be the prefill
        try:
            with self._http.stream("POST", f"{self.url}/chat/completions", json=body) as response:
                if response.status_code != 200:
                    response.read()
                    raise GenerationError(
                        f"the remote model server answered {response.status_code}: {_error_text(response)}"
                    )
                for piece in _sse_pieces(response.iter_lines()):
                    if head is not None:
                        head += piece
                        if len(head) < len(prefill) and prefill.startswith(head):
                            continue
                        # the server wrote the prefill again: cut it; it wrote something else: pass it on
                        piece, head = (head[len(prefill) :] if head.startswith(prefill) else head), None
                    if piece:
                        yield piece
                if head:  # the whole reply was a bare start of the prefill
                    yield head
        except httpx.HTTPError as e:
            raise GenerationError(f"the remote model server at {self.url} cannot be reached: {e}") from e

    def choose(
        self,
        messages: Sequence[Message],  # noqa: ARG002
        options: Sequence[str],  # noqa: ARG002
        *,
        adapter: bool,  # noqa: ARG002
        prefill: str = "",  # noqa: ARG002
        method: str = "likelihood",  # noqa: ARG002
    ) -> str:
        raise GenerationError(
            "quoting evidence needs token likelihoods, which a remote server does not give — "
            "turn HYBRID_GENERATION__QUOTE_EVIDENCE off or answer with a local backend"
        )

    def close(self) -> None:
        self._http.close()


def _error_text(response: Any) -> str:
    try:
        data = response.json()
        error = data.get("error") if isinstance(data, dict) else None
        message = error.get("message") if isinstance(error, dict) else error or data.get("detail")
        return str(message or data)[:300]
    except ValueError:
        return response.text[:300]


def _sse_pieces(lines: Iterator[str]) -> Iterator[str]:
    """The text deltas of an OpenAI chat-completion event stream.

    Raises:
        GenerationError: the stream carries an error event or a malformed one.
    """
    for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        try:
            event = json.loads(data)
        except ValueError as e:
            raise GenerationError(f"the remote model server sent a malformed event: {data[:120]!r}") from e
        if "error" in event:
            error = event["error"]
            raise GenerationError(
                f"the remote model server failed: {error.get('message') if isinstance(error, dict) else error}"
            )
        for choice in event.get("choices") or ():
            content = (choice.get("delta") or {}).get("content")
            if content:
                yield content
