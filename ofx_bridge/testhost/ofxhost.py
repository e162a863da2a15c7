"""A minimal OFX host in Python ctypes: enough of the OpenFX C ABI to load a plugin binary, describe
it, create an instance in a context and render frames from any number of threads.

It is the project's test host for the ReenactFX bundle (no OFX host ships with Debian): images are
numpy arrays laid out as OFX wants them (bottom-up, any row bytes, 8-bit, 16-bit or float RGBA/RGB),
messages the plugin posts are recorded in ``Host.messages``.

    host = Host("build/ReenactFX.ofx.bundle")
    inst = host.instance("general", source=Clip(frames, fps=25), driver=Clip(...))
    inst.set("ctl_smile", 0.5)
    rgb = inst.render(12)                        # (H, W, 3) uint8 top-down
"""

from __future__ import annotations

import ctypes as C
import glob
import itertools
import os
import threading
from typing import Any

import numpy as np

OK, FAILED, UNKNOWN, BAD_HANDLE, BAD_INDEX, REPLY_DEFAULT = 0, 1, 3, 9, 10, 14
DEPTHS = {"OfxBitDepthByte": np.uint8, "OfxBitDepthShort": np.uint16, "OfxBitDepthFloat": np.float32}

vp, cp, ci, cd = C.c_void_p, C.c_char_p, C.c_int, C.c_double
F = C.CFUNCTYPE


class OfxRectD(C.Structure):
    _fields_ = [("x1", cd), ("y1", cd), ("x2", cd), ("y2", cd)]


MAIN = F(ci, cp, vp, vp, vp)
FETCH = F(vp, vp, cp, ci)


class OfxHostStruct(C.Structure):
    _fields_ = [("host", vp), ("fetchSuite", FETCH)]


class OfxPluginStruct(C.Structure):
    _fields_ = [("pluginApi", cp), ("apiVersion", ci), ("pluginIdentifier", cp),
                ("pluginVersionMajor", C.c_uint), ("pluginVersionMinor", C.c_uint),
                ("setHost", F(None, C.POINTER(OfxHostStruct))), ("mainEntry", MAIN)]


def _suite(name, fields):
    return type(name, (C.Structure,), {"_fields_": fields})


PropertySuite = _suite("PropertySuite", [
    ("propSetPointer", F(ci, vp, cp, ci, vp)), ("propSetString", F(ci, vp, cp, ci, cp)),
    ("propSetDouble", F(ci, vp, cp, ci, cd)), ("propSetInt", F(ci, vp, cp, ci, ci)),
    ("propSetPointerN", F(ci, vp, cp, ci, vp)), ("propSetStringN", F(ci, vp, cp, ci, vp)),
    ("propSetDoubleN", F(ci, vp, cp, ci, vp)), ("propSetIntN", F(ci, vp, cp, ci, vp)),
    ("propGetPointer", F(ci, vp, cp, ci, vp)), ("propGetString", F(ci, vp, cp, ci, vp)),
    ("propGetDouble", F(ci, vp, cp, ci, vp)), ("propGetInt", F(ci, vp, cp, ci, vp)),
    ("propGetPointerN", F(ci, vp, cp, ci, vp)), ("propGetStringN", F(ci, vp, cp, ci, vp)),
    ("propGetDoubleN", F(ci, vp, cp, ci, vp)), ("propGetIntN", F(ci, vp, cp, ci, vp)),
    ("propReset", F(ci, vp, cp)), ("propGetDimension", F(ci, vp, cp, vp))])
EffectSuite = _suite("EffectSuite", [
    ("getPropertySet", F(ci, vp, vp)), ("getParamSet", F(ci, vp, vp)),
    ("clipDefine", F(ci, vp, cp, vp)), ("clipGetHandle", F(ci, vp, cp, vp, vp)),
    ("clipGetPropertySet", F(ci, vp, vp)), ("clipGetImage", F(ci, vp, cd, vp, vp)),
    ("clipReleaseImage", F(ci, vp)), ("clipGetRegionOfDefinition", F(ci, vp, cd, vp)),
    ("abort", F(ci, vp)), ("imageMemoryAlloc", F(ci, vp, C.c_size_t, vp)),
    ("imageMemoryFree", F(ci, vp)), ("imageMemoryLock", F(ci, vp, vp)),
    ("imageMemoryUnlock", F(ci, vp))])
