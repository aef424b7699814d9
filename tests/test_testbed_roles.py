"""Split roles: what each testbed's splits are for, declared once at registration, written to the
manifest, read back by `Testbed.from_dir`, and what the demo steps pick splits by."""

import json
import shutil

import pytest
import torch
from tiny_models import tiny_dir, write_media_dataset  # noqa: F401  (fixture)

from mmia.demo.steps import DemoContext, list_demo_steps
from mmia.errors import InputError
from mmia.testbeds import base
from mmia.testbeds.base import ROLES, declared_roles, list_testbeds, register_testbed
from mmia.testbeds.base import Testbed as Handle  # not "Test...": pytest would try to collect it
from mmia.testbeds.build import build_testbed

torch.set_num_threads(1)

# What the demo steps read from each built-in testbed (the splits they picked by name before roles).
EXPECTED = {
    "scenes": {"membership": "matched", "shifted": "shifted"},
    "vlm": {"membership": "matched", "shifted": "shifted"},
    "vlm-video": {"membership": "matched", "shifted": "shifted"},
    "audio": {"membership": "matched"},
    "clip-identities": {"membership": "photos", "names": "queries", "controls": "calibration"},
    "clap-voices": {"membership": "recordings", "names": "queries", "controls": "calibration"},
}


def test_every_registered_testbed_declares_known_roles():
    specs = {s.name: s for s in list_testbeds()}
    assert set(specs) == set(EXPECTED)
    for name, spec in specs.items():
        assert spec.roles == EXPECTED[name], name
        assert set(spec.roles) <= set(ROLES) and declared_roles(name) == spec.roles


