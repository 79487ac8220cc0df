"""``python -m watchdog`` is ``polaris-watchdog``."""

import sys

from watchdog.cli import main

sys.exit(main())
