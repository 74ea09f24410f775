"""The composition root: the only place that builds real objects from settings.

Heavy libraries (torch, transformers, peft, faiss, sentence-transformers, llama_cpp) are imported
inside the builder functions, never at module level, so a page renders before any of them loads.
Each submodule wires one concern (``embedder``, ``models``, ``index``, ``answer``, ``training``,
``export``, ``datasets``, ``setup``…); ``jobs`` runs every long one as a background process.
"""
