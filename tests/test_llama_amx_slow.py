"""llama.cpp and torch share a thread's Intel AMX tiles: a prompt batch through ggml (its AMX matrix
multiply on CPUs that have it), then a bfloat16 matrix multiply in torch (oneDNN, AMX tiles too), then
llama.cpp again. Before tools/patch_llama_amx.py checked the tile configuration on every call, the
third step died with SIGILL on this Sapphire Rapids machine (the app does exactly this: embed the
question, answer it, embed the next one). On CPUs without AMX the same sequence simply runs.

It runs in a child process so a crash fails this test instead of killing the suite.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from domain.workspace import Workspace
from tests.llama_converters import workspace_root

pytestmark = pytest.mark.slow

SCRIPT = """
import sys, torch, llama_cpp
llm = llama_cpp.Llama(sys.argv[1], n_threads=1, n_ctx=256, verbose=False)
prompt = llm.tokenize(b"The quick brown fox jumps over the lazy dog. " * 4)
w = torch.randn(512, 512).to(torch.bfloat16)
sums = []
for _ in range(3):
    llm.reset()
    llm.eval(prompt)
    x = torch.randn(64, 512).to(torch.bfloat16)
    sums.append(float(torch.nn.functional.linear(x, w).float().sum()))
print(len(sums), llm.n_tokens)
"""


def test_llama_cpp_and_torch_bf16_take_turns_on_one_thread() -> None:
    pytest.importorskip("llama_cpp")
    ws = Workspace.at(workspace_root())
    if not ws.base_gguf.is_file():
        pytest.skip(f"{ws.base_gguf} missing: run `hybrid setup --only base_gguf`")
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(ws.base_gguf)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    rounds, tokens = done.stdout.split()
    assert int(rounds) == 3 and int(tokens) > 30
