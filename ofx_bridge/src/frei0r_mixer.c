/* reenact_fx_mixer: frei0r mixer2 (an MLT transition); input 1 is the target, input 2 the driver.
 * The driver arrives as frames, not a file, so the service renders live: frame t from the driver
 * frames seen up to t (see LiveSession in reenact_fx/service.py).  The driver parameter is unused. */
#include "frei0r_common.h"

#include <math.h>

void f0r_get_plugin_info(f0r_plugin_info_t *info) {
    info->name = "reenact_fx_mixer";
    info->author = "reenact-fx";
    info->plugin_type = F0R_PLUGIN_TYPE_MIXER2;
    info->color_model = F0R_COLOR_MODEL_RGBA8888;
    info->frei0r_version = FREI0R_MAJOR_VERSION;
    info->major_version = 0;
    info->minor_version = 1;
    info->num_params = NPARAMS;
    info->explanation = "Face reenactment: the face in the first input performs the expressions and "
                        "head motion of the face in the second (rendered live by `reenact-fx serve`)";
}

void f0r_get_param_info(f0r_param_info_t *info, int index) {
    if (index >= 0 && index < NPARAMS) *info = PARAMS[index];
    if (index == P_DRIVER) info->explanation = "unused: the second input is the driver";
}

void f0r_update2(f0r_instance_t instance, double time, const uint32_t *target,
                 const uint32_t *driver, const uint32_t *unused, uint32_t *outframe) {
    Instance *in = instance;
    size_t n = (size_t)in->width * in->height;
    char err[RFX_ERR] = "", session[64];
    rfx_buf spec = {0};
    int rc = -1;
    uint8_t *rgb = malloc(2 * n * 3);
    double seconds = seconds_of(in, time);
    snprintf(session, sizeof session, "frei0r-%d-%p", (int)getpid(), (void *)in);
    if (!rgb) snprintf(err, RFX_ERR, "out of memory");
    else if (!target || !driver) snprintf(err, RFX_ERR, "the mixer needs two inputs");
    else if (!(seconds >= 0 && seconds < 1e9))
        snprintf(err, RFX_ERR, "the host gives no usable frame time (%g)", time);
    else for (int attempt = 0; attempt < 2; attempt++) {
        spec.len = 0;
        if (build_spec(in, target, "", &spec, err) != 0) break;
        rgba_to_rgb(target, rgb, n);
        rgba_to_rgb(driver, rgb + n * 3, n);
        rc = rfx_live(spec.s, session, seconds, (int)in->width, (int)in->height, rgb,
                      rfx_env_seconds("REENACT_FX_ANALYSIS_WAIT", 300.0), err);
        if (rc == 0 || !strstr(err, RFX_REUPLOAD)) break;
        forget_upload(in);
    }
    finish(in, rc, rgb, target, outframe, n, err);
    rfx_buf_free(&spec);
    free(rgb);
}

void f0r_update(f0r_instance_t instance, double time, const uint32_t *inframe, uint32_t *outframe) {
    f0r_update2(instance, time, inframe, NULL, NULL, outframe);
}
