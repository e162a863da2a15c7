/* What the two frei0r plugins share: string parameters, the spec they send, RGBA <-> RGB and the
 * failure path (the input copied to the output, the reason printed once on stderr: frei0r has no
 * message channel), and the entry points that do not differ.  Included once by each plugin, which
 * is its own shared object. */
#ifndef REENACT_FREI0R_COMMON_H
#define REENACT_FREI0R_COMMON_H

#define _GNU_SOURCE
/* the f0r_* entry points are the only symbols these plugins export (-fvisibility=hidden) */
#pragma GCC visibility push(default)
#include <frei0r.h>
#pragma GCC visibility pop
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rfx_client.h"

enum { P_DRIVER, P_TARGET, P_PRESET, P_SET, P_TIME_SCALE, NPARAMS };

static const f0r_param_info_t PARAMS[NPARAMS] = {
    {"driver", F0R_PARAM_STRING, "driver media file (its expressions and head motion drive the face)"},
    {"target", F0R_PARAM_STRING, "target media file the input shows (optional; empty: the first "
                                 "input frame is taken as a portrait still)"},
    {"preset", F0R_PARAM_STRING, "reenact-fx preset name or YAML file (optional)"},
    {"set", F0R_PARAM_STRING, "parameters as in reenact-fx --set, space-separated, e.g. "
                              "delta.expression=1.2 meshwarp.mouth_fill=false"},
    {"time_scale", F0R_PARAM_DOUBLE, "host time units per second / 1000 (0: seconds, as MLT; 1: "
                                     "milliseconds, as ffmpeg's frei0r filter)"},
};

typedef struct {
    unsigned width, height;
    char *param[NPARAMS];
    double time_scale;
    long updates;             /* frames this instance was given: the frame index when time is lost */
    pthread_mutex_t lock;
    char target_media[64];
    char last_error[RFX_ERR];
} Instance;

static Instance *instance_new(unsigned width, unsigned height) {
    Instance *in = calloc(1, sizeof *in);
    if (!in) return NULL;
    in->width = width;
    in->height = height;
    for (int i = 0; i < NPARAMS; i++) in->param[i] = strdup("");
    pthread_mutex_init(&in->lock, NULL);
    return in;
}

static void instance_free(Instance *in) {
    for (int i = 0; i < NPARAMS; i++) free(in->param[i]);
    pthread_mutex_destroy(&in->lock);
    free(in);
}

/* A file parameter relative to the host's working folder, made absolute: the render service is
 * shared and has its own (a preset name, without '/' or a YAML suffix, is left as it is). */
static char *absolute_file(const char *s) {
    if (!s[0] || s[0] == '/') return strdup(s);
    char cwd[4096], *out = NULL;
    if (!getcwd(cwd, sizeof cwd) || asprintf(&out, "%s/%s", cwd, s) < 0) return strdup(s);
    return out;
}

static int names_a_file(int index, const char *s) {
    if (index == P_DRIVER || index == P_TARGET) return 1;
    if (index != P_PRESET) return 0;
    size_t n = strlen(s);
    return strchr(s, '/') || (n > 5 && (!strcmp(s + n - 5, ".yaml") || !strcmp(s + n - 4, ".yml")));
}

static void param_set(Instance *in, f0r_param_t value, int index) {
    if (index < 0 || index >= NPARAMS || !value) return;
    if (index == P_TIME_SCALE) { in->time_scale = *(double *)value; return; }
    const char *raw = *(f0r_param_string *)value;
    char *s = names_a_file(index, raw ? raw : "") ? absolute_file(raw) : strdup(raw ? raw : "");
    if (!s) return;
    pthread_mutex_lock(&in->lock);
    if (strcmp(in->param[index], s) != 0) {
        free(in->param[index]);
        in->param[index] = s;
        s = NULL;
        if (index == P_TARGET) in->target_media[0] = 0;
    }
    pthread_mutex_unlock(&in->lock);
    free(s);
}

static void param_get(Instance *in, f0r_param_t value, int index) {
    if (index < 0 || index >= NPARAMS || !value) return;
    if (index == P_TIME_SCALE) *(double *)value = in->time_scale;
    else *(f0r_param_string *)value = in->param[index];
}

static void rgba_to_rgb(const uint32_t *rgba, uint8_t *rgb, size_t n) {
    const uint8_t *p = (const uint8_t *)rgba;
    for (size_t i = 0; i < n; i++) { rgb[3 * i] = p[4 * i]; rgb[3 * i + 1] = p[4 * i + 1];
                                     rgb[3 * i + 2] = p[4 * i + 2]; }
}

