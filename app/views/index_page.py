"""Index page: make a collection from a folder or uploaded files in one step; build or re-sync the
selected collection's index with a progress bar; the documents table (chunks, language, status,
skip reason), a chunk preview, a trial search, and deleting the index. Works through
``get_indexer()`` (the same calls as ``hybrid index``)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app.views.answer_parts import show_passages
from app.views.common import (
    collection_caption,
    select_collection_next_run,
    selected_collection,
    settings,
    shown_errors,
)
from app.views.services import get_indexer
from app.views.text import md_escape, where
from domain.atomic import write_bytes_atomic
from domain.errors import ConfigError
from domain.workspace import NAME_RULE, check_name

UPLOAD_TYPES = ["md", "markdown", "txt", "rst", "html", "htm", "pdf", "docx"]
SAMPLE_FOLDER = Path(__file__).resolve().parents[2] / "corpus" / "docs"

st.title("Index")
collection_caption()
st.caption(
    "Documents are split into chunks, embedded and stored with a keyword index. "
    "Only new and changed files are embedded again."
)

indexer = get_indexer()
name = selected_collection()


def _save_uploads(files: list, target: Path) -> list[str]:
    """Write uploaded files into ``target`` (odd names skipped with a warning); their names."""
    saved = []
    for f in files or []:
        safe = Path(f.name).name.strip()
        if not safe or safe.startswith("."):
            st.warning(md_escape(f"Skipped a file with an unusable name: {f.name!r}"))
            continue
        write_bytes_atomic(target / safe, f.getvalue())
        saved.append(safe)
    return saved


with st.expander("New collection from a folder or uploaded files", expanded=False):
    st.caption(
        "A collection is one document folder with its own index, answer style, datasets, adapters "
        "and scoreboard. It starts with a neutral answer style (a direct answer and its source)."
    )
    with st.form("new_collection_form", border=False):
        new_name = st.text_input("Name", key="new_collection_name", help=NAME_RULE).strip()
        new_folder = st.text_input(
            "Folder with documents (or leave empty and upload)", key="new_collection_folder"
        )
        new_files = st.file_uploader(
            "…or upload documents", type=UPLOAD_TYPES, accept_multiple_files=True, key="new_collection_upload"
        )
        make = st.form_submit_button("Create and index", type="primary")
    if make:
        with shown_errors():
            check_name(new_name, "collection name")
            if new_name in indexer.index_names():
                raise ConfigError(
                    f"collection {new_name!r} exists already — pick it in the sidebar or use another name"
                )
            new_indexer = get_indexer(new_name)
            if new_files:
                source: str | Path = new_indexer.upload_dir(new_name)
                st.caption(md_escape(f"Saved {len(_save_uploads(new_files, Path(source)))} file(s)."))
            elif new_folder.strip():
                source = new_folder.strip()
            else:
                raise ConfigError("name a folder or upload some documents first")
            bar = st.progress(0.0, text="starting…")

            def on_new_progress(done: int, total: int, message: str = "") -> None:
                bar.progress(
                    min(1.0, done / total) if total else 0.0, text=md_escape(f"{message} ({done}/{total})")
                )

            with st.spinner("Indexing…"):
                report = new_indexer.sync(source, name=new_name, rebuild=False, on_progress=on_new_progress)
            st.session_state["index_last_report"] = report
            select_collection_next_run(new_name)
            st.rerun()

summary = None
with shown_errors():
    summary = indexer.summary(name)

if summary:
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Documents", summary.get("n_files", 0))
    c2.metric("Chunks", summary.get("n_chunks", 0))
    c3.metric("Skipped files", summary.get("n_skipped", 0))
    ann = summary.get("ann") or {}
    c4.metric(
        "Vector search",
        {"hnsw": "HNSW", "qdrant": "Qdrant"}.get(str(ann.get("kind")), "exact"),
        help="exact inner product below the ANN threshold, HNSW above it; Qdrant after "
        "`hybrid index --to-qdrant`",
    )
    emb = summary.get("embedder") or {}
    st.caption(
        md_escape(
            f"Built from {summary.get('root', '?')} with {emb.get('name', '?')} "
            f"({emb.get('dim', '?')} dims, {emb.get('precision', 'fp32')} vectors) · updated "
            f"{summary.get('updated_at', '?')} "
            f"· {summary.get('generation', '')}"
        )
    )
else:
    st.info(
        md_escape(f"Collection '{name}' has no index yet.")
        + " Pick a folder or upload files below to build it."
    )


def _run_sync(folder: str | Path, *, rebuild: bool, vectors: str | None = None) -> None:
    bar = st.progress(0.0, text="starting…")

    def on_progress(done: int, total: int, message: str = "") -> None:
        share = min(1.0, done / total) if total else 0.0
        bar.progress(share, text=md_escape(f"{message} ({done}/{total})" if total else message))

    with shown_errors(), st.spinner("Indexing…"):
        report = indexer.sync(folder, name=name, rebuild=rebuild, vectors=vectors, on_progress=on_progress)
        bar.progress(1.0, text="done")
        st.session_state["index_last_report"] = report
        st.rerun()  # redraw the summary and the documents table from the new index


tab_folder, tab_upload = st.tabs(["From a folder", "Upload files"])
with tab_folder:
    root_default = str(summary.get("root")) if summary and summary.get("root") else str(SAMPLE_FOLDER)
    folder = st.text_input(
        "Folder with .md .txt .rst .html .pdf .docx files", value=root_default, key=f"index_folder_{name}"
    )  # per collection: switching the collection shows its own folder
    if summary and summary.get("root") and Path(folder).expanduser().resolve() != Path(summary["root"]):
        st.warning(
            "This collection was built from another folder; indexing this one replaces its documents. "
            "Make a new collection above to keep both."
        )
    current = indexer.vectors(name)
    kinds = {"float": "float (fp32)", "int8": "int8 (faster on the CPU, checked against fp32 at setup)"}
    kind = st.radio(
        "Vectors",
        list(kinds),
        index=list(kinds).index(current),
        format_func=kinds.get,
        horizontal=True,
        key=f"index_precision_{name}",
        help="The embedder's arithmetic for this collection's vectors. Questions are embedded at the "
        "index's own precision; int8 and float vectors are never mixed in one index.",
    )
    switching = bool(summary) and kind != current
    if switching:
        st.info("Changing the vectors' precision embeds every document again.")
    rebuild = st.checkbox(
        "Rebuild from scratch (after changing the embedder or chunk size)", key="index_rebuild"
    )
    if st.button("Index this folder", type="primary", key="index_go"):
        _run_sync(folder, rebuild=rebuild or switching, vectors=kind)

with tab_upload:
    target = indexer.upload_dir(name)
    st.caption(
        md_escape(f"Uploaded files are kept in {target} and collection '{name}' is indexed from that folder.")
    )
    files = st.file_uploader("Documents", type=UPLOAD_TYPES, accept_multiple_files=True, key="index_upload")
    if st.button("Save and index uploads", disabled=not files, key="index_upload_go"):
        saved = _save_uploads(files or [], target)
        st.caption(md_escape(f"Saved {len(saved)} file(s)."))
        _run_sync(target, rebuild=False)

report = st.session_state.get("index_last_report")
if report:
    verb = "updated" if report.get("changed") else "already up to date"
    st.success(
        f"Collection '{md_escape(str(report.get('name')))}' {verb}: {report.get('files_indexed')} files, "
        f"{report.get('chunks_total')} chunks ({report.get('files_new')} new, {report.get('files_changed')} "
        f"changed, {report.get('files_deleted')} removed, {report.get('chunks_embedded')} chunks embedded) "
        f"in {report.get('seconds', 0):.1f} s."
    )
    if report.get("skipped"):
        st.warning(f"{len(report['skipped'])} file(s) skipped — see the table below for the reasons.")

docs: list[dict] = []
with shown_errors():
    docs = indexer.documents(name)

if docs:
    st.subheader("Documents")
    st.dataframe(
        [
            {
                "file": d["path"],
                "title": d["title"],
                "type": d["kind"],
                "chunks": d["chunks"],
                "language": d["lang"],
                "status": d["status"],
                "skip reason": d["reason"],
            }
            for d in docs
        ],
        hide_index=True,
        width="stretch",
    )
    indexed = [d["path"] for d in docs if d["status"] == "indexed"]
    if indexed:
        st.subheader("Chunk preview")
        path = st.selectbox("Document", indexed, key="index_preview_doc")
        with shown_errors():
            chunks = indexer.chunks(name, path)
            st.caption(f"{len(chunks)} chunk(s)")
            for c in chunks[:50]:
                with st.expander(where(c.path, c.heading, c.page) + f" · chars {c.start}–{c.end}"):
                    st.text(c.text)

    st.subheader("Try a search")
    with st.form("index_search_form", border=False):
        query = st.text_input("Keywords or a question", key="index_query")
        searched = st.form_submit_button("Search")
    if searched and query.strip():
        with shown_errors(), st.spinner("Searching (the first search loads the embedder)…"):
            hits = indexer.search(name, query, settings().index.top_k)
            if not hits:
                st.info("No passages matched.")
            else:
                show_passages(hits, answer=None, question=query)

if summary:
    st.subheader("Maintenance")
    m1, m2 = st.columns(2)
    with m1:
        st.caption(md_escape(f"Re-sync reads {summary.get('root')} again and embeds only what changed."))
        if st.button("Re-sync", key="index_resync"):
            _run_sync(summary["root"], rebuild=False, vectors=indexer.vectors(name))
    with m2:
        sure = st.checkbox(f"Yes, delete the index of '{name}'", key="index_delete_sure")
        if st.button("Delete index", disabled=not sure, key="index_delete"):
            with shown_errors():
                indexer.delete(name)
                st.session_state.pop("index_last_report", None)
                st.toast(md_escape(f"Deleted index '{name}'."))
                st.rerun()