# the variadic getters receive their pointer arguments in the same registers as fixed ones
# (x86-64 System V), so a fixed prototype reads them correctly
ParamSuite = _suite("ParamSuite", [
    ("paramDefine", F(ci, vp, cp, cp, vp)), ("paramGetHandle", F(ci, vp, cp, vp, vp)),
    ("paramSetGetPropertySet", F(ci, vp, vp)), ("paramGetPropertySet", F(ci, vp, vp)),
    ("paramGetValue", F(ci, vp, vp, vp, vp)), ("paramGetValueAtTime", F(ci, vp, cd, vp, vp, vp)),
    ("paramGetDerivative", F(ci, vp, cd, vp)), ("paramGetIntegral", F(ci, vp, cd, cd, vp)),
    ("paramSetValue", F(ci, vp, vp)), ("paramSetValueAtTime", F(ci, vp, cd, vp)),
    ("paramGetNumKeys", F(ci, vp, vp)), ("paramGetKeyTime", F(ci, vp, C.c_uint, vp)),
    ("paramGetKeyIndex", F(ci, vp, cd, ci, vp)), ("paramDeleteKey", F(ci, vp, cd)),
    ("paramDeleteAllKeys", F(ci, vp)), ("paramCopy", F(ci, vp, vp, cd, vp)),
    ("paramEditBegin", F(ci, vp, cp)), ("paramEditEnd", F(ci, vp))])
MessageSuite = _suite("MessageSuite", [("message", F(ci, vp, cp, cp, cp, cp))])
MessageSuiteV2 = _suite("MessageSuiteV2", [
    ("message", F(ci, vp, cp, cp, cp, cp)), ("setPersistentMessage", F(ci, vp, cp, cp, cp, cp)),
    ("clearPersistentMessage", F(ci, vp))])


class Props:
    """A property set: name -> list of values; strings handed out stay alive with the set."""

    def __init__(self, **values):
        self.values: dict[str, list] = {k: (list(v) if isinstance(v, (list, tuple)) else [v])
                                        for k, v in values.items()}
        self.keep: dict[tuple[str, int], Any] = {}

    def set(self, name, index, value):
        vals = self.values.setdefault(name, [])
        while len(vals) <= index:
            vals.append(None)
        vals[index] = value

    def get(self, name, index=0, default=None):
        vals = self.values.get(name)
        return default if vals is None or index >= len(vals) else vals[index]


class Clip:
    """Frames a host would hand over: a list of RGB uint8 (H, W, 3) arrays (or a callable t ->
    array), shown at frames start..start+len-1."""

    def __init__(self, frames, fps: float = 25.0, start: int = 0, depth: str = "OfxBitDepthByte",
                 components: str = "OfxImageComponentRGBA", layout: str = "bottom-up",
                 pixel_aspect: float = 1.0, connected: bool = True, offset: float = 0.0):
        self.frames, self.fps, self.start = frames, fps, start
        self.offset = offset   # added to float RGB: values between the 8-bit steps
        self.converted: dict[int, np.ndarray] = {}
        self.depth, self.components, self.layout = depth, components, layout
        self.pixel_aspect, self.connected = pixel_aspect, connected

    def rgb_at(self, t: float) -> np.ndarray:
        i = min(max(int(round(t)) - self.start, 0), len(self.frames) - 1)
        return self.frames[i]


