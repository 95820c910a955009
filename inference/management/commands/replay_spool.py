from pathlib import Path

from django.conf import settings
from django.db import DatabaseError

from compliance.lib.cli import ContractCommand
from inference.provenance.recorder import BufferedRecorder
from inference.provenance.spool import RejectedFile, SpoolBusy
from inference.provenance.stamp import ProvenanceRecord
from inference.provenance.writer import write_records


class Command(ContractCommand):
    help = ("Write the provenance records left in a spool directory (by a server process that is gone) to the "
            "database, then exit; idempotent. A restarted server replays its own spool by itself.")

    def add_command_arguments(self, parser):
        parser.add_argument("--dir", default="", help="spool directory (default TRACELEDGER_SPOOL_DIR/recorder)")
        parser.add_argument("--timeout", type=float, default=300.0, help="seconds to keep retrying the database")
        parser.add_argument("--rejected", action="store_true",
                            help="instead, offer the records the database refused for good (rejected/ in each slot "
                                 "not in use) again, e.g. once a missing deployment is restored; those still refused "
                                 "stay, with the new reason")

    def run(self, **o):
        base = Path(o["dir"]) if o["dir"] else Path(settings.TRACELEDGER_SPOOL_DIR) / "recorder"
        if not base.is_dir():
            raise ValueError(f"no spool directory at {base}")
        if o["rejected"]:
            return self.resubmit(base)
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

    def resubmit(self, base: Path) -> tuple[str, dict]:
        stored = duplicates = kept = 0
        busy = []
        for slot in sorted(p for p in base.glob("slot-*") if p.is_dir()):
            try:
                with RejectedFile(slot) as rejected:
                    still = []
                    for entry in rejected.entries():
                        try:
                            record = ProvenanceRecord.decode(entry["payload"].encode("latin-1"))
                            result = write_records([record], actor="replay")
                        except (ValueError, DatabaseError) as exc:
                            text = str(exc).strip()
                            still.append(entry | {"reason": text.splitlines()[0] if text else type(exc).__name__})
                            continue
                        stored += result.stored
                        duplicates += len(result.duplicates)
                    rejected.keep(still)
                    kept += len(still)
            except SpoolBusy:
                busy.append(str(slot))
        summary = (f"stored {stored} rejected record(s), {duplicates} already stored, {kept} still refused"
                   + (f"; skipped {len(busy)} slot(s) in use" if busy else ""))
        return summary, {"stored": stored, "duplicates": duplicates, "still_rejected": kept, "busy_slots": busy,
                         "dir": str(base)}
