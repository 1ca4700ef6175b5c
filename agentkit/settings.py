"""Sampling settings for a model request, checked against the ranges the backends accept."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ConfigurationError

__all__ = ["DEFAULT_MAX_TOKENS", "ModelSettings"]

#: Workers AI stops at 256 tokens when ``max_tokens`` is not sent, which cuts many answers
#: (and JSON tool arguments) short. agentkit sends this instead unless told otherwise.
DEFAULT_MAX_TOKENS = 1024


class ModelSettings(BaseModel):
    """Sampling settings, with the ranges of the Workers AI text-generation schema.

    ``frequency_penalty`` and ``presence_penalty`` accept -2 to 2 here, as OpenAI-compatible
    servers do; :class:`~agentkit.models.WorkersAI` refuses values below 0 (its schema's range is
    0 to 2) when it is given them.

    Every field is optional; a field left as ``None`` is not sent, except ``max_tokens`` which
    defaults to :data:`DEFAULT_MAX_TOKENS` (the server's own default, 256, cuts answers short).
    An out-of-range value raises :class:`~agentkit.errors.ConfigurationError` at construction,
    before any request is sent.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    max_tokens: int | None = Field(default=DEFAULT_MAX_TOKENS, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=5)
    top_p: float | None = Field(default=None, ge=0, le=2)
    top_k: int | None = Field(default=None, ge=1, le=50)
    seed: int | None = Field(default=None, ge=1, le=9_999_999_999)
    repetition_penalty: float | None = Field(default=None, ge=0, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigurationError(_describe(exc)) from None

    def merge(self, other: ModelSettings | None) -> ModelSettings:
        """These settings with every field that ``other`` sets explicitly taking precedence."""
        if other is None:
            return self
        updates = {name: getattr(other, name) for name in other.model_fields_set}
        if not updates:
            return self
        return ModelSettings(**{**self.model_dump(), **updates})

    def to_request(self) -> dict[str, Any]:
        """The fields to send: those that are not ``None``."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "settings"
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(ModelSettings.model_fields)
            parts.append(f"unknown setting {field!r}; allowed settings: {allowed}")
        else:
            parts.append(f"{field}={err.get('input')!r}: {err['msg']}")
    return "invalid model settings: " + "; ".join(parts)
