"""`python -m study <command>`."""

from study.cli import main

raise SystemExit(main())
