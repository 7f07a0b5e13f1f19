"""Moved: result files to `safemt.files`, journals to `safemt.journal`; kept for older imports."""

from safemt.files import (atomic_write_bytes, atomic_write_text, dumps, read_jsonl, read_records,  # noqa: F401
                          read_rows, write_csv, write_json, write_jsonl)
from safemt.journal import Journal, read_journal, repair_journal, torn_tail  # noqa: F401
