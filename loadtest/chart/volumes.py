"""A rendered pod's volumes on this machine: the kubelet's part, under one local directory.

`emptyDir` and `persistentVolumeClaim` volumes become directories shared by the pod's containers (the init
container writes the model where the main container reads it), Secret and ConfigMap volumes their files
(only the listed `items`, else every key, as the kubelet projects them). `localize` points an env value or
an argument that names a path inside a mount at the local copy, so a rendered command runs unchanged
otherwise. A Secret the release does not render (an `existingSecret`) comes from `external`,
which a rendered Secret of the same name overrides.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from loadtest.chart import release


class VolumeError(LookupError):
    """A mount cannot be reproduced locally; the message names the volume."""


class LocalVolumes:
    def __init__(
        self,
        objects: Iterable[Mapping[str, Any]],
        pod_spec: Mapping[str, Any],
        root: Path,
        external: Mapping[str, Mapping[str, str]] | None = None,
        claim_templates: Iterable[str] = (),
    ) -> None:
        self.objects = list(objects)
        # A StatefulSet's volumeClaimTemplates are volumes of its pods too: a new claim is an empty directory.
        claims = {
            name: {"name": name, "persistentVolumeClaim": {"claimName": name}} for name in claim_templates
        }
        self.volumes = {**claims, **{v["name"]: v for v in pod_spec.get("volumes") or []}}
        self.root = Path(root)
        self.external = dict(external or {})

    def mounts(self, container: Mapping[str, Any]) -> dict[str, Path]:
        """{mountPath: local directory} for every mount of `container`, each volume made on first use."""
        mounts = {}
        for mount in container.get("volumeMounts") or []:
            volume = self.volumes.get(mount["name"])
            if volume is None:
                raise VolumeError(f"volumeMounts[{mount['name']}]: no volume of that name in the pod")
            local = self.root / mount["name"]
            if not local.exists():
                local.mkdir(parents=True)
                self._populate(volume, local)
            mounts[mount["mountPath"]] = local / mount.get("subPath", "")
        return mounts

    def _populate(self, volume: Mapping[str, Any], local: Path) -> None:
        if "secret" in volume:
            source, data = volume["secret"], self._secret(volume["secret"]["secretName"], volume["name"])
        elif "configMap" in volume:
            source = volume["configMap"]
            config = self._object("ConfigMap", source["name"], volume["name"])
            data = {k: str(v) for k, v in (config.get("data") or {}).items()}
        elif "emptyDir" in volume or "persistentVolumeClaim" in volume:
            return
        else:
            kinds = sorted(set(volume) - {"name"})
            raise VolumeError(f"volumes[{volume['name']}]: {kinds} cannot be reproduced locally")
        for item in source.get("items") or [{"key": key, "path": key} for key in data]:
            target = local / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(data[item["key"]])

    def _secret(self, name: str, volume: str) -> dict[str, str]:
        rendered = [o for o in release.find(self.objects, "Secret", name) if not release.is_hook(o)]
        if not rendered and name in self.external:
            return dict(self.external[name])
        secret = self._object("Secret", name, volume)
        data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
        return {**data, **(secret.get("stringData") or {})}

    def _object(self, kind: str, name: str, volume: str) -> Mapping[str, Any]:
        rendered = [o for o in release.find(self.objects, kind, name) if not release.is_hook(o)]
        if not rendered:
            raise VolumeError(f"volumes[{volume}]: {kind}/{name} is neither rendered nor given")
        return rendered[0]


def localize(value: str, mounts: Mapping[str, Path]) -> str:
    """`value` with a leading mount path replaced by its local directory; a value outside the mounts stays."""
    for mount_path, local in sorted(mounts.items(), key=lambda item: -len(item[0])):
        if value == mount_path:
            return str(local)
        if value.startswith(mount_path.rstrip("/") + "/"):
            return str(local / Path(value).relative_to(mount_path))
    return value


def moved_env(env: Mapping[str, str], mounts: Mapping[str, Path]) -> dict[str, str]:
    """The entries of a container's env that name a path inside its mounts, pointed at the local copies:
    the `env_overrides` that make a rendered container read its volumes here."""
    local = localize_all(env, mounts)
    return {name: value for name, value in local.items() if value != env[name]}


def localize_all(values: Sequence[str] | Mapping[str, str], mounts: Mapping[str, Path]) -> Any:
    """`localize` over a command line or an environment."""
    if isinstance(values, Mapping):
        return {name: localize(value, mounts) for name, value in values.items()}
    return [localize(value, mounts) for value in values]
