"""Entry points only: the Streamlit pages, the `hybrid` CLI, settings and the wiring."""
