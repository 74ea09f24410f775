"""The one settings object. Every field has a default and a description and can be overridden by
``HYBRID_<SECTION>__<FIELD>`` environment variables (``HYBRID_WORKSPACE`` for the root).

Only ``app/`` reads settings; code below it takes plain arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.workspace import Workspace


class ModelSettings(BaseModel):
    profile: Literal["qwen", "qwen-1.5b", "smollm2"] = Field(
        "qwen",
        description="Base LM profile: qwen (Qwen2.5-Coder 0.5B, EN+ZH), qwen-1.5b (1.5B, EN+ZH, "
        "slower; `make install-1.5b`) or smollm2 (135M, EN only, fast). Set here it wins over the "
        "profile a collection was set to.",
    )
    base_gguf: Path | None = Field(
        None, description="Use this GGUF as the base model instead of the workspace copy."
    )
    base_hf: Path | None = Field(
        None, description="Use this Hugging Face folder as the training base instead of the workspace copy."
    )
    embedder: str = Field(
        "e5",
        description="Embedder: 'e5' (multilingual-e5-small, converted at setup), 'minilm' "
        "(English-only all-MiniLM-L6-v2) or a path to a sentence-transformers folder.",
    )
    llama_sdist: Path | None = Field(
        None, description="llama-cpp-python sdist to take the GGUF converters from (default: .cache/sdist)."
    )


class IndexSettings(BaseModel):
    chunk_tokens: int = Field(256, ge=32, le=512, description="Chunk size in embedder tokens.")
    chunk_overlap: float = Field(0.15, ge=0.0, lt=0.5, description="Overlap as a share of chunk size.")
    max_file_mb: float = Field(20.0, gt=0, description="Files larger than this are skipped.")
    ann_threshold: int = Field(
        50_000, ge=1, description="Above this many vectors an approximate (HNSW) index is used."
    )
    top_k: int = Field(5, ge=1, le=50, description="Passages retrieved per question.")
    translate_questions: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Search each language of the index other than the question's with the question "
        "translated into it by a local model (no adapter): auto (when a profile that translates well "
        "is set up, the largest such), on (that profile, else the answering model), off.",
    )
    batch_size: int = Field(
        8, ge=1, description="Texts embedded per batch; larger batches use more memory and pad more."
    )
    embed_precision: Literal["auto", "bf16", "fp32", "int8"] = Field(
        "auto",
        description="Embedder arithmetic: bf16 (faster where the CPU has AVX-512 BF16 or AMX), fp32, "
        "int8 (the encoder's int8 copy run by ONNX Runtime, built and checked against fp32 by "
        "`hybrid setup`), or auto (bf16 where it is native, else fp32). An index is built at one "
        "precision; int8 and float indexes are not mixed.",
    )


class GenerationSettings(BaseModel):
    backend: Literal["llama_cpp", "transformers", "remote"] = Field(
        "llama_cpp",
        description="Answering backend: llama.cpp in this process, transformers (the reference), or "
        "`remote`, an OpenAI-compatible server named by the `HYBRID_REMOTE__*` settings.",
    )
    n_threads: int = Field(2, ge=1, description="CPU threads for generation.")
    n_ctx: int = Field(4096, ge=512, description="Context window in tokens.")
    max_new_tokens: int = Field(256, ge=1, description="Longest answer in tokens.")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="0 = greedy.")
    context_tokens: int = Field(1400, ge=64, description="Token budget for retrieved passages.")
    focus_segments: int = Field(
        3,
        ge=0,
        description="The retrieval modes read only this many lines or sentences of each passage, "
        "those closest to the question (0 = whole passages).",
    )
    whole_passages: int = Field(
        1,
        ge=0,
        description="This many best-ranked passages are shown whole despite focus_segments.",
    )
    best_passage_last: bool = Field(
        True,
        description="RAG lists its passages from the lowest-ranked up, so the best one stands "
        "right above the question (tuned + RAG keeps rank order, the order its adapter was "
        "trained on).",
    )
    quote_evidence: bool = Field(
        False,
        description="In the retrieval modes the model first quotes its evidence from its passages "
        "(a constrained choice among shown sentences and 'not covered', so the quote is verbatim); "
        "the quote's passages are the answer's citations and its source line.",
    )
    evidence_choice: Literal["likelihood", "greedy"] = Field(
        "likelihood",
        description="How quote_evidence picks the quote: the sentence the model finds most likely "
        "whole, or greedy decoding that may only continue a shown sentence (the model starts the "
        "sentence it wants; the walk keeps it verbatim).",
    )
    evidence_candidates: int = Field(
        0,
        ge=0,
        le=8,
        description="quote_evidence chooses among this many shown sentences, the ones the "
        "collection's embedder finds closest to the question (each read with its passage's "
        "heading), quoted alone or two together; 0 = among every shown sentence, one at a time.",
    )


class AnswerSettings(BaseModel):
    passages_per_doc: int = Field(
        2,
        ge=0,
        description="Passages one document may give an answer among its top_k (0 = no limit). "
        "Search results list documents, one passage each.",
    )
    correction_similarity: float = Field(
        0.92, ge=0.0, le=1.0, description="Cosine above which a corrected answer is reused at once."
    )
    low_score_warning: float = Field(
        0.80, description="Warn when the best passage's dense score is below this."
    )
    other_language_model: Literal["auto", "off"] = Field(
        "auto",
        description="In the retrieval modes, a question whose best passage is in another language "
        "than the question is answered by the largest profile set up that translates well, when it "
        "is larger than the answering profile (its own adapter for the collection in the tuned "
        "modes, else the answering profile answers); the reason line says so. off: the answering "
        "profile answers every question.",
    )
    translate_answers: Literal["auto", "on", "off"] = Field(
        "auto",
        description="An answer line the model wrote as prose in another language than the "
        "question's is shown translated into the question's language, the model's own line beside "
        "it: auto (when a profile that translates well is set up, the largest such), on (that "
        "profile, else the answering model), off.",
    )


class DatasetSettings(BaseModel):
    model_gguf: Path | None = Field(
        None,
        description="GGUF that writes the questions and key facts of `hybrid dataset build` (without "
        "any adapter); none: the largest model profile set up on this machine, or the profile "
        "named with `--profile`. A larger model writes questions that its facts answer more often; "
        "see corpus/measured/collections.",
    )


class RemoteSettings(BaseModel):
    url: str = Field(
        "http://127.0.0.1:8000/v1",
        description="OpenAI-compatible server the `remote` backend answers through (ends in `/v1`).",
    )
    base_model: str = Field("base", description="The server's model name for the base model.")
    tuned_model: str | None = Field(
        None,
        description="The server's model name for the base with this project's LoRA (the tuned modes); "
        "none: the tuned modes are unavailable.",
    )
    api_key: SecretStr | None = Field(None, description="Key sent to that server, if it needs one.")
    timeout_s: float = Field(600.0, gt=0, description="Longest wait for one answer from that server.")


class QdrantSettings(BaseModel):
    url: str | None = Field(
        None,
        description="Qdrant server (e.g. `http://127.0.0.1:6333`) that `hybrid index --to-qdrant` moves a "
        "collection's vectors to and that collections moved there are searched on; none: "
        "in-process Qdrant inside the collection's index folder (one process at a time).",
    )
    api_key: SecretStr | None = Field(None, description="Key sent to that Qdrant server, if it needs one.")
    timeout_s: float = Field(30.0, gt=0, description="Longest wait for one Qdrant request.")


class ServeSettings(BaseModel):
    host: str = Field("127.0.0.1", description="Bind address for the app (`hybrid app`) and the API server.")
    port: int = Field(8501, ge=1, le=65535, description="Port of the app.")
    allow_remote: bool = Field(
        False,
        description="Allow a bind address other than loopback. The app has no login: anyone who "
        "reaches the address can read the documents and change the workspace.",
    )
    api_port: int = Field(
        8088, ge=1, le=65535, description="Port of the OpenAI-compatible API (`hybrid serve`)."
    )
    api_key: SecretStr | None = Field(
        None,
        description="Key the API requires as `Authorization: Bearer <key>`; without one it binds only "
        "to loopback.",
    )
    max_request_bytes: int = Field(65536, ge=1024, description="Largest request body the API accepts.")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HYBRID_", env_nested_delimiter="__", extra="ignore")

    workspace: Path = Field(Path("workspace"), description="Folder for everything the app creates.")
    collection: str = Field(
        "sample",
        description="Collection used when a command or page names none: a document folder with its "
        "own index, answer style, datasets, adapters, router and reports (`sample` is the bundled one).",
    )
    log_level: str = Field("INFO", description="Logging level.")
    models: ModelSettings = ModelSettings()
    index: IndexSettings = IndexSettings()
    generation: GenerationSettings = GenerationSettings()
    answer: AnswerSettings = AnswerSettings()
    dataset: DatasetSettings = DatasetSettings()
    remote: RemoteSettings = RemoteSettings()
    qdrant: QdrantSettings = QdrantSettings()
    serve: ServeSettings = ServeSettings()

    @property
    def ws(self) -> Workspace:
        return Workspace.at(self.workspace)


def load_settings() -> Settings:
    """Read settings from the environment (and defaults)."""
    return Settings()


def settings_table() -> str:
    """Every setting as a Markdown table row: its environment variable, default and description
    (the README's settings table is this text; `python -m app.settings` prints it)."""
    rows = ["| variable | default | what it does |", "|---|---|---|"]

    def add(prefix: str, model: type[BaseModel]) -> None:
        for name, field in model.model_fields.items():
            kind = field.annotation
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                add(f"{prefix}{name.upper()}__", kind)
                continue
            default = field.default if field.default is not None else "(none)"
            text = (field.description or "").replace("|", "\\|")
            rows.append(f"| `{prefix}{name.upper()}` | `{default}` | {text} |")

    add("HYBRID_", Settings)
    return "\n".join(rows)


if __name__ == "__main__":
    print(settings_table())
