"""What every Kubernel service's settings share: how they are read and the fields both
the operator and the API have.

Each setting is defined once, as a field of a pydantic-settings model: its default,
its environment variable (the field's alias) and its documentation (the field's
docstring), from which docs/operator.md and docs/api.md are generated
(``python -m kubernel.settingsdoc``). They are read once, when a service starts
(``from_env``), never at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import Field, SecretBytes, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .images import DEFAULT_TABLE, ImageTable
from .runner import KEY_ENV, KEY_FILE_ENV


def env(name: str) -> Any:
    """A field's environment variable (the alias by which it is read)."""
    return Field(validation_alias=name)


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(
        frozen=True,
        extra="ignore",
        populate_by_name=True,
        env_ignore_empty=True,  # an empty variable means the default, as the chart leaves them
        use_attribute_docstrings=True,
        case_sensitive=True,
    )

    images: Annotated[ImageTable, NoDecode] = Field(
        default_factory=lambda: DEFAULT_TABLE, validation_alias="KUBERNEL_IMAGES"
    )
    """The image alias table and registry allow-list: a YAML file (see kubernel/images.py);
    unset, the built-in table."""
    runner_key_file: Path | None = Field(None, validation_alias=KEY_FILE_ENV)
    """A file holding the key runner tokens are derived from, shared by the operator and
    the API (a mounted Secret; docs/runner.md)."""
    runner_key_value: SecretBytes = Field(SecretBytes(b""), validation_alias=KEY_ENV, repr=False)
    """The runner key itself, when no file names it; one of the two is required (32 bytes or more)."""

    @field_validator("images", mode="before")
    @classmethod
    def _load_images(cls, value: object) -> object:
        return ImageTable.load(value) if isinstance(value, str | Path) else value

    @model_validator(mode="after")
    def _read_key_file(self) -> Self:
        if self.runner_key_file is not None:  # read once, here
            key = self.runner_key_file.read_bytes().strip()
            object.__setattr__(self, "runner_key_value", SecretBytes(key))
        return self

    @property
    def runner_key(self) -> bytes:
        return self.runner_key_value.get_secret_value()

    @classmethod
    def from_env(cls) -> Self:
        """The settings from the process environment: called once, at start-up."""
        return cls()
