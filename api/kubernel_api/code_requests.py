"""Bodies of the code calls (execute, complete, files, download) as validated models (pure).

Shapes as the 19.09 client sends them (ai/backend/client/kernel.py). What passes
here goes to the kernel's runner, which checks paths against its working directory.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from kubernel.jsondict import JsonDict

CODE_MAX = 1 << 20
COMMAND_MAX = 65536
PATH_MAX = 4096
RUN_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
FILES_MAX = 64


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class BatchOptions(_Body):
    """``options`` of a batch execution: shell commands run in the working directory."""

    clean: str | None = Field(None, max_length=COMMAND_MAX)
    build: str | None = Field(None, max_length=COMMAND_MAX)
    exec: str | None = Field(None, max_length=COMMAND_MAX)
    build_log: bool = Field(False, alias="buildLog")


class ExecuteRequest(_Body):
    """POST /kernel/:id (and the first message of /stream/kernel/:id/execute)."""

    mode: Literal["query", "batch", "continue", "input"] = "query"
    code: str = Field("", max_length=CODE_MAX, description="Code, the input line (mode input), or empty.")
    run_id: str | None = Field(None, alias="runId", pattern=RUN_ID_PATTERN)
    options: BatchOptions | None = None

    def to_runner(self) -> JsonDict:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class StreamExecuteRequest(ExecuteRequest):
    """The websocket's first message: a new run (its answers carry the run on)."""

    mode: Literal["query", "batch"] = "query"


class CompleteOptions(_Body):
    row: int = Field(0, ge=0, le=1 << 20)
    col: int = Field(0, ge=0, le=1 << 20)
    line: str = Field("", max_length=CODE_MAX)
    post: str = Field("", max_length=CODE_MAX)


class CompleteRequest(_Body):
    code: str = Field("", max_length=CODE_MAX)
    options: CompleteOptions = Field(default_factory=CompleteOptions)


class FilesRequest(_Body):
    path: str = Field(".", min_length=1, max_length=PATH_MAX)


class DownloadRequest(_Body):
    files: list[Annotated[str, Field(min_length=1, max_length=PATH_MAX)]] = Field(
        min_length=1, max_length=FILES_MAX
    )
