"""A training worker in its own process, as it would run on a rented GPU box.

It trains a small network on scikit-learn's bundled digits and reports to a
jobwatch server with a Reporter (progress, log lines, GPU metrics when there
is a GPU), then completes the job with its test accuracy.

    python examples/train_digits.py --url http://127.0.0.1:8765 --job digits-1
"""

from __future__ import annotations

import argparse

from jobwatch import Reporter
from jobwatch.cli.demo import train_digits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url", required=True, help="the jobwatch server, e.g. http://127.0.0.1:8765"
    )
    parser.add_argument("--job", required=True, help="the job id (created if it does not exist)")
    parser.add_argument("--epochs", type=int, default=30, help="passes over the data (default 30)")
    parser.add_argument(
        "--pace", type=float, default=0.1, help="seconds to wait per epoch (default 0.1)"
    )
    parser.add_argument(
        "--price-per-hour", type=float, default=None, help="what the GPU costs an hour"
    )
    args = parser.parse_args()
    with Reporter(
        args.job, url=args.url, price_per_hour=args.price_per_hour, interval=0.2
    ) as reporter:
        result = train_digits(reporter, epochs=args.epochs, pace=args.pace)
        reporter.complete(result)
    print(f"done: test accuracy {result['testAccuracy']:.2%}")


if __name__ == "__main__":
    main()
