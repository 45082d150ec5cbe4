"""Measure a converted program: sizes, activation memory and device fit, Neural Engine lint, catalog.

Submodules are imported on use (``from devicefit.analyze import size``); nothing heavy loads here.
"""

from __future__ import annotations
