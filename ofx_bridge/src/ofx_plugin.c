/* ReenactFX as an OFX image effect: a thin client of the reenact-fx render service.
 *
 * Contexts: filter (Source is the target; the driver is a file parameter) and general (Source plus
 * an optional Driver clip).  The parameter page is read from Resources/params.tsv, which the build
 * generates from the components' parameter schemas (python -m reenact_fx.service params): nothing
 * about the methods is restated here.  Frames go to the service as 8-bit RGB through /dev/shm; the
 * result is written back in the host's depth (pixels the effect left alone keep their full
 * precision).  Whatever goes wrong with the service, the render copies Source to Output and posts
 * a message saying why: the host never goes down with us and never waits unbounded. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ofx_min.h"
#include "rfx_client.h"

#define PLUGIN_ID "org.reenactfx.ReenactFX"
#define MAX_PARAMS 320
#define MAX_CHOICES 48
#define MAX_CONTROLS 16
#define KINDS 4
#define MAX_KEYS 100000          /* control samples per clip */
#define MAX_UPLOAD_FRAMES 100000 /* frames of a clip sent to the service */

static OfxHost *gHost;
static const OfxPropertySuiteV1 *gProp;
static const OfxImageEffectSuiteV1 *gEffect;
static const OfxParameterSuiteV1 *gParam;
static const OfxMessageSuiteV1 *gMsg;
static const OfxMessageSuiteV2 *gMsg2; /* when the host has it: persistent, not a dialog per frame */

/* ------------------------------------------------------------------------ the page (params.tsv) */
typedef struct {
    char owner[64], name[64], type[8], dflt[256], min[32], max[32], help[1024], ofx[160];
    char *choices[MAX_CHOICES];
    int nchoices;
} ParamDesc;

typedef struct {
    char kind[16], dflt[64], ofx[32];
    char *options[MAX_CHOICES]; /* options[0] is "auto" */
    int n;
} MethodDesc;

typedef struct { char name[32], ofx[48], help[400]; double lo, hi; } ControlDesc;

static struct {
    int loaded, ok;
    char error[RFX_ERR];
    MethodDesc methods[KINDS];
    int nmethods;
    ParamDesc params[MAX_PARAMS];
    int nparams;
    ControlDesc controls[MAX_CONTROLS];
    int ncontrols;
} gPage;
static pthread_mutex_t gPageLock = PTHREAD_MUTEX_INITIALIZER;

static const char *TARGET_MODES[] = {"clip", "still"};
static const char *CONTROL_MODES[] = {"add", "replace"};

static void sanitize(char *s) {
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')))
            *s = '_';
}

static int split(char *line, char **fields, int max) {
    int n = 0;
    for (char *p = line; n < max;) {
        fields[n++] = p;
        char *tab = strchr(p, '\t');
        if (!tab) break;
        *tab = 0;
        p = tab + 1;
    }
    return n;
}

static int split_options(char *s, char **out, int max) {
    int n = 0;
    for (char *save = NULL, *t = strtok_r(s, "|", &save); t && n < max; t = strtok_r(NULL, "|", &save))
        out[n++] = strdup(t);
    return n;
}

static void load_page(void) {
    pthread_mutex_lock(&gPageLock);
    if (gPage.loaded) { pthread_mutex_unlock(&gPageLock); return; }
    gPage.loaded = 1;
    Dl_info info;
    char path[2048];
    if (!dladdr((void *)&load_page, &info) || !info.dli_fname) {
        snprintf(gPage.error, RFX_ERR, "cannot tell where the plugin binary lives (dladdr)");
        pthread_mutex_unlock(&gPageLock);
        return;
    }
    snprintf(path, sizeof path, "%s", info.dli_fname);
    for (int up = 0; up < 2; up++) { char *s = strrchr(path, '/'); if (s) *s = 0; }
    strncat(path, "/Resources/params.tsv", sizeof path - strlen(path) - 1);
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(gPage.error, RFX_ERR, "%s is missing: rebuild the bundle (make -C ofx_bridge)", path);
        pthread_mutex_unlock(&gPageLock);
        return;
    }
    char line[8192], *fl[10];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        int n = split(line, fl, 10);
        if (n == 4 && strcmp(fl[0], "component") == 0 && gPage.nmethods < KINDS) {
            MethodDesc *m = &gPage.methods[gPage.nmethods++];
            snprintf(m->kind, sizeof m->kind, "%s", fl[1]);
            snprintf(m->dflt, sizeof m->dflt, "%s", fl[2]);
            snprintf(m->ofx, sizeof m->ofx, "method_%s", fl[1]);
            m->options[0] = strdup("auto");
            m->n = 1 + split_options(fl[3], m->options + 1, MAX_CHOICES - 1);
        } else if (n == 9 && strcmp(fl[0], "param") == 0 && gPage.nparams < MAX_PARAMS) {
            ParamDesc *p = &gPage.params[gPage.nparams++];
            snprintf(p->owner, sizeof p->owner, "%s", fl[1]);
            snprintf(p->name, sizeof p->name, "%s", fl[2]);
            snprintf(p->type, sizeof p->type, "%s", fl[3]);
            snprintf(p->dflt, sizeof p->dflt, "%s", fl[4]);
            snprintf(p->min, sizeof p->min, "%s", fl[5]);
            snprintf(p->max, sizeof p->max, "%s", fl[6]);
            p->nchoices = split_options(fl[7], p->choices, MAX_CHOICES);
            snprintf(p->help, sizeof p->help, "%s", fl[8]);
            snprintf(p->ofx, sizeof p->ofx, "p_%s_%s", p->owner, p->name);
            sanitize(p->ofx);
        } else if (n == 5 && strcmp(fl[0], "control") == 0 && gPage.ncontrols < MAX_CONTROLS) {
            ControlDesc *c = &gPage.controls[gPage.ncontrols++];
            snprintf(c->name, sizeof c->name, "%s", fl[1]);
            c->lo = atof(fl[2]);
            c->hi = atof(fl[3]);
            snprintf(c->help, sizeof c->help, "%s", fl[4]);
            snprintf(c->ofx, sizeof c->ofx, "ctl_%s", c->name);
        }
    }
    fclose(f);
    if (gPage.nmethods == KINDS && gPage.ncontrols > 0) gPage.ok = 1;
    else snprintf(gPage.error, RFX_ERR, "%s is incomplete: rebuild the bundle", path);
    pthread_mutex_unlock(&gPageLock);
}

