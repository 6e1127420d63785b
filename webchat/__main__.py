"""`python -m webchat` runs the server, like the `webchat` command."""

import sys

from webchat.cli import main

sys.exit(main())
