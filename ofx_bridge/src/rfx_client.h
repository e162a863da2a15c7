/* The client side of the reenact-fx render service protocol (reenact_fx/service.py), shared by the
 * OFX plugin and the frei0r plugins: find or start `reenact-fx serve`, handshake, requests with
 * bounded waits, frames through files in /dev/shm.  Every failure returns -1 with a sentence in err
 * saying why; nothing here blocks without a timeout or calls exit. */
#ifndef REENACT_RFX_CLIENT_H
#define REENACT_RFX_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#define RFX_PROTOCOL 1
#define RFX_ERR 512
/* in an error: the service no longer has media this client uploaded (send it again) */
#define RFX_REUPLOAD "upload it again"

typedef struct rfx_conn { int fd; } rfx_conn;

/* growable string, for building JSON requests */
typedef struct rfx_buf { char *s; size_t len, cap; } rfx_buf;
void rfx_buf_add(rfx_buf *b, const char *text);
void rfx_buf_addf(rfx_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rfx_buf_add_str(rfx_buf *b, const char *text); /* as a JSON string literal */
void rfx_buf_free(rfx_buf *b);

/* the socket the service listens on: $REENACT_FX_SOCKET, else $XDG_RUNTIME_DIR/reenact-fx/
 * serve.sock, else /tmp/reenact-fx-UID/serve.sock (as reenact_fx.service.default_socket_path) */
void rfx_socket_path(char *out, size_t n);

/* Connect to the service, starting it if nobody answers, and shake hands.  protocol is normally
 * RFX_PROTOCOL (tests pass others). */
int rfx_open(rfx_conn *c, char *err);
int rfx_open_version(rfx_conn *c, int protocol, char *err);
void rfx_close(rfx_conn *c);

/* Send one JSON request and read the response (malloc'd, caller frees) within timeout seconds.
 * A response with "ok": false becomes -1 with its "error" in err (and *resp still set). */
int rfx_call(rfx_conn *c, const char *request, double timeout, char **resp, char *err);

/* top-level members of a flat JSON object */
int rfx_json_string(const char *json, const char *key, char *out, size_t n); /* 0 found */
double rfx_json_number(const char *json, const char *key, double fallback);
int rfx_json_true(const char *json, const char *key);

/* a file in /dev/shm named reenactfx-* that the service maps */
typedef struct rfx_shm { char name[96]; uint8_t *data; size_t size; } rfx_shm;
int rfx_shm_create(rfx_shm *s, size_t size, char *err);
void rfx_shm_destroy(rfx_shm *s);

/* Render one frame: rgb (height x width x 3, top-down) holds the host's target frame when source
 * is set, and receives the result.  spec is the JSON spec object; when by_time is set, at is in
 * seconds, else a frame index.  wait: seconds the service may spend analysing first. */
int rfx_render(const char *spec, double at, int by_time, int width, int height, double aspect,
               uint8_t *rgb, int source, double wait, char *err);

/* Live: rgb holds the host's target frame then its driver frame (2 x height x width x 3); the
 * result replaces the target frame.  session names the caller's stream (one per plugin instance). */
int rfx_live(const char *spec, const char *session, double seconds, int width, int height,
             uint8_t *rgb2, double wait, char *err);

/* Upload a clip the host decodes itself; next_frame fills rgb with frame i (0 or -1 + err). */
typedef int (*rfx_frame_fn)(void *ctx, int i, uint8_t *rgb, char *err);
int rfx_upload(int width, int height, double fps, int count, double aspect, rfx_frame_fn next,
               void *ctx, char *media, size_t media_n, char *err);

/* seconds from the environment variable name, else fallback */
double rfx_env_seconds(const char *name, double fallback);

#endif
