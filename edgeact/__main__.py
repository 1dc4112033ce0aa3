import sys

from edgeact.cli import main

sys.exit(main())
