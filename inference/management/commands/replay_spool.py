from pathlib import Path

from django.conf import settings

from compliance.cli import ContractCommand
from inference.recorder import BufferedRecorder


class Command(ContractCommand):
    help = ("Write the provenance records left in a spool directory (by a server process that is gone) to the "
            "database, then exit; idempotent. A restarted server replays its own spool by itself.")

    def add_command_arguments(self, parser):
        parser.add_argument("--dir", default="", help="spool directory (default TRACELEDGER_SPOOL_DIR/recorder)")
        parser.add_argument("--timeout", type=float, default=300.0, help="seconds to keep retrying the database")

    def run(self, **o):
        base = Path(o["dir"]) if o["dir"] else Path(settings.TRACELEDGER_SPOOL_DIR) / "recorder"
        if not base.is_dir():
            raise ValueError(f"no spool directory at {base}")
        delivered = 0
        slots = 0
        while True:
            pending = {p.parent for p in base.glob("slot-*/*.seg")}
            if not pending:
                break
            recorder = BufferedRecorder(base, name="replay")  # takes a free slot with records first
            complete = recorder.close(timeout=o["timeout"])
            if recorder.spool.dir not in pending:
                raise ValueError(f"the remaining spool slots under {base} are held by running processes")
            slots += 1
            delivered += recorder.delivered
            if not complete:
                raise RuntimeError(f"the database did not take every record within {o['timeout']:.0f}s: "
                                   f"{recorder.metrics()['last_error']}; the rest stays in {recorder.spool.dir}")
        return (f"replayed {delivered} record(s) from {slots} spool slot(s) under {base}",
                {"delivered": delivered, "slots": slots, "dir": str(base)})