/* ------------------------------------------------------------------------ instances */
typedef struct {
    pthread_mutex_t lock;
    int general;
    char target_media[64], driver_media[64];
    char last_message[RFX_ERR];
} Instance;

static Instance *instance_of(OfxImageEffectHandle effect) {
    OfxPropertySetHandle props;
    void *data = NULL;
    if (gEffect->getPropertySet(effect, &props) != kOfxStatOK) return NULL;
    gProp->propGetPointer(props, kOfxPropInstanceData, 0, &data);
    return data;
}

/* a host message, once per distinct text (a failing service would otherwise flood the host) */
static void post(OfxImageEffectHandle effect, Instance *inst, const char *type, const char *text) {
    if (inst) {
        pthread_mutex_lock(&inst->lock);
        int same = strcmp(inst->last_message, text) == 0;
        if (!same) snprintf(inst->last_message, sizeof inst->last_message, "%s", text);
        pthread_mutex_unlock(&inst->lock);
        if (same) return;
    }
    fprintf(stderr, "ReenactFX: %s\n", text);
    if (gMsg2) gMsg2->setPersistentMessage(effect, type, PLUGIN_ID, "%s", text);
    else if (gMsg) gMsg->message(effect, type, PLUGIN_ID, "%s", text);
}

/* a render worked: the reason of an earlier failure no longer holds */
static void clear_message(OfxImageEffectHandle effect, Instance *inst) {
    pthread_mutex_lock(&inst->lock);
    int had = inst->last_message[0] != 0;
    inst->last_message[0] = 0;
    pthread_mutex_unlock(&inst->lock);
    if (had && gMsg2) gMsg2->clearPersistentMessage(effect);
}

/* ------------------------------------------------------------------------ describe */
static void set_label_hint(OfxPropertySetHandle props, const char *label, const char *hint,
                           const char *parent) {
    gProp->propSetString(props, kOfxPropLabel, 0, label);
    if (hint) gProp->propSetString(props, kOfxParamPropHint, 0, hint);
    if (parent) gProp->propSetString(props, kOfxParamPropParent, 0, parent);
}

static OfxStatus describe(OfxImageEffectHandle effect) {
    OfxPropertySetHandle props;
    gEffect->getPropertySet(effect, &props);
    gProp->propSetString(props, kOfxPropLabel, 0, "ReenactFX");
    gProp->propSetString(props, kOfxImageEffectPluginPropGrouping, 0, "ReenactFX");
    gProp->propSetString(props, kOfxPropPluginDescription, 0,
                         "Face reenactment: the person in Source performs the expressions and head "
                         "motion of a driver clip (rendered by the local reenact-fx service).");
    gProp->propSetString(props, kOfxImageEffectPropSupportedContexts, 0, kOfxImageEffectContextFilter);
    gProp->propSetString(props, kOfxImageEffectPropSupportedContexts, 1, kOfxImageEffectContextGeneral);
    gProp->propSetString(props, kOfxImageEffectPropSupportedPixelDepths, 0, kOfxBitDepthByte);
    gProp->propSetString(props, kOfxImageEffectPropSupportedPixelDepths, 1, kOfxBitDepthShort);
    gProp->propSetString(props, kOfxImageEffectPropSupportedPixelDepths, 2, kOfxBitDepthFloat);
    /* the face is analysed on whole full-resolution frames */
    gProp->propSetInt(props, kOfxImageEffectPropSupportsMultiResolution, 0, 0);
    gProp->propSetInt(props, kOfxImageEffectPropSupportsTiles, 0, 0);
    gProp->propSetInt(props, kOfxImageEffectPropTemporalClipAccess, 0, 1);
    gProp->propSetInt(props, kOfxImageEffectPropSupportsMultipleClipDepths, 0, 0);
    gProp->propSetString(props, kOfxImageEffectPluginRenderThreadSafety, 0,
                         kOfxImageEffectRenderFullySafe);
    gProp->propSetInt(props, kOfxImageEffectPluginPropHostFrameThreading, 0, 0);
    return kOfxStatOK;
}

static OfxPropertySetHandle define(OfxParamSetHandle ps, const char *type, const char *name) {
    OfxPropertySetHandle props = NULL;
    gParam->paramDefine(ps, type, name, &props);
    return props;
}

