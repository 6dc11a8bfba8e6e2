"""Which decoder plugin each compressed transfer syntax needs; the pip hint when one is missing."""

from __future__ import annotations

import re
from pathlib import Path

from pydicom.pixels import get_decoder
from pydicom.uid import UID

from engine.core.errors import CodecError

#: The pip package that decodes each compressed transfer syntax when no installed plugin can.
CODEC_PACKAGES = {
    "1.2.840.10008.1.2.4.50": "python-gdcm",
    "1.2.840.10008.1.2.4.51": "pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.57": "python-gdcm",
    "1.2.840.10008.1.2.4.70": "python-gdcm",
    "1.2.840.10008.1.2.4.80": "python-gdcm",
    "1.2.840.10008.1.2.4.81": "python-gdcm",
    "1.2.840.10008.1.2.4.90": "pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.91": "pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.201": "pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.202": "pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.203": "pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.5": "pylibjpeg-rle",
}
#: Packages covering what the default plugins refuse (12-bit JPEG, some JPEG-LS variants).
CODEC_FALLBACK_PACKAGES = {
    "1.2.840.10008.1.2.4.50": "pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.51": "pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.57": "pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.70": "pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.80": "pyjpegls",
    "1.2.840.10008.1.2.4.81": "pyjpegls",
}


def check_decoder(path: Path, syntax: UID) -> None:
    """Refuse pixel data that no installed plugin can decode, naming the package to install.

    Raises
    ------
    CodecError
        No decoder exists for the syntax, or none of its plugins is installed.
    """
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise CodecError(
            f"no decoder exists for transfer syntax {syntax.name or syntax}",
            path=path,
            fix="convert the file to an uncompressed transfer syntax (e.g. gdcmconv --raw)",
        ) from None
    if not decoder.is_available:
        package = CODEC_PACKAGES.get(str(syntax), "pylibjpeg")
        raise CodecError(
            f"no installed decoder for {syntax.name}", path=path, fix=f"pip install {package}"
        )


def unsupported_error(exc: BaseException, path: Path, syntax: UID) -> CodecError | None:
    """Return the CodecError for a decode failure that means "no plugin handles this variant".

    The installed plugins may exist yet all refuse the data (12-bit baseline JPEG, say); that
    is a missing codec, not a corrupt file. Returns None for any other failure.
    """
    unsupported = re.search(r"(does not support|not supported)[^\n:]*", str(exc))
    if not unsupported:
        return None
    package = CODEC_FALLBACK_PACKAGES.get(str(syntax), CODEC_PACKAGES.get(str(syntax)))
    return CodecError(
        f"no installed decoder handles this {syntax.name} data "
        f"(installed plugins: {unsupported.group(0).strip()})",
        path=path,
        fix=f"pip install {package}" if package else "convert the file with gdcmconv",
    )
