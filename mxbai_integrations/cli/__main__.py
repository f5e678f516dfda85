"""``python -m mxbai_integrations.cli``: the ``mxbai-onnx`` command without the console script."""

from __future__ import annotations

import sys

from mxbai_integrations.cli import main

sys.exit(main())
