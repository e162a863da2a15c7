"""The root fixes behind the corpus, each on its own: the bounded YAML reader, the output plan,
locked partial outputs and their sweep, the writer on a full disk, damaged frames in rendering,
keyframe bounds, provenance (metadata, watermark, C2PA), doctor and verify."""

from __future__ import annotations

import datetime
import os
import re
import subprocess
import sys
import time
from fractions import Fraction

import numpy as np
import pytest

from corpus.cases import _bomb_flow
from corpus.media import Media, bomb
from reenact_fx.cli import main
from reenact_fx.errors import MediaError, ParamError, ReenactError, clip


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    return Media(tmp_path_factory.mktemp("hardening-media"))


# ------------------------------------------------------------------------------------- YAML
def test_alias_bombs_deep_nesting_and_size_are_refused():
    from reenact_fx.config import safeyaml

    for text, words in ((bomb(), "alias"), ("a: " + _bomb_flow(), "alias"),
                        ("a: " + "[" * 5000 + "]" * 5000, "nested"), ("a: &x [*x]", "contains it"),
                        ("x: '" + "y" * (safeyaml.MAX_BYTES + 1) + "'", "too large")):
        with pytest.raises(safeyaml.YamlError, match=words) as e:   # (bench: milliseconds each)
            safeyaml.parse(text, "t.yaml")
        assert "t.yaml" in str(e.value) and len(str(e.value)) < 300
    assert safeyaml.parse("a: &x [1, 2]\nb: *x\n") == {"a": [1, 2], "b": [1, 2]}   # small aliases are fine


def test_every_yaml_reader_uses_the_bounded_loader(tmp_path):
    """No module reads YAML but safeyaml (a new reader would bypass the budget)."""
    import reenact_fx

    root = os.path.dirname(reenact_fx.__file__)
    offenders = []
    for folder, _, files in os.walk(root):
        for f in files:
            if f.endswith(".py") and f != "safeyaml.py":
                text = open(os.path.join(folder, f), encoding="utf-8").read()
                if re.search(r"(?<![A-Za-z_])yaml\.(safe_)?load\(", text):
                    offenders.append(f)
    assert not offenders
    from reenact_fx.evaluation.harness import ManifestError, load_manifest

    (tmp_path / "m.yaml").write_text("pairs: " + _bomb_flow())
    with pytest.raises(ManifestError, match="alias"):
        load_manifest(tmp_path / "m.yaml")


def test_messages_are_cut_to_a_readable_length():
    err = ReenactError("x" * 100_000, path="f.yaml")
    assert len(str(err)) < 700 and "more characters" in str(err)
    assert clip("short") == "short"


# ------------------------------------------------------------------------------------- keyframes
def test_keyframe_times_are_bounded():
    from reenact_fx.face.keyframes import MAX_TIME, Keyframes

    with pytest.raises(ParamError, match="100000"):
        Keyframes.parse({"keys": {"smile": [[0, 0], [100000, 1]]}})
    assert Keyframes.parse({"keys": {"smile": [[0, 0], [MAX_TIME, 1]]}}).duration() == MAX_TIME


# ------------------------------------------------------------------------------------- output plan
@pytest.mark.parametrize("name,codec,alpha,words", [
    ("", "h264", False, "empty"),
    ("o.mp4", "h264", True, "alpha"),
    ("o.mp4", "prores", False, ".mp4"),
    ("o.mp4", "ffv1", False, "ffv1"),
    ("o.avi", "h264", False, ".avi"),
    ("missing/o.mp4", "h264", False, "does not exist"),
    ("frames.mp4", "png", False, "folder"),
])
def test_output_plan_refuses(tmp_path, name, codec, alpha, words):
    from reenact_fx.pipeline.outputs import plan_output

    with pytest.raises(MediaError, match=words):
        plan_output(str(tmp_path / name) if name else "", codec, alpha=alpha)


