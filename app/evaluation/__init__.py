"""Evaluation on the real pipeline: the answer modes and the router fit (``modes``), retrieval
recall and MRR (``retrieval``), and the evaluator of the training gate (``gate``). The arithmetic
lives in ``domain.evaluation`` and ``domain.retrieval_metrics``; the assistant and the retriever come
from ``app.wiring``; the gate's decision is ``adapters.gate``'s.
"""
