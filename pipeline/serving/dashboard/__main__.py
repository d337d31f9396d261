"""``python -m pipeline.serving.dashboard [--port N] [--warehouse FILE]``: serve the dashboards on the bind host."""

import sys

from pipeline.serving.dashboard.app import main

sys.exit(main())
