"""Evaluates devmig's DRA selectors with Google's CEL (cel-expr-python) against DRA devices.

Input (stdin, JSON): {"devices": [{"attributes": {name: {"string"|"int"|"bool"|"version": v}}}],
"selectors": [expr], "expected": [[bool per device] per selector]}. Each selector runs on each
device as Kubernetes runs it (`device.driver`, `device.attributes["devmig.io"]`); Kubernetes'
semver functions `major()`, `minor()`, `patch()` on a version value are shimmed as member
functions of its string. Prints every pair where CEL and devmig's step a disagree, or where
CEL raised an error (an allocation would abort), and exits 1 if there is one.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from cel_expr_python import cel


def _part(i: int) -> Any:
    return lambda v: int(str(v).split(".")[i])


FUNCTIONS = [
    cel.FunctionDecl(name, [cel.Overload(f"string_{name}", cel.Type.INT, [cel.Type.STRING], True, _part(i))])
    for i, name in enumerate(["major", "minor", "patch"])
]


def plain(value: dict[str, Any]) -> Any:
    """A DRA attribute value as CEL sees it."""
    ((_, v),) = value.items()
    return v


def main() -> int:
    data = json.load(sys.stdin)
    env = cel.NewEnv(variables={"device": cel.Type.DYN}, functions=FUNCTIONS)
    devices = [
        {"driver": "devmig.io", "attributes": {"devmig.io": {k: plain(v) for k, v in d["attributes"].items()}}}
        for d in data["devices"]
    ]
    # A device of another driver: every selector must be false on it, never an error.
    other = {"driver": "gpu.example.com", "attributes": {"gpu.example.com": {"model": "x"}}}
    bad = 0
    for s, (expr, expected) in enumerate(zip(data["selectors"], data["expected"], strict=True)):
        compiled = env.compile(expr)
        for d, (device, want) in enumerate(zip(devices + [other], expected + [False], strict=True)):
            try:
                got = compiled.eval(data={"device": device}).value()
            except Exception as e:  # noqa: BLE001 - any CEL failure is a finding
                got = f"error: {e}"
            if got is not want:
                bad += 1
                if bad <= 20:
                    print(f"selector {s} on device {d}: CEL says {got!r}, step a says {want}\n  {expr}\n  {device}")
    print(f"{len(data['selectors'])} selectors x {len(devices) + 1} devices, {bad} disagreements")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
