"""One table of every benchmark's headline figures, so a reader sees where we stand.

    python bench/summary.py RESULTS

Each benchmark prints its own figures and also calls :func:`record` for its headline ones;
with ``$HYPER_BENCH_RESULTS`` naming a file (``make bench`` sets it), each call appends one
JSON object per line there. This script prints them as a table: figure, value, the baseline
measured in the same run, their ratio, the target and whether it is met. Targets are
"at most": a ratio to the baseline (``target_ratio``) or a value (``target_value``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ENV = "HYPER_BENCH_RESULTS"


def record(
    bench: str,
    figure: str,
    value: float,
    unit: str,
    baseline: float | None = None,
    baseline_name: str = "",
    target_ratio: float | None = None,
    target_value: float | None = None,
) -> None:
    """Append one headline figure to ``$HYPER_BENCH_RESULTS`` (nothing when it is unset)."""
    path = os.environ.get(ENV)
    if not path:
        return
    row = {
        "bench": bench,
        "figure": figure,
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "baseline_name": baseline_name,
        "target_ratio": target_ratio,
        "target_value": target_value,
    }
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def _num(x: float, unit: str) -> str:
    return f"{x:.0f} {unit}" if abs(x) >= 100 else f"{x:.3g} {unit}"


def row_cells(r: dict) -> list[str]:
    """The table cells of one recorded figure."""
    value, unit, base = r["value"], r["unit"], r.get("baseline")
    ratio = value / base if base else None
    target, met = "", ""
    if r.get("target_ratio") is not None and ratio is not None:
        target = f"<= {r['target_ratio']:g}x"
        met = "yes" if ratio <= r["target_ratio"] else "no"
    elif r.get("target_value") is not None:
        target = f"<= {_num(r['target_value'], unit)}"
        met = "yes" if value <= r["target_value"] else "no"
    return [
        r["bench"],
        r["figure"],
        _num(value, unit),
        f"{_num(base, unit)} {r.get('baseline_name', '')}".strip() if base else "",
        f"{ratio:.2f}x" if ratio is not None else "",
        target,
        met,
    ]


def _line(cells: list[str], widths: list[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()


def table(rows: list[dict]) -> str:
    """The figures as an aligned text table."""
    head = ["bench", "figure", "value", "baseline (same run)", "ratio", "target", "met"]
    cells = [head] + [row_cells(r) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    lines = [_line(row, widths) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: bench/summary.py RESULTS")
    path = Path(sys.argv[1])
    if not path.exists():
        sys.exit(f"{path}: no figures recorded (did any benchmark run?)")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    print(table(rows))


if __name__ == "__main__":
    main()
