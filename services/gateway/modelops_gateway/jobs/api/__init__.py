"""The jobs routes: ModelOps' own (training.py), live event streams (streams.py) and OpenAI's fine-tuning API
(fine_tuning.py), over one job record."""

from typing import Annotated

from fastapi import Path

JobId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
