"""The handle every testbed returns: where its data and models are, and what it is."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from mmia.errors import InputError

# --- split roles --------------------------------------------------------------------------------
# What a split is for. Demo steps (and benchmarks) pick a split by its role, never by its name or
# by the testbed's name, so a testbed may call its splits what it likes. A testbed gives each role
# to at most one split and each split at most one role; splits without a role (scenes' video
# splits, say) are still audited by the steps that take every split, such as the shift check.
ROLES: dict[str, str] = {
    "membership": "labelled rows whose non-members come from the members' own distribution (media rows "
                  "where the testbed has media): the split whose attack AUC means membership",
    "shifted": "labelled rows: the same members against non-members from a visibly different distribution "
               "(the blind shift check's positive case; dataset inference must refuse it)",
    "names": "text-only queries (a person's name) with member labels: what UMID audits",
    "controls": "names of non-members, disjoint from the `names` split: the reference of UMID's "
                "name-likeness control",
}


def check_roles(roles: dict[str, str], splits=None) -> dict[str, str]:
    """`roles` (role -> split name) if every role is known, no split has two roles and, with
    `splits`, every named split exists; else ValueError with a one-line reason."""
    if not isinstance(roles, dict) or not all(isinstance(v, str) for v in roles.values()):
        raise ValueError("roles must map role names to split names")
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise ValueError(f"unknown split role(s) {', '.join(unknown)} (known: {', '.join(ROLES)})")
    named = list(roles.values())
    twice = sorted({s for s in named if named.count(s) > 1})
    if twice:
        raise ValueError(f"split(s) {', '.join(twice)} given more than one role (a split has one role)")
    if splits is not None:
        missing = sorted(s for s in named if s not in splits)
        if missing:
            raise ValueError(f"role(s) name split(s) {', '.join(missing)} that the testbed does not have")
    return dict(roles)


@dataclass(frozen=True)
class Testbed:
    """A built testbed with known membership.

    `splits` maps a split name ("matched", "shifted", ...) to a data file in the contract's
    format (labels included); `roles` maps a role of ROLES ("membership", ...) to a split name;
    `targets` maps a role ("target", "base", ...) to a Hugging Face model directory; `manifest` is
    the parsed manifest.json (seeds, sizes, member ids, the build-time member signal).
    """

    name: str
    root: Path
    target_kind: str | None  # "vlm", "clip", "clap", "audio-lm", or None for data-only testbeds
    modalities: tuple[str, ...]
    splits: dict[str, Path] = field(default_factory=dict)
    targets: dict[str, Path] = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        check_roles(self.roles, self.splits)

    def split_name(self, role: str) -> str | None:
        """The name of the split that has `role` (a key of ROLES), or None if no split has it."""
        if role not in ROLES:  # a misspelt role in a step would otherwise read as "not here"
            raise ValueError(f"unknown split role '{role}' (known: {', '.join(ROLES)})")
        return self.roles.get(role)

    def split_for(self, role: str) -> Path | None:
        """The data file of the split that has `role`, or None if no split has it."""
        name = self.split_name(role)
        return None if name is None else self.splits[name]

    @classmethod
    def from_dir(cls, root: str | Path) -> Testbed:
        """The testbed in `root`. Its roles are the manifest's; a manifest written before roles
        existed gets those its testbed declared at registration (so cached builds stay valid)."""
        root = Path(root)
        path = root / "manifest.json"
        m = json.loads(path.read_text(encoding="utf-8"))
        try:  # the roles are checked as the testbed is made: bad ones are this file's error
            return cls(
                name=m["name"],
                root=root,
                target_kind=m.get("target_kind"),
                modalities=tuple(m.get("modalities", ())),
                splits={k: root / v for k, v in m.get("splits", {}).items()},
                targets={k: root / v for k, v in m.get("targets", {}).items()},
                manifest=m,
                roles=m["roles"] if "roles" in m else declared_roles(m["name"]),
            )
        except ValueError as e:
            raise InputError(str(e), path) from None


# --- testbed registry ---------------------------------------------------------------------------
# Each testbed module registers a builder: fn(out_dir: Path, *, seed: int, quick: bool) -> Testbed,
# which writes data, models and manifest.json into out_dir. `mmia testbed NAME` and `mmia demo`
# find builders here; modules that register are listed in TESTBED_MODULES. The registration
# declares the splits' roles, once: the builder writes `declared_roles(name)` into the manifest.

TESTBED_MODULES: list[str] = [
    "mmia.testbeds.scenes_testbed",
    "mmia.testbeds.vlm",
    "mmia.testbeds.vlm_video",
    "mmia.testbeds.audio_captions",
    "mmia.testbeds.clip_identities",
    "mmia.testbeds.clap_voices",
]


@dataclass(frozen=True)
class TestbedSpec:
    name: str
    summary: str
    build: object  # Callable[[Path], Testbed] with keyword-only seed and quick
    in_demo: bool = True
    version: str = "1"  # part of the cache key: bump when the builder's output changes
    cost: float = 1.0  # rough build CPU seconds; the demo starts the costliest builds first
    roles: dict[str, str] = field(default_factory=dict)  # role (ROLES) -> split name


_TESTBEDS: dict[str, TestbedSpec] = {}


def register_testbed(name: str, *, summary: str, in_demo: bool = True, version: str = "1", cost: float = 1.0,
                     roles: dict[str, str] | None = None):
    """Register a builder under `name`; `roles` (role -> split name) says what its splits are for."""
    checked = check_roles(roles or {})  # an unknown role is a bug in the testbed module: fail at import

    def deco(fn):
        _TESTBEDS[name] = TestbedSpec(name=name, summary=summary, build=fn, in_demo=in_demo, version=version,
                                      cost=cost, roles=checked)
        return fn

    return deco


def declared_roles(name: str) -> dict[str, str]:
    """The split roles testbed `name` declared at registration ({} for a testbed not registered)."""
    if name not in _TESTBEDS:
        list_testbeds()  # the built-in testbeds register on import
    spec = _TESTBEDS.get(name)
    return dict(spec.roles) if spec is not None else {}


def list_testbeds() -> list[TestbedSpec]:
    import importlib

    for mod in TESTBED_MODULES:
        importlib.import_module(mod)
    return [_TESTBEDS[k] for k in sorted(_TESTBEDS)]