static void define_choice(OfxParamSetHandle ps, const char *name, const char *label,
                          const char *hint, const char *parent, char *const *options, int n,
                          int dflt) {
    OfxPropertySetHandle p = define(ps, kOfxParamTypeChoice, name);
    if (!p) return;
    set_label_hint(p, label, hint, parent);
    for (int i = 0; i < n; i++) gProp->propSetString(p, kOfxParamPropChoiceOption, i, options[i]);
    gProp->propSetInt(p, kOfxParamPropDefault, 0, dflt);
    gProp->propSetInt(p, kOfxParamPropAnimates, 0, 0);
}

static void define_group(OfxParamSetHandle ps, const char *name, const char *label, int open) {
    OfxPropertySetHandle p = define(ps, kOfxParamTypeGroup, name);
    if (!p) return;
    gProp->propSetString(p, kOfxPropLabel, 0, label);
    gProp->propSetInt(p, kOfxParamPropGroupOpen, 0, open);
}

static OfxStatus describe_in_context(OfxImageEffectHandle effect, OfxPropertySetHandle inArgs) {
    char *context = NULL;
    OfxPropertySetHandle clip;
    OfxParamSetHandle ps;
    gProp->propGetString(inArgs, kOfxImageEffectPropContext, 0, &context);
    int general = context && strcmp(context, kOfxImageEffectContextGeneral) == 0;
    const char *clips[] = {kOfxImageEffectSimpleSourceClipName, kOfxImageEffectOutputClipName,
                           "Driver"};
    for (int i = 0; i < (general ? 3 : 2); i++) {
        gEffect->clipDefine(effect, clips[i], &clip);
        gProp->propSetString(clip, kOfxImageEffectPropSupportedComponents, 0, kOfxImageComponentRGBA);
        gProp->propSetString(clip, kOfxImageEffectPropSupportedComponents, 1, kOfxImageComponentRGB);
        gProp->propSetInt(clip, kOfxImageEffectPropTemporalClipAccess, 0, i != 1);
        if (i == 2) {
            gProp->propSetInt(clip, kOfxImageClipPropOptional, 0, 1);
            gProp->propSetString(clip, kOfxPropLabel, 0, "Driver");
        }
    }
    gEffect->getParamSet(effect, &ps);
    load_page();

    OfxPropertySetHandle p = define(ps, kOfxParamTypeString, "driverFile");
    set_label_hint(p, "Driver file", general ? "clip whose expressions and head motion drive the "
                   "face, used when the Driver input is not connected" :
                   "clip whose expressions and head motion drive the face", NULL);
    gProp->propSetString(p, kOfxParamPropStringMode, 0, kOfxParamStringIsFilePath);
    gProp->propSetString(p, kOfxParamPropDefault, 0, "");
    gProp->propSetInt(p, kOfxParamPropAnimates, 0, 0);
    p = define(ps, kOfxParamTypeString, "presetFile");
    set_label_hint(p, "Preset", "a reenact-fx preset name (natural, subtle, lips-only, ...) or YAML "
                   "file; the parameters below that differ from their defaults override it", NULL);
    gProp->propSetString(p, kOfxParamPropStringMode, 0, kOfxParamStringIsFilePath);
    gProp->propSetString(p, kOfxParamPropDefault, 0, "");
    gProp->propSetInt(p, kOfxParamPropAnimates, 0, 0);
    define_choice(ps, "targetMode", "Source is", "clip: every frame of Source is analysed (the "
                  "person keeps their own head motion); still: its first frame is a portrait and "
                  "the output follows the driver's motion", NULL, (char *const *)TARGET_MODES, 2, 0);
    p = define(ps, kOfxParamTypePushButton, "reanalyze");
    set_label_hint(p, "Re-read inputs", "send Source (and the Driver input) to the service again "
                   "after they changed upstream", NULL);
    if (!gPage.ok) return kOfxStatOK; /* the render reports the missing page */

    define_group(ps, "grp_method", "Method", 1);
    for (int k = 0; k < gPage.nmethods; k++) {
        MethodDesc *m = &gPage.methods[k];
        char label[64], hint[160];
        snprintf(label, sizeof label, "%c%s", m->kind[0] - 32, m->kind + 1);
        snprintf(hint, sizeof hint, "the %s component; auto: the preset's, else %s", m->kind, m->dflt);
        define_choice(ps, m->ofx, label, hint, "grp_method", m->options, m->n, 0);
    }
    const char *group = "";
    char gname[96];
    for (int i = 0; i < gPage.nparams; i++) {
        ParamDesc *d = &gPage.params[i];
        if (strcmp(d->owner, group) != 0) {
            group = d->owner;
            snprintf(gname, sizeof gname, "grp_%s", d->owner);
            sanitize(gname);
            define_group(ps, gname, d->owner, 0);
        }
        if (strcmp(d->type, "choice") == 0) {
            int dflt = 0;
            for (int c = 0; c < d->nchoices; c++) if (strcmp(d->choices[c], d->dflt) == 0) dflt = c;
            define_choice(ps, d->ofx, d->name, d->help, gname, d->choices, d->nchoices, dflt);
            continue;
        }
        char ty = d->type[0]; /* f(loat), i(nt), b(ool), s(tr) */
        const char *type = ty == 'f' ? kOfxParamTypeDouble : ty == 'i' ? kOfxParamTypeInteger
                           : ty == 'b' ? kOfxParamTypeBoolean : kOfxParamTypeString;
        p = define(ps, type, d->ofx);
        if (!p) continue;
        set_label_hint(p, d->name, d->help, gname);
        gProp->propSetInt(p, kOfxParamPropAnimates, 0, 0); /* analysis settings: one per clip */
        if (ty == 'f') {
            gProp->propSetDouble(p, kOfxParamPropDefault, 0, atof(d->dflt));
            if (*d->min) { gProp->propSetDouble(p, kOfxParamPropMin, 0, atof(d->min));
                           gProp->propSetDouble(p, kOfxParamPropDisplayMin, 0, atof(d->min)); }
            if (*d->max) { gProp->propSetDouble(p, kOfxParamPropMax, 0, atof(d->max));
                           gProp->propSetDouble(p, kOfxParamPropDisplayMax, 0, atof(d->max)); }
        } else if (ty == 'i') {
            gProp->propSetInt(p, kOfxParamPropDefault, 0, atoi(d->dflt));
            if (*d->min) gProp->propSetInt(p, kOfxParamPropMin, 0, atoi(d->min));
            if (*d->max) gProp->propSetInt(p, kOfxParamPropMax, 0, atoi(d->max));
        } else if (ty == 'b') {
            gProp->propSetInt(p, kOfxParamPropDefault, 0, atoi(d->dflt));
        } else {
            gProp->propSetString(p, kOfxParamPropDefault, 0, d->dflt);
        }
    }
    define_group(ps, "grp_controls", "Expression controls", 1);
    define_choice(ps, "controlsMode", "Controls mode", "add: on top of the driver; replace: the "
                  "keyframed controls alone drive the face (no driver needed)", "grp_controls",
                  (char *const *)CONTROL_MODES, 2, 0);
    for (int i = 0; i < gPage.ncontrols; i++) {
        ControlDesc *c = &gPage.controls[i];
        p = define(ps, kOfxParamTypeDouble, c->ofx);
        if (!p) continue;
        set_label_hint(p, c->name, c->help, "grp_controls");
        gProp->propSetDouble(p, kOfxParamPropDefault, 0, 0.0);
        gProp->propSetDouble(p, kOfxParamPropMin, 0, c->lo);
        gProp->propSetDouble(p, kOfxParamPropMax, 0, c->hi);
        gProp->propSetDouble(p, kOfxParamPropDisplayMin, 0, c->lo);
        gProp->propSetDouble(p, kOfxParamPropDisplayMax, 0, c->hi);
        gProp->propSetInt(p, kOfxParamPropAnimates, 0, 1); /* the host's keyframes drive them */
    }
    return kOfxStatOK;
}

