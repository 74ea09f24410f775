"""The base GGUF's own quantized blocks in a quantized export, for every weight the adapter left alone.

The HF base we train and merge on is decoded from a quantized GGUF (``adapters.base_hf``), so an
untouched weight of the merged model is that GGUF's blocks, decoded. Quantizing it again finds
another rounding (a 4-bit grid re-fitted to values already on one), and every such weight moves a
little away from what transformers + peft computed with. Instead the export asks the quantizer for
the base's own type for each of those tensors (``base_types``) and then writes the base's bytes
over them (``splice``): the exported file then differs from the base only where the adapter did.

A tensor is taken over only when the base's blocks decode to the merged model's values in the f16
export, element by element within f16 rounding (``matching``): a weight the adapter changed, or a
base GGUF that is not the HF base's source, is quantized as usual.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from domain.errors import ExportError

logger = logging.getLogger(__name__)

# The base types taken over, per export quantization: types no finer than the export asks for, so
# a q4_k_m export of a Q8_0 base stays a 4-5-bit file (its weights are quantized as usual).
SPLICE_TYPES = {"q4_k_m": ("q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k")}
# f16 rounding: half a unit in the last place (2**-11 relative), or half the subnormal step.
F16_REL = 2.0**-11
F16_SUBNORMAL = 2.0**-25


def _reader(path: Path, mode: str = "r") -> Any:
    from gguf import GGUFReader

    try:
        return GGUFReader(str(path), mode)  # type: ignore[arg-type]
    except (OSError, ValueError) as e:
        raise ExportError(f"cannot read GGUF {path} ({e}) — re-run the export") from e


def tensors(path: Path) -> dict[str, Any]:
    """{name: tensor (gguf-py's ReaderTensor, data memory-mapped)} of a GGUF file, read once."""
    return {t.name: t for t in _reader(path).tensors}


def base_types(base: Mapping[str, Any], quant: str, changed: re.Pattern[str] | None) -> dict[str, str]:
    """{tensor name: type name} of the base's weights (``tensors`` of the base GGUF) to take over in
    a ``quant`` export: those in ``SPLICE_TYPES[quant]`` whose name ``changed`` (the adapter's
    weights) does not match."""
    allowed = SPLICE_TYPES.get(quant, ())
    out = {}
    for name, t in base.items():
        kind = t.tensor_type.name.lower()
        if kind in allowed and not (changed is not None and changed.search(name)):
            out[name] = kind
    return out


def overrides(types: Mapping[str, str]) -> dict[str, str]:
    """Quantizer overrides (``adapters.llama_tools.quantize_gguf``'s ``tensor_types``) for ``types``."""
    return {f"^{re.escape(name)}$": kind for name, kind in types.items()}


def matching(base: Mapping[str, Any], f16_gguf: Path, types: Mapping[str, str]) -> dict[str, str]:
    """The part of ``types`` whose base blocks decode to the f16 file's values, element by element
    within f16 rounding (relative ``F16_REL`` plus the subnormal step): a weight the adapter changed
    by more than rounding, or a base that is not the merged model's source, is left out."""
    import numpy as np
    from gguf.quants import dequantize

    f16 = tensors(f16_gguf)
    out = {}
    for name, kind in types.items():
        b, f = base.get(name), f16.get(name)
        if b is None or f is None or list(b.shape) != list(f.shape):
            continue
        decoded = dequantize(np.asarray(b.data), b.tensor_type).reshape(-1)
        theirs = np.asarray(f.data, dtype=np.float32).reshape(-1)
        if decoded.shape == theirs.shape and bool(
            np.all(np.abs(decoded - theirs) <= F16_REL * np.abs(decoded) + F16_SUBNORMAL)
        ):
            out[name] = kind
    return out


def splice(target: Path, base: Mapping[str, Any], types: Mapping[str, str]) -> int:
    """Write the base's bytes (``tensors`` of the base GGUF) over ``target``'s tensors named in
    ``types``, in place; returns how many. Every one must have the base's shape, type and size in
    ``target`` (the quantizer was told so), else ExportError and ``target`` is left as the quantizer
    wrote it."""
    dst = _reader(target, "r+")
    pairs = []
    for t in dst.tensors:
        if t.name not in types:
            continue
        b = base.get(t.name)
        if (
            b is None
            or b.tensor_type != t.tensor_type
            or list(b.shape) != list(t.shape)
            or b.n_bytes != t.n_bytes
        ):
            raise ExportError(
                f"tensor {t.name} of {target.name} is not laid out like the base's "
                f"({t.tensor_type.name} {list(t.shape)} against "
                f"{b.tensor_type.name + ' ' + str(list(b.shape)) if b is not None else 'missing'}) — "
                "re-run the export"
            )
        pairs.append((t, b))
    if len(pairs) != len(types):
        raise ExportError(
            f"{len(types) - len(pairs)} base tensors are missing from {target.name} — re-run the export"
        )
    for t, b in pairs:
        t.data[...] = b.data
    dst.data.flush()
    del dst
    logger.info("took %d tensors' blocks from the base into %s", len(pairs), target.name)
    return len(pairs)
