"""`hybrid serve`: the official ``openai`` client against the API on 127.0.0.1 — every mode, streamed
and whole, equal to `hybrid ask` on the tiny models with a random LoRA active; the request queue,
key, size limit, malformed JSON and loopback-only bind with fakes."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from app import cli
from app.serve import MODES, Pipelines, Server, create_app, parse_model
from tests.tiny_llama import save_random_lora

DOCS = {
    "it/backups.md": "# Backups\n\nShared folders are copied every night at 02:00 to the backup server. "
    "Each copy is kept for 30 days and then deleted. A deleted file can be restored by the help desk "
    "within one working day.\n",
    "hr/leave.md": "# Leave\n\nEvery employee receives twenty days of paid holiday per year. "
    "Requests go to the manager at least two weeks in advance.\n",
}
Q = "How long is each copy kept?"


@contextlib.contextmanager
def running(app: Any) -> Iterator[str]:
    """``app`` on uvicorn at 127.0.0.1 on a free port, in a thread; yields the base URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.02)
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    try:
        yield f"http://{host}:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def client(base_url: str, key: str = "none") -> Any:
    from openai import OpenAI

    return OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=120)


# ----------------------------------------------------------------------------- the tiny models
@pytest.fixture()
def tiny(cli_env, tiny_llama_dir, monkeypatch):
    """Collection "docs" indexed with the tiny embedder, answered by the tiny Llama (transformers)
    with a random LoRA active; returns the settings."""
    docs = cli_env / "docs"
    for rel, text in DOCS.items():
        (docs / rel).parent.mkdir(parents=True, exist_ok=True)
        (docs / rel).write_text(text, encoding="utf-8")
    monkeypatch.setenv("HYBRID_GENERATION__BACKEND", "transformers")
    monkeypatch.setenv("HYBRID_MODELS__BASE_HF", str(tiny_llama_dir))
    monkeypatch.setenv("HYBRID_GENERATION__MAX_NEW_TOKENS", "24")
    monkeypatch.setenv("HYBRID_COLLECTION", "docs")
    assert cli.main(["index", str(docs), "--collection", "docs", "--json", str(cli_env / "ix.json")]) == 0
    from app.settings import load_settings
    from app.wiring.collections import get_collection

    settings = load_settings()
    version = save_random_lora(tiny_llama_dir, get_collection(settings).paths.adapters / "v1", b_scale=20.0)
    (version / "params.json").write_text("{}", encoding="utf-8")
    (version.parent / "ACTIVE").write_text(version.name, encoding="utf-8")
    return settings


