"""Images for chat APIs: base64 data URLs, and OpenAI-format messages with the image in place.

The MIME type comes from the file's real format (as Pillow reads it), not its extension, since a
server that is told the wrong type may decode the image wrongly or reject the request. Formats that
chat APIs do not take (BMP, TIFF, ...) are re-encoded as PNG, losslessly.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

from PIL import Image

# What OpenAI-compatible servers accept as image data, by Pillow format name.
API_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}


def image_data_url(path: str | Path) -> str:
    """`data:<mime>;base64,...` for an image file, its type read from its bytes."""
    with Image.open(path) as img:
        fmt = img.format
        if fmt in API_FORMATS:
            mime, data = API_FORMATS[fmt], Path(path).read_bytes()
        else:
            buffer = io.BytesIO()
            img.convert("RGBA" if "A" in img.getbands() else "RGB").save(buffer, format="PNG")  # e.g. CMYK TIFF
            mime, data = "image/png", buffer.getvalue()
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def chat_messages(messages: list[dict[str, str]], data_url: str | None) -> list[dict[str, Any]]:
    """OpenAI chat format, the image (if any) as the first part of the first user message.

    That is the released inference protocol; the other messages stay plain strings.
    """
    pending = data_url is not None
    out: list[dict[str, Any]] = []
    for m in messages:
        if pending and m["role"] == "user":
            parts = [{"type": "image_url", "image_url": {"url": data_url}}, {"type": "text", "text": m["content"]}]
            out.append({"role": "user", "content": parts})
            pending = False
        else:
            out.append({"role": m["role"], "content": m["content"]})
    return out
