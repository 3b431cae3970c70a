#!/usr/bin/env python3
"""Validates SARIF files against the OASIS SARIF 2.1.0 schema (tests/data/sarif-schema-2.1.0.json).

    scripts/check-sarif.py FILE.sarif...      exit 0 when every file is valid

Needs Python's `jsonschema` package (the standard machine image has it).
"""
import json
import pathlib
import sys

import jsonschema

SCHEMA = pathlib.Path(__file__).resolve().parent.parent / "tests/data/sarif-schema-2.1.0.json"


def main(paths):
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    bad = 0
    for path in paths:
        doc = json.loads(pathlib.Path(path).read_text())
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
        for e in errors[:20]:
            print(f"{path}: {'/'.join(map(str, e.path))}: {e.message}", file=sys.stderr)
        bad += bool(errors)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
