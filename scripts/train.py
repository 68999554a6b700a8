#!/usr/bin/env python
"""Same as `modelkit train ...` (a script, so that `torchrun`/`accelerate launch` can run it)."""

import sys

from modelkit.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