def to_ofx(rgb: np.ndarray, depth: str, components: str, alpha: np.ndarray | None = None):
    """Top-down RGB uint8 -> a bottom-up OFX pixel array of the depth and components."""
    dtype = DEPTHS[depth]
    n = 4 if components.endswith("RGBA") else 3
    px = rgb.astype(np.float32) / 255.0
    if n == 4:
        a = np.ones(rgb.shape[:2] + (1,), np.float32) if alpha is None else alpha[..., None]
        px = np.concatenate([px, a], axis=2)
    if dtype == np.uint8:
        px = np.round(px * 255).astype(np.uint8)
    elif dtype == np.uint16:
        px = np.round(px * 65535).astype(np.uint16)
    return np.ascontiguousarray(px[::-1])   # row 0 = the bottom row


def from_ofx(px: np.ndarray) -> np.ndarray:
    """A bottom-up OFX pixel array -> top-down RGB uint8."""
    rgb = px[::-1, :, :3]
    if px.dtype == np.uint8:
        return np.ascontiguousarray(rgb)
    scale = 65535.0 if px.dtype == np.uint16 else 1.0
    return np.clip(np.round(rgb.astype(np.float64) / scale * 255), 0, 255).astype(np.uint8)


class Host:
    def __init__(self, bundle: str, message_v2: bool = False):
        so = glob.glob(os.path.join(bundle, "Contents", "Linux-x86-64", "*.ofx"))
        if not so:
            raise FileNotFoundError(f"{bundle}: no Contents/Linux-x86-64/*.ofx")
        self.lib = C.CDLL(so[0])
        self.lib.OfxGetPlugin.restype = C.POINTER(OfxPluginStruct)
        self.lib.OfxGetNumberOfPlugins.restype = ci
        self.objects: dict[int, Any] = {}
        self._ids = itertools.count(0x1000)
        self.lock = threading.Lock()
        self.messages: list[tuple[str, str]] = []   # every message posted (persistent ones too)
        self.persistent: dict[int, tuple[str, str]] = {}   # effect handle -> its current one
        self.host_props = self._new(Props(OfxPropName="org.reenactfx.testhost",
                                          OfxPropLabel="reenact-fx test host"))
        self._suites = {("OfxPropertySuite", 1): self._property_suite(),
                        ("OfxImageEffectSuite", 1): self._effect_suite(),
                        ("OfxParameterSuite", 1): self._param_suite(),
                        ("OfxMessageSuite", 1): self._message_suite()}
        if message_v2:
            self._suites[("OfxMessageSuite", 2)] = self._message_suite_v2()
        self._fetch = FETCH(self._fetch_suite)
        self.host_struct = OfxHostStruct(self.host_props, self._fetch)
        n = self.lib.OfxGetNumberOfPlugins()
        if n < 1:
            raise RuntimeError("the binary declares no plugin")
        self.plugin = self.lib.OfxGetPlugin(0).contents
        if self.plugin.pluginApi != b"OfxImageEffectPluginAPI" or self.plugin.apiVersion != 1:
            raise RuntimeError(f"not an image effect plugin: {self.plugin.pluginApi}")
        self.plugin.setHost(C.pointer(self.host_struct))
        self.descriptor = self._new(Effect(self, "descriptor"))
        self.call("OfxActionLoad", None)
        self.call("OfxActionDescribe", self.descriptor)
        self.contexts: dict[str, Effect] = {}

    # ---------------------------------------------------------------- plumbing
    def _new(self, obj) -> int:
        with self.lock:
            h = next(self._ids)
            self.objects[h] = obj
        obj.handle = h
        return h

    def obj(self, h):
        return self.objects.get(h)

    def call(self, action: str, handle, in_args: Props | None = None, out_args: Props | None = None):
        ih = self._new(in_args) if in_args is not None else None
        oh = self._new(out_args) if out_args is not None else None
        try:
            return self.plugin.mainEntry(action.encode(), handle, ih, oh)
        finally:
            with self.lock:
                for h in (ih, oh):
                    if h is not None:
                        self.objects.pop(h, None)

    def _fetch_suite(self, host, name, version):
        suite = self._suites.get((name.decode(), version))
        return C.cast(C.pointer(suite), vp).value if suite is not None else None

    # ---------------------------------------------------------------- properties
    def _property_suite(self):
        def setter(conv):
            def f(h, name, i, v):
                ps = self.obj(h)
                if not isinstance(ps, Props):
                    return BAD_HANDLE
                ps.set(name.decode(), i, conv(v))
                return OK
            return f

        def setter_n(ctype, conv):
            def f(h, name, n, arr):
                ps = self.obj(h)
                if not isinstance(ps, Props):
                    return BAD_HANDLE
                a = C.cast(arr, C.POINTER(ctype))
                ps.values[name.decode()] = [conv(a[i]) for i in range(n)]
                return OK
            return f

        def getter(kind):
            def f(h, name, i, out):
                ps = self.obj(h)
                if not isinstance(ps, Props):
                    return BAD_HANDLE
                key = name.decode()
                if key not in ps.values:
                    return UNKNOWN
                v = ps.get(key, i)
                if v is None:
                    return BAD_INDEX
                self._write(ps, key, i, kind, v, out, 0)
                return OK
            return f

        def getter_n(kind):
            def f(h, name, n, out):
                ps = self.obj(h)
                if not isinstance(ps, Props):
                    return BAD_HANDLE
                key = name.decode()
                if key not in ps.values or len(ps.values[key]) < n:
                    return UNKNOWN
                for i in range(n):
                    self._write(ps, key, i, kind, ps.values[key][i], out, i)
                return OK
            return f

        def reset(h, name):
            return OK

        def dimension(h, name, out):
            ps = self.obj(h)
            if not isinstance(ps, Props):
                return BAD_HANDLE
            C.cast(out, C.POINTER(ci))[0] = len(ps.values.get(name.decode(), []))
            return OK

        s = PropertySuite
        f = {n: t for n, t in s._fields_}
        self._prop_funcs = dict(
            propSetPointer=setter(lambda v: v), propSetString=setter(lambda v: v.decode()),
            propSetDouble=setter(float), propSetInt=setter(int),
            propSetPointerN=setter_n(vp, lambda v: v), propSetStringN=setter_n(cp, lambda v: v.decode()),
            propSetDoubleN=setter_n(cd, float), propSetIntN=setter_n(ci, int),
            propGetPointer=getter("p"), propGetString=getter("s"), propGetDouble=getter("d"),
            propGetInt=getter("i"), propGetPointerN=getter_n("p"), propGetStringN=getter_n("s"),
            propGetDoubleN=getter_n("d"), propGetIntN=getter_n("i"), propReset=reset,
            propGetDimension=dimension)
        self._prop_cfuncs = {k: f[k](v) for k, v in self._prop_funcs.items()}
        return s(**self._prop_cfuncs)

    def _write(self, ps: Props, key, i, kind, v, out, slot):
        if kind == "s":
            buf = ps.keep.get((key, i))
            if buf is None or buf.value != str(v).encode():
                buf = ps.keep[(key, i)] = C.create_string_buffer(str(v).encode())
            C.cast(out, C.POINTER(vp))[slot] = C.cast(buf, vp).value
        elif kind == "p":
            C.cast(out, C.POINTER(vp))[slot] = v
        elif kind == "d":
            C.cast(out, C.POINTER(cd))[slot] = float(v)
        else:
            C.cast(out, C.POINTER(ci))[slot] = int(v)

    # ---------------------------------------------------------------- image effects
    def _effect_suite(self):
        def out_handle(ptr, h):
            if ptr:
                C.cast(ptr, C.POINTER(vp))[0] = h

        def get_props(e, out):
            eff = self.obj(e)
            if not isinstance(eff, Effect):
                return BAD_HANDLE
            out_handle(out, eff.props.handle)
            return OK

        def get_params(e, out):
            eff = self.obj(e)
            if not isinstance(eff, Effect):
                return BAD_HANDLE
            out_handle(out, eff.params.handle)
            return OK

        def clip_define(e, name, out):
            eff = self.obj(e)
            if not isinstance(eff, Effect):
                return BAD_HANDLE
            clip = eff.define_clip(name.decode())
            out_handle(out, clip.props.handle)
            return OK

        def clip_get_handle(e, name, out, out_props):
            eff = self.obj(e)
            if not isinstance(eff, Effect) or name.decode() not in eff.clips:
                return UNKNOWN
            clip = eff.clips[name.decode()]
            out_handle(out, clip.handle)
            out_handle(out_props, clip.props.handle)
            return OK

        def clip_props(c, out):
            clip = self.obj(c)
            if not isinstance(clip, ClipInstance):
                return BAD_HANDLE
            out_handle(out, clip.props.handle)
            return OK

        def clip_get_image(c, t, region, out):
            clip = self.obj(c)
            if not isinstance(clip, ClipInstance):
                return BAD_HANDLE
            img = clip.image(t)
            if img is None:
                return FAILED
            out_handle(out, self._new(img))
            return OK

        def clip_release(h):
            with self.lock:
                img = self.objects.pop(h, None)
            if isinstance(img, Image):
                img.released = True
                return OK
            return BAD_HANDLE

        def clip_rod(c, t, out):
            clip = self.obj(c)
            if not isinstance(clip, ClipInstance):
                return BAD_HANDLE
            w, h = clip.size()
            C.cast(out, C.POINTER(OfxRectD))[0] = OfxRectD(0, 0, w, h)
            return OK

        self._effect_funcs = dict(
            getPropertySet=get_props, getParamSet=get_params, clipDefine=clip_define,
            clipGetHandle=clip_get_handle, clipGetPropertySet=clip_props,
            clipGetImage=clip_get_image, clipReleaseImage=clip_release,
            clipGetRegionOfDefinition=clip_rod, abort=lambda e: 0,
            imageMemoryAlloc=lambda *a: FAILED, imageMemoryFree=lambda *a: FAILED,
            imageMemoryLock=lambda *a: FAILED, imageMemoryUnlock=lambda *a: FAILED)
        f = {n: t for n, t in EffectSuite._fields_}
        self._effect_cfuncs = {k: f[k](v) for k, v in self._effect_funcs.items()}
        return EffectSuite(**self._effect_cfuncs)

    # ---------------------------------------------------------------- parameters
    def _param_suite(self):
        def define(ps, ptype, name, out):
            pset = self.obj(ps)
            if not isinstance(pset, ParamSet):
                return BAD_HANDLE
            p = pset.define(ptype.decode(), name.decode())
            if p is None:
                return 6   # kOfxStatErrExists
            if out:
                C.cast(out, C.POINTER(vp))[0] = p.props.handle
            return OK

        def get_handle(ps, name, out, out_props):
            pset = self.obj(ps)
            if not isinstance(pset, ParamSet):
                return BAD_HANDLE
            p = pset.params.get(name.decode())
            if p is None:
                return UNKNOWN
            C.cast(out, C.POINTER(vp))[0] = p.handle
            if out_props:
                C.cast(out_props, C.POINTER(vp))[0] = p.props.handle
            return OK

        def value_at(ph, t, out, b=None, c=None):
            p = self.obj(ph)
            if not isinstance(p, Param):
                return BAD_HANDLE
            v = p.value_at(t)
            if p.type == "OfxParamTypeDouble":
                C.cast(out, C.POINTER(cd))[0] = float(v)
            elif p.type == "OfxParamTypeString":
                buf = p.props.keep.get(("value", 0))
                if buf is None or buf.value != str(v).encode():
                    buf = p.props.keep[("value", 0)] = C.create_string_buffer(str(v).encode())
                C.cast(out, C.POINTER(vp))[0] = C.cast(buf, vp).value
            else:
                C.cast(out, C.POINTER(ci))[0] = int(v)
            return OK

        def num_keys(ph, out):
            p = self.obj(ph)
            if not isinstance(p, Param):
                return BAD_HANDLE
            C.cast(out, C.POINTER(C.c_uint))[0] = len(p.keys)
            return OK

        def set_get_props(ps, out):
            pset = self.obj(ps)
            C.cast(out, C.POINTER(vp))[0] = pset.props.handle
            return OK

        def param_props(ph, out):
            p = self.obj(ph)
            if not isinstance(p, Param):
                return BAD_HANDLE
            C.cast(out, C.POINTER(vp))[0] = p.props.handle
            return OK

        self._param_funcs = dict(
            paramDefine=define, paramGetHandle=get_handle, paramSetGetPropertySet=set_get_props,
            paramGetPropertySet=param_props,
            paramGetValue=lambda ph, a, b, c: value_at(ph, 0.0, a),
            paramGetValueAtTime=lambda ph, t, a, b, c: value_at(ph, t, a),
            paramGetDerivative=lambda *a: FAILED, paramGetIntegral=lambda *a: FAILED,
            paramSetValue=lambda *a: FAILED, paramSetValueAtTime=lambda *a: FAILED,
            paramGetNumKeys=num_keys, paramGetKeyTime=lambda *a: FAILED,
            paramGetKeyIndex=lambda *a: FAILED, paramDeleteKey=lambda *a: FAILED,
            paramDeleteAllKeys=lambda *a: FAILED, paramCopy=lambda *a: FAILED,
            paramEditBegin=lambda *a: OK, paramEditEnd=lambda *a: OK)
        f = {n: t for n, t in ParamSuite._fields_}
        self._param_cfuncs = {k: f[k](v) for k, v in self._param_funcs.items()}
        return ParamSuite(**self._param_cfuncs)

    def _message_suite(self):
        def message(handle, mtype, mid, fmt, arg):
            text = arg.decode(errors="replace") if fmt == b"%s" and arg else \
                (fmt or b"").decode(errors="replace")
            with self.lock:
                self.messages.append((mtype.decode(), text))
            return OK

        self._message_cfunc = MessageSuite._fields_[0][1](message)
        return MessageSuite(message=self._message_cfunc)

    def _message_suite_v2(self):
        def persistent(handle, mtype, mid, fmt, arg):
            text = arg.decode(errors="replace") if fmt == b"%s" and arg else \
                (fmt or b"").decode(errors="replace")
            with self.lock:
                self.messages.append((mtype.decode(), text))
                self.persistent[handle] = (mtype.decode(), text)
            return OK

        def clear(handle):
            with self.lock:
                self.persistent.pop(handle, None)
            return OK

        f = {n: t for n, t in MessageSuiteV2._fields_}
        self._message2_cfuncs = {"message": self._message_cfunc,
                                 "setPersistentMessage": f["setPersistentMessage"](persistent),
                                 "clearPersistentMessage": f["clearPersistentMessage"](clear)}
        return MessageSuiteV2(**self._message2_cfuncs)

    # ---------------------------------------------------------------- instances
    def describe_in_context(self, context: str) -> "Effect":
        if context not in self.contexts:
            name = {"filter": "OfxImageEffectContextFilter",
                    "general": "OfxImageEffectContextGeneral"}[context]
            d = Effect(self, "descriptor", name)
            self._new(d)
            status = self.call("OfxImageEffectActionDescribeInContext", d.handle,
                               Props(OfxImageEffectPropContext=name))
            if status != OK:
                raise RuntimeError(f"describe in context {context} failed: status {status}")
            self.contexts[context] = d
        return self.contexts[context]

    def supported_contexts(self) -> list[str]:
        return self.obj(self.descriptor).props.values.get("OfxImageEffectPropSupportedContexts", [])

    def instance(self, context: str, **clips: Clip) -> "Effect":
        desc = self.describe_in_context(context)
        inst = Effect(self, "instance", desc.context)
        self._new(inst)
        for name in desc.clips:
            inst.define_clip(name)
        for name, p in desc.params.params.items():
            inst.params.define(p.type, name, copy_from=p)
        for role, clip in clips.items():
            inst.clips[role.capitalize()].source = clip
        status = self.call("OfxActionCreateInstance", inst.handle)
        if status != OK:
            raise RuntimeError(f"create instance failed: status {status}")
        return inst