def test_a_png_sequence_render_can_be_rendered_again(tmp_path):
    """A PNG sequence reenact-fx wrote (frames and its provenance record) may be replaced by the
    next render to the same folder, through the up-front check and the writer alike; a folder
    holding anything else is refused by both."""
    from reenact_fx.media import MediaWriter
    from reenact_fx.pipeline.outputs import plan_output

    out = tmp_path / "frames"
    frame = np.zeros((8, 8, 3), np.uint8)
    for _ in range(2):
        plan_output(str(out), "png")
        with MediaWriter(str(out), 8, 8, Fraction(25), codec="png",
                         provenance={"tool": "test"}) as w:
            w.write(frame)
    assert sorted(p.name for p in out.iterdir()) == ["frame_000000.png", "provenance.json"]
    (out / "notes.txt").write_text("mine")
    with pytest.raises(MediaError, match="not a PNG sequence"):
        plan_output(str(out), "png")
    with pytest.raises(MediaError, match="not a PNG sequence"):
        MediaWriter(str(out), 8, 8, Fraction(25), codec="png")


def test_output_plan_devices_inputs_and_extensions(tmp_path):
    import stat

    from reenact_fx.pipeline.outputs import plan_output

    dev = tmp_path / "dev"
    if os.geteuid() == 0:
        os.mknod(dev, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        with pytest.raises(MediaError, match="character device"):
            plan_output(str(dev), "h264")
    fifo = tmp_path / "f.mp4"
    os.mkfifo(fifo)
    with pytest.raises(MediaError, match="FIFO"):
        plan_output(str(fifo), "h264")
    src = tmp_path / "in.mp4"
    src.write_bytes(b"x")
    (tmp_path / "link.mp4").symlink_to(src)
    with pytest.raises(MediaError, match="overwrite an input"):
        plan_output(str(tmp_path / "link.mp4"), "h264", inputs=[str(src)])
    plan = plan_output(str(tmp_path / "noext"), "prores")
    assert plan.path.endswith("noext.mov") and "extension" in plan.warnings[0]
    plan.check_media(101, 100, str(src), audio_has_stream=False)
    assert not any("odd" in w for w in plan.warnings)          # prores takes odd sizes
    p2 = plan_output(str(tmp_path / "o.mp4"), "h264")
    p2.check_media(101, 100, None)
    assert any("4:4:4" in w for w in p2.warnings) and any("no driver" in w for w in p2.warnings)


# ------------------------------------------------------------------------------------- partials
def test_a_live_partial_is_kept_and_a_dead_ones_is_swept(tmp_path):
    from reenact_fx.media.partials import GRACE, Partial, sweep

    final = str(tmp_path / "out.mp4")
    mine = Partial(final, ".mp4")
    code = ("import sys, os; sys.path.insert(0, sys.argv[2]);"
            "from reenact_fx.media.partials import Partial;"
            "p = Partial(sys.argv[1], '.mp4'); print(p.path, flush=True); os._exit(0)")  # dies holding it
    root = os.path.dirname(os.path.dirname(os.path.abspath(__import__("reenact_fx").__file__)))
    dead = subprocess.run([sys.executable, "-c", code, final, root], capture_output=True,
                          text=True).stdout.strip()
    old_style = tmp_path / ".out.partial-0123abcd.mp4"     # from a version without the lock
    old_style.write_bytes(b"old")
    os.utime(old_style, (time.time() - 7200, time.time() - 7200))
    time.sleep(GRACE + 0.2)
    removed = sweep(str(tmp_path))
    assert os.path.basename(dead) in removed and old_style.name in removed
    assert os.path.exists(mine.path), "a live render's partial is left alone"
    mine.remove()


def test_full_disk_is_a_clear_error_naming_the_file(tmp_path):
    from reenact_fx.media import MediaWriter

    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    full = tmp_path / "full"
    full.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(full)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        rng = np.random.default_rng(0)
        for codec, name in (("png", "frames"), ("ffv1", "o.mkv")):
            out = full / name
            with pytest.raises(MediaError, match="no space left") as e:
                with MediaWriter(str(out), 128, 128, Fraction(25), codec=codec) as w:
                    for _ in range(40):
                        w.write(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8))
            assert name in str(e.value)
            assert not list(full.iterdir()), "nothing is left behind"
    finally:
        subprocess.run(["umount", "-l", str(full)])


# ------------------------------------------------------------------------------------- damage
def test_damaged_packets_are_skipped_in_rendering_with_the_frames_named(media, tmp_path):
    from reenact_fx.pipeline.effect import Effect

    with Effect(params={"output": {"audio": "none"}}, cache=str(tmp_path / "c")) as fx:
        a = fx.analyze(str(media.corrupt_middle), str(media.driver))
        out = fx.render(str(tmp_path / "o.mp4"))
    assert os.path.getsize(out) > 0
    assert any("corrupt-middle.mp4" in w and "frame(s)" in w for w in fx.warnings + a.notes), fx.warnings


