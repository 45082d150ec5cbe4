"""``python -m devicefit``: the same CLI as the ``devicefit`` command."""

from __future__ import annotations

import sys

from devicefit.cli import main

if __name__ == "__main__":
    sys.exit(main())
