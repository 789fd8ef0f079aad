"""``python -m rocm_sdk`` is the ``rocm-sdk`` command."""

import sys

from rocm_sdk.cli import main

sys.exit(main())
