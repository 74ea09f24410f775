"""Model profiles and model identity: a profile's parts verified by sha256 before use (a wrong or
missing part is a one-line error naming the fix), models identified by their metadata (tiny GGUF
files and Hugging Face folders of two architectures), the profile a collection answers with, and
an adapter trained on one base refused on another."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapters.base_model import PROFILES, Profile, assemble_base_gguf, locate_gguf_parts
from adapters.model_info import identify, identity_sha256
from app.settings import ModelSettings, Settings
from domain.errors import AdapterMismatchError, ModelMissingError, SetupError

HELLO_SHA = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"  # sha256(b"hello world")
FAKE = Profile(
    key="fake",
    label="Fake 1B",
    gguf_name="fake.gguf",
    hf_name="fake-hf",
    languages="English",
    licence="none",
    part_packages=("no_such_model_part1", "no_such_model_part2"),
    part_version="1.0",
    install_hint="`make install-fake`",
    sha256=HELLO_SHA,
    bytes=11,
)


# --------------------------------------------------------------------------- parts
def test_every_assembled_profile_pins_a_hash_size_and_licence() -> None:
    assert {"qwen", "qwen-1.5b", "smollm2"} <= set(PROFILES)
    for p in PROFILES.values():
        assert p.licence
        if p.assembled:
            assert len(p.sha256 or "") == 64 and (p.bytes or 0) > 0 and p.part_version
    assert len(PROFILES["qwen-1.5b"].part_packages) == 22
    from app.commands.args import PROFILE_CHOICES

    assert tuple(PROFILES) == PROFILE_CHOICES  # the CLI's choices, kept without importing adapters


def test_a_missing_part_package_names_the_package_and_the_profile_setup() -> None:
    with pytest.raises(SetupError) as e:
        locate_gguf_parts(FAKE)
    msg = str(e.value)
    assert "\n" not in msg
    assert "no-such-model-part1" in msg and "pip install no-such-model-part1==1.0" in msg
    assert "hybrid setup --profile fake" in msg


def _parts(tmp_path: Path, chunks: list[bytes]) -> list[Path]:
    paths = []
    for i, chunk in enumerate(chunks, start=1):
        p = tmp_path / f"part{i:02d}.bin"
        p.write_bytes(chunk)
        paths.append(p)
    return paths


def test_parts_are_verified_by_sha256_before_the_file_is_used(tmp_path) -> None:
    dest = tmp_path / "models" / "fake.gguf"
    assert (
        assemble_base_gguf(dest, parts=_parts(tmp_path, [b"hello ", b"world"]), profile=FAKE)["status"]
        == "done"
    )
    assert dest.with_name("fake.gguf.sha256").read_text().split()[0] == HELLO_SHA
    # a tampered part of the same size: refused, nothing kept, the message says how to reinstall
    bad = tmp_path / "bad"
    bad.mkdir()
    with pytest.raises(SetupError) as e:
        assemble_base_gguf(bad / "fake.gguf", parts=_parts(bad, [b"hellO ", b"world"]), profile=FAKE)
    msg = str(e.value)
    assert "\n" not in msg and "Fake 1B" in msg and HELLO_SHA[:12] in msg
    assert "--force-reinstall no-such-model-part1..2==1.0" in msg and "--profile fake" in msg
    assert list(bad.glob("fake.gguf*")) == []


def test_a_missing_part_file_is_a_one_line_error(tmp_path) -> None:
    parts = _parts(tmp_path, [b"hello ", b"world"])
    parts[1].unlink()
    with pytest.raises(SetupError, match=r"^Fake 1B part .*part02\.bin is missing — reinstall") as e:
        assemble_base_gguf(tmp_path / "fake.gguf", parts=parts, profile=FAKE)
    assert "\n" not in str(e.value)


# --------------------------------------------------------------------------- identification
def _tiny_gguf(
    path: Path, arch: str, *, layers: int, hidden: int, file_type: int, template: str | None
) -> Path:
    import numpy as np
    from gguf import GGUFWriter

    w = GGUFWriter(str(path), arch)
    w.add_name(f"Tiny {arch}")
    w.add_block_count(layers)
    w.add_context_length(2048)
    w.add_embedding_length(hidden)
    w.add_file_type(file_type)
    w.add_token_list([f"t{i}" for i in range(300)])  # a string array the reader skips
    w.add_token_scores([0.0] * 300)
    if template:
        w.add_chat_template(template)
    w.add_tensor("token_embd.weight", np.zeros((32, hidden), dtype=np.float32))
    for i in range(layers):
        w.add_tensor(f"blk.{i}.attn_q.weight", np.zeros((hidden, hidden), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_gguf_files_of_two_architectures_are_identified_by_their_metadata(tmp_path) -> None:
    chatml = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>{% endfor %}"
    llama3 = "{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>{% endfor %}"
    # names that say the opposite of what the files are: identity comes from the header only
    a = identify(
        _tiny_gguf(tmp_path / "llama-7b.gguf", "qwen2", layers=2, hidden=64, file_type=1, template=chatml)
    )
    b = identify(
        _tiny_gguf(tmp_path / "qwen.gguf", "llama", layers=3, hidden=32, file_type=15, template=llama3)
    )
    assert (a.format, a.architecture, a.name, a.layers, a.hidden, a.context_length) == (
        "gguf",
        "qwen2",
        "Tiny qwen2",
        2,
        64,
        2048,
    )
    assert a.parameters == 32 * 64 + 2 * 64 * 64 and a.quantization == "F16" and a.template_family == "ChatML"
    assert (b.architecture, b.layers, b.parameters, b.quantization, b.template_family) == (
        "llama",
        3,
        32 * 32 + 3 * 32 * 32,
        "Q4_K_M",
        "Llama 3",
    )
    assert "qwen2" in a.describe() and "ChatML" in a.describe()
    assert a.shape() != b.shape()


def _tiny_hf(folder: Path, kind: str) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    torch.manual_seed(0)
    common = dict(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
    )
    config = (LlamaConfig if kind == "llama" else Qwen2Config)(
        num_hidden_layers=2 if kind == "llama" else 3, **common
    )
    AutoModelForCausalLM.from_config(config).save_pretrained(folder, safe_serialization=True)
    if kind == "qwen2":
        (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": "<|im_start|>{{ x }}"}))
    return folder


def test_hf_folders_of_two_architectures_are_identified_by_their_metadata(tmp_path) -> None:
    llama = identify(_tiny_hf(tmp_path / "qwen-named", "llama"))
    qwen = identify(_tiny_hf(tmp_path / "llama-named", "qwen2"))
    assert (llama.format, llama.architecture, llama.layers, llama.hidden, llama.context_length) == (
        "hf",
        "llama",
        2,
        32,
        512,
    )
    assert (qwen.architecture, qwen.layers, qwen.template_family) == ("qwen2", 3, "ChatML")
    assert llama.template_family == "none" and llama.quantization == "F32"
    assert 0 < llama.parameters < qwen.parameters  # three layers with q/k/v biases against two without


def test_unreadable_models_are_one_line_errors(tmp_path) -> None:
    (tmp_path / "broken.gguf").write_bytes(b"GGUF\x03\x00\x00\x00\x05")
    (tmp_path / "notes.txt").write_text("hello")
    for path, why in (
        (tmp_path / "broken.gguf", "file ends inside its GGUF header"),
        (tmp_path / "notes.txt", "not a GGUF file"),
        (tmp_path / "nothing", "neither a GGUF file nor a Hugging Face folder"),
    ):
        with pytest.raises(ModelMissingError, match=why) as e:
            identify(path)
        assert "\n" not in str(e.value)


def test_identity_is_the_sha256_cached_by_size_and_time(tmp_path) -> None:
    f = tmp_path / "m.gguf"
    f.write_bytes(b"hello world")
    cache = tmp_path / "cache"
    assert identity_sha256(f, cache) == HELLO_SHA
    assert len(list(cache.iterdir())) == 1
    f.write_bytes(b"hello there")  # changed in place: hashed again, not served from the cache
    assert identity_sha256(f, cache) != HELLO_SHA


# --------------------------------------------------------------------------- adapters and bases
def _workspace_with_bases(tmp_path: Path) -> tuple[Settings, Path, Path]:
    small = _tiny_gguf(tmp_path / "small.gguf", "qwen2", layers=2, hidden=64, file_type=15, template=None)
    large = _tiny_gguf(tmp_path / "large.gguf", "qwen2", layers=3, hidden=64, file_type=15, template=None)
    return Settings(workspace=tmp_path / "ws", models=ModelSettings(base_gguf=small)), small, large


def _adapter(folder: Path, settings: Settings) -> Path:
    """An adapter version folder recording the base ``settings`` answers with, as training does."""
    from app.wiring.models import base_identity

    sha, info = base_identity(settings, training=True)
    folder.mkdir(parents=True)
    for name in ("adapter_model.safetensors", "adapter_config.json", "lora.gguf"):
        (folder / name).write_bytes(b"x")
    (folder / "params.json").write_text(
        json.dumps({"base_sha256": sha, "base": {"name": info.name, "shape": info.shape()}})
    )
    return folder


def test_an_adapter_is_applied_only_to_the_base_it_was_trained_on(tmp_path) -> None:
    from adapters.registry import activate
    from app.wiring.active_adapter import adapter_choice, current_adapter, registry_root, require_fit

    settings, small, large = _workspace_with_bases(tmp_path)
    v1 = _adapter(registry_root(settings) / "v1", settings)
    activate(registry_root(settings), "v1")
    assert current_adapter(settings) == (v1, "v1")
    require_fit(settings, v1)

    other = settings.model_copy(update={"models": ModelSettings(base_gguf=large)})
    choice = adapter_choice(other)
    assert (choice.folder, choice.label) == (None, None)
    assert choice.note is not None and choice.note.startswith("tuned modes unavailable: adapter v1")
    with pytest.raises(AdapterMismatchError) as e:
        require_fit(other, v1, "v1")
    msg = str(e.value)
    assert "\n" not in msg
    assert "trained on Tiny qwen2 (sha256 " in msg and "cannot be applied to Tiny qwen2 (sha256 " in msg
    sha_small, sha_large = identity_sha256(small, tmp_path / "c"), identity_sha256(large, tmp_path / "c")
    assert sha_small[:12] in msg and sha_large[:12] in msg and "hybrid train" in msg


def test_a_named_adapter_of_another_base_is_refused_before_any_model_loads(tmp_path) -> None:
    from app.wiring.generation import build_generator

    settings, _, large = _workspace_with_bases(tmp_path)
    v1 = _adapter(tmp_path / "adapters" / "v1", settings)
    other = settings.model_copy(update={"models": ModelSettings(base_gguf=large)})
    with pytest.raises(AdapterMismatchError, match="adapter v1 was trained on"):
        build_generator(other, adapter_dir=v1)


def test_the_tuned_modes_say_why_when_no_adapter_fits() -> None:
    from domain.errors import ConfigError
    from domain.pipeline import Assistant
    from domain.router import AdapterState
    from domain.types import Mode
    from tests.fakes_answer import FakeGenerator, FakeRetriever

    note = "tuned modes unavailable: adapter v1 was trained on A (sha256 1111) and cannot be applied to B"
    assistant = Assistant(
        retriever=FakeRetriever(),
        generator=FakeGenerator(adapter_loaded=False),
        adapter=AdapterState(active=False, note=note),
    )
    with pytest.raises(
        ConfigError, match="mode tuned needs a LoRA adapter: tuned modes unavailable: adapter v1"
    ):
        assistant.answer("what?", mode=Mode.TUNED)


def test_a_collection_remembers_its_profile_and_settings_win(tmp_path, monkeypatch) -> None:
    from app.wiring.collections import create_collection, set_profile
    from app.wiring.models import profile_key, with_profile

    s = Settings(workspace=tmp_path / "ws", collection="docs")
    create_collection(s, "docs", tmp_path)
    assert profile_key(s) == "qwen"
    set_profile(s, "docs", "qwen-1.5b")
    assert profile_key(s) == "qwen-1.5b"
    assert profile_key(with_profile(s, "smollm2")) == "smollm2"  # chosen for this command
    monkeypatch.setenv("HYBRID_MODELS__PROFILE", "qwen")
    from app.settings import load_settings

    assert (
        profile_key(load_settings().model_copy(update={"workspace": s.workspace, "collection": "docs"}))
        == "qwen"
    )
    set_profile(s, "docs", None)
    assert profile_key(s) == "qwen"
    with pytest.raises(Exception, match="no model profile 'gpt'"):
        set_profile(s, "docs", "gpt")


def test_each_base_keeps_its_own_most_recent_adapter(tmp_path) -> None:
    from adapters.registry import activate
    from app.wiring.active_adapter import current_adapter, registry_root

    small_settings, _, large = _workspace_with_bases(tmp_path)
    large_settings = small_settings.model_copy(update={"models": ModelSettings(base_gguf=large)})
    root = registry_root(small_settings)
    v1 = _adapter(root / "v1", small_settings)
    activate(root, "v1")
    v2 = _adapter(root / "v2", large_settings)
    activate(root, "v2")  # trained and activated while the large base answered
    assert current_adapter(large_settings) == (v2, "v2")
    assert current_adapter(small_settings) == (v1, "v1")  # back to the small base: its own adapter


def test_publishing_to_a_profile_default_refuses_an_adapter_of_another_base(tmp_path) -> None:
    from adapters.registry import activate
    from app.wiring.active_adapter import default_adapter_dir, publish_version, registry_root

    small_settings, _, large = _workspace_with_bases(tmp_path)
    large_settings = small_settings.model_copy(update={"models": ModelSettings(base_gguf=large)})
    root = registry_root(small_settings)  # the bundled collection, whose bundle names a default per profile
    _adapter(root / "v1", large_settings)
    activate(root, "v1")
    target = default_adapter_dir(small_settings)
    assert target is not None
    before = sorted(p.name for p in target.iterdir()) if target.is_dir() else []
    with pytest.raises(AdapterMismatchError, match="adapter v1 was trained on"):
        publish_version(small_settings, "latest")
    assert (sorted(p.name for p in target.iterdir()) if target.is_dir() else []) == before


def test_each_shipped_default_adapter_was_trained_on_its_profiles_base(tmp_path) -> None:
    """The bundle's default adapters (one per profile) name the base they were trained on; each is
    its profile's verified GGUF, and each folder holds the peft weights and the GGUF LoRA."""
    import json

    from adapters.base_model import PROFILES
    from app.settings import Settings
    from app.wiring.collections import get_collection

    shipped = get_collection(Settings(workspace=tmp_path / "ws"), "sample").default_adapters()
    assert set(shipped) == {"qwen", "qwen-1.5b"}
    for key, folder in shipped.items():
        params = json.loads((folder / "params.json").read_text(encoding="utf-8"))
        assert params["base_sha256"] == PROFILES[key].sha256, key
        assert (folder / "adapter_model.safetensors").is_file() and (folder / "lora.gguf").is_file()
