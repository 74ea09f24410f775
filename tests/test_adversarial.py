"""Inputs an adversarial user would try: names that are paths, control characters in names, corrupt
index files, broken evaluation files, bad numbers, empty corrections, and the app's bind address.
Each case asserts the one-line error and that nothing stored, inside or outside the workspace,
changed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from app.cli import main
from domain.errors import ConfigError
from domain.workspace import Workspace, check_name
from tests.browser_kit import free_port

ROOT = Path(__file__).resolve().parents[1]
BAD_NAMES = [
    "..",
    ".",
    "/tmp/victim",
    "../victim",
    "a/b",
    "a\x00b",
    "a\nb",
    "\x1b[31mred",
    "",
    ".hidden",
    "x" * 65,
]


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path below ``folder`` with its bytes (None for folders)."""
    out: dict[str, bytes | None] = {}
    for p in sorted(folder.rglob("*")):
        out[str(p.relative_to(folder))] = None if p.is_dir() else p.read_bytes()
    return out


def one_error_line(err: str) -> str:
    """The one ``error:`` line of stderr (a progress bar drawn before the failure may stand above it)."""
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "\x1b" not in lines[0] and "\x00" not in lines[0]
    return lines[0]


@pytest.fixture()
def victim(tmp_path: Path) -> Path:
    """An unrelated folder shaped like an index (the old code deleted its pending/ and gen-*)."""
    v = tmp_path / "victim"
    (v / "pending").mkdir(parents=True)
    (v / "gen-000001").mkdir()
    (v / "gen-000001" / "manifest.json").write_text("{}", encoding="utf-8")
    (v / "CURRENT").write_text("gen-000001\n", encoding="utf-8")
    (v / "notes.txt").write_text("keep me", encoding="utf-8")
    return v


def make_docs(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "leave.md").write_text(
        "# Leave\n\nEmployees get fifteen days of annual leave.\n", encoding="utf-8"
    )
    (folder / "travel.md").write_text(
        "# Travel\n\nHotel costs are capped at 500 per night.\n", encoding="utf-8"
    )
    return folder


# ----------------------------------------------------------------------------- names
@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_every_workspace_path_from_a_name_is_checked(tmp_path: Path, name: str) -> None:
    ws = Workspace.at(tmp_path / "ws")
    for make in (ws.collection, ws.collection("ok").adapter, ws.job, ws.answer):
        with pytest.raises(ConfigError, match="use 1-64 letters") as e:
            make(name)
        assert "\n" not in str(e.value) and "\x1b" not in str(e.value)


def test_good_names_pass_and_stay_inside(tmp_path: Path) -> None:
    ws = Workspace.at(tmp_path / "ws")
    for name in ("default", "my-docs_2", "v3", "a.b", "年假"[:0] + "x1"):
        assert check_name(name) == name
        assert ws.collection(name).root.parent == ws.collections


def test_a_link_planted_under_a_name_cannot_lead_outside(tmp_path: Path, victim: Path) -> None:
    ws = Workspace.at(tmp_path / "ws").ensure()
    os.symlink(victim, ws.collections / "evil")
    with pytest.raises(ConfigError, match="leads outside"):
        ws.collection("evil")


@pytest.mark.parametrize("name", ["/tmp/victim", ".."], ids=["absolute", "dotdot"])
def test_hybrid_index_refuses_a_path_as_name(cli_env: Path, victim: Path, capsys, name: str) -> None:
    docs = make_docs(cli_env / "docs")
    assert main(["index", str(docs), "--name", "default"]) == 0
    ws = cli_env / "ws"
    (ws / "feedback.sqlite").write_bytes(b"corrections")
    before, victim_before = snapshot(ws), snapshot(victim)
    capsys.readouterr()
    target = str(victim) if name.startswith("/") else name
    assert main(["index", str(docs), "--name", target]) == 2
    assert "collection name" in one_error_line(capsys.readouterr().err)
    assert snapshot(ws) == before and snapshot(victim) == victim_before


@pytest.mark.parametrize("name", BAD_NAMES[:8], ids=repr)
def test_the_index_page_backend_refuses_bad_names(tmp_path: Path, victim: Path, name: str) -> None:
    from app.settings import Settings
    from app.views.backends.indexing import RealIndexBackend

    ws = Workspace.at(tmp_path / "ws").ensure()
    (ws.root / "feedback.sqlite").write_bytes(b"corrections")
    before, victim_before = snapshot(ws.root), snapshot(victim)
    backend = RealIndexBackend(Settings(workspace=ws.root))
    for call in (backend.delete, backend.upload_dir, backend.summary, backend.documents):
        with pytest.raises(ConfigError):
            call(str(victim) if name == "/tmp/victim" else name)
    assert snapshot(ws.root) == before and snapshot(victim) == victim_before


