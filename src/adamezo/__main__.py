import sys

from adamezo.cli import main

sys.exit(main())