def ask_cli(mode: str, capsys: Any) -> dict[str, Any]:
    assert cli.main(["ask", Q, "--mode", mode, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_every_mode_streamed_and_whole_equals_hybrid_ask(tiny, capsys) -> None:
    from app.commands.serve_cmd import build_server

    expected = {mode: ask_cli(mode, capsys) for mode in MODES}
    assert all(a["text"].strip() for a in expected.values())
    assert expected["tuned"]["text"] != expected["prompt"]["text"]  # the adapter is on in tuned modes
    app = create_app(build_server(tiny), api_key=None, max_request_bytes=65536)
    with running(app) as url:
        api = client(url)
        assert {m.id for m in api.models.list().data} >= {f"docs:{m}" for m in MODES}
        for mode in MODES:
            messages = [{"role": "system", "content": "ignored"}, {"role": "user", "content": Q}]
            whole = api.chat.completions.create(model=f"docs:{mode}", messages=messages)
            extra = whole.model_extra["hybrid"]
            assert whole.choices[0].message.content == expected[mode]["text"], mode
            assert (
                extra["mode"] == expected[mode]["mode"] and extra["route_reason"] == expected[mode]["reason"]
            )
            assert [p["chunk"]["path"] for p in extra["passages"]] == [
                p["chunk"]["path"] for p in expected[mode]["passages"]
            ]
            pieces, last = [], None
            for chunk in api.chat.completions.create(model=f"docs:{mode}", messages=messages, stream=True):
                pieces += [c.delta.content or "" for c in chunk.choices]
                last = chunk
            assert "".join(pieces) == expected[mode]["text"], mode
            assert last is not None and last.choices[0].finish_reason == "stop"
            assert last.model_extra["hybrid"]["mode"] == expected[mode]["mode"]


# ----------------------------------------------------------------------------- fakes
class SlowStream:
    """An answer stream that records when it runs, to see that two never overlap."""

    def __init__(self, log: list[tuple[str, float]], question: str) -> None:
        self.log, self.question = log, question

    @property
    def pieces(self) -> Iterator[str]:
        self.log.append(("start", time.monotonic()))
        for word in self.question.split():
            time.sleep(0.005)
            yield word + " "
        self.log.append(("end", time.monotonic()))

    def answer(self) -> Any:
        from domain.types import Answer, Mode

        return Answer(self.question, Mode.RAG, self.question + " ")

    def close(self) -> None:
        pass


class FakeAssistant:
    def __init__(self, log: list[tuple[str, float]]) -> None:
        self.log = log

    def stream(self, question: str, mode: str) -> SlowStream:  # noqa: ARG002
        if question == "crash":
            raise RuntimeError("disk gone")
        return SlowStream(self.log, question)

    def answer(self, question: str, mode: str) -> Any:
        stream = self.stream(question, mode)
        "".join(stream.pieces)
        return stream.answer()


def fake_server(log: list[tuple[str, float]] | None = None) -> Server:
    log = [] if log is None else log
    return Server(Pipelines(lambda _name: FakeAssistant(log)), lambda: ["a", "b"], "a")  # type: ignore[arg-type]


def test_concurrent_streams_are_queued_one_at_a_time_and_all_complete() -> None:
    log: list[tuple[str, float]] = []
    app = create_app(fake_server(log), api_key=None, max_request_bytes=65536)
    results: dict[int, str] = {}
    with running(app) as url:

        def user(n: int) -> None:
            api = client(url)
            for i in range(3):
                q = f"question {n} {i} " + "word " * 10
                stream = api.chat.completions.create(
                    model="b:rag", messages=[{"role": "user", "content": q}], stream=True
                )
                results[n * 10 + i] = "".join(c.choices[0].delta.content or "" for c in stream)

        threads = [threading.Thread(target=user, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    assert len(results) == 18 and all(v.startswith("question") for v in results.values())
    kinds = [k for k, _ in sorted(log, key=lambda e: e[1])]
    assert kinds == ["start", "end"] * 18  # never two answers at once


def test_models_names_and_request_errors_have_the_openai_shape() -> None:
    from fastapi.testclient import TestClient

    assert parse_model("b:tuned", ["a", "b"], "a") == ("b", "tuned")
    assert parse_model("rag", ["a", "b"], "a") == ("a", "rag")
    assert parse_model("b", ["a", "b"], "a") == ("b", "auto")
    assert parse_model(None, ["a", "b"], "a") == ("a", "auto")
    http = TestClient(
        create_app(fake_server(), api_key=None, max_request_bytes=2048), raise_server_exceptions=False
    )
    ok = http.post(
        "/v1/chat/completions", json={"model": "a:rag", "messages": [{"role": "user", "content": "hi"}]}
    )
    assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] == "hi "
    cases = [
        (http.post("/v1/chat/completions", content=b"{not json"), 400),
        (http.post("/v1/chat/completions", content=b"x" * 4096), 413),
        (http.post("/v1/chat/completions", json={"model": "c:rag", "messages": []}), 404),
        (http.post("/v1/chat/completions", json={"model": "a:rag", "messages": [{"role": "user"}]}), 400),
        (http.post("/v1/chat/completions", json=[1, 2]), 400),
        (http.get("/v1/nothing"), 404),
        (http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "crash"}]}), 500),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert error["message"] and error["type"], error


def test_a_key_is_required_when_set_and_to_bind_beyond_loopback(capsys) -> None:
    from fastapi.testclient import TestClient

    from app.commands.serve_cmd import check_api_bind

    http = TestClient(create_app(fake_server(), api_key="s3cret", max_request_bytes=2048))
    body = {"model": "a:rag", "messages": [{"role": "user", "content": "hi"}]}
    assert http.get("/v1/models").status_code == 401
    assert (
        http.post("/v1/chat/completions", json=body, headers={"Authorization": "Bearer wrong"}).status_code
        == 401
    )
    assert (
        http.post("/v1/chat/completions", json=body, headers={"Authorization": "Bearer s3cret"}).status_code
        == 200
    )
    assert (
        http.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).json()["data"][0]["id"] == "a:auto"
    )
    check_api_bind("127.0.0.1", None)
    check_api_bind("0.0.0.0", "s3cret")
    assert cli.main(["serve", "--host", "0.0.0.0"]) == 2
    assert "HYBRID_SERVE__API_KEY" in capsys.readouterr().err
