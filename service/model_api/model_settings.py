"""`model-settings.json`: what a model says about itself beyond its graph. Every field is optional.

    {"name": "diabetes", "version": "3", "description": "...", "features": ["age", ...],
     "class_names": ["setosa", ...], "inputs": {"input": "ten standardised measurements"}}

It sits beside `model.onnx`, or travels inside the ONNX file as the metadata property `model_settings`
(what `model-api package` writes, so that one fetched file is the whole model). Artifacts from
`model-api train` carry the older per-key metadata (`version`, `features`, `class_names`, ...), read too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FILE_NAME = "model-settings.json"
MODEL_FILE_NAME = "model.onnx"
METADATA_KEY = "model_settings"
DEFAULT_VERSION = "1"
URL_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_LEGACY_KEYS = ("name", "version", "description", "features", "class_names")


class ModelSettingsError(ValueError):
    """The settings cannot be used; the message names the field."""


@dataclass(frozen=True)
class ModelSettings:
    name: str | None = None
    version: str | None = None
    description: str = ""
    features: tuple[str, ...] = ()
    class_names: tuple[str, ...] = ()
    inputs: Mapping[str, str] = field(default_factory=dict)  # input name → description
    # Anything else the artifact recorded (training accuracy, library versions): shown in the V2 metadata.
    parameters: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any, where: str) -> ModelSettings:
        if not isinstance(data, dict):
            raise ModelSettingsError(f"{where} must be a JSON object")
        unknown = sorted(set(data) - {"name", "version", "description", "features", "class_names", "inputs"})
        if unknown:
            raise ModelSettingsError(f"{where} has unknown field {unknown[0]!r}")
        for key in ("name", "version", "description"):
            if key in data and not isinstance(data[key], str):
                raise ModelSettingsError(f"{where}: {key!r} must be a string")
        for key in ("features", "class_names"):
            value = data.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ModelSettingsError(f"{where}: {key!r} must be a list of strings")
        inputs = data.get("inputs", {})
        if not isinstance(inputs, dict) or not all(isinstance(v, str) for v in inputs.values()):
            raise ModelSettingsError(f"{where}: 'inputs' must map input names to descriptions")
        version = data.get("version")
        if version is not None and not URL_SAFE.fullmatch(version):
            raise ModelSettingsError(
                f"{where}: version {version!r} must be letters, digits, '.', '_' or '-' (it appears in URLs)"
            )
        return cls(
            name=data.get("name"),
            version=version,
            description=data.get("description", ""),
            features=tuple(data.get("features", ())),
            class_names=tuple(data.get("class_names", ())),
            inputs=dict(inputs),
        )

    def to_json(self) -> str:
        data = {k: v for k, v in asdict(self).items() if v not in (None, "", (), {}) and k != "parameters"}
        data = {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"

    def merged_over(self, base: ModelSettings) -> ModelSettings:
        """These settings, with `base` filling whatever these leave unset."""
        return ModelSettings(
            name=self.name or base.name,
            version=self.version or base.version,
            description=self.description or base.description,
            features=self.features or base.features,
            class_names=self.class_names or base.class_names,
            inputs={**base.inputs, **self.inputs},
            parameters={**base.parameters, **self.parameters},
        )


def resolve_path(path: Path) -> tuple[Path, Path | None]:
    """`MODEL_API_MODEL_PATH` → (the ONNX file, the settings file beside it if any)."""
    if path.is_dir():
        settings = path / FILE_NAME
        return path / MODEL_FILE_NAME, settings if settings.is_file() else None
    return path, None


def read_file(path: Path) -> ModelSettings:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelSettingsError(f"{path.name} is not readable JSON: {exc}") from None
    return ModelSettings.from_dict(data, path.name)


def from_metadata(props: Mapping[str, str]) -> ModelSettings:
    """Settings embedded in the ONNX metadata_props: the `model_settings` key, else the older per-key form."""
    if METADATA_KEY in props:
        try:
            data = json.loads(props[METADATA_KEY])
        except ValueError as exc:
            raise ModelSettingsError(f"metadata property {METADATA_KEY!r} is not JSON: {exc}") from None
        return ModelSettings.from_dict(data, f"metadata property {METADATA_KEY!r}")
    legacy = {key: _decoded(props[key]) for key in _LEGACY_KEYS if key in props}
    if "version" in legacy:
        legacy["version"] = str(legacy["version"])
    extra = {key: _decoded(value) for key, value in props.items() if key not in _LEGACY_KEYS}
    settings = ModelSettings.from_dict(legacy, "metadata_props")
    return ModelSettings(**{**asdict(settings), "parameters": extra})


def _decoded(value: str) -> Any:
    """A JSON-encoded metadata value (lists, numbers, objects), else the string itself."""
    try:
        return json.loads(value)
    except ValueError:
        return value
