import sys

from forge_data_runtime.cli import main

sys.exit(main())
