"""The RAG half: loading a folder, splitting, embedding, FAISS + BM25 search, index persistence."""
