"""Who may read what: a namespace (or exported folder) -> access groups mapping, from a TOML file.

    # qa-access.toml
    default = []                   # groups for everything not listed below; [] = everyone
    [namespaces]                   # a wiki namespace, by name or number
    Staff = ["staff"]
    102 = ["hr", "board"]
    [folders]                      # an exported folder, relative to the folder indexed
    "hr/payroll" = ["hr"]

A document open to groups is only searched for readers in one of them; a document with no
groups is open to everyone. The mapping is kept with a wiki's sync state, so a later sync
cannot silently open restricted pages by forgetting the file.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qa.settings import SettingsError

MAX_MAP_BYTES = 1 << 20


@dataclass(frozen=True)
class AccessMap:
    default: tuple[str, ...] = ()
    namespaces: dict[str, tuple[str, ...]] = field(default_factory=dict)  # lower-cased keys
    folders: dict[str, tuple[str, ...]] = field(default_factory=dict)  # "a/b" without slashes

    def for_namespace(self, number: int, name: str) -> tuple[str, ...]:
        """Groups of a page in namespace `number` (called `name`; "" for the main one)."""
        for key in (str(number), _ns_key(name), "main" if number == 0 else None):
            if key is not None and key in self.namespaces:
                return self.namespaces[key]
        return self.default

    def for_path(self, relative: str) -> tuple[str, ...]:
        """Groups of an exported file: those of the deepest listed folder holding it."""
        parts = relative.split("/")[:-1]
        for depth in range(len(parts), 0, -1):
            found = self.folders.get("/".join(parts[:depth]))
            if found is not None:
                return found
        return self.default

    def to_json(self) -> dict[str, Any]:
        return {
            "default": list(self.default),
            "namespaces": {k: list(v) for k, v in sorted(self.namespaces.items())},
            "folders": {k: list(v) for k, v in sorted(self.folders.items())},
        }

    @classmethod
    def from_json(cls, raw: Any, origin: str = "the stored mapping") -> AccessMap:
        if not isinstance(raw, dict):
            raise SettingsError(f"{origin}: expected a table of settings, got {type(raw).__name__}")
        unknown = set(raw) - {"default", "namespaces", "folders"}
        if unknown:
            raise SettingsError(
                f"{origin}: unknown key(s) {', '.join(sorted(unknown))}; "
                "use default, [namespaces] and [folders]"
            )
        return cls(
            default=_groups(raw.get("default", []), f"{origin}: default"),
            namespaces=_table(raw.get("namespaces", {}), f"{origin}: [namespaces]", lower=True),
            folders=_table(raw.get("folders", {}), f"{origin}: [folders]", lower=False),
        )

    @classmethod
    def load(cls, path: str | Path | None) -> AccessMap:
        """The mapping in a TOML file; None gives everyone access to everything."""
        if path is None:
            return cls()
        file = Path(path)
        try:
            if file.stat().st_size > MAX_MAP_BYTES:
                raise SettingsError(f"access groups file {file} is over 1 MB")
            raw = tomllib.loads(file.read_text(encoding="utf-8"))
        except OSError as error:
            raise SettingsError(f"access groups file {file}: {error.strerror or error}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise SettingsError(f"access groups file {file} is not valid TOML ({error})") from None
        return cls.from_json(raw, f"access groups file {file}")


def _groups(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(g, str) and g.strip() for g in value):
        raise SettingsError(f"{where} must be a list of group names, got {value!r}")
    return tuple(sorted({g.strip() for g in value}))


def _table(value: Any, where: str, *, lower: bool) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict):
        raise SettingsError(f"{where} must be a table of name = [groups], got {value!r}")
    table = {}
    for key, groups in value.items():
        name = str(key).strip().strip("/")
        if not name and lower:
            name = "main"
        table[_ns_key(name) if lower else name] = _groups(groups, f"{where} {key!r}")
    return table


def _ns_key(name: str) -> str:
    """Namespace names compare as MediaWiki compares them: "Project_talk" is "project talk"."""
    return " ".join(name.replace("_", " ").split()).lower()
