"""How failures of the decoding libraries become one-line :class:`~engine.core.errors.StudyError`.

pydicom, Pillow and the decoder plugins raise many exception types on corrupt data; the Rust
decoders raise ``PanicException``, a BaseException. Every module that calls them turns what
they raise into a short reason with these helpers.
"""

from __future__ import annotations

from engine.core.cancel import Cancelled

#: What the user can do about a file whose bytes are damaged.
TRUNCATED_FIX = "the file is truncated or corrupt; copy or export it again"


def reraise_fatal(exc: BaseException) -> None:
    """Let interrupts, exits and cancels through; everything else from a decoder is bad data.

    Decoder plugins written in Rust raise ``PanicException``, a BaseException, on corrupt
    input, so catching Exception alone is not enough.
    """
    if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit | Cancelled):
        raise exc


def short_reason(exc: BaseException) -> str:
    """Return an exception's message on one line, at most 160 characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."