def test_correct_answer_id_cannot_read_outside(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HYBRID_WORKSPACE", str(tmp_path / "ws"))
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({"question": "q", "mode": "rag", "text": "t"}), encoding="utf-8")
    for answer_id in (str(outside.with_suffix("")), "../outside", "../last_answer"):
        assert main(["correct", "--answer-id", answer_id, "--corrected", "fixed"]) == 2
        assert "answer id" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "ws" / "feedback.sqlite").exists()


def test_correct_with_an_empty_question_or_answer_is_refused(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HYBRID_WORKSPACE", str(tmp_path / "ws"))
    (tmp_path / "ws").mkdir()
    saved = {"question": "How long is leave?", "mode": "rag", "text": "20 days", "answer_id": "a1"}
    (tmp_path / "ws" / "last_answer.json").write_text(json.dumps(saved), encoding="utf-8")
    assert main(["correct", "--question", "  ", "--mode", "rag", "--corrected", "15 days"]) == 2
    assert "--question is empty" in one_error_line(capsys.readouterr().err)
    assert main(["correct", "--corrected", " "]) == 2
    assert "--corrected is empty" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "ws" / "feedback.sqlite").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["export", "--adapter", "{outside}"],
        ["export", "--adapter", "../../outside"],
        ["train", "--resume", "../../outside"],
        ["train", "--follow", "{outside}"],
        ["adapters", "activate", "../../outside"],
    ],
    ids=lambda a: " ".join(a),
)
def test_adapter_and_job_names_are_checked(tmp_path: Path, monkeypatch, capsys, argv) -> None:
    """A complete adapter (and a job) planted outside the workspace is never used through a name."""
    from adapters.jobs import JOB_FILE
    from adapters.registry import PUBLISHED_FILES

    outside = tmp_path / "outside"
    outside.mkdir()
    for name in (*PUBLISHED_FILES, JOB_FILE):
        (outside / name).write_text("{}", encoding="utf-8")
    monkeypatch.setenv("HYBRID_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setattr(
        "adapters.export.export_model", lambda **kw: pytest.fail(f"exported {kw['adapter_dir']}")
    )
    monkeypatch.setattr("adapters.jobs.read_status", lambda *a: pytest.fail(f"read job {a}"), raising=False)
    before = snapshot(outside)
    assert main([a.replace("{outside}", str(outside)) for a in argv]) == 2
    assert "is not allowed" in one_error_line(capsys.readouterr().err)  # refused for its name
    assert snapshot(outside) == before


def test_publish_never_replaces_a_folder_that_is_not_an_adapter(
    tmp_path: Path, victim: Path, monkeypatch, capsys
):
    from adapters.registry import PUBLISHED_FILES

    monkeypatch.setenv("HYBRID_WORKSPACE", str(tmp_path / "ws"))
    version = tmp_path / "ws" / "adapters" / "v1"
    version.mkdir(parents=True)
    for name in PUBLISHED_FILES:
        (version / name).write_text("{}", encoding="utf-8")
    before = snapshot(victim)
    assert main(["adapters", "publish", "v1", "--to", str(victim)]) == 2
    assert "not an adapter" in one_error_line(capsys.readouterr().err)
    assert snapshot(victim) == before


