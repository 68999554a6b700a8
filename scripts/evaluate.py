#!/usr/bin/env python
"""Same as `modelkit evaluate ...` (a script, so that `torchrun`/`accelerate launch` can run it)."""

import sys

from modelkit.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
