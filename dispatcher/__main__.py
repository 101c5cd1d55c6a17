import sys

from dispatcher.commands.cli import main

sys.exit(main())
