from compliance.lib.cli import ContractCommand
from compliance.lib.ids import parse_inference_id
from lineage.trace import trace


class Command(ContractCommand):
    help = "Trace a prediction to its engine, build, ONNX model, commit and submitter; exit 1 if a link fails."

    def add_command_arguments(self, parser):
        parser.add_argument("inference_id")

    def run(self, **o):
        result = trace(parse_inference_id(o["inference_id"]))
        lines = [f"trace {result.inference_id}: {'OK' if result.ok else 'FAILED'}"]
        for link in result.links:
            lines.append(f"  [{'ok' if link.ok else 'FAIL'}] {link.kind:<13} {link.label} — {link.verdict}: {link.detail}")
        data = result.to_dict()
        if not result.ok:
            data["_exit_code"] = 1
        return "\n".join(lines), data
