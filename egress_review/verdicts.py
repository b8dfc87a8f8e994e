"""The fixed vocabularies of the egress checks: verdicts, and why an output was blocked unread.

Both are compared and stored, so they are enumerations; and both may be shown to people who
must learn nothing from the output itself, so a reason is always one of these words and never
text produced by the job or by a parser of its outputs.
"""

from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    """An output's status after the automated checks, from best to worst."""

    PASS = "pass"
    REVIEW = "review"
    BLOCKED = "blocked"

    def worst(self, other: Verdict) -> Verdict:
        return max(self, other, key=_ORDER.index)


_ORDER = [Verdict.PASS, Verdict.REVIEW, Verdict.BLOCKED]


class Unreadable(StrEnum):
    """Why an output could not be read as its declared format: it is blocked (fail closed)."""

    UNKNOWN_FORMAT = "unknown_format"  # the declared format is not one the platform reads
    ENCODING = "encoding"  # text that does not decode with its declared encoding
    CSV_INVALID = "csv_invalid"
    PARQUET_INVALID = "parquet_invalid"
    PARQUET_UNACCOUNTED_BYTES = "parquet_unaccounted_bytes"  # bytes no reader would look at
    JSON_INVALID = "json_invalid"
    SVG_INVALID = "svg_invalid"
    SVG_DOCTYPE = "svg_doctype"  # DTDs and entities are refused, never expanded
    PNG_INVALID = "png_invalid"
    PNG_UNKNOWN_CHUNK = "png_unknown_chunk"
    PNG_TRAILING_DATA = "png_trailing_data"
    TOO_MANY_ROWS = "too_many_rows"  # over the row cap, read from metadata before loading
    TOO_LARGE = "too_large"  # expands past the size cap when decompressed
    NOT_A_TABLE = "not_a_table"  # parses, but has no rows and columns for the table checks
    CHECKER_MEMORY = "checker_memory"  # the check process hit its memory limit
    CHECKER_TIMEOUT = "checker_timeout"  # the check process hit its time limit
    CHECKER_CRASHED = "checker_crashed"  # the check process died or raised


class UnreadableOutput(Exception):
    """Raised by the format readers; carries only a word from :class:`Unreadable`."""

    def __init__(self, reason: Unreadable) -> None:
        super().__init__(reason.value)
        self.reason = reason
