"""What every backend shares about building chat messages: images and the chat-template override.

Images go to chat APIs as base64 data URLs. The MIME type comes from the file's real format (as
Pillow reads it), not its extension, since a server that is told the wrong type may decode the image
wrongly or reject the request. Formats that chat APIs do not take (BMP, TIFF, ...) are re-encoded as
PNG, losslessly. The image part goes first in the first user message, as released, or last where a
model's config says `image_placement: last` (some models were trained with the image after the text).
"""

from __future__ import annotations

import base64
import io
import sys
from pathlib import Path
from typing import Any

from PIL import Image

from safemt.errors import ConfigError

# What OpenAI-compatible servers accept as image data, by Pillow format name.
API_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
PLACEMENTS = ("first", "last")


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


def image_placement(cfg: dict[str, Any]) -> str:
    """The model's `image_placement` ("first" unless its config says otherwise), checked."""
    placement = cfg.get("image_placement") or "first"
    if placement not in PLACEMENTS:
        raise ConfigError(f"image_placement must be one of {', '.join(PLACEMENTS)}, not {placement!r}",
                          key=f"models.{cfg.get('name')}.image_placement")
    return placement


def with_image(image_part: dict[str, Any], text: str, placement: str) -> list[dict[str, Any]]:
    """The parts of the message that carries the image: the image before or after its text."""
    parts = [image_part, {"type": "text", "text": text}]
    return parts if placement == "first" else parts[::-1]


def chat_messages(messages: list[dict[str, str]], data_url: str | None, placement: str = "first"
                  ) -> list[dict[str, Any]]:
    """OpenAI chat format, the image (if any) a part of the first user message; the rest plain strings."""
    pending = data_url is not None
    out: list[dict[str, Any]] = []
    for m in messages:
        if pending and m["role"] == "user":
            image_part = {"type": "image_url", "image_url": {"url": data_url}}
            out.append({"role": "user", "content": with_image(image_part, m["content"], placement)})
            pending = False
        else:
            out.append({"role": m["role"], "content": m["content"]})
    return out


def log_remote_code(cfg: dict[str, Any]) -> bool:
    """trust_remote_code runs Python from the model's repository: only when its config says so, and
    always said on stderr (the backend's provenance records it too)."""
    if cfg.get("trust_remote_code") is not True:
        return False
    print(f"safemt: models.{cfg.get('name')}: trust_remote_code is on (set in its config): the model "
          f"repository's own code at revision {cfg.get('revision') or 'unpinned'} will run", file=sys.stderr)
    return True


def read_chat_template(cfg: dict[str, Any]) -> str | None:
    """The text of the template file `chat_template` names (engines take the text, not the path)."""
    path = cfg.get("chat_template")
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read chat template {path!r}: {exc.strerror or exc}",
                          key=f"models.{cfg.get('name')}.chat_template") from None