# ------------------------------------------------------------------------------------- provenance
def _test_chain(folder):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "reenact-fx tests")])

    def usage(**on):
        keys = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
                "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")
        return x509.KeyUsage(**{k: on.get(k, False) for k in keys})

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    base = lambda subj, pub: (x509.CertificateBuilder().subject_name(subj).public_key(pub)  # noqa: E731
                              .serial_number(x509.random_serial_number())
                              .not_valid_before(now - datetime.timedelta(days=1))
                              .not_valid_after(now + datetime.timedelta(days=30)))
    ca = (base(name("test CA"), ca_key.public_key()).issuer_name(name("test CA"))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(usage(key_cert_sign=True, crl_sign=True), critical=True)
          .sign(ca_key, hashes.SHA256()))
    ee = (base(name("signer"), key.public_key()).issuer_name(ca.subject)
          .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
          .add_extension(usage(digital_signature=True), critical=True)
          .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
          .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (folder / "key.pem").write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    (folder / "chain.pem").write_bytes(ee.public_bytes(pem) + ca.public_bytes(pem))
    return folder / "key.pem", folder / "chain.pem"


def test_every_render_says_it_is_synthetic_and_verify_reads_it(media, tmp_path, capsys):
    from reenact_fx import provenance

    out = tmp_path / "o.mp4"
    assert main(["render", "-t", str(media.face), "-d", str(media.driver), "-o", str(out), "-q",
                 "--watermark", "--cache-dir", str(tmp_path / "c")]) == 0
    rec = provenance.read(str(out))["metadata"]
    assert rec["synthetic"] and rec["tool"] == "reenact-fx"
    assert rec["sources"]["target"]["sha256"] == provenance.file_sha256(str(media.face))
    assert rec["sources"]["driver"]["sha256"] == provenance.file_sha256(str(media.driver))
    capsys.readouterr()
    assert main(["verify", str(out)]) == 0
    assert "synthetic: True" in capsys.readouterr().out
    assert main(["verify", str(media.driver)]) == 1      # a camera clip says nothing of the kind
    # the watermark is visible: the lower right corner differs from an unmarked render
    import av

    plain = tmp_path / "plain.mp4"
    assert main(["render", "-t", str(media.face), "-d", str(media.driver), "-o", str(plain), "-q",
                 "--cache-dir", str(tmp_path / "c")]) == 0
    frames = []
    for p in (out, plain):
        with av.open(str(p)) as c:
            frames.append(next(c.decode(video=0)).to_ndarray(format="rgb24").astype(int))
    h, w = frames[0].shape[:2]
    corner = (slice(h - h // 8, h), slice(w - w // 2, w))
    assert np.abs(frames[0][corner] - frames[1][corner]).mean() > 10
    assert np.abs(frames[0][: h // 2] - frames[1][: h // 2]).mean() < 1


def test_c2pa_manifest_is_signed_and_verified_offline(media, tmp_path, capsys):
    pytest.importorskip("c2pa")
    pytest.importorskip("cryptography")
    key, chain = _test_chain(tmp_path)
    out = tmp_path / "signed.mp4"
    assert main(["render", "-t", str(media.face), "-d", str(media.driver), "-o", str(out), "-q",
                 "--c2pa-key", str(key), "--c2pa-cert", str(chain),
                 "--cache-dir", str(tmp_path / "c")]) == 0
    capsys.readouterr()
    assert main(["verify", str(out)]) == 0
    text = capsys.readouterr().out
    assert "C2PA: Valid manifest by reenact-fx" in text, text
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    rc = main(["render", "-t", str(media.face), "-d", str(media.driver), "-o", str(tmp_path / "x.mp4"),
               "-q", "--c2pa-key", str(bad), "--cache-dir", str(tmp_path / "c2")])
    assert rc == 2 and "bad.pem" in capsys.readouterr().err
    assert not (tmp_path / "c2").exists(), "the key is checked before any tracking"


# ------------------------------------------------------------------------------------- doctor
def test_doctor_reports_every_check(tmp_path, capsys):
    rc = main(["doctor", "--cache-dir", str(tmp_path / "cache"), "--socket", str(tmp_path / "s.sock")])
    out = capsys.readouterr().out
    for item in ("face models", "codecs", "onnxruntime", "plugins", "cache", "service"):
        assert item in out, out
    assert rc == 0, out
