"""Builds a tiny sentence-transformers model locally in about a second, with no download: a seeded
2-layer BERT (hidden 32), a WordPiece tokenizer trained on a few English and Chinese sentences,
mean pooling, Normalize, and e5-style ``query: ``/``passage: `` prompts.

It is loaded by ``SentenceTransformerEmbedder`` through the same code path as the real models.
"""

from __future__ import annotations

from pathlib import Path

TINY_PROMPTS = {"query": "query: ", "passage": "passage: "}
TINY_HIDDEN = 32

TRAINING_SENTENCES = (
    "query: hello world",
    "passage: hello there, the world is small",
    "employees get fifteen days of annual leave",
    "submit travel expenses within ten days",
    "the server sends an alert when the disk is full",
    "员工每年有十五天年假",
    "出差费用需要在十天内报销",
    "磁盘满了服务器会发送告警",
    "你好世界",
    "query passage leave expense disk alert hello world",
) * 4


def build_tiny_st(dest: Path, *, prompts: dict[str, str] | None = None, seed: int = 0) -> Path:
    """Write the tiny model into ``dest / "tiny-st"`` and return that folder.

    Args:
        dest: an empty scratch folder.
        prompts: the model's prompts (default: e5's query/passage prefixes; ``{}`` for none).
        seed: torch seed for the weights.
    """
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    dest = Path(dest)
    hf_dir = dest / "tiny-hf"
    st_dir = dest / "tiny-st"
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, handle_chinese_chars=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(
        TRAINING_SENTENCES, trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials)
    )
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        model_max_length=128,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    fast.save_pretrained(str(hf_dir))

    config = BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=TINY_HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        pad_token_id=tok.token_to_id("[PAD]"),
    )
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(str(hf_dir))

    transformer = Transformer(str(hf_dir), max_seq_length=128)
    model = SentenceTransformer(
        modules=[transformer, Pooling(TINY_HIDDEN, "mean"), Normalize()],
        prompts=dict(TINY_PROMPTS if prompts is None else prompts),
        device="cpu",
    )
    model.save(str(st_dir), create_model_card=False)
    return st_dir
