#!/usr/bin/env python
"""Same as `modelkit predict ...` (a script, so that `torchrun`/`accelerate launch` can run it)."""

import sys

from modelkit.cli import main

if __name__ == "__main__":
    sys.exit(main(["predict", *sys.argv[1:]]))