/* ------------------------------------------------------------------------ instance lifetime */
static OfxStatus create_instance(OfxImageEffectHandle effect) {
    OfxPropertySetHandle props;
    char *context = NULL;
    Instance *inst = calloc(1, sizeof *inst);
    if (!inst) return kOfxStatErrFatal;
    pthread_mutex_init(&inst->lock, NULL);
    gEffect->getPropertySet(effect, &props);
    gProp->propGetString(props, kOfxImageEffectPropContext, 0, &context);
    inst->general = context && strcmp(context, kOfxImageEffectContextGeneral) == 0;
    gProp->propSetPointer(props, kOfxPropInstanceData, 0, inst);
    load_page();
    return kOfxStatOK;
}

static OfxStatus destroy_instance(OfxImageEffectHandle effect) {
    Instance *inst = instance_of(effect);
    if (inst) {
        pthread_mutex_destroy(&inst->lock);
        free(inst);
    }
    return kOfxStatOK;
}

static OfxStatus instance_changed(OfxImageEffectHandle effect, OfxPropertySetHandle inArgs) {
    Instance *inst = instance_of(effect);
    char *type = NULL, *name = NULL;
    if (!inst) return kOfxStatReplyDefault;
    gProp->propGetString(inArgs, kOfxPropType, 0, &type);
    gProp->propGetString(inArgs, kOfxPropName, 0, &name);
    int clip = type && strcmp(type, kOfxTypeClip) == 0;
    int reread = name && (strcmp(name, "reanalyze") == 0 || strcmp(name, "targetMode") == 0);
    if (clip || reread) { /* what was sent may be stale: send it again at the next render */
        pthread_mutex_lock(&inst->lock);
        inst->target_media[0] = inst->driver_media[0] = 0;
        inst->last_message[0] = 0;
        pthread_mutex_unlock(&inst->lock);
    }
    return kOfxStatOK;
}

/* ------------------------------------------------------------------------ pixels */
typedef struct {
    OfxPropertySetHandle handle;
    uint8_t *data;
    OfxRectI b;
    int rowbytes, bpc, ncomp;
    double aspect;
} Image;

