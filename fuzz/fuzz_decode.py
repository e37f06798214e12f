"""Coverage-guided fuzzing of a dialect's decoder with atheris (long runs; not part of CI).

    pip install atheris
    python fuzz/fuzz_decode.py --dialect genesys -atheris_runs=1000000 fuzz/corpus/genesys

Seeds the corpus from `tests/fixtures/<dialect>/` on first use. Any exception other than the
declared `GatewayError`s (MALFORMED_JSON, INVALID_FRAME, INVALID_REQUEST) is a finding: atheris
stops, prints it and writes the input as `crash-*` for `pytest` to replay.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from gateway.adapter import Registry
    from gateway.errors import GatewayError

DECLARED = {"MALFORMED_JSON", "INVALID_FRAME", "INVALID_REQUEST"}
ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dialect", required=True)
    args, rest = parser.parse_known_args()
    adapter = Registry.load([args.dialect]).get(args.dialect)
    corpus = next((Path(a) for a in rest if not a.startswith("-")), None)
    if corpus is not None and not corpus.exists():
        corpus.mkdir(parents=True)
        for sample in (ROOT / "tests" / "fixtures" / args.dialect).glob("*.json"):
            if not sample.name.endswith(".expected.json"):
                shutil.copy(sample, corpus / sample.name)

    def one_input(data: bytes) -> None:
        try:
            adapter.decode(data, conversation="fuzz")
        except GatewayError as exc:
            if exc.code not in DECLARED:
                raise

    atheris.Setup([sys.argv[0], *rest], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
