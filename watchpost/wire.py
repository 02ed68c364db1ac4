"""The base of every model that crosses Redis, and how it reads fields it does not know.

Models are strict where they are built (`extra="forbid"`: a misspelt field in our own code is an
error). Decoding a stream entry validates with the context `TOLERANT`, under which every wire
model, nested ones included, drops fields it does not declare: a newer producer may add optional
fields without breaking an older consumer (see `watchpost.messages`, "Versions").
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, model_validator

TOLERANT = {"tolerate_unknown_fields": True}


class WireModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _drop_unknown_when_decoding(cls, data: Any, info: ValidationInfo) -> Any:
        context = info.context
        if (
            isinstance(data, dict)
            and isinstance(context, dict)
            and context.get("tolerate_unknown_fields")
        ):
            return {key: value for key, value in data.items() if key in cls.model_fields}
        return data
