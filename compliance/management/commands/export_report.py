from __future__ import annotations

import getpass
from contextlib import nullcontext
from pathlib import Path

from compliance.investigation.evidence import Scope, parse_time
from compliance.investigation.exports import do_export_report, load_npz, private_directory_problem, write_atomically
from compliance.lib.cli import ContractCommand
from compliance.lib.ids import parse_inference_id


class Command(ContractCommand):
    help = ("Write the regulator report (PDF) and/or the evidence bundle (JSON) for one prediction, "
            "a case, or a service over a time window; the export is recorded in the ledger.")

    def add_command_arguments(self, parser):
        parser.add_argument("inference_id", nargs="?", help="the prediction to report on")
        parser.add_argument("--case", type=int, help="report on a case instead")
        parser.add_argument("--service", help="report on a service over --since/--until instead")
        parser.add_argument("--since", help="window start, ISO 8601 with a time zone")
        parser.add_argument("--until", help="window end (exclusive), ISO 8601 with a time zone")
        parser.add_argument("--pdf", metavar="FILE", help="write the PDF report here")
        parser.add_argument("--bundle", metavar="FILE", help="write the evidence bundle here")
        parser.add_argument("--disclose-input", metavar="NPZ",
                            help="the data subject's input (.npz); put it and its salt in the bundle "
                                 "after checking it against the prediction's commitment")
        parser.add_argument("--user", metavar="USERNAME",
                            help="with --disclose-input: the user, holding the discloser role, who attempts the "
                                 "disclosure (recorded in the ledger, rate-limited)")
        parser.add_argument("--keys", metavar="DIR",
                            help="also write the public keys to pin (ledger.vkey, build.pub, witness.vkey) into DIR")
        parser.add_argument("--max-predictions", type=int, default=1000,
                            help="most predictions a service bundle carries (default 1000)")

    def run(self, **o):
        chosen = [name for name in ("inference_id", "case", "service") if o[name] is not None]
        if len(chosen) != 1:
            raise ValueError("give exactly one of INFERENCE_ID, --case ID or --service NAME")
        if not o["pdf"] and not o["bundle"]:
            raise ValueError("give --pdf FILE, --bundle FILE or both")
        for flag in ("pdf", "bundle"):
            if o[flag] and not Path(o[flag]).resolve().parent.is_dir():
                raise ValueError(f"--{flag}: directory of {o[flag]} does not exist")
        if o["keys"] and not Path(o["keys"]).is_dir():
            raise ValueError(f"--keys: {o['keys']} is not a directory")
        if o["service"] is not None:
            if not o["since"] or not o["until"]:
                raise ValueError("--service needs --since and --until")
            scope = Scope.for_service(o["service"], parse_time(o["since"], "--since"), parse_time(o["until"], "--until"))
        elif o["since"] or o["until"]:
            raise ValueError("--since and --until go with --service")
        elif o["case"] is not None:
            scope = Scope.for_case(o["case"])
        else:
            scope = Scope.for_prediction(parse_inference_id(o["inference_id"]))
        if o["max_predictions"] < 1:
            raise ValueError("--max-predictions must be at least 1")
        if o["disclose_input"] and not o["bundle"]:
            raise ValueError("--disclose-input goes into the bundle: give --bundle FILE")
        if o["disclose_input"] and private_directory_problem(o["bundle"]):
            raise ValueError(f"--bundle: {private_directory_problem(o['bundle'])}")
        disclose = load_npz(o["disclose_input"]) if o["disclose_input"] else None
        discloser = None
        if disclose is not None:
            from django.contrib.auth import get_user_model

            discloser = get_user_model().objects.filter(username=o["user"] or "").first()
            if discloser is None:
                raise ValueError("--disclose-input needs --user USERNAME, a user holding the discloser role")

        # a service window can hold many predictions, each read and proved: show how far
        shown = (self.progress(None, "proving predictions", unit="predictions") if scope.kind == "service"
                 else nullcontext())
        with shown as bar:
            export = do_export_report(scope, acting_user=getpass.getuser(), pdf=bool(o["pdf"]),
                                      bundle=bool(o["bundle"]), disclose=disclose, discloser=discloser,
                                      bundle_name=Path(o["bundle"]).name if o["bundle"] else "",
                                      max_predictions=o["max_predictions"],
                                      progress=bar.advance_to if bar is not None else None)
        written = {}
        for kind in ("pdf", "bundle"):
            if o[kind]:
                write_atomically(o[kind], export.files[kind])
                written[kind] = {"path": str(Path(o[kind]).resolve())} | export.digests()[kind]
        if o["keys"]:
            for name, text in export.evidence.key_files().items():
                write_atomically(Path(o["keys"]) / name, text.encode(), mode=0o644)  # public keys
                written[name] = {"path": str((Path(o["keys"]) / name).resolve())}
        lines = [f"Exported {scope.label} (ledger entry #{export.ledger_index}, "
                 f"checkpoint size {export.evidence.checkpoint.size})"]
        for kind, info in written.items():
            if "sha256" in info:
                lines.append(f"  {kind:<6} {info['path']}  {info['bytes']} bytes  sha256 {info['sha256']}")
            else:
                lines.append(f"  key    {info['path']}")
        if o["bundle"]:
            lines.append(f"Verify offline: python -m compliance.verify_bundle {o['bundle']} --key ledger.vkey --key build.pub"
                         + (" --key witness.vkey" if export.evidence.witness_vkeys else ""))
        data = {"scope": scope.to_dict(), "ledger_index": export.ledger_index,
                "checkpoint_size": export.evidence.checkpoint.size, "files": written,
                "predictions": len(export.evidence.predictions),
                "disclosed_input": export.evidence.disclosed is not None}
        return "\n".join(lines), data
