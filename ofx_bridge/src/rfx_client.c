/* Client of the reenact-fx render service: see rfx_client.h and reenact_fx/service.py. */
#define _GNU_SOURCE
#include "rfx_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_RESPONSE (16u << 20)

/* ------------------------------------------------------------------------------ strings */
static void buf_reserve(rfx_buf *b, size_t more) {
    if (b->len + more + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more + 1) cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) abort(); /* out of memory while building a few kB of JSON: nothing sane is left */
    b->s = s;
    b->cap = cap;
}

void rfx_buf_add(rfx_buf *b, const char *text) {
    size_t n = strlen(text);
    buf_reserve(b, n);
    memcpy(b->s + b->len, text, n + 1);
    b->len += n;
}

void rfx_buf_addf(rfx_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void rfx_buf_add_str(rfx_buf *b, const char *text) {
    rfx_buf_add(b, "\"");
    for (const unsigned char *p = (const unsigned char *)(text ? text : ""); *p; p++) {
        if (*p == '"' || *p == '\\') rfx_buf_addf(b, "\\%c", *p);
        else if (*p < 0x20) rfx_buf_addf(b, "\\u%04x", *p);
        else { char c[2] = {(char)*p, 0}; rfx_buf_add(b, c); }
    }
    rfx_buf_add(b, "\"");
}

void rfx_buf_free(rfx_buf *b) {
    free(b->s);
    b->s = NULL;
    b->len = b->cap = 0;
}

double rfx_env_seconds(const char *name, double fallback) {
    const char *v = getenv(name);
    if (!v || !*v) return fallback;
    char *end;
    double d = strtod(v, &end);
    return (end != v && d > 0) ? d : fallback;
}

/* ------------------------------------------------------------------------------ JSON */
static const char *skip_ws(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    return p;
}

/* past a JSON string starting at its opening quote; out (may be NULL) gets it unescaped */
static const char *scan_string(const char *p, char *out, size_t n) {
    size_t k = 0;
    if (*p != '"') return NULL;
    for (p++; *p && *p != '"'; p++) {
        char c = *p;
        if (c == '\\') {
            p++;
            switch (*p) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'b': case 'f': c = ' '; break;
            case 'u': /* keep ASCII, replace the rest: messages only */
                if (!p[1] || !p[2] || !p[3] || !p[4]) return NULL;
                { char hex[5] = {p[1], p[2], p[3], p[4], 0}; long u = strtol(hex, NULL, 16);
                  c = (u > 0 && u < 0x80) ? (char)u : '?'; }
                p += 4;
                break;
            case 0: return NULL;
            default: c = *p;
            }
        }
        if (out && k + 1 < n) out[k++] = c;
    }
    if (out && n) out[k] = 0;
    return *p == '"' ? p + 1 : NULL;
}

static const char *scan_value(const char *p) {
    p = skip_ws(p);
    if (*p == '"') return scan_string(p, NULL, 0);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        for (; *p; p++) {
            if (*p == '"') { p = scan_string(p, NULL, 0); if (!p) return NULL; p--; continue; }
            if (*p == '{' || *p == '[') depth++;
            if (*p == '}' || *p == ']') { if (--depth == 0) return p + 1; }
        }
        return NULL;
    }
    while (*p && *p != ',' && *p != '}' && *p != ']') p++;
    return p;
}

/* the value of a top-level member, or NULL */
static const char *member(const char *json, const char *key) {
    char name[128];
    const char *p = skip_ws(json);
    if (*p != '{') return NULL;
    p++;
    for (;;) {
        p = skip_ws(p);
        if (*p != '"') return NULL;
        p = scan_string(p, name, sizeof name);
        if (!p) return NULL;
        p = skip_ws(p);
        if (*p != ':') return NULL;
        const char *value = skip_ws(p + 1);
        if (strcmp(name, key) == 0) return value;
        p = scan_value(value);
        if (!p) return NULL;
        p = skip_ws(p);
        if (*p != ',') return NULL;
        p++;
    }
}

int rfx_json_string(const char *json, const char *key, char *out, size_t n) {
    const char *v = member(json, key);
    if (!v || *v != '"') return -1;
    return scan_string(v, out, n) ? 0 : -1;
}

double rfx_json_number(const char *json, const char *key, double fallback) {
    const char *v = member(json, key);
    if (!v) return fallback;
    char *end;
    double d = strtod(v, &end);
    return end == v ? fallback : d;
}

int rfx_json_true(const char *json, const char *key) {
    const char *v = member(json, key);
    return v && strncmp(v, "true", 4) == 0;
}

