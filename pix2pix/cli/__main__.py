"""`python -m pix2pix.cli ...` (what dvc.yaml runs)."""

import sys

from pix2pix.cli import main

sys.exit(main())
