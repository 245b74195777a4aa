import sys

from sovterm.cli import main

sys.exit(main())
