"""``python -m pipeline.dashboard [--port N] [--warehouse FILE]``: serve the dashboards on the bind host."""

import sys

from pipeline.dashboard.app import main

sys.exit(main())
