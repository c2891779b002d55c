"""Container logs: rotation at max-size, reading across rotated files, follow across a
rotation with no line lost or repeated, tail/since/until exact at file boundaries."""

from __future__ import annotations

import asyncio
import time

import pytest

from hyperd.containers.logs import LogLimits, LogWriter, log_files, log_limits, read_logs
from hyperd.containers.state import parse_rfc3339
from hyperd.errors import InvalidArgument


def _collect(path, **kw) -> list[tuple[str, str, bytes]]:
    async def go():
        return [r async for r in read_logs(path, **kw)]

    return asyncio.run(go())


def _write(writer: LogWriter, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        writer.write("stdout" if i % 2 else "stderr", f"line {i}\n".encode())


def test_rotation_keeps_max_file_files_each_under_max_size(tmp_path):
    path = tmp_path / "container.log"
    w = LogWriter(path, LogLimits(max_size=2000, max_file=3))
    _write(w, 200)
    w.close()
    files = log_files(path)
    assert [p.name for p in files] == ["container.log.2", "container.log.1", "container.log"]
    assert all(p.stat().st_size <= 2000 for p in files)
    data = [r[2] for r in _collect(path)]
    # the oldest lines went with the rotated-away file; the rest is whole and in order
    numbers = [int(d.split()[1]) for d in data]
    assert numbers == list(range(numbers[0], 200)) and numbers[0] > 0


def test_a_chunk_of_many_lines_is_split_across_files_at_max_size(tmp_path):
    """One chunk of output larger than max-size (a fast writer, read in one go) still
    leaves no file past max-size: rotation goes record by record, as Docker's does."""
    path = tmp_path / "container.log"
    w = LogWriter(path, LogLimits(max_size=2000, max_file=20))
    w.write("stdout", b"".join(f"line {i}\n".encode() for i in range(150)))
    w.close()
    files = log_files(path)
    assert len(files) > 3 and all(p.stat().st_size <= 2000 for p in files)
    assert [int(r[2].split()[1]) for r in _collect(path)] == list(range(150))


def test_max_file_one_truncates_in_place(tmp_path):
    path = tmp_path / "container.log"
    w = LogWriter(path, LogLimits(max_size=500, max_file=1))
    _write(w, 100)
    w.close()
    assert log_files(path) == [path] and path.stat().st_size <= 500


def test_unlimited_never_rotates(tmp_path):
    path = tmp_path / "container.log"
    w = LogWriter(path)
    _write(w, 1000)
    w.close()
    assert log_files(path) == [path] and len(_collect(path)) == 1000


def test_tail_since_and_until_are_exact_across_rotated_files(tmp_path):
    path = tmp_path / "container.log"
    w = LogWriter(path, LogLimits(max_size=1500, max_file=10))
    _write(w, 40)
    time.sleep(0.05)
    mid = time.time()
    time.sleep(0.05)
    _write(w, 40, start=40)
    w.close()
    assert len(log_files(path)) > 3
    tail = _collect(path, tail=45)
    assert [int(r[2].split()[1]) for r in tail] == list(range(35, 80))
    since = _collect(path, since=mid)
    assert [int(r[2].split()[1]) for r in since] == list(range(40, 80))
    until = _collect(path, until=mid)
    assert [int(r[2].split()[1]) for r in until] == list(range(40))
    assert all(parse_rfc3339(r[0]) <= mid for r in until)
    # as Docker: tail picks the last lines first, since filters those
    assert [int(r[2].split()[1]) for r in _collect(path, tail=5, since=mid)] == list(range(75, 80))


def test_follow_across_rotations_loses_and_repeats_nothing(tmp_path):
    path = tmp_path / "container.log"
    w = LogWriter(path, LogLimits(max_size=3000, max_file=50))
    running = True

    async def produce():
        nonlocal running
        for i in range(0, 600, 20):
            _write(w, 20, start=i)
            await asyncio.sleep(0.01)
        running = False

    async def go():
        _write(w, 1)  # the file exists when the reader starts
        producer = asyncio.create_task(produce())
        got = [r async for r in read_logs(path, follow=True, still_running=lambda: running)]
        await producer
        return got

    got = asyncio.run(go())
    w.close()
    assert len(log_files(path)) > 10
    numbers = [int(r[2].split()[1]) for r in got]
    assert numbers == [0, *range(0, 600)]


def test_log_opts_are_validated():
    assert log_limits({"max-size": "1m", "max-file": "3"}) == LogLimits(1 << 20, 3)
    assert log_limits({}) == LogLimits(0, 1)
    for bad, needle in (
        ({"max-size": "lots"}, "lots"),
        ({"max-file": "0"}, "max-file"),
        ({"colour": "red"}, "colour"),
        ({"compress": "true"}, "compress"),
    ):
        with pytest.raises(InvalidArgument, match=needle):
            log_limits(bad)


def test_one_record_per_line_so_tail_counts_lines(tmp_path):
    path = tmp_path / "container.log"
    w = LogWriter(path)
    w.write("stdout", b"a\nb\nc")  # a chunk of output: two lines and an unfinished one
    w.write("stdout", b"d\n")
    w.close()
    assert [r[2] for r in _collect(path)] == [b"a\n", b"b\n", b"c", b"d\n"]
    assert [r[2] for r in _collect(path, tail=2)] == [b"c", b"d\n"]
