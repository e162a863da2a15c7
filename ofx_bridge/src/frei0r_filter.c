/* reenact_fx_filter: frei0r filter; the input is the target, the driver a file parameter.
 * Frame at time t (seconds) = reenact-fx's output frame round(t * fps), composed into the host's own
 * input frame by the render service. */
#include "frei0r_common.h"

#include <math.h>

void f0r_get_plugin_info(f0r_plugin_info_t *info) {
    info->name = "reenact_fx_filter";
    info->author = "reenact-fx";
    info->plugin_type = F0R_PLUGIN_TYPE_FILTER;
    info->color_model = F0R_COLOR_MODEL_RGBA8888;
    info->frei0r_version = FREI0R_MAJOR_VERSION;
    info->major_version = 0;
    info->minor_version = 1;
    info->num_params = NPARAMS;
    info->explanation = "Face reenactment: the face in the input performs the driver clip's "
                        "expressions and head motion (rendered by `reenact-fx serve`)";
}

void f0r_get_param_info(f0r_param_info_t *info, int index) {
    if (index >= 0 && index < NPARAMS) *info = PARAMS[index];
}

void f0r_update(f0r_instance_t instance, double time, const uint32_t *inframe, uint32_t *outframe) {
    Instance *in = instance;
    size_t n = (size_t)in->width * in->height;
    char err[RFX_ERR] = "";
    rfx_buf spec = {0}, extra = {0};
    int rc = -1;
    if (getenv("REENACT_FX_DEBUG"))
        fprintf(stderr, "reenact-fx frei0r: time %g (time_scale %g)\n", time, in->time_scale);
    uint8_t *rgb = malloc(n * 3); /* per call: a host may run instances from several threads */
    pthread_mutex_lock(&in->lock);
    if (in->param[P_DRIVER][0]) {
        rfx_buf_add(&extra, ",\"driver\":{\"path\":");
        rfx_buf_add_str(&extra, in->param[P_DRIVER]);
        rfx_buf_add(&extra, "}");
    }
    pthread_mutex_unlock(&in->lock);
    if (!rgb) snprintf(err, RFX_ERR, "out of memory");
    else if (!extra.len) snprintf(err, RFX_ERR, "set the driver parameter to a clip");
    else if (!(time >= 0 && time < 1e9))
        snprintf(err, RFX_ERR, "the host gives no usable frame time (%g); with ffmpeg, give the "
                 "frames timestamps (e.g. setpts=N/25/TB before the frei0r filter)", time);
    else for (int attempt = 0; attempt < 2; attempt++) {
        spec.len = 0;
        if (build_spec(in, inframe, extra.s, &spec, err) != 0) break;
        rgba_to_rgb(inframe, rgb, n);
        rc = rfx_render(spec.s, seconds_of(in, time), 1, (int)in->width, (int)in->height, 1.0,
                        rgb, 1, rfx_env_seconds("REENACT_FX_ANALYSIS_WAIT", 300.0), err);
        if (rc == 0 || !strstr(err, RFX_REUPLOAD)) break;
        forget_upload(in);
    }
    finish(in, rc, rgb, inframe, outframe, n, err);
    rfx_buf_free(&spec);
    rfx_buf_free(&extra);
    free(rgb);
}
