/* reenact_fx_filter: frei0r filter; the input is the target, the driver a file parameter.
 * Frame at time t (seconds) = reenact-fx's output frame round(t * fps), composed into the host's own
 * input frame by the render service.
 *
 * ffmpeg's frei0r filter (vf_frei0r.c, 5.1 and later) loses the time of every frame whose rows are
 * padded, i.e. whose width is not a multiple of the CPU's alignment (32 or 64 px: 720 is not, 704,
 * 1280 and 1920 are): it copies such a frame into an unpadded buffer with av_frame_copy, which copies
 * the pixels but not the pts, and then passes AV_NOPTS_VALUE * time_base * 1000 (about -6e17) as the
 * time.  setpts cannot help (the pts is dropped after it).  ffmpeg calls update once per frame in
 * stream order, so then the instance's own count of frames is the frame index. */
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

/* The index of this call among the instance's updates (0, 1, 2, ...). */
static long next_update(Instance *in) {
    pthread_mutex_lock(&in->lock);
    long i = in->updates++;
    pthread_mutex_unlock(&in->lock);
    return i;
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
    long index = next_update(in);
    /* a time is usable when finite and not negative; a huge negative one is ffmpeg's lost pts */
    int by_time = time >= 0 && time < 1e12;
    int lost_pts = time < -1e12;
    if (getenv("REENACT_FX_DEBUG"))
        fprintf(stderr, "reenact-fx frei0r: time %g (time_scale %g)%s\n", time, in->time_scale,
                lost_pts ? "; no pts from the host: frame index used" : "");
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
    else if (!by_time && !lost_pts)
        snprintf(err, RFX_ERR, "the host gives no usable frame time (%g); with ffmpeg, give the "
                 "frames timestamps (e.g. setpts=N/25/TB before the frei0r filter)", time);
    else for (int attempt = 0; attempt < 2; attempt++) {
        spec.len = 0;
        if (build_spec(in, inframe, extra.s, &spec, err) != 0) break;
        rgba_to_rgb(inframe, rgb, n);
        rc = rfx_render(spec.s, by_time ? seconds_of(in, time) : (double)index, by_time,
                        (int)in->width, (int)in->height, 1.0,
                        rgb, 1, rfx_env_seconds("REENACT_FX_ANALYSIS_WAIT", 300.0), err);
        if (rc == 0 || !strstr(err, RFX_REUPLOAD)) break;
        forget_upload(in);
    }
    finish(in, rc, rgb, inframe, outframe, n, err);
    rfx_buf_free(&spec);
    rfx_buf_free(&extra);
    free(rgb);
}