static int image_get(OfxImageClipHandle clip, OfxTime t, Image *im, char *err) {
    char *depth = NULL, *comps = NULL;
    void *data = NULL;
    memset(im, 0, sizeof *im);
    if (gEffect->clipGetImage(clip, t, NULL, &im->handle) != kOfxStatOK || !im->handle) {
        snprintf(err, RFX_ERR, "the host gave no image at time %g", t);
        return -1;
    }
    gProp->propGetPointer(im->handle, kOfxImagePropData, 0, &data);
    gProp->propGetIntN(im->handle, kOfxImagePropBounds, 4, &im->b.x1);
    gProp->propGetInt(im->handle, kOfxImagePropRowBytes, 0, &im->rowbytes);
    gProp->propGetString(im->handle, kOfxImageEffectPropPixelDepth, 0, &depth);
    gProp->propGetString(im->handle, kOfxImageEffectPropComponents, 0, &comps);
    im->aspect = 1.0;
    gProp->propGetDouble(im->handle, kOfxImagePropPixelAspectRatio, 0, &im->aspect);
    if (!(im->aspect > 0.01 && im->aspect < 100)) im->aspect = 1.0;
    im->data = data;
    im->bpc = !depth ? 0 : strcmp(depth, kOfxBitDepthByte) == 0 ? 1
              : strcmp(depth, kOfxBitDepthShort) == 0 ? 2 : strcmp(depth, kOfxBitDepthFloat) == 0 ? 4 : 0;
    im->ncomp = !comps ? 0 : strcmp(comps, kOfxImageComponentRGBA) == 0 ? 4
                : strcmp(comps, kOfxImageComponentRGB) == 0 ? 3 : 0;
    if (!data || !im->bpc || !im->ncomp || im->b.x2 <= im->b.x1 || im->b.y2 <= im->b.y1) {
        snprintf(err, RFX_ERR, "unsupported image at time %g (depth %s, components %s)", t,
                 depth ? depth : "?", comps ? comps : "?");
        gEffect->clipReleaseImage(im->handle);
        im->handle = NULL;
        return -1;
    }
    return 0;
}

static void image_release(Image *im) {
    if (im->handle) gEffect->clipReleaseImage(im->handle);
    im->handle = NULL;
}

static inline uint8_t *pixel(const Image *im, int x, int y) {
    return im->data + (ptrdiff_t)(y - im->b.y1) * im->rowbytes + (ptrdiff_t)(x - im->b.x1) * im->ncomp * im->bpc;
}

static inline float get_f(const uint8_t *px, int bpc, int c) {
    if (bpc == 1) return px[c] / 255.0f;
    if (bpc == 2) return ((const uint16_t *)px)[c] / 65535.0f;
    return ((const float *)px)[c];
}

static inline void put_f(uint8_t *px, int bpc, int c, float v) {
    if (bpc == 4) { ((float *)px)[c] = v; return; }
    v = v < 0 ? 0 : v > 1 ? 1 : v;
    if (bpc == 1) px[c] = (uint8_t)lrintf(v * 255.0f);
    else ((uint16_t *)px)[c] = (uint16_t)lrintf(v * 65535.0f);
}

static inline uint8_t q8(float v) {
    v = v < 0 ? 0 : v > 1 ? 1 : v;
    return (uint8_t)lrintf(v * 255.0f);
}

/* the image as packed RGB8, top row first (OFX images are bottom-up) */
static void to_rgb8(const Image *im, uint8_t *rgb) {
    int w = im->b.x2 - im->b.x1, h = im->b.y2 - im->b.y1;
    for (int r = 0; r < h; r++) {
        int y = im->b.y2 - 1 - r;
        for (int x = 0; x < w; x++) {
            const uint8_t *px = pixel(im, im->b.x1 + x, y);
            uint8_t *o = rgb + ((size_t)r * w + x) * 3;
            if (im->bpc == 1) { o[0] = px[0]; o[1] = px[1]; o[2] = px[2]; }
            else for (int c = 0; c < 3; c++) o[c] = q8(get_f(px, im->bpc, c));
        }
    }
}

/* the result into the output's render window; where the effect left a pixel as it was (its 8-bit
 * value equals the source's), the source's own value is kept, so deep images lose nothing there */
static void from_rgb8(const uint8_t *rgb, const Image *src, const Image *out, OfxRectI win) {
    int w = src->b.x2 - src->b.x1;
    for (int y = win.y1; y < win.y2; y++) {
        if (y < out->b.y1 || y >= out->b.y2) continue;
        for (int x = win.x1; x < win.x2; x++) {
            if (x < out->b.x1 || x >= out->b.x2) continue;
            uint8_t *po = pixel(out, x, y);
            if (x < src->b.x1 || x >= src->b.x2 || y < src->b.y1 || y >= src->b.y2) {
                memset(po, 0, (size_t)out->ncomp * out->bpc);
                continue;
            }
            const uint8_t *ps = pixel(src, x, y);
            const uint8_t *v = rgb + ((size_t)(src->b.y2 - 1 - y) * w + (x - src->b.x1)) * 3;
            if (out->bpc == 1 && src->bpc == 1) { /* the common case, without float round trips */
                po[0] = v[0]; po[1] = v[1]; po[2] = v[2];
                if (out->ncomp == 4) po[3] = src->ncomp == 4 ? ps[3] : 255;
                continue;
            }
            for (int c = 0; c < 3; c++) {
                float s = get_f(ps, src->bpc, c);
                put_f(po, out->bpc, c, v[c] == q8(s) ? s : v[c] / 255.0f);
            }
            if (out->ncomp == 4) put_f(po, out->bpc, 3, src->ncomp == 4 ? get_f(ps, src->bpc, 3) : 1.0f);
        }
    }
}