class Effect:
    def __init__(self, host: Host, kind: str, context: str = ""):
        self.host, self.kind, self.context = host, kind, context
        self.props = Props(OfxPropType="OfxTypeImageEffectInstance" if kind == "instance"
                           else "OfxTypeImageEffect", OfxImageEffectPropContext=context)
        host._new(self.props)
        self.params = ParamSet(host)
        self.clips: dict[str, ClipInstance] = {}

    def define_clip(self, name: str) -> "ClipInstance":
        if name not in self.clips:
            c = ClipInstance(self.host, name)
            self.host._new(c)
            self.clips[name] = c
        return self.clips[name]

    # ---------------------------------------------------------------- use
    def param(self, name: str) -> "Param":
        return self.params.params[name]

    def set(self, name: str, value, keys: dict[float, float] | None = None) -> None:
        p = self.param(name)
        if p.type == "OfxParamTypeChoice" and isinstance(value, str):
            options = p.props.values.get("OfxParamPropChoiceOption", [])
            value = options.index(value)
        p.value, p.keys = value, dict(keys or {})
        self.host.call("OfxActionInstanceChanged", self.handle,
                       Props(OfxPropType="OfxTypeParameter", OfxPropName=name,
                             OfxPropChangeReason="OfxChangeUserEdited", OfxPropTime=0.0))

    def render(self, t: float, window=None) -> np.ndarray:
        """Output frame at time t as top-down RGB uint8 (RGBA when ``alpha`` is wanted: see
        ``render_raw``)."""
        return from_ofx(self.render_raw(t, window))

    def render_raw(self, t: float, window=None) -> np.ndarray:
        src = self.clips["Source"]
        out = self.clips["Output"]
        w, h = src.size()
        blank = Clip([np.zeros((h, w, 3), np.uint8)], depth=src.source.depth,
                     components=src.source.components, layout=src.source.layout)
        if out.source is None:
            out.source = blank
        img = Image(np.zeros((h, w, 4 if blank.components.endswith("RGBA") else 3),
                             DEPTHS[blank.depth]), blank, False)
        win = window or (0, 0, w, h)
        out.outputs[threading.get_ident()] = img
        try:
            status = self.host.call("OfxImageEffectActionRender", self.handle, Props(
                OfxPropTime=float(t), OfxImageEffectPropRenderWindow=list(win),
                OfxImageEffectPropRenderScale=[1.0, 1.0],
                OfxImageEffectPropFieldToRender="OfxImageFieldNone"))
        finally:
            out.outputs.pop(threading.get_ident(), None)
        if status != OK:
            raise RuntimeError(f"render at {t} failed: status {status}")
        return img.pixels

    def destroy(self) -> None:
        self.host.call("OfxActionDestroyInstance", self.handle)


