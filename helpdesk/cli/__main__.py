"""`python -m helpdesk.cli`: the `helpdesk` command."""

import sys

from helpdesk.cli import main

sys.exit(main())
