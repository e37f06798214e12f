"""`python -m gateway`: the `gateway` command (gateway.cli)."""

import sys

from gateway.cli import main

sys.exit(main())
