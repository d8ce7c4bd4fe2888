"""`microlearn up` start time until `ready`: cold (fresh data dir: initdb, migrations) and warm.

    python bench/up_startup.py [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _platform import Platform  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    cold, warm = [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="ml-up-") as tmp:
            for bucket in (cold, warm):
                platform = Platform(Path(tmp))
                bucket.append(platform.ready_seconds)
                platform.stop()
    print(f"| `microlearn up` to `ready` ({args.runs} runs) | median s | min s | max s |")
    print("|---|---|---|---|")
    for name, values in (("cold (new data dir: initdb + migrations)", cold), ("warm restart (same data dir)", warm)):
        print(f"| {name} | {statistics.median(values):.2f} | {min(values):.2f} | {max(values):.2f} |")


if __name__ == "__main__":
    main()