/* ------------------------------------------------------------------------------ socket */
void rfx_socket_path(char *out, size_t n) {
    const char *explicit_path = getenv("REENACT_FX_SOCKET");
    const char *runtime = getenv("XDG_RUNTIME_DIR");
    if (explicit_path && *explicit_path) snprintf(out, n, "%s", explicit_path);
    else if (runtime && runtime[0] == '/') snprintf(out, n, "%s/reenact-fx/serve.sock", runtime);
    else snprintf(out, n, "/tmp/reenact-fx-%u/serve.sock", (unsigned)getuid());
}

static int set_timeout(int fd, double seconds) {
    struct timeval tv;
    tv.tv_sec = (time_t)seconds;
    tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6);
    if (seconds <= 0) { tv.tv_sec = 0; tv.tv_usec = 1000; }
    return setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) |
           setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static int try_connect(const char *path, int *out) {
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof addr.sun_path) { errno = ENAMETOOLONG; return -1; }
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    *out = fd;
    return 0;
}

static int send_all(int fd, const void *data, size_t n) {
    const char *p = data;
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int recv_all(int fd, void *data, size_t n) {
    char *p = data;
    while (n) {
        ssize_t k = recv(fd, p, n, 0);
        if (k < 0 && errno == EINTR) continue;
        if (k == 0) { errno = ECONNRESET; return -1; }
        if (k < 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

int rfx_call(rfx_conn *c, const char *request, double timeout, char **resp, char *err) {
    *resp = NULL;
    size_t n = strlen(request);
    unsigned char head[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
                             (unsigned char)(n >> 8), (unsigned char)n};
    set_timeout(c->fd, timeout);
    if (send_all(c->fd, head, 4) || send_all(c->fd, request, n)) {
        snprintf(err, RFX_ERR, "the reenact-fx service stopped answering (send: %s)",
                 strerror(errno));
        return -1;
    }
    if (recv_all(c->fd, head, 4)) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            snprintf(err, RFX_ERR, "the reenact-fx service did not answer within %gs "
                     "(REENACT_FX_TIMEOUT raises the limit)", timeout);
        else
            snprintf(err, RFX_ERR, "the reenact-fx service went away (%s); it may have crashed, "
                     "see serve.log next to its socket", strerror(errno));
        return -1;
    }
    size_t len = ((size_t)head[0] << 24) | ((size_t)head[1] << 16) | ((size_t)head[2] << 8) | head[3];
    if (len > MAX_RESPONSE) {
        snprintf(err, RFX_ERR, "the reenact-fx service sent a %zu-byte answer; not a reenact-fx "
                 "service?", len);
        return -1;
    }
    char *text = malloc(len + 1);
    if (!text) { snprintf(err, RFX_ERR, "out of memory"); return -1; }
    if (recv_all(c->fd, text, len)) {
        free(text);
        snprintf(err, RFX_ERR, "the reenact-fx service went away mid-answer (%s)", strerror(errno));
        return -1;
    }
    text[len] = 0;
    *resp = text;
    if (!rfx_json_true(text, "ok")) {
        char msg[RFX_ERR - 32];
        if (rfx_json_string(text, "error", msg, sizeof msg) != 0)
            snprintf(msg, sizeof msg, "malformed answer");
        snprintf(err, RFX_ERR, "reenact-fx: %s", msg);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------ starting it */
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;

static int find_serve(char *exe, size_t n, char *err) {
    const char *explicit_exe = getenv("REENACT_FX_SERVE");
    if (explicit_exe && *explicit_exe) {
        if (access(explicit_exe, X_OK) != 0) {
            snprintf(err, RFX_ERR, "REENACT_FX_SERVE=%s is not an executable (%s)", explicit_exe,
                     strerror(errno));
            return -1;
        }
        snprintf(exe, n, "%s", explicit_exe);
        return 0;
    }
    const char *path = getenv("PATH");
    char dirs[4096];
    snprintf(dirs, sizeof dirs, "%s:%s/.local/bin", path ? path : "/usr/local/bin:/usr/bin",
             getenv("HOME") ? getenv("HOME") : "/nonexistent");
    for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(exe, n, "%s/reenact-fx", *d ? d : ".");
        if (access(exe, X_OK) == 0) return 0;
    }
    snprintf(err, RFX_ERR, "reenact-fx was not found on PATH, so its render service cannot start; "
             "install reenact-fx (pip install reenact-fx) or set REENACT_FX_SERVE to the path of "
             "the reenact-fx program");
    return -1;
}

static int spawn_service(const char *socket_path, char *err) {
    char exe[1024], dir[1024], log[1100];
    if (find_serve(exe, sizeof exe, err)) return -1;
    snprintf(dir, sizeof dir, "%s", socket_path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0; else snprintf(dir, sizeof dir, ".");
    mkdir(dir, 0700);
    snprintf(log, sizeof log, "%s/serve.log", dir);
    pid_t child = fork();
    if (child < 0) { snprintf(err, RFX_ERR, "cannot start %s: fork: %s", exe, strerror(errno)); return -1; }
    if (child == 0) {
        /* detach twice so the service outlives this host and is never our zombie */
        setsid();
        if (fork() != 0) _exit(0);
        int null = open("/dev/null", O_RDWR);
        int out = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        dup2(null, 0);
        dup2(null, 1);
        dup2(out >= 0 ? out : null, 2);
        for (int fd = 3; fd < 4096; fd++) close(fd);
        char *argv[] = {exe, "serve", "--socket", (char *)socket_path, NULL};
        execv(exe, argv);
        dprintf(2, "reenact-fx plugin: cannot exec %s: %s\n", exe, strerror(errno));
        _exit(127);
    }
    int status;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {}
    return 0;
}

static int connect_or_start(const char *path, int *fd, char *err) {
    if (try_connect(path, fd) == 0) return 0;
    pthread_mutex_lock(&start_lock);   /* one start per process; others wait and connect */
    if (try_connect(path, fd) == 0) { pthread_mutex_unlock(&start_lock); return 0; }
    int rc = spawn_service(path, err);
    if (rc == 0) {
        double limit = rfx_env_seconds("REENACT_FX_START_TIMEOUT", 30.0);
        struct timespec t0, now, nap = {0, 50 * 1000 * 1000};
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (;;) {
            if (try_connect(path, fd) == 0) break;
            clock_gettime(CLOCK_MONOTONIC, &now);
            if ((double)(now.tv_sec - t0.tv_sec) + 1e-9 * (double)(now.tv_nsec - t0.tv_nsec) > limit) {
                snprintf(err, RFX_ERR, "started `reenact-fx serve` but nothing answered on %s within "
                         "%gs; see serve.log in that folder", path, limit);
                rc = -1;
                break;
            }
            nanosleep(&nap, NULL);
        }
    }
    pthread_mutex_unlock(&start_lock);
    return rc;
}

int rfx_open_version(rfx_conn *c, int protocol, char *err) {
    char path[1024], hello[96], *resp = NULL;
    rfx_socket_path(path, sizeof path);
    c->fd = -1;
    if (connect_or_start(path, &c->fd, err)) return -1;
    snprintf(hello, sizeof hello, "{\"op\":\"hello\",\"protocol\":%d,\"client\":\"c\"}", protocol);
    if (rfx_call(c, hello, rfx_env_seconds("REENACT_FX_TIMEOUT", 30.0), &resp, err)) {
        if (resp && rfx_json_number(resp, "protocol", -1) != protocol) {
            char why[RFX_ERR - 96];
            snprintf(why, sizeof why, "%s", err);
            snprintf(err, RFX_ERR, "the service on %s speaks another protocol version: %s", path, why);
        }
        free(resp);
        rfx_close(c);
        return -1;
    }
    free(resp);
    return 0;
}

int rfx_open(rfx_conn *c, char *err) { return rfx_open_version(c, RFX_PROTOCOL, err); }

void rfx_close(rfx_conn *c) {
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
}

/* ------------------------------------------------------------------------------ shared memory */
int rfx_shm_create(rfx_shm *s, size_t size, char *err) {
    static unsigned counter;
    unsigned k = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
    snprintf(s->name, sizeof s->name, "reenactfx-c-%d-%lx-%u", (int)getpid(),
             (unsigned long)pthread_self() & 0xffffffffUL, k);
    char path[160];
    snprintf(path, sizeof path, "/dev/shm/%s", s->name);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) { snprintf(err, RFX_ERR, "cannot create %s: %s", path, strerror(errno)); return -1; }
    if (ftruncate(fd, (off_t)size) != 0) {
        snprintf(err, RFX_ERR, "cannot size %s to %zu bytes: %s", path, size, strerror(errno));
        close(fd); unlink(path);
        return -1;
    }
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        snprintf(err, RFX_ERR, "cannot map %s: %s", path, strerror(errno));
        unlink(path);
        return -1;
    }
    s->data = p;
    s->size = size;
    return 0;
}

void rfx_shm_destroy(rfx_shm *s) {
    char path[160];
    if (s->data) munmap(s->data, s->size);
    snprintf(path, sizeof path, "/dev/shm/%s", s->name);
    unlink(path);
    s->data = NULL;
}

/* ------------------------------------------------------------------------------ requests */
int rfx_render(const char *spec, double at, int by_time, int width, int height, double aspect,
               uint8_t *rgb, int source, double wait, char *err) {
    size_t bytes = (size_t)width * (size_t)height * 3;
    rfx_shm shm;
    rfx_conn c;
    char *resp = NULL;
    if (rfx_shm_create(&shm, bytes, err)) return -1;
    if (source) memcpy(shm.data, rgb, bytes);
    int rc = rfx_open(&c, err);
    if (rc == 0) {
        rfx_buf req = {0};
        rfx_buf_add(&req, "{\"op\":\"render\",\"spec\":");
        rfx_buf_add(&req, spec);
        rfx_buf_addf(&req, ",\"%s\":%.17g,\"shm\":\"%s\",\"width\":%d,\"height\":%d,"
                     "\"pixel_aspect\":%.17g,\"source\":%s,\"wait\":%.17g}",
                     by_time ? "time" : "frame", by_time ? at : (double)(long)at, shm.name, width,
                     height, aspect, source ? "true" : "false", wait);
        rc = rfx_call(&c, req.s, wait + rfx_env_seconds("REENACT_FX_TIMEOUT", 30.0), &resp, err);
        rfx_buf_free(&req);
        rfx_close(&c);
        if (rc == 0) memcpy(rgb, shm.data, bytes);
    }
    free(resp);
    rfx_shm_destroy(&shm);
    return rc;
}

int rfx_live(const char *spec, const char *session, double seconds, int width, int height,
             uint8_t *rgb2, double wait, char *err) {
    size_t frame = (size_t)width * (size_t)height * 3;
    rfx_shm shm;
    rfx_conn c;
    char *resp = NULL;
    if (rfx_shm_create(&shm, 2 * frame, err)) return -1;
    memcpy(shm.data, rgb2, 2 * frame);
    int rc = rfx_open(&c, err);
    if (rc == 0) {
        rfx_buf req = {0};
        rfx_buf_add(&req, "{\"op\":\"live\",\"spec\":");
        rfx_buf_add(&req, spec);
        rfx_buf_add(&req, ",\"session\":");
        rfx_buf_add_str(&req, session);
        rfx_buf_addf(&req, ",\"time\":%.17g,\"shm\":\"%s\",\"width\":%d,\"height\":%d}",
                     seconds, shm.name, width, height);
        rc = rfx_call(&c, req.s, wait + rfx_env_seconds("REENACT_FX_TIMEOUT", 30.0), &resp, err);
        rfx_buf_free(&req);
        rfx_close(&c);
        if (rc == 0) memcpy(rgb2, shm.data, frame);
    }
    free(resp);
    rfx_shm_destroy(&shm);
    return rc;
}

int rfx_upload(int width, int height, double fps, int count, double aspect, rfx_frame_fn next,
               void *ctx, char *media, size_t media_n, char *err) {
    size_t bytes = (size_t)width * (size_t)height * 3;
    double timeout = rfx_env_seconds("REENACT_FX_TIMEOUT", 30.0);
    char upload[64], req[512], *resp = NULL;
    rfx_shm shm;
    rfx_conn c;
    if (rfx_shm_create(&shm, bytes, err)) return -1;
    int rc = rfx_open(&c, err);
    if (rc) { rfx_shm_destroy(&shm); return -1; }
    snprintf(req, sizeof req, "{\"op\":\"upload_begin\",\"width\":%d,\"height\":%d,\"fps\":%.17g,"
             "\"count\":%d,\"pixel_aspect\":%.17g}", width, height, fps, count, aspect);
    rc = rfx_call(&c, req, timeout, &resp, err);
    if (rc == 0 && rfx_json_string(resp, "upload", upload, sizeof upload)) {
        snprintf(err, RFX_ERR, "the service answered upload_begin without an upload id");
        rc = -1;
    }
    for (int i = 0; rc == 0 && i < count; i++) {
        free(resp);
        resp = NULL;
        rc = next(ctx, i, shm.data, err);
        if (rc) break;
        snprintf(req, sizeof req, "{\"op\":\"upload_frames\",\"upload\":\"%s\",\"shm\":\"%s\","
                 "\"count\":1}", upload, shm.name);
        rc = rfx_call(&c, req, timeout, &resp, err);
    }
    if (rc == 0) {
        free(resp);
        resp = NULL;
        snprintf(req, sizeof req, "{\"op\":\"upload_end\",\"upload\":\"%s\"}", upload);
        rc = rfx_call(&c, req, timeout + (double)count * 0.5, &resp, err);
        if (rc == 0 && rfx_json_string(resp, "media", media, media_n)) {
            snprintf(err, RFX_ERR, "the service answered upload_end without a media name");
            rc = -1;
        }
    }
    free(resp);
    rfx_close(&c);
    rfx_shm_destroy(&shm);
    return rc;
}
