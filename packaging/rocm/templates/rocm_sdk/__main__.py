"""``python -m rocm_sdk`` and the ``rocm-sdk`` console script (``rocm_sdk.__main__:main``).

Importing this module only defines ``main``; the command runs when executed as a script.
"""

import sys

from rocm_sdk.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
