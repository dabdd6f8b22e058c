"""Entry point for ``python -m metarec_core``."""

from metarec_core.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
