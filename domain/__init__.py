"""The hybrid core: types, ports, modes, router, prompts, answers, corrections and metrics.

Only the standard library, numpy and sqlite3 are imported here; heavy libraries live in
``index/`` and ``adapters/`` and meet this package through the Protocols in ``domain.ports``.
"""