static void rgb_to_rgba(const uint8_t *rgb, const uint32_t *alpha_from, uint32_t *rgba, size_t n) {
    const uint8_t *a = (const uint8_t *)alpha_from;
    uint8_t *p = (uint8_t *)rgba;
    for (size_t i = 0; i < n; i++) { p[4 * i] = rgb[3 * i]; p[4 * i + 1] = rgb[3 * i + 1];
                                     p[4 * i + 2] = rgb[3 * i + 2]; p[4 * i + 3] = a[4 * i + 3]; }
}

static void report(Instance *in, const char *err) {
    pthread_mutex_lock(&in->lock);
    int same = strcmp(in->last_error, err) == 0;
    if (!same) snprintf(in->last_error, sizeof in->last_error, "%s", err);
    pthread_mutex_unlock(&in->lock);
    if (!same) fprintf(stderr, "reenact-fx frei0r: passing the input through: %s\n", err);
}

typedef struct { const uint32_t *frame; unsigned w, h; } StillCtx;

static int still_frame(void *ctx, int i, uint8_t *rgb, char *err) {
    StillCtx *s = ctx;
    rgba_to_rgb(s->frame, rgb, (size_t)s->w * s->h);
    return 0;
}

/* {"target": ..., "preset": ..., "set": [...]} plus `extra` members (the driver) */
static int build_spec(Instance *in, const uint32_t *target_frame, const char *extra, rfx_buf *spec,
                      char *err) {
    pthread_mutex_lock(&in->lock); /* one upload of the portrait per instance */
    int rc = 0;
    if (!in->param[P_TARGET][0] && !in->target_media[0]) {
        StillCtx s = {target_frame, in->width, in->height};
        rc = rfx_upload((int)in->width, (int)in->height, 25.0, 1, 1.0, still_frame, &s,
                        in->target_media, sizeof in->target_media, err);
    }
    if (rc == 0) {
        rfx_buf_add(spec, "{\"target\":{");
        if (in->param[P_TARGET][0]) { rfx_buf_add(spec, "\"path\":"); rfx_buf_add_str(spec, in->param[P_TARGET]); }
        else { rfx_buf_add(spec, "\"upload\":"); rfx_buf_add_str(spec, in->target_media); }
        rfx_buf_add(spec, "}");
        if (in->param[P_PRESET][0]) { rfx_buf_add(spec, ",\"preset\":"); rfx_buf_add_str(spec, in->param[P_PRESET]); }
        rfx_buf_add(spec, ",\"set\":[");
        char *copy = strdup(in->param[P_SET]);
        int n = 0;
        for (char *save = NULL, *t = strtok_r(copy, " ,;", &save); t; t = strtok_r(NULL, " ,;", &save)) {
            if (n++) rfx_buf_add(spec, ",");
            rfx_buf_add_str(spec, t);
        }
        free(copy);
        rfx_buf_add(spec, "]");
        rfx_buf_add(spec, extra);
        rfx_buf_add(spec, "}");
    }
    pthread_mutex_unlock(&in->lock);
    return rc;
}

static void forget_upload(Instance *in) { /* the service dropped it: send it again */
    pthread_mutex_lock(&in->lock);
    in->target_media[0] = 0;
    pthread_mutex_unlock(&in->lock);
}

static double seconds_of(Instance *in, double time) {
    return in->time_scale > 0.5 ? time / 1000.0 : time;
}


/* The frame is done: the service's RGB into the output (alpha from the input), or the input copied
 * through and the reason reported. */
static void finish(Instance *in, int rc, const uint8_t *rgb, const uint32_t *input, uint32_t *out,
                   size_t n, const char *err) {
    if (rc == 0) {
        rgb_to_rgba(rgb, input, out, n);
        pthread_mutex_lock(&in->lock);
        in->last_error[0] = 0;
        pthread_mutex_unlock(&in->lock);
    } else {
        if (input && out != input) memcpy(out, input, n * 4);
        report(in, err);
    }
}

/* frei0r entry points that are the same for the filter and the mixer */
int f0r_init(void) { return 1; }
void f0r_deinit(void) {}
f0r_instance_t f0r_construct(unsigned int width, unsigned int height) {
    return instance_new(width, height);
}
void f0r_destruct(f0r_instance_t instance) { instance_free(instance); }
void f0r_set_param_value(f0r_instance_t instance, f0r_param_t param, int index) {
    param_set(instance, param, index);
}
void f0r_get_param_value(f0r_instance_t instance, f0r_param_t param, int index) {
    param_get(instance, param, index);
}

#endif
