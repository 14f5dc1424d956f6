"""Base request model: unknown fields are an error, not silently dropped; text may not hold NUL."""

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, field_validator

# C0 and C1 control characters: a one-line title with them breaks the formats it is copied into
# (iCalendar forbids them in text, terminals obey escapes).
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # PostgreSQL text cannot store U+0000; refuse it here with a clear message.
        texts = value if isinstance(value, list) else [value]
        if any(isinstance(t, str) and "\x00" in t for t in texts):
            raise ValueError("text must not contain NUL characters")
        return value


def _one_line(text: str) -> str:
    if CONTROL_CHARACTERS.search(text):
        raise ValueError("a title must be one line of text, without control characters (line breaks, tabs, "
                         "escapes)")
    return text


Title = Annotated[str, AfterValidator(_one_line)]