static void passthrough(const Image *src, const Image *out, OfxRectI win) {
    for (int y = win.y1; y < win.y2; y++) {
        if (y < out->b.y1 || y >= out->b.y2) continue;
        for (int x = win.x1; x < win.x2; x++) {
            if (x < out->b.x1 || x >= out->b.x2) continue;
            uint8_t *po = pixel(out, x, y);
            if (!src || x < src->b.x1 || x >= src->b.x2 || y < src->b.y1 || y >= src->b.y2) {
                memset(po, 0, (size_t)out->ncomp * out->bpc);
                continue;
            }
            const uint8_t *ps = pixel(src, x, y);
            if (src->bpc == out->bpc && src->ncomp == out->ncomp) {
                memcpy(po, ps, (size_t)out->ncomp * out->bpc);
                continue;
            }
            for (int c = 0; c < 3; c++) put_f(po, out->bpc, c, get_f(ps, src->bpc, c));
            if (out->ncomp == 4) put_f(po, out->bpc, 3, src->ncomp == 4 ? get_f(ps, src->bpc, 3) : 1.0f);
        }
    }
}

/* ------------------------------------------------------------------------ the spec */
typedef struct { OfxImageClipHandle clip; double start; int w, h; } UploadCtx;

static int upload_frame(void *ctx, int i, uint8_t *rgb, char *err) {
    UploadCtx *u = ctx;
    Image im;
    if (image_get(u->clip, u->start + i, &im, err)) return -1;
    int w = im.b.x2 - im.b.x1, h = im.b.y2 - im.b.y1;
    if (w != u->w || h != u->h) {
        snprintf(err, RFX_ERR, "frame %g is %dx%d, the first one %dx%d: a clip must keep its size",
                 u->start + i, w, h, u->w, u->h);
        image_release(&im);
        return -1;
    }
    to_rgb8(&im, rgb);
    image_release(&im);
    return 0;
}

static void clip_range(OfxImageClipHandle clip, double *start, double *end, double *fps) {
    OfxPropertySetHandle props;
    double range[2] = {0, 0};
    *fps = 25.0;
    gEffect->clipGetPropertySet(clip, &props);
    gProp->propGetDoubleN(props, kOfxImageEffectPropFrameRange, 2, range);
    gProp->propGetDouble(props, kOfxImageEffectPropFrameRate, 0, fps);
    if (!(*fps > 0 && *fps < 1000)) *fps = 25.0;
    *start = range[0];
    *end = range[1] < range[0] ? range[0] : range[1];
}

/* send a clip (or its first frame) to the service once; media gets its content-keyed name and
 * name a copy of it (a clip change may clear media from another thread meanwhile) */
static int ensure_upload(Instance *inst, char *media, OfxImageClipHandle clip, int still,
                         char name[64], char *err) {
    pthread_mutex_lock(&inst->lock); /* one upload per instance; other frames wait for it */
    int rc = 0;
    if (!media[0]) {
        double start, end, fps;
        Image first;
        clip_range(clip, &start, &end, &fps);
        rc = image_get(clip, start, &first, err);
        if (rc == 0) {
            UploadCtx u = {clip, start, first.b.x2 - first.b.x1, first.b.y2 - first.b.y1};
            double aspect = first.aspect;
            image_release(&first);
            double frames = still ? 1 : end - start + 1;
            int count = (int)frames;
            if (frames > MAX_UPLOAD_FRAMES) {
                snprintf(err, RFX_ERR, "the clip has %.0f frames, more than the %d this plugin sends "
                         "to the service; set Source is: still, or trim the clip", frames,
                         MAX_UPLOAD_FRAMES);
                rc = -1;
            } else rc = rfx_upload(u.w, u.h, fps, count, aspect, upload_frame, &u, media, 64, err);
        }
    }
    snprintf(name, 64, "%s", media);
    pthread_mutex_unlock(&inst->lock);
    return rc;
}

static OfxParamHandle param(OfxParamSetHandle ps, const char *name) {
    OfxParamHandle h = NULL;
    gParam->paramGetHandle(ps, name, &h, NULL);
    return h;
}

static int choice_index(OfxParamSetHandle ps, const char *name, int n) {
    int v = 0;
    OfxParamHandle h = param(ps, name);
    if (h) gParam->paramGetValue(h, &v);
    return v < 0 || v >= n ? 0 : v;
}

/* the parameters that differ from their schema defaults, as {owner: {name: value}} */
static void add_params(rfx_buf *b, OfxParamSetHandle ps, OfxTime t) {
    const char *open = NULL;
    rfx_buf_add(b, ",\"params\":{");
    for (int i = 0; i < gPage.nparams; i++) {
        ParamDesc *d = &gPage.params[i];
        OfxParamHandle h = param(ps, d->ofx);
        if (!h) continue;
        rfx_buf val = {0};
        if (strcmp(d->type, "float") == 0) {
            double v = 0;
            gParam->paramGetValueAtTime(h, t, &v);
            if (fabs(v - atof(d->dflt)) > 1e-12) rfx_buf_addf(&val, "%.17g", v);
        } else if (strcmp(d->type, "int") == 0 || strcmp(d->type, "bool") == 0) {
            int v = 0;
            gParam->paramGetValueAtTime(h, t, &v);
            if (v != atoi(d->dflt)) {
                if (d->type[0] == 'b') rfx_buf_add(&val, v ? "true" : "false");
                else rfx_buf_addf(&val, "%d", v);
            }
        } else if (strcmp(d->type, "choice") == 0) {
            int v = 0;
            gParam->paramGetValueAtTime(h, t, &v);
            if (v >= 0 && v < d->nchoices && strcmp(d->choices[v], d->dflt) != 0)
                rfx_buf_add_str(&val, d->choices[v]);
        } else {
            char *s = NULL;
            gParam->paramGetValueAtTime(h, t, &s);
            if (s && strcmp(s, d->dflt) != 0) rfx_buf_add_str(&val, s);
        }
        if (val.len) {
            if (!open || strcmp(open, d->owner) != 0) {
                if (open) rfx_buf_add(b, "},");
                rfx_buf_add_str(b, d->owner);
                rfx_buf_add(b, ":{");
                open = d->owner;
            } else {
                rfx_buf_add(b, ",");
            }
            rfx_buf_add_str(b, d->name);
            rfx_buf_addf(b, ":%s", val.s);
        }
        rfx_buf_free(&val);
    }
    rfx_buf_add(b, open ? "}}" : "}");
}

