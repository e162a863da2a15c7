"""YAML presets: validation messages, round trips, the search path, and every shipped preset renders."""

from __future__ import annotations

import numpy as np
import pytest

from reenact_fx.face import geometry as g
from reenact_fx.config import presets
from reenact_fx.cli import main
from reenact_fx.pipeline.effect import Effect
from reenact_fx.config.presets import PresetError


def write(tmp_path, text, name="look.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("text,key,words", [
    ("version: 1\nparamz: {}\n", "paramz", ["unknown key", "did you mean 'params'"]),
    ("version: 1\nparams:\n  delta: {expresion: 1.2}\n", "params.delta.expresion",
     ["unknown parameter", "did you mean 'expression'"]),
    ("version: 1\nparams:\n  delta: {expression: high}\n", "params.delta.expression",
     ["expected float", "found 'high'"]),
    ("version: 1\nparams:\n  delta: {expression: 9}\n", "params.delta.expression",
     ["expected a value in [0.0, 3.0]", "found 9.0"]),
    ("version: 1\ncomponents: {converter: deltaa}\n", "components.converter",
     ["expected one of", "found 'deltaa'", "did you mean 'delta'"]),
    ("version: 1\ncomponents: {convertor: delta}\n", "components.convertor",
     ["unknown component kind", "did you mean 'converter'"]),
    ("version: 2\n", "version", ["newer than this reenact-fx reads (1)", "upgrade"]),
    ("version: 1\nparams:\n  savgol: {window: 0.3}\n", "params.savgol",
     ["no component or stage of this preset is named 'savgol'"]),
    ("version: 1\nparams:\n  output: {codec: prores422}\n", "params.output.codec",
     ["expected one of", "did you mean 'prores'"]),
])
def test_validation_errors_name_file_key_expected_and_found(tmp_path, text, key, words):
    p = write(tmp_path, text)
    with pytest.raises(PresetError) as e:
        presets.load(str(p))
    msg = str(e.value)
    assert str(p) in msg and f"key '{key}'" in msg, msg
    for w in words:
        assert w in msg, msg


