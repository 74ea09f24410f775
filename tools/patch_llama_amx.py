"""Patch the llama.cpp sources of an unpacked llama-cpp-python sdist so ggml's Intel AMX matrix
multiply always runs with its own, complete tile configuration. Two faults, both seen here on a
Sapphire Rapids machine:

1. gcc 12's ``_tile_loadconfig`` tells the compiler that ``ldtilecfg`` reads only the first 8 bytes
   of its 64-byte argument (the asm operand is ``*(const void **)config``), so the stores that fill
   in the tile rows and columns are removed as dead. ``ldtilecfg`` then reads mostly stack garbage:
   every generation died with a general-protection fault in ``ggml_backend_amx_mul_mat``. The patch
   issues ``ldtilecfg`` with the whole struct as its memory operand.
2. ggml configured the tiles once per thread (a ``thread_local`` flag) and assumed the configuration
   stays. torch's oneDNN kernels (the embedder runs in bfloat16 on AMX) load their own and release
   the tiles afterwards, so the next llama.cpp matrix multiply on that thread met unconfigured tiles
   and died with SIGILL (the test suite: a tiny-model test, then the embedder, then the real model).
   The patch reads the current configuration (``sttilecfg``) on every call and loads ggml's when it
   differs.

Usage: ``python tools/patch_llama_amx.py SDIST_DIR`` (idempotent; exits 1 with a message when the
code it expects is not found, for instance after a llama-cpp-python upgrade).
"""

from __future__ import annotations

import sys
from pathlib import Path

MMQ = Path("vendor/llama.cpp/ggml/src/ggml-cpu/amx/mmq.cpp")
OLD_FN = """inline void ggml_tile_config_init(void) {
    static thread_local bool done = false;

    if (done) {
        return;
    }

    alignas(64) tile_config_t tc = {};
"""
OLD_LOAD = """    _tile_loadconfig(&tc);
    done = true;
}
"""
NEW_FN = """inline void ggml_tile_config_init(void) {
    // Patched (tools/patch_llama_amx.py): the configuration is checked on every call, because
    // other AMX code in the process (oneDNN in torch) may load its own or release the tiles.
    alignas(64) tile_config_t tc = {};
"""
NEW_LOAD = """    alignas(64) tile_config_t current;
    __asm__ __volatile__("sttilecfg %0" : "=m"(current));
    if (std::memcmp(&current, &tc, sizeof(tc)) != 0) {
        __asm__ __volatile__("ldtilecfg %0" : : "m"(tc));  // the whole struct is the operand
    }
}
"""
INCLUDE_OLD = "#include <algorithm>\n"
INCLUDE_NEW = "#include <algorithm>\n#include <cstring>\n"


def patch(root: Path) -> str:
    path = root / MMQ
    if not path.is_file():
        raise SystemExit(f"patch_llama_amx: {path} not found — is {root} an unpacked llama-cpp-python sdist?")
    text = path.read_text(encoding="utf-8")
    if NEW_FN in text:
        return "already patched"
    for old in (OLD_FN, OLD_LOAD, INCLUDE_OLD):
        if text.count(old) != 1:
            raise SystemExit(f"patch_llama_amx: the tile-config code in {path} changed — review the patch")
    text = text.replace(OLD_FN, NEW_FN).replace(OLD_LOAD, NEW_LOAD).replace(INCLUDE_OLD, INCLUDE_NEW, 1)
    path.write_text(text, encoding="utf-8")
    return "patched"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python tools/patch_llama_amx.py SDIST_DIR")
    print(f"{MMQ}: {patch(Path(sys.argv[1]))}")