/* the expression controls as keys over Source's frames: constant values as one key, animated
 * ones sampled at every frame (the host's own interpolation, linear in between) */
static int add_controls(rfx_buf *b, OfxParamSetHandle ps, double start, double end, double fps,
                        int replace) {
    int any = 0;
    rfx_buf keys = {0};
    for (int i = 0; i < gPage.ncontrols; i++) {
        ControlDesc *c = &gPage.controls[i];
        OfxParamHandle h = param(ps, c->ofx);
        unsigned int nkeys = 0;
        double v = 0;
        if (!h) continue;
        gParam->paramGetNumKeys(h, &nkeys);
        if (nkeys == 0) {
            gParam->paramGetValue(h, &v);
            if (v == 0) continue;
            rfx_buf_addf(&keys, "%s\"%s\":[[0,%.17g]]", any ? "," : "", c->name, v);
        } else {
            rfx_buf_addf(&keys, "%s\"%s\":[", any ? "," : "", c->name);
            /* every frame, but never more than MAX_KEYS samples (a host may report huge ranges) */
            double step = end - start > MAX_KEYS ? (end - start) / MAX_KEYS : 1.0;
            for (double f = start; f <= end + 1e-9; f += step) {
                gParam->paramGetValueAtTime(h, f, &v);
                rfx_buf_addf(&keys, "%s[%.17g,%.17g,\"linear\"]", f > start ? "," : "",
                             (f - start) / fps, v);
            }
            rfx_buf_add(&keys, "]");
        }
        any = 1;
    }
    if (any || replace)
        rfx_buf_addf(b, ",\"controls\":{\"mode\":\"%s\",\"interpolation\":\"linear\",\"keys\":{%s}}",
                     replace ? "replace" : "add", keys.s ? keys.s : "");
    rfx_buf_free(&keys);
    return 0;
}

static int build_spec(OfxImageEffectHandle effect, Instance *inst, OfxTime t,
                      OfxImageClipHandle source, rfx_buf *spec, double *seconds, char *err) {
    OfxParamSetHandle ps;
    double start, end, fps;
    char *s = NULL;
    if (!gPage.ok) { snprintf(err, RFX_ERR, "%s", gPage.error); return -1; }
    gEffect->getParamSet(effect, &ps);
    clip_range(source, &start, &end, &fps);
    *seconds = (t - start) / fps;
    int still = choice_index(ps, "targetMode", 2) == 1;
    int replace = choice_index(ps, "controlsMode", 2) == 1;

    char media[64];
    if (ensure_upload(inst, inst->target_media, source, still, media, err)) return -1;
    rfx_buf_add(spec, "{\"target\":{\"upload\":");
    rfx_buf_add_str(spec, media);
    rfx_buf_add(spec, "}");

    if (!replace) {
        OfxImageClipHandle dclip = NULL;
        OfxPropertySetHandle dprops = NULL;
        int connected = 0;
        if (inst->general && gEffect->clipGetHandle(effect, "Driver", &dclip, &dprops) == kOfxStatOK
            && dprops)
            gProp->propGetInt(dprops, kOfxImageClipPropConnected, 0, &connected);
        if (connected) {
            if (ensure_upload(inst, inst->driver_media, dclip, 0, media, err)) return -1;
            rfx_buf_add(spec, ",\"driver\":{\"upload\":");
            rfx_buf_add_str(spec, media);
            rfx_buf_add(spec, "}");
        } else {
            OfxParamHandle h = param(ps, "driverFile");
            if (h) gParam->paramGetValue(h, &s);
            if (!s || !*s) {
                snprintf(err, RFX_ERR, inst->general ? "connect the Driver input or set Driver file"
                         : "set Driver file (the clip whose expressions drive the face), or set "
                         "Controls mode to replace");
                return -1;
            }
            rfx_buf_add(spec, ",\"driver\":{\"path\":");
            rfx_buf_add_str(spec, s);
            rfx_buf_add(spec, "}");
        }
    }
    OfxParamHandle h = param(ps, "presetFile");
    s = NULL;
    if (h) gParam->paramGetValue(h, &s);
    if (s && *s) {
        rfx_buf_add(spec, ",\"preset\":");
        rfx_buf_add_str(spec, s);
    }
    rfx_buf_add(spec, ",\"components\":{");
    int n = 0;
    for (int k = 0; k < gPage.nmethods; k++) {
        MethodDesc *m = &gPage.methods[k];
        int v = choice_index(ps, m->ofx, m->n);
        if (v == 0) continue; /* auto */
        rfx_buf_addf(spec, "%s\"%s\":", n++ ? "," : "", m->kind);
        rfx_buf_add_str(spec, m->options[v]);
    }
    rfx_buf_add(spec, "}");
    add_params(spec, ps, t);
    add_controls(spec, ps, start, end, fps, replace);
    rfx_buf_add(spec, "}");
    return 0;
}