def test_yaml_is_loaded_safely_and_syntax_errors_point_at_the_line(tmp_path):
    evil = write(tmp_path, "version: 1\ndescription: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(PresetError, match="not valid YAML"):
        presets.load(str(evil))
    broken = write(tmp_path, "version: 1\nparams: {delta: [\n", "broken.yaml")
    with pytest.raises(PresetError, match=r"broken.yaml.*line \d+"):
        presets.load(str(broken))


def test_save_load_round_trip_keeps_every_setting(tmp_path):
    s = presets.load("subtle").overridden({"smoother": "savgol"},
                                          {"delta": {"expression": "0.8"}, "savgol": {"order": 3}})
    path = presets.save(s, str(tmp_path / "mine.yaml"))
    back = presets.load(path)
    assert back.to_data() == s.to_data()
    data = back.to_data()
    assert data["components"]["smoother"] == "savgol"
    assert data["params"]["delta"]["expression"] == 0.8 and data["params"]["delta"]["pose"] == 0.5
    assert data["params"]["savgol"]["order"] == 3


def test_cli_save_then_render_uses_the_saved_look(tmp_path, capsys):
    path = tmp_path / "look.yaml"
    assert main(["presets", "save", str(path), "--preset", "exaggerated", "--set",
                 "delta.pose=0.3", "--codec", "ffv1", "--description", "mine"]) == 0
    s = presets.load(str(path))
    assert s.description == "mine"
    fx = Effect(**s.effect_kwargs())
    assert fx.converter.p["expression"] == 1.6 and fx.converter.p["pose"] == 0.3
    assert fx.settings["output"]["codec"] == "ffv1"
    assert main(["presets", "validate", str(path)]) == 0
    bad = write(tmp_path, "version: 1\nparams:\n  delta: {expresion: 1}\n", "bad.yaml")
    assert main(["presets", "validate", str(bad)]) == 2
    assert "did you mean 'expression'" in capsys.readouterr().err


def test_search_path_user_presets_override_shipped(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("REENACT_FX_PRESET_PATH", str(tmp_path))
    write(tmp_path, "version: 1\ndescription: my subtle\nparams:\n  delta: {expression: 0.3}\n",
          "subtle.yaml")
    write(tmp_path, "version: 1\ndescription: studio\n", "studio.yaml")
    names = presets.available()
    assert names["subtle"] == tmp_path / "subtle.yaml" and "studio" in names
    assert presets.load("subtle").params["delta"]["expression"] == 0.3
    assert main(["presets", "list"]) == 0
    out = capsys.readouterr().out
    assert "studio" in out and "broadcast" in out
    with pytest.raises(PresetError, match="did you mean 'studio'"):
        presets.load("studoi")


def test_shipped_presets_all_validate():
    shipped = {p.stem for p in presets.shipped_dir().glob("*.yaml")}
    assert {"natural", "subtle", "exaggerated", "lips-only", "broadcast"} <= shipped
    for name in shipped:
        s = presets.load(str(presets.shipped_dir() / f"{name}.yaml"))
        assert s.description
        Effect(**s.effect_kwargs())


@pytest.fixture(scope="module")
def rendered(faces, tmp_path_factory):
    """Every shipped preset rendered on s9 driven by d0, re-tracked."""
    from conftest import read_video
    from test_effect import retrack

    out = {}
    folder = tmp_path_factory.mktemp("presets")
    for path in sorted(presets.shipped_dir().glob("*.yaml")):
        s = presets.load(str(path))
        ext = ".mov" if s.params.get("output", {}).get("codec", "h264").startswith("prores") else ".mp4"
        with Effect(**s.effect_kwargs()) as fx:
            a = fx.analyze(faces / "source/s9.jpg", faces / "driving/d0.mp4")
            file = fx.render(str(folder / (path.stem + ext)))
        frames = read_video(file)
        out[path.stem] = (a, frames, retrack(frames, a.size))
        if path.stem == "broadcast":
            import av

            with av.open(file) as c:
                assert c.streams.video[0].codec_context.name == "prores"
                assert "a" in next(iter(c.decode(video=0))).format.name   # alpha
    return out


def test_every_shipped_preset_renders(rendered):
    for name, (a, frames, track) in rendered.items():
        assert len(frames) == a.frame_count == 78, name
        assert track.valid.mean() > 0.95, name


def test_strength_presets_order_the_mouth_motion(rendered):
    ptp = {n: np.ptp(g.mouth_opening(rendered[n][2].points)) for n in ("subtle", "natural",
                                                                      "exaggerated")}
    assert ptp["subtle"] < ptp["natural"] < ptp["exaggerated"], ptp


def test_lips_only_moves_the_mouth_not_the_eyes_or_head(rendered):
    a, _, lips = rendered["lips-only"]
    _, _, full = rendered["natural"]
    still = a.target_track.points[0]
    head = lambda p: p[:, list(g.RIGID), :2].mean(1)   # noqa: E731
    assert np.ptp(g.mouth_opening(lips.points)) > 0.6 * np.ptp(g.mouth_opening(full.points))
    assert np.abs(head(lips.points) - still[list(g.RIGID), :2].mean(0)).max() < 3.0
    assert np.abs(head(full.points) - still[list(g.RIGID), :2].mean(0)).max() > 5.0
    # eyes and brows stay where the target has them
    upper = list(g.RIGHT_EYE + g.LEFT_EYE + g.RIGHT_BROW + g.LEFT_BROW)
    moved = lambda p: np.linalg.norm(p[:, upper, :2] - still[upper, :2], axis=-1).mean()  # noqa: E731
    assert moved(lips.points) < 2.0 and moved(lips.points) < 0.5 * moved(full.points)




def test_cli_preset_with_set_override(faces, tmp_path):
    out = tmp_path / "o.mp4"
    assert main(["render", "-t", str(faces / "source/s9.jpg"), "-d", str(faces / "driving/d0.mp4"),
                 "-o", str(out), "--preset", "lips-only", "--set", "delta.expression=0.5",
                 "--audio", "none", "-q"]) == 0
    assert out.stat().st_size > 0