class ParamSet:
    def __init__(self, host: Host):
        self.host = host
        self.props = Props()
        host._new(self.props)
        self.params: dict[str, Param] = {}
        host._new(self)

    def define(self, ptype: str, name: str, copy_from: "Param | None" = None):
        if name in self.params:
            return None
        p = Param(ptype, name)
        if copy_from is not None:
            p.props.values = {k: list(v) for k, v in copy_from.props.values.items()}
        self.host._new(p.props)
        self.host._new(p)
        self.params[name] = p
        return p


class Param:
    def __init__(self, ptype: str, name: str):
        self.type, self.name = ptype, name
        self.props = Props(OfxPropName=name, OfxParamPropType=ptype)
        self.value = None
        self.keys: dict[float, float] = {}

    def default(self):
        d = self.props.get("OfxParamPropDefault")
        if d is None:
            return "" if self.type == "OfxParamTypeString" else 0
        return d

    def value_at(self, t: float):
        if self.keys:
            ts = sorted(self.keys)
            return float(np.interp(t, ts, [self.keys[k] for k in ts]))
        return self.default() if self.value is None else self.value


class ClipInstance:
    def __init__(self, host: Host, name: str):
        self.host, self.name = host, name
        self.props = Props(OfxPropName=name)
        host._new(self.props)
        self._source: Clip | None = None
        self.outputs: dict[int, Image] = {}   # per render thread: the image the plugin writes
        self.sync_props()

    @property
    def source(self) -> Clip | None:
        return self._source

    @source.setter
    def source(self, clip: Clip | None) -> None:
        self._source = clip
        self.sync_props()

    def size(self) -> tuple[int, int]:
        f = self.source.rgb_at(self.source.start)
        return f.shape[1], f.shape[0]

    def sync_props(self) -> None:
        s = self.source
        p = self.props.values
        p["OfxImageClipPropConnected"] = [int(s is not None and s.connected)]
        if s is not None:
            p["OfxImageEffectPropFrameRange"] = [float(s.start), float(s.start + len(s.frames) - 1)]
            p["OfxImageEffectPropFrameRate"] = [float(s.fps)]
            p["OfxImageEffectPropPixelDepth"] = [s.depth]
            p["OfxImageEffectPropComponents"] = [s.components]
            p["OfxImagePropPixelAspectRatio"] = [float(s.pixel_aspect)]

    def image(self, t: float, blank: bool = False) -> "Image | None":
        fixed = self.outputs.get(threading.get_ident())
        if fixed is not None:
            return fixed
        s = self.source
        if s is None or not s.connected:
            return None
        if blank:
            h, w = s.rgb_at(t).shape[:2]
            n = 4 if s.components.endswith("RGBA") else 3
            return Image(np.zeros((h, w, n), DEPTHS[s.depth]), s, False)
        key = min(max(int(round(t)) - s.start, 0), len(s.frames) - 1)
        px = s.converted.get(key)
        if px is None:   # converted once per frame, as a host has its images at hand
            px = to_ofx(s.rgb_at(t), s.depth, s.components)
            if s.offset and px.dtype == np.float32:
                px[..., :3] += np.float32(s.offset)
            s.converted[key] = px
        return Image(px, s, False)


