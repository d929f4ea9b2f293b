"""``python -m tools.bench``: see tools/bench/README.md."""

from tools.bench.runner import main

raise SystemExit(main())
