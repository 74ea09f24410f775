"""The Streamlit pages and what only they use. Pages (run by ``app/streamlit_app.py``'s navigation):
``ask``, ``compare``, ``index_page``, ``style``, ``datasets``, ``train``, ``deploy``, ``strategy``.
Their helpers: ``common`` (settings, errors, reports), ``text`` (showing untrusted text),
``answer_parts`` (what Ask and Compare share), ``services`` (the backends' Protocols and providers)
and ``backends`` (the real backends, over ``app.wiring``).
"""
