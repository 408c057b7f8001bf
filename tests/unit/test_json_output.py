"""``--json`` output: one JSON document, objects indented, each record of a list on one line."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from mailgate.cli._output import json_text


def test_records_are_one_line_each_and_the_document_parses_back() -> None:
    report = {
        "job": "invoices",
        "delivered": 2,
        "messages": [
            {"id": "7:1", "subject": "Rechnung März", "destination": Path("/x/a.eml")},
            {"id": "7:2", "subject": 'quote " and \n newline', "note": None},
        ],
        "problems": [],
        "nested": {"when": datetime(2026, 12, 7, tzinfo=UTC), "ids": (1, 2)},
    }
    text = json_text(report)
    expected = json.loads(json.dumps(report, default=str))
    assert json.loads(text) == expected
    lines = text.splitlines()
    assert lines[0] == "{" and lines[-1] == "}"
    assert (
        '    {"id": "7:1", "subject": "Rechnung M\\u00e4rz", "destination": "/x/a.eml"},' in lines
    )
    assert sum('"id": "7:' in line for line in lines) == 2  # a record never spans lines
    assert '  "problems": [],' in lines


def test_top_level_lists_and_scalars() -> None:
    assert json_text([{"a": 1}, {"a": 2}]) == '[\n  {"a": 1},\n  {"a": 2}\n]'
    assert json_text([]) == "[]" and json_text({}) == "{}" and json_text("x") == '"x"'
    assert json.loads(json_text({1: True, "k": None})) == {"1": True, "k": None}
