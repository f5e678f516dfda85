"""Where this package keeps what it makes: first-use exports and TensorRT engines.

``$MXBAI_INTEGRATIONS_CACHE``, else ``~/.cache/mxbai_integrations``; an explicit ``cache_dir``
(RerankerOptions) wins. Artifacts downloaded from the Hugging Face Hub live in the HF cache instead.

Examples:
    >>> cache_root("/tmp/mxbai-cache")
    PosixPath('/tmp/mxbai-cache')
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "MXBAI_INTEGRATIONS_CACHE"


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cache directory: ``cache_dir``, else ``$MXBAI_INTEGRATIONS_CACHE``, else ``~/.cache/mxbai_integrations``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mxbai_integrations"
