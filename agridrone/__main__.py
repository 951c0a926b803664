import sys

from agridrone.cli import main

sys.exit(main())
