"""``python -m benchmarks``: the repository workloads W1-W8 (see ``--help``)."""

from __future__ import annotations

from .workloads import main

raise SystemExit(main())