/* ------------------------------------------------------------------------ render */
static OfxStatus render(OfxImageEffectHandle effect, OfxPropertySetHandle inArgs) {
    OfxTime t = 0;
    OfxRectI win;
    OfxImageClipHandle src_clip = NULL, out_clip = NULL;
    Image src, out;
    char err[RFX_ERR] = "";
    Instance *inst = instance_of(effect);
    gProp->propGetDouble(inArgs, kOfxPropTime, 0, &t);
    gProp->propGetIntN(inArgs, kOfxImageEffectPropRenderWindow, 4, &win.x1);
    if (gEffect->clipGetHandle(effect, kOfxImageEffectOutputClipName, &out_clip, NULL) != kOfxStatOK
        || image_get(out_clip, t, &out, err) != 0)
        return kOfxStatFailed; /* nowhere to write: the host reports that itself */
    if (gEffect->clipGetHandle(effect, kOfxImageEffectSimpleSourceClipName, &src_clip, NULL) != kOfxStatOK
        || image_get(src_clip, t, &src, err) != 0) {
        passthrough(NULL, &out, win);
        image_release(&out);
        return kOfxStatOK;
    }
    int w = src.b.x2 - src.b.x1, h = src.b.y2 - src.b.y1;
    uint8_t *rgb = malloc((size_t)w * h * 3);
    rfx_buf spec = {0};
    double seconds = 0;
    int rc = -1;
    if (!inst) snprintf(err, RFX_ERR, "the host lost this instance's data");
    else if (!rgb) snprintf(err, RFX_ERR, "out of memory for a %dx%d frame", w, h);
    else for (int attempt = 0; attempt < 2; attempt++) {
        spec.len = 0;
        if (build_spec(effect, inst, t, src_clip, &spec, &seconds, err) != 0) break;
        to_rgb8(&src, rgb);
        rc = rfx_render(spec.s, seconds, 1, w, h, src.aspect, rgb, 1,
                        rfx_env_seconds("REENACT_FX_ANALYSIS_WAIT", 300.0), err);
        if (rc == 0 || !strstr(err, RFX_REUPLOAD)) break;
        pthread_mutex_lock(&inst->lock);   /* the service dropped our upload: send it again */
        inst->target_media[0] = inst->driver_media[0] = 0;
        pthread_mutex_unlock(&inst->lock);
    }
    if (rc == 0) {
        from_rgb8(rgb, &src, &out, win);
        if (inst) clear_message(effect, inst);
    } else {
        char text[RFX_ERR + 64];
        snprintf(text, sizeof text, "ReenactFX passes Source through: %s", err);
        passthrough(&src, &out, win);
        post(effect, inst, kOfxMessageError, text);
    }
    rfx_buf_free(&spec);
    free(rgb);
    image_release(&src);
    image_release(&out);
    return kOfxStatOK;
}

/* ------------------------------------------------------------------------ entry points */
static OfxStatus main_entry(const char *action, const void *handle, OfxPropertySetHandle inArgs,
                            OfxPropertySetHandle outArgs) {
    (void)outArgs;
    OfxImageEffectHandle effect = (OfxImageEffectHandle)handle;
    if (!action) return kOfxStatErrBadHandle;
    if (strcmp(action, kOfxActionLoad) == 0) {
        if (!gHost) return kOfxStatErrMissingHostFeature;
        gProp = gHost->fetchSuite(gHost->host, kOfxPropertySuite, 1);
        gEffect = gHost->fetchSuite(gHost->host, kOfxImageEffectSuite, 1);
        gParam = gHost->fetchSuite(gHost->host, kOfxParameterSuite, 1);
        gMsg = gHost->fetchSuite(gHost->host, kOfxMessageSuite, 1);
        gMsg2 = gHost->fetchSuite(gHost->host, kOfxMessageSuite, 2);
        return gProp && gEffect && gParam ? kOfxStatOK : kOfxStatErrMissingHostFeature;
    }
    if (!gProp || !gEffect || !gParam) return kOfxStatErrMissingHostFeature;
    if (strcmp(action, kOfxActionDescribe) == 0) return describe(effect);
    if (strcmp(action, kOfxImageEffectActionDescribeInContext) == 0)
        return describe_in_context(effect, inArgs);
    if (strcmp(action, kOfxActionCreateInstance) == 0) return create_instance(effect);
    if (strcmp(action, kOfxActionDestroyInstance) == 0) return destroy_instance(effect);
    if (strcmp(action, kOfxActionInstanceChanged) == 0) return instance_changed(effect, inArgs);
    if (strcmp(action, kOfxImageEffectActionRender) == 0) return render(effect, inArgs);
    if (strcmp(action, kOfxActionUnload) == 0) return kOfxStatOK;
    return kOfxStatReplyDefault;
}

static void set_host(OfxHost *host) { gHost = host; }

static OfxPlugin gPlugin = {kOfxImageEffectPluginApi, kOfxImageEffectPluginApiVersion, PLUGIN_ID,
                            0, 1, set_host, main_entry};

OfxExport int OfxGetNumberOfPlugins(void) { return 1; }

OfxExport OfxPlugin *OfxGetPlugin(int nth) { return nth == 0 ? &gPlugin : NULL; }