# ----------------------------------------------------------------------------- numbers
@pytest.mark.parametrize(
    "argv",
    [
        ["search", "q", "--k", "0"],
        ["search", "q", "--k", "-1"],
        ["eval", "--limit", "-1"],
        ["eval", "--limit", "0"],
        ["eval", "--retrieval", "--k", "0"],
        ["train", "--epochs", "0"],
        ["train", "--lr", "nan"],
        ["train", "--val-share", "1"],
        ["export", "--threads", "0"],
        ["app", "--port", "0"],
    ],
    ids=lambda a: " ".join(a),
)
def test_bad_numbers_are_rejected_by_the_parser(argv, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert "must be" in capsys.readouterr().err


# ----------------------------------------------------------------------------- evaluation files
@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("出差费用报销要多久？".encode("gbk"), "is not UTF-8"),
        (b"", "holds no eval rows"),
        (b"\n  \n", "holds no eval rows"),
        (b'{"question": "ok", "source": "a.md"}\n{broken\n', ":2 is not valid JSON"),
        (b'["a list"]\n', ":1 has no 'question'"),
    ],
    ids=["gbk", "empty", "blank", "malformed", "not-an-object"],
)
@pytest.mark.parametrize("retrieval", [True, False], ids=["retrieval", "modes"])
def test_bad_eval_files_are_one_line_errors(
    tmp_path, monkeypatch, capsys, content, message, retrieval
) -> None:
    monkeypatch.setenv("HYBRID_WORKSPACE", str(tmp_path / "ws"))
    eval_file = tmp_path / "eval.jsonl"
    eval_file.write_bytes(content)
    assert main(["eval", *(["--retrieval"] if retrieval else []), "--eval-set", str(eval_file)]) == 2
    assert message in one_error_line(capsys.readouterr().err)
    assert eval_file.read_bytes() == content


def test_a_huge_eval_file_is_refused_before_it_is_read(tmp_path, monkeypatch, capsys) -> None:
    from app.evaluation.retrieval import MAX_EVAL_FILE_MB

    monkeypatch.setenv("HYBRID_WORKSPACE", str(tmp_path / "ws"))
    huge = tmp_path / "huge.jsonl"
    with huge.open("wb") as fh:  # sparse: no disk is used
        fh.truncate(int((MAX_EVAL_FILE_MB + 1) * 1e6))
    assert main(["eval", "--retrieval", "--eval-set", str(huge)]) == 2
    assert "over the" in one_error_line(capsys.readouterr().err)


def test_eval_rows_without_a_source_do_not_score_zero(cli_env, capsys) -> None:
    eval_file = cli_env / "eval.jsonl"
    eval_file.write_text(
        json.dumps({"question": "What is the capital of France?", "kind": "out_of_domain"}) + "\n"
    )
    assert main(["eval", "--retrieval", "--eval-set", str(eval_file)]) == 2
    assert "names a source" in one_error_line(capsys.readouterr().err)


