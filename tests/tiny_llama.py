"""Builds a tiny seeded Llama causal LM in a few seconds with no download: a sentencepiece BPE
tokenizer (byte fallback, ChatML markers) trained on the short English and Chinese text below, a
ChatML chat template, and random but seeded weights saved as safetensors.

Dimensions are multiples of 256 so llama.cpp's K-quants apply to every matrix. The folder loads
through the same ``AutoTokenizer`` / ``AutoModelForCausalLM`` calls as the real base model.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SPECIAL_MARKERS = ["<|im_start|>", "<|im_end|>"]
VOCAB_SIZE = 640
SEED = 3
# Weights are drawn with this standard deviation (Llama's default 0.02 makes the logits so flat
# that greedy decoding repeats one token; a wider spread gives varied but still seeded output).
INIT_STD = 0.25

_ENGLISH = """\
The leave policy gives every employee twenty days of paid holiday each year.
Requests for leave are sent to your manager at least two weeks in advance.
Sick leave does not need approval, but please tell your team before nine in the morning.
Expense reports are due on the fifth working day of the following month.
Keep every receipt; a photo of the receipt is accepted for amounts under fifty euros.
The office opens at eight and closes at seven on weekdays.
Visitors sign in at the front desk and wear a badge while they are in the building.
Laptops must be locked with a password when you leave your desk.
Report a lost badge to the security team on the same day.
The kitchen is cleaned every Friday afternoon, so take your food home on Thursday.
Meeting rooms can be booked for up to two hours at a time.
If a meeting is cancelled, release the room so that others can use it.
New staff receive a laptop, a badge and a short tour on their first day.
Training courses are listed on the internal site and are free for all employees.
Travel must be approved before tickets are bought.
Trains are preferred to planes for trips shorter than four hours.
Hotel costs are paid up to a fixed limit per night that depends on the city.
Overtime is paid at one and a half times the normal rate.
Questions about salary go to the payroll team, not to your manager.
The help desk answers tickets within one working day.
Backups of shared folders run every night at two in the morning.
A deleted file can be restored from the backup for thirty days.
Passwords are changed every six months and must have at least twelve characters.
Do not share your password with anyone, not even the help desk.
The annual review takes place in March and covers goals, feedback and training.
Parents may work from home two days a week during school holidays.
Bicycles can be parked in the garage next to the main entrance.
The library lends books and journals for up to three weeks.
Printed documents left at the printer are collected and shredded each evening.
Fire drills happen twice a year; follow the green signs to the meeting point.
"""

_CHINESE = """\
每位员工每年有二十天带薪年假。
请至少提前两周向经理提交休假申请。
病假不需要审批，但请在早上九点前告诉团队。
报销单应在次月第五个工作日之前提交。
请保留所有收据，五十欧元以下的金额可以用照片代替。
办公室工作日早上八点开门，晚上七点关门。
访客需要在前台登记并佩戴胸卡。
离开座位时必须锁定笔记本电脑。
遗失胸卡请在当天报告安全团队。
会议室每次最多可以预订两个小时。
新员工第一天会拿到电脑、胸卡并参观办公室。
出差前必须先获得批准再购买车票。
四小时以内的行程优先乘坐火车。
加班工资按正常工资的一点五倍计算。
服务台会在一个工作日内回复工单。
共享文件夹每天夜里两点备份。
删除的文件可以在三十天内从备份中恢复。
密码每六个月更换一次，至少十二个字符。
年度考核在三月进行，包括目标、反馈和培训。
消防演习每年两次，请按照绿色标志走到集合点。
"""

_SUBJECTS = ["the manager", "a new employee", "the help desk", "the payroll team", "our team", "a visitor"]
_VERBS = ["reads", "checks", "updates", "sends", "approves", "archives"]
_OBJECTS = [
    "the leave request",
    "the expense report",
    "the travel plan",
    "the meeting notes",
    "the backup log",
    "the training list",
]


def training_lines() -> list[str]:
    """A few hundred lines of our own text: handwritten sentences plus simple generated ones."""
    lines = _ENGLISH.splitlines() + _CHINESE.splitlines()
    for i, subject in enumerate(_SUBJECTS):
        for j, verb in enumerate(_VERBS):
            for k, obj in enumerate(_OBJECTS):
                lines.append(f"{subject.capitalize()} {verb} {obj} on day {(i * 7 + j * 3 + k) % 28 + 1}.")
    lines += [f"<|im_start|>user\n{q}<|im_end|>" for q in _ENGLISH.splitlines()[:10]]
    return lines


def _train_sentencepiece() -> bytes:
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(training_lines()),
        model_writer=buf,
        vocab_size=VOCAB_SIZE,
        model_type="bpe",
        byte_fallback=True,
        character_coverage=1.0,
        hard_vocab_limit=False,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        split_digits=True,
        user_defined_symbols=SPECIAL_MARKERS,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        num_threads=1,
        minloglevel=2,
        seed_sentencepiece_size=100_000,
    )
    return buf.getvalue()


def build_tiny_llama(dest: Path, *, seed: int = SEED) -> Path:
    """Write a tiny Llama model folder (tokenizer, chat template, seeded safetensors) into ``dest``.

    Returns ``dest``.
    """
    import torch
    from tokenizers import AddedToken
    from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "tokenizer.model").write_bytes(_train_sentencepiece())
    (dest / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "LlamaTokenizer",
                "bos_token": "<s>",
                "eos_token": "<|im_end|>",
                "unk_token": "<unk>",
                "add_bos_token": True,
                "add_eos_token": False,
            }
        ),
        encoding="utf-8",
    )
    # llama.cpp's converter types sentencepiece user-defined pieces as normal text unless they are
    # listed here; listed, they become USER_DEFINED and are matched whole, as transformers does.
    (dest / "added_tokens.json").write_text(
        json.dumps({m: i for i, m in enumerate(SPECIAL_MARKERS, start=3)}), encoding="utf-8"
    )
    tokenizer = AutoTokenizer.from_pretrained(str(dest))
    # Both markers are special tokens, as in real ChatML models (Qwen's tokenizer.json), so text
    # tokenized with special-token parsing off cannot produce them.
    tokenizer.add_special_tokens(
        {
            "additional_special_tokens": [
                AddedToken(m, special=True, normalized=False) for m in SPECIAL_MARKERS
            ]
        }
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    tokenizer.save_pretrained(str(dest))
    # transformers 5 keeps the added tokens in tokenizer.json only; llama.cpp's converter reads
    # them from tokenizer_config.json, and types the special ones CONTROL (not parsed in text).
    config_path = dest / "tokenizer_config.json"
    tok_config = json.loads(config_path.read_text(encoding="utf-8"))
    tok_config["added_tokens_decoder"] = {
        str(i): {"content": m, "special": True, "normalized": False, "lstrip": False, "rstrip": False}
        for i, m in enumerate(SPECIAL_MARKERS, start=3)
    }
    config_path.write_text(json.dumps(tok_config), encoding="utf-8")

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        initializer_range=INIT_STD,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # values exactly representable in f16, so an f16 GGUF holds the same weights
        for param in model.parameters():
            param.copy_(param.half().float())
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        do_sample=False,
    )
    model.save_pretrained(str(dest), safe_serialization=True)
    return dest


def save_random_lora(base_dir: Path, dest: Path, *, b_scale: float, seed: int = 7) -> Path:
    """A seeded random (non-zero) LoRA of the tiny base saved as a peft folder in ``dest``: its B
    matrices scaled by ``b_scale`` and every LoRA value rounded to f16 (like the tiny base, so an
    f16 GGUF LoRA holds the same values)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    config = LoraConfig(
        r=8,
        lora_alpha=16,
        target_modules=["q_proj", "v_proj", "o_proj", "down_proj"],
        init_lora_weights=False,
    )
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir), config)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.copy_((param * (b_scale if "lora_B" in name else 1.0)).half().float())
    peft_model.save_pretrained(dest)
    return Path(dest)
