"""The real backends behind the pages' Protocols (``app.views.services``): thin adapters over the
same wiring and domain calls the CLI makes. Each is cheap to build; models load on first use.
"""
