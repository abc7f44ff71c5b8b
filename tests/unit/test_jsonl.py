"""The one JSONL reader and writer: round trips, blank lines, unicode, and errors that name the file and line."""

from __future__ import annotations

import json

import pytest

from gpt4video.errors import InputError
from gpt4video.jsonl import append_jsonl, jsonl_text, read_jsonl, write_jsonl

ROWS = [
    {"video": "clips/0.mp4", "question": "What colour is the circle?", "answer": "red"},
    {"turns": [{"role": "user", "text": "Hi", "videos": [0]}], "n": 3, "x": 0.25, "ok": True, "none": None},
]


def test_round_trip(tmp_path):
    path = write_jsonl(tmp_path / "sub" / "rows.jsonl", ROWS)  # parent folders are made
    assert path == tmp_path / "sub" / "rows.jsonl"
    assert list(read_jsonl(path)) == ROWS
    assert path.read_text(encoding="utf-8") == "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS)
    assert jsonl_text([]) == ""


def test_append_creates_then_appends(tmp_path):
    path = tmp_path / "log.jsonl"
    append_jsonl(path, [ROWS[0]])
    append_jsonl(path, [ROWS[1]])
    assert list(read_jsonl(path)) == ROWS


def test_blank_lines_and_a_byte_order_mark_are_skipped(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text("\ufeff" + json.dumps(ROWS[0]) + "\n\n   \n" + json.dumps(ROWS[1]) + "\r\n\n", encoding="utf-8")
    assert list(read_jsonl(path)) == ROWS


def test_unicode_is_written_as_text_and_read_back(tmp_path):
    rows = [{"text": "Zoë's café — 猫 🐈", "sep": "line\u2028separator"}]
    path = write_jsonl(tmp_path / "u.jsonl", rows)
    text = path.read_text(encoding="utf-8")
    assert "Zoë's café — 猫 🐈" in text and text.count("\n") == 1  # not escaped, one line
    assert list(read_jsonl(path)) == rows


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"a": 1}', "", '{"a": 2', '{"a": 3}'], r"bad\.jsonl:3: not valid JSON .*; expected a QA row"),
        (['{"a": 1}', "[1, 2]"], r"bad\.jsonl:2: expected a QA row \(a JSON object\), got list"),
    ],
)
def test_a_bad_line_names_the_file_and_its_line(tmp_path, lines, message):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rows = read_jsonl(path, what="QA row")
    assert next(rows) == {"a": 1}  # the rows before it are read
    with pytest.raises(InputError, match=message):
        list(rows)


def test_bytes_that_are_not_utf8_name_the_line(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": "caf\xe9"}\n')
    with pytest.raises(InputError, match=r"latin1\.jsonl:2: not UTF-8 text"):
        list(read_jsonl(path))


def test_a_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match=r"missing\.jsonl: cannot be read"):
        list(read_jsonl(tmp_path / "missing.jsonl"))