class Image(Props):
    """An image property set over a pixel array; ``layout`` picks the memory order the plugin
    must cope with: bottom-up rows, padded rows, or negative row bytes (top-down memory)."""

    def __init__(self, pixels: np.ndarray, clip: Clip, blank: bool):
        if blank:
            pixels = np.zeros_like(pixels)
        h, w = pixels.shape[:2]
        row = pixels.shape[1] * pixels.shape[2] * pixels.itemsize
        if clip.layout == "padded":
            pad = 64
            buf = np.zeros((h, row + pad), np.uint8)
            view = buf[:, :row].view(pixels.dtype).reshape(pixels.shape)
            view[...] = pixels
            data, rowbytes = buf.ctypes.data, row + pad
            self.buffer, self.pixels = buf, view
        elif clip.layout == "negative":
            top_down = np.ascontiguousarray(pixels[::-1])      # memory row 0 = the top row
            self.buffer = top_down
            self.pixels = top_down[::-1]                         # a view, bottom row first
            data, rowbytes = top_down.ctypes.data + (h - 1) * row, -row
        else:
            self.buffer = self.pixels = np.ascontiguousarray(pixels)
            data, rowbytes = self.buffer.ctypes.data, row
        super().__init__(OfxImagePropData=data, OfxImagePropBounds=[0, 0, w, h],
                         OfxImagePropRowBytes=rowbytes, OfxImageEffectPropPixelDepth=clip.depth,
                         OfxImageEffectPropComponents=clip.components,
                         OfxImagePropPixelAspectRatio=float(clip.pixel_aspect))
        self.released = False
