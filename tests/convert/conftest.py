"""The fast suite runs each rescue translation's tests through TorchScript (the frontend check tries first) and
the first torch.export-parametrized test case of each file; the file's other torch.export cases are slow.

Why: the torch.export variants of tests/convert/test_rescue_*.py were 468 tests and 404 s of the fast suite's
1,723 s (2026-12-02), which took `make test` past its 15-minute budget on 2 cores; each pays torch.export's own
tracing (~0.5 s) before the translation under test runs. One variant per file keeps every translation file's
torch.export wiring in the fast suite; `make test-slow` runs them all.
"""

from __future__ import annotations

import pytest

EXPORT = "torch.export"


def _export_variant(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    return callspec is not None and any(v == EXPORT for v in callspec.params.values())


@pytest.hookimpl(tryfirst=True)  # before the -m selection deselects what is marked slow
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept: set[str] = set()  # files whose first torch.export test case stays fast
    for item in items:
        path = item.path
        if not (path.parent.name == "convert" and path.name.startswith("test_rescue_")):
            continue
        if not _export_variant(item) or item.get_closest_marker("slow") is not None:
            continue
        if path.name not in kept:
            kept.add(path.name)
            continue
        item.add_marker(pytest.mark.slow)
