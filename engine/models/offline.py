"""The model libraries' offline switches: Lucida never downloads a model or a config.

timm, Hugging Face ``transformers``/``huggingface_hub`` and MONAI can each reach the network
when asked for pretrained weights, a hub config or a bundle. Lucida reads only what the user
gives it, so every source turns these switches on before it imports its library, and passes
``pretrained=False`` / ``local_files_only=True`` where a call takes it.
"""

from __future__ import annotations

import os

#: Environment switches read by huggingface_hub, transformers and the datasets library.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
}


def go_offline() -> None:
    """Turn on the offline switches of the model libraries for this process.

    Idempotent; called by every model source before it imports timm, transformers or MONAI,
    so that a library that reads the switches at import time sees them.
    """
    for key, value in OFFLINE_ENV.items():
        os.environ[key] = value
