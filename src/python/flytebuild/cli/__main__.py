import sys

from flytebuild.cli.main import main

sys.exit(main())
