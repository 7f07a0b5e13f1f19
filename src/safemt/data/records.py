"""Moved to `safemt.records` (every record contract in one module); kept for older imports."""

from safemt.records import Dialogue, Message, RecordError, check_image_path, check_messages  # noqa: F401
