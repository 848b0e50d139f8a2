"""``python -m polyfleet.cli``: the same as the ``polyfleet`` console script."""

from __future__ import annotations

import sys

from polyfleet.cli import main

if __name__ == "__main__":
    sys.exit(main())