# the demo's testbeds come from the session's quick cache; the others are built here (seconds each)
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_quick_build_writes_its_registered_roles(name, quick_cache, tmp_path):
    spec = next(s for s in list_testbeds() if s.name == name)
    cache = quick_cache if spec.in_demo else tmp_path / "cache"
    tb = build_testbed(name, seed=0, quick=True, cache_dir=cache)
    manifest = json.loads((tb.root / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["roles"] == spec.roles
    assert set(manifest["roles"].values()) <= set(manifest["splits"])
    assert tb.roles == spec.roles
    for role, split in spec.roles.items():
        assert tb.split_for(role) == tb.splits[split] and tb.split_for(role).exists()
        assert tb.split_name(role) == split


def _scenes_copy(quick_cache, dest, edit):
    src = build_testbed("scenes", seed=0, quick=True, cache_dir=quick_cache).root
    shutil.copytree(src, dest)
    m = json.loads((dest / "manifest.json").read_text(encoding="utf-8"))
    edit(m)
    (dest / "manifest.json").write_text(json.dumps(m), encoding="utf-8")
    return dest


def test_manifest_without_roles_falls_back_to_the_registration(quick_cache, tmp_path):
    """A testbed cached before manifests had roles keeps working without a rebuild."""
    root = _scenes_copy(quick_cache, tmp_path / "old", lambda m: m.pop("roles"))
    tb = Handle.from_dir(root)
    assert tb.roles == EXPECTED["scenes"] and tb.split_for("membership") == root / "matched.jsonl"
    assert tb.split_for("names") is None and "matched_video" not in tb.roles.values()
    # a testbed nobody registered, without roles: none
    nameless = _scenes_copy(quick_cache, tmp_path / "unknown", lambda m: (m.pop("roles"), m.update(name="mine")))
    assert Handle.from_dir(nameless).roles == {}


def test_manifest_roles_win_and_bad_ones_are_one_line_errors(quick_cache, tmp_path):
    root = _scenes_copy(quick_cache, tmp_path / "own", lambda m: m.update(roles={"membership": "matched_video"}))
    assert Handle.from_dir(root).split_for("membership") == root / "matched_video.jsonl"
    for roles, message in (({"members": "matched"}, "unknown split role"),
                           ({"membership": "nope"}, "does not have"),
                           ({"membership": "matched", "shifted": "matched"}, "more than one role"),
                           (["matched"], "must map role names")):
        bad = _scenes_copy(quick_cache, tmp_path / f"bad-{len(list(tmp_path.iterdir()))}",
                           lambda m, r=roles: m.update(roles=r))
        with pytest.raises(InputError, match=message) as err:
            Handle.from_dir(bad)
        assert "manifest.json" in str(err.value) and "\n" not in str(err.value)


def test_unknown_roles_are_refused_at_registration(monkeypatch, tmp_path):
    monkeypatch.setattr(base, "_TESTBEDS", dict(base._TESTBEDS))
    with pytest.raises(ValueError, match="unknown split role.*matched"):
        register_testbed("typo", summary="x", roles={"matched": "matched"})
    with pytest.raises(ValueError, match="more than one role"):
        register_testbed("twice", summary="x", roles={"membership": "a", "shifted": "a"})
    assert "typo" not in base._TESTBEDS and "twice" not in base._TESTBEDS
    with pytest.raises(ValueError, match="unknown split role 'matched'"):
        Handle(name="t", root=tmp_path, target_kind=None, modalities=()).split_for("matched")


def test_attack_step_runs_on_the_split_whose_role_is_membership(tiny_dir, tmp_path):  # noqa: F811
    """Split names are the testbed's own: the step follows the role, and names its section by the split."""
    held_out = write_media_dataset(tmp_path / "a", n=6)
    other = write_media_dataset(tmp_path / "b", n=6, seed=1)
    tb = Handle(name="mine", root=tmp_path, target_kind="vlm", modalities=("text", "image"),
                 splits={"members-vs-held-out": held_out, "matched": other},
                 roles={"membership": "members-vs-held-out"}, targets={"target": tiny_dir("llava")})
    step = next(s for s in list_demo_steps() if s.name == "attack")
    out = step.run(tb, DemoContext(out_dir=tmp_path / "o", cache_dir=tmp_path / "c", quick=True))
    assert [section.name for section, _ in out] == ["mine/members-vs-held-out: score attacks"]
    assert out[0][0].dataset.path == str(held_out)


def test_umid_step_reads_names_controls_and_media_by_role(monkeypatch, tmp_path):
    """Any contrastive testbed with a `names` split gets the UMID step, whatever it and its splits
    are called; a CLAP target gets the demo's CLAP settings (by its kind, not the testbed's name)."""
    from mmia.umid import demo_step

    seen = {}

    def audit(queries, target, cfg, **kw):
        seen.update(queries=queries, cfg=cfg, **kw)
        return "audited"

    class Produced:
        section = type("S", (), {"notes": ""})()

    monkeypatch.setattr(demo_step, "audit_queries", audit)
    monkeypatch.setattr(demo_step, "to_results", lambda out, name, **kw: seen.update(name=name) or Produced())
    splits = {k: tmp_path / f"{k}.jsonl" for k in ("people", "strangers", "voices", "extra")}
    tb = Handle(name="my-voices", root=tmp_path, target_kind="clap", modalities=("audio", "text"), splits=splits,
                 roles={"names": "people", "controls": "strangers", "membership": "voices"},
                 targets={"target": tmp_path / "model"})
    ctx = DemoContext(out_dir=tmp_path, cache_dir=tmp_path / "cache", quick=False)
    assert demo_step.umid_demo_step(tb, ctx)
    assert (seen["queries"], seen["control_names"], seen["media"]) == (splits["people"], splits["strangers"],
                                                                      splits["voices"])
    assert seen["name"] == "my-voices: umid" and seen["control_limit"] == demo_step.DEMO_CLAP_CONTROL_NAMES
    assert seen["cfg"].restarts == demo_step.DEMO_CLAP["restarts"]
    assert demo_step.demo_settings("clip", False) == {}
    assert demo_step.demo_settings("clap", True) == demo_step.DEMO_QUICK
    # without a `names` split there is nothing to audit
    no_names = Handle(name="clap-voices", root=tmp_path, target_kind="clap", modalities=(), splits=splits,
                       roles={"membership": "voices"}, targets={"target": tmp_path / "model"})
    assert demo_step.umid_demo_step(no_names, ctx) == []