# ----------------------------------------------------------------------------- corrupt indexes
def _corrupt(gen: Path, what: str) -> None:
    if what == "manifest-garbage":
        (gen / "manifest.json").write_bytes(b"\x00\xffnot json")
    elif what == "manifest-list":
        (gen / "manifest.json").write_text("[]", encoding="utf-8")
    elif what == "manifest-truncated":
        data = (gen / "manifest.json").read_bytes()
        (gen / "manifest.json").write_bytes(data[: len(data) // 2])
    elif what == "chunks-truncated":
        data = (gen / "chunks.jsonl").read_bytes()
        (gen / "chunks.jsonl").write_bytes(data[: len(data) // 2 + 7])
    elif what == "vectors-truncated":
        data = (gen / "vectors.npy").read_bytes()
        (gen / "vectors.npy").write_bytes(data[:100])
    elif what == "current-garbage":
        (gen.parent / "CURRENT").write_bytes(b"\xff\xfe../../etc\n")


CORRUPTIONS = [
    "manifest-garbage",
    "manifest-list",
    "manifest-truncated",
    "chunks-truncated",
    "vectors-truncated",
    "current-garbage",
]


@pytest.mark.parametrize("what", CORRUPTIONS)
def test_a_corrupt_index_is_one_line_with_a_hint_naming_it(cli_env: Path, capsys, what: str) -> None:
    docs = make_docs(cli_env / "docs")
    assert main(["index", str(docs), "--name", "manual"]) == 0
    folder = cli_env / "ws" / "collections" / "manual" / "index"
    gen = folder / (folder / "CURRENT").read_text().strip()
    _corrupt(gen, what)
    from app.wiring.index import clear_index_cache

    clear_index_cache()
    before = snapshot(folder)
    capsys.readouterr()
    assert main(["search", "annual leave", "--index", "manual"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "--collection manual --rebuild" in line
    if what not in ("vectors-truncated",):  # the sync reads vectors only for unchanged files' rows
        assert main(["index", str(docs), "--name", "manual"]) == 2
        assert "--collection manual --rebuild" in one_error_line(capsys.readouterr().err)
    assert snapshot(folder) == before  # nothing stored was touched by the failures
    # Following the hint works.
    assert main(["index", str(docs), "--name", "manual", "--rebuild"]) == 0
    clear_index_cache()
    assert main(["search", "annual leave", "--index", "manual"]) == 0


# ----------------------------------------------------------------------------- control characters
def test_file_names_with_escapes_and_newlines_are_shown_escaped(cli_env: Path, capsys) -> None:
    docs = cli_env / "docs"
    docs.mkdir()
    (docs / "a\x1b[31mred.md").write_text("# Red\n\nThe red policy covers annual leave.\n", encoding="utf-8")
    (docs / "two\nlines.md").write_text(
        "# Lines\n\nThe lines policy covers annual leave.\n", encoding="utf-8"
    )
    assert main(["index", str(docs), "--name", "odd"]) == 0
    capsys.readouterr()
    assert main(["search", "annual leave policy", "--index", "odd", "--k", "2"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert "a\\x1b[31mred.md" in out and "two\\nlines.md" in out
    hit_lines = [line for line in out.splitlines() if line[:2] in ("1.", "2.")]
    assert len(hit_lines) == 2 and all("[fused" in line for line in hit_lines)


def test_plain_text_helpers_escape_what_they_must() -> None:
    from domain.plain import one_line, terminal_text

    assert one_line("a\x1b[2Jb\nc\x00\u2028") == "a\\x1b[2Jb\\nc\\x00\\u2028"
    assert terminal_text("line one\nline\ttwo\x1b]0;title\x07") == "line one\nline\ttwo\\x1b]0;title\\x07"


# ----------------------------------------------------------------------------- the app's address
def _listening(port: int) -> set[str]:
    """Local addresses with a socket listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found: set[str] = set()
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state = fields[1], fields[3]
            addr, port_hex = local.split(":")
            if state != "0A" or int(port_hex, 16) != port:
                continue
            raw = bytes.fromhex(addr)
            if v6:
                raw = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                found.add(socket.inet_ntop(socket.AF_INET6, raw))
            else:
                found.add(socket.inet_ntop(socket.AF_INET, raw[::-1]))
    return found


def test_hybrid_app_started_from_another_folder_listens_on_loopback_only(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / ".streamlit").mkdir()  # a hostile config in the current folder is ignored too
    (elsewhere / ".streamlit" / "config.toml").write_text('[server]\naddress = "0.0.0.0"\n', encoding="utf-8")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HYBRID_", "STREAMLIT_"))}
    env.update(HYBRID_WORKSPACE=str(tmp_path / "ws"), PYTHONPATH=str(ROOT))
    log = tmp_path / "app.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "app", "--port", str(port)],
            cwd=elsewhere,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90
        healthy = False
        while time.monotonic() < deadline and proc.poll() is None and not healthy:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    healthy = r.read().strip() == b"ok"
            except OSError:
                time.sleep(0.5)
        assert healthy, log.read_text()
        assert _listening(port) == {"127.0.0.1"}, log.read_text()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_a_non_loopback_address_needs_the_explicit_setting(monkeypatch, capsys) -> None:
    from app.commands.app_cmd import check_bind, is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("") and not is_loopback("example.org")
    with pytest.raises(ConfigError, match="ALLOW_REMOTE"):
        check_bind("0.0.0.0", allow_remote=False)
    check_bind("0.0.0.0", allow_remote=True)
    monkeypatch.setattr(os, "execv", lambda *a: pytest.fail(f"started the app: {a}"))
    assert main(["app", "--host", "0.0.0.0"]) == 2
    assert "no login" in one_error_line(capsys.readouterr().err)


def test_the_app_refuses_to_run_when_streamlit_listens_everywhere(monkeypatch) -> None:
    from streamlit import config
    from streamlit.testing.v1 import AppTest

    monkeypatch.delenv("HYBRID_SERVE__ALLOW_REMOTE", raising=False)
    before = config.get_option("server.address")
    config.set_option("server.address", None)
    try:
        at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=30).run()
    finally:
        config.set_option("server.address", before)
    assert not at.exception
    assert "every network interface" in at.error[0].value
    assert not at.title  # no page ran


def test_a_link_planted_as_a_saved_answer_file_cannot_be_read(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HYBRID_WORKSPACE", str(tmp_path / "ws"))
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({"question": "q", "mode": "rag", "text": "t"}), encoding="utf-8")
    (tmp_path / "ws" / "answers").mkdir(parents=True)
    os.symlink(outside, tmp_path / "ws" / "answers" / "a1.json")
    assert main(["correct", "--answer-id", "a1", "--corrected", "fixed"]) == 2
    assert "leads outside" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "ws" / "feedback.sqlite").exists()
