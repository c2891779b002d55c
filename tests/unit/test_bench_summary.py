"""bench/summary.py: figures recorded by the benchmarks become one table with ratios and
whether each target is met."""

from bench.summary import ENV, record, row_cells, table


def test_record_appends_only_when_asked(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    record("run", "cold", 1.0, "s")  # no file named: nothing written anywhere
    out = tmp_path / "r.jsonl"
    monkeypatch.setenv(ENV, str(out))
    record("run", "cold", 3.0, "s", 2.0, "QEMU floor", target_ratio=1.5)
    record("run", "exec", 94.0, "ms", target_value=60)
    assert len(out.read_text().splitlines()) == 2


def test_ratio_and_target_met_or_not():
    over = {"bench": "run", "figure": "cold", "value": 3.0, "unit": "s", "baseline": 2.0,
            "baseline_name": "floor", "target_ratio": 1.5, "target_value": None}  # fmt: skip
    assert row_cells(over)[4:] == ["1.50x", "<= 1.5x", "yes"]
    assert row_cells({**over, "value": 3.2})[4:] == ["1.60x", "<= 1.5x", "no"]
    absolute = {**over, "baseline": None, "target_ratio": None, "target_value": 60.0,
                "value": 94.0, "unit": "ms"}  # fmt: skip
    assert row_cells(absolute)[2:] == ["94 ms", "", "", "<= 60 ms", "no"]


def test_table_aligns_every_row_under_its_header():
    rows = [
        {"bench": "pull", "figure": "pull + root disk", "value": 1.2, "unit": "s",
         "baseline": 1.0, "baseline_name": "skopeo copy", "target_ratio": 1.5},
        {"bench": "net", "figure": "requests/s", "value": 900.0, "unit": "req/s",
         "baseline": 3000.0, "baseline_name": "host"},
    ]  # fmt: skip
    lines = table(rows).splitlines()
    assert lines[0].startswith("bench") and set(lines[1]) <= {"-", " "}
    assert lines[2].index("1.2 s") == lines[0].index("value")
    assert "0.30x" in lines[3] and lines[3].rstrip().endswith("0.30x")
