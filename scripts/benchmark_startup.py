"""How long modelkit takes to start, beside ``import torch`` measured in the same run.

Each command runs in a fresh interpreter ``--repeats`` times (the median is printed); ``-X
importtime`` then says which heavy packages each one loads. Targets (issue 26): ``import
modelkit`` at most 0.4 s more than ``import torch``, ``modelkit --help`` and any command's
``--help`` in under half of ``import torch``.

    python scripts/benchmark_startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

HEAVY = ("torch", "sklearn", "matplotlib", "transformers", "datasets", "pyarrow", "pandas", "scipy", "cv2",
         "modelkit.text", "modelkit.image", "modelkit.video")
CLI = [sys.executable, "-m", "modelkit.cli"]
COMMANDS = {
    "import torch": [sys.executable, "-c", "import torch"],
    "import modelkit": [sys.executable, "-c", "import modelkit"],
    "from modelkit import load, Prediction": [sys.executable, "-c", "from modelkit import load, Prediction"],
    "modelkit --help": [*CLI, "--help"],
    "modelkit predict --help": [*CLI, "predict", "--help"],
    "modelkit train --help": [*CLI, "train", "--help"],
    "modelkit bootstrap --help": [*CLI, "bootstrap", "--help"],
}


def seconds(command: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def heavy_imports(command: list[str]) -> list[str]:
    result = subprocess.run([command[0], "-X", "importtime", *command[1:]], check=True, capture_output=True,
                            text=True)
    loaded = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    return [name for name in HEAVY if name in loaded]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch_s = seconds(COMMANDS["import torch"], args.repeats)
    print(f"{'command':<40} {'median s':>9} {'x torch':>8}  heavy packages loaded")
    for name, command in COMMANDS.items():
        took = torch_s if name == "import torch" else seconds(command, args.repeats)
        print(f"{name:<40} {took:>9.3f} {took / torch_s:>8.2f}  {', '.join(heavy_imports(command)) or '-'}")


if __name__ == "__main__":
    main()
