"""Journals and JSONL readers: any torn write is repaired and redone; a bad line before the end is an error."""

from __future__ import annotations

from pathlib import Path

import pytest

from safemt.errors import SafemtError
from safemt.files import read_jsonl
from safemt.journal import Journal, read_journal, repair_journal

# Non-ASCII of every UTF-8 width: 2 bytes (é, ß), 3 (東, U+FFFD), 4 (an emoji).
RECORDS = [{"id": f"own_case_{i}", "turns": 2, "response": f"Straße {i}: café, 東京 \ufffd 🙂 — n°{i}"}
           for i in range(5)]


def write_journal(path: Path) -> bytes:
    with Journal(path) as journal:
        journal.append_batch(RECORDS[:3])
        journal.append_batch(RECORDS[3:])
    return path.read_bytes()


def test_torn_at_every_byte_of_the_last_line_resumes_with_nothing_lost_or_duplicated(tmp_path, capsys) -> None:
    path = tmp_path / ".journal" / "2.jsonl"
    full = write_journal(path)
    start = full.rstrip(b"\n").rfind(b"\n") + 1  # first byte of the last line
    inside_a_character = 0
    for cut in range(start, len(full)):
        path.write_bytes(full[:cut])
        try:
            full[start:cut].decode("utf-8")
        except UnicodeDecodeError:
            inside_a_character += 1
        with Journal(path) as journal:  # what every stage does: repair, read, redo what is missing
            assert journal.repaired == cut - start
            assert read_journal(path) == RECORDS[:-1]
            journal.append_batch([rec for rec in RECORDS if rec not in read_journal(path)])
        assert path.read_bytes() == full
        assert read_journal(path) == RECORDS
    assert inside_a_character >= 10, "the cuts must include cuts inside multi-byte characters"
    assert f"{path}: dropped a torn last line" in capsys.readouterr().err


def test_reading_without_repairing_skips_an_incomplete_last_line_and_leaves_the_file(tmp_path, capsys) -> None:
    path = tmp_path / "j.jsonl"
    full = write_journal(path)
    torn = full[:-7]  # as another shard's journal looks while a write is in flight
    path.write_bytes(torn)
    assert read_journal(path) == RECORDS[:-1]
    assert path.read_bytes() == torn
    assert "ignoring an incomplete last line" in capsys.readouterr().err
    assert repair_journal(path) > 0 and repair_journal(path) == 0


@pytest.mark.parametrize("bad", [b"{\"id\": \"own_ca", b"\xff\xfe not utf-8", b"", b"[1, 2]",
                                 "{\"r\": \"caf\u00e9\"}".encode("utf-8")[:-3] + b"\xc3"])
def test_a_bad_line_in_the_middle_is_an_error_naming_file_and_line(tmp_path, bad: bytes) -> None:
    path = tmp_path / "j.jsonl"
    full = write_journal(path)
    lines = full.split(b"\n")
    path.write_bytes(b"\n".join([*lines[:2], bad, *lines[2:]]))
    with pytest.raises(SafemtError, match=r"j\.jsonl: line 3 is not") as exc:
        read_journal(path)
    assert len(str(exc.value).splitlines()) == 1
    with pytest.raises(SafemtError, match=r"line 3 is not"):
        with Journal(path):  # the repair only touches the end; the stage then reads and fails
            read_journal(path)
    assert path.read_bytes().count(b"\n") == len(RECORDS) + 1


def test_read_jsonl_names_a_line_that_is_not_utf8(tmp_path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"id": "a"}\n{"id": "caf\xc3"}\n')
    with pytest.raises(SafemtError, match=r"d\.jsonl, record 2: line 2 is not UTF-8"):
        read_jsonl(path)
    path.write_bytes('{"id": "café"}\r\n\n{"id": "東京"}'.encode("utf-8"))
    assert read_jsonl(path) == [{"id": "café"}, {"id": "東京"}]


def test_a_lone_surrogate_is_written_escaped_and_reads_back_the_same(tmp_path) -> None:
    path = tmp_path / "j.jsonl"
    records = [{"id": "a", "response": "broken \ud800 pair, café"}, {"id": "b", "response": "café"}]
    with Journal(path) as journal:
        journal.append_batch(records)
    assert read_journal(path) == records
    assert "café".encode("utf-8") in path.read_bytes().splitlines()[1]  # other records stay UTF-8
