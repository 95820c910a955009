"""A recording process for the outage and crash tests: real audited inference on a
deployed engine with a BufferedRecorder; after each spool fsync it appends the
acknowledged inference ids to --acks (one per line). --replay-only starts the
recorder on the spool and only drains it. Prints the recorder's metrics as JSON."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "compliance.project.settings")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--service", default="credit")
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--rate", type=float, default=0, help="predictions per second (0: as fast as possible)")
    parser.add_argument("--spool", required=True)
    parser.add_argument("--acks", required=True)
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()

    import django

    django.setup()
    import numpy as np
    from django.db import connections

    from inference.provenance.recorder import BufferedRecorder
    from inference.runtime import AuditedService

    acks = open(args.acks, "a", buffering=1)

    def acknowledged(records):
        acks.write("".join(f"{r.id}\n" for r in records))
        acks.flush()

    recorder = BufferedRecorder(args.spool, batch=500, interval_ms=20, backoff_max_s=0.3, on_durable=acknowledged,
                                name="stream")
    if args.count:
        service = AuditedService.open(args.service, recorder=recorder)
        connections.close_all()  # the main thread needs the database no more
        rng = np.random.default_rng(os.getpid())
        x = rng.normal(size=(args.count, 6)).astype(np.float32)
        started = time.monotonic()
        for i in range(args.count):
            service.predict({"X": x[i:i + 1]})
            if args.rate:
                ahead = started + (i + 1) / args.rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
    complete = recorder.close(timeout=args.timeout)
    print(json.dumps(recorder.metrics()))
    return 0 if complete else 3


if __name__ == "__main__":
    sys.exit(main())
