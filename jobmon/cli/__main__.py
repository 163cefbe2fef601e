"""
C{python -m jobmon.cli}: the same as C{jobmon-query}.
"""

import sys

from jobmon.cli import main

sys.exit(main())
