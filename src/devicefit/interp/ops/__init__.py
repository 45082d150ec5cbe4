"""Kernels, grouped by category. Importing this package registers every kernel.

Add a kernel: write a small pure function in the matching category file and decorate it with
``@register(op_type, since=..., attrs=...)`` (see ``devicefit.interp.registry``). A large op gets its own file.
"""

from __future__ import annotations

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")
