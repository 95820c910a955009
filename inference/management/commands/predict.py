import os

import numpy as np

from compliance.lib.cli import ContractCommand
from inference.runtime import AuditedService


def load_npz(path: str) -> dict[str, np.ndarray]:
    if not os.path.isfile(path):
        raise ValueError(f"no such file: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (ValueError, OSError) as exc:
        raise ValueError(f"{path} is not a readable .npz of named arrays: {exc}") from None


class Command(ContractCommand):
    help = "Run audited inference through the verified loader; print outputs and provenance."

    def add_command_arguments(self, parser):
        parser.add_argument("--service", required=True)
        parser.add_argument("--environment", default=None)
        parser.add_argument("--input", required=True, help=".npz with one array per named input")

    def run(self, **o):
        feeds = load_npz(o["input"])
        service = AuditedService.open(o["service"], o["environment"])
        outputs, meta = service.predict(feeds)
        lines = [f"inference {meta['inference_id']} on {o['service']} (engine {meta['engine_sha256'][:16]})"]
        for name, value in outputs.items():
            lines.append(f"  {name}: {np.array2string(np.asarray(value), threshold=20)}")
        lines.append(f"  input_digest {meta['input_digest']}")
        return "\n".join(lines), {"outputs": {k: np.asarray(v).tolist() for k, v in outputs.items()}, "metadata": meta}
