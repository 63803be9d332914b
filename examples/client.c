/*
 * A reference client of the streamrecon mesh stream, written from docs/protocol.md alone, against
 * libzmq's C API (no streamrecon code). It subscribes, checks every message as the spec's decoder
 * rules say (sizes before anything else, the CRC-32C, finite values, face indices), writes each
 * mesh as an OBJ file in OUTDIR, and stops at the end of stream.
 *
 *   cc -O2 -Wall -o client examples/client.c -lzmq
 *   ./client tcp://127.0.0.1:5555 OUTDIR [KEYDIR]
 *
 * KEYDIR (optional): a CURVE key folder from `streamrecon keys generate KEYDIR`; the client reads
 * the server's public key from KEYDIR/server.key and its own pair from KEYDIR/client.key_secret.
 *
 * stdout: one line per message ("mesh seq=.. frame=.. person=.. vertices=.. faces=.. crc=..",
 * "end seq=.. frames=..") and a summary ("received N missed M rejected R").
 * Exit: 0 end of stream received; 1 a protocol or system error; 2 usage; 3 the publisher went
 * silent (no heartbeat for 3 s) without an end of stream.
 *
 * OBJ lines match streamrecon's writer byte for byte: "v %.6f %.6f %.6f" (and " %.4f %.4f %.4f"
 * colours as float32 c / 255), "vn %.5f %.5f %.5f", "f a b c" or "f a//a b//b c//c" (1-based).
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define TOPIC "streamrecon.mesh"
#define VERSION 2
#define HEADER_SIZE 96
#define MAX_HEADER_SIZE 4096
#define KIND_MESH 1
#define KIND_END 2
#define KIND_HEARTBEAT 3
#define MAX_VERTICES (1u << 25)
#define MAX_FACES (1u << 26)
#define MAX_PARTS 8
#define LOST_AFTER_MS 3000

/* ---- little-endian readers (the wire is little-endian whatever the host) ---- */
static uint16_t u16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t u32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t u64(const uint8_t *p) { return (uint64_t)u32(p) | (uint64_t)u32(p + 4) << 32; }
static float f32(const uint8_t *p) { uint32_t v = u32(p); float f; memcpy(&f, &v, 4); return f; }
static double f64(const uint8_t *p) { uint64_t v = u64(p); double d; memcpy(&d, &v, 8); return d; }

/* ---- CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), continuing from crc ---- */
static uint32_t crc_table[256];
static void crc_init(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[n] = c;
    }
}
static uint32_t crc32c(uint32_t crc, const uint8_t *p, size_t n) {
    uint32_t c = crc ^ 0xFFFFFFFFu;
    while (n--) c = crc_table[(c ^ *p++) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

/* ---- CURVE key files (ZeroMQ certificates: lines `public-key = "Z85"` / `secret-key = "Z85"`) ---- */
static int read_key(const char *path, const char *name, char out[41]) {
    FILE *f = fopen(path, "r");
    if (!f) { fprintf(stderr, "client: cannot open %s: %s\n", path, strerror(errno)); return -1; }
    char line[512];
    int found = -1;
    while (fgets(line, sizeof line, f)) {
        char *k = strstr(line, name);
        char *q = k ? strchr(k, '"') : NULL;
        if (q && strlen(q + 1) >= 41 && q[41] == '"') { memcpy(out, q + 1, 40); out[40] = 0; found = 0; break; }
    }
    fclose(f);
    if (found) fprintf(stderr, "client: no %s in %s\n", name, path);
    return found;
}

typedef struct {
    uint16_t kind, flags, person_index, persons_in_frame;
    uint64_t seq;
    int64_t frame_index;
    int32_t person_id;
    double capture_time, publish_time;
    uint32_t nv, nf, image_width, image_height, checksum;
    float rect[4];
    uint8_t coord_frame, dtype[4];
} header_t;

/* The spec's decoder rules 1-3 on the header part; NULL when valid, else the reason. */
static const char *check_header(const uint8_t *p, size_t n, header_t *h) {
    static char why[200];
    if (n < 8) return "header shorter than 8 bytes";
    if (memcmp(p, "SRM1", 4) != 0) return "bad magic";
    uint16_t version = u16(p + 4), header_size = u16(p + 6);
    if (version != VERSION) {
        snprintf(why, sizeof why, "wire version %u, this client speaks %d: upgrade the %s", version, VERSION,
                 version > VERSION ? "client" : "publisher");
        return why;
    }
    if (header_size < HEADER_SIZE || header_size > MAX_HEADER_SIZE || n != header_size) return "bad header_size";
    h->kind = u16(p + 8); h->flags = u16(p + 10); h->seq = u64(p + 12); h->frame_index = (int64_t)u64(p + 20);
    h->person_id = (int32_t)u32(p + 28); h->person_index = u16(p + 32); h->persons_in_frame = u16(p + 34);
    h->capture_time = f64(p + 36); h->publish_time = f64(p + 44); h->nv = u32(p + 52); h->nf = u32(p + 56);
    for (int i = 0; i < 4; i++) h->rect[i] = f32(p + 60 + 4 * i);
    h->image_width = u32(p + 76); h->image_height = u32(p + 80); h->coord_frame = p[84];
    memcpy(h->dtype, p + 85, 4);
    h->checksum = u32(p + 92);
    if (h->kind < KIND_MESH || h->kind > KIND_HEARTBEAT) return "unknown kind";
    if (h->flags & ~3u) return "unknown flag bits";
    if (h->nv > MAX_VERTICES || h->nf > MAX_FACES) return "counts over the limits";
    if (h->coord_frame > 1) return "unknown coord_frame";
    if (h->kind == KIND_MESH) {
        uint8_t want[4] = {1, 2, (h->flags & 1) ? 1 : 0, (h->flags & 2) ? 3 : 0};
        if (memcmp(h->dtype, want, 4) != 0) return "dtype codes";
    } else if (h->nv || h->nf || h->flags || h->dtype[0] || h->dtype[1] || h->dtype[2] || h->dtype[3]) {
        return "a message without buffers announces some";
    }
    if (!isfinite(h->capture_time) || !isfinite(h->publish_time)) return "non-finite time";
    int nans = 0;
    for (int i = 0; i < 4; i++) nans += isnan(h->rect[i]) ? 1 : 0;
    if (nans != 0 && nans != 4) return "rect partly NaN";
    if (nans == 0) for (int i = 0; i < 4; i++) if (!isfinite(h->rect[i])) return "rect not finite";
    return NULL;
}

static int write_obj(const char *dir, const header_t *h, const uint8_t *v, const uint8_t *f, const uint8_t *nrm, const uint8_t *col) {
    char path[4096];
    snprintf(path, sizeof path, "%s/frame_%06lld_p%d.obj", dir, (long long)h->frame_index, h->person_id);
    FILE *o = fopen(path, "w");
    if (!o) { fprintf(stderr, "client: cannot write %s: %s\n", path, strerror(errno)); return -1; }
    for (uint32_t i = 0; i < h->nv; i++) {
        fprintf(o, "v %.6f %.6f %.6f", f32(v + 12 * i), f32(v + 12 * i + 4), f32(v + 12 * i + 8));
        if (col) fprintf(o, " %.4f %.4f %.4f", (float)col[3 * i] / 255.0f, (float)col[3 * i + 1] / 255.0f, (float)col[3 * i + 2] / 255.0f);
        fputc('\n', o);
    }
    if (nrm)
        for (uint32_t i = 0; i < h->nv; i++)
            fprintf(o, "vn %.5f %.5f %.5f\n", f32(nrm + 12 * i), f32(nrm + 12 * i + 4), f32(nrm + 12 * i + 8));
    for (uint32_t i = 0; i < h->nf; i++) {
        long long a = (int32_t)u32(f + 12 * i) + 1LL, b = (int32_t)u32(f + 12 * i + 4) + 1LL, c = (int32_t)u32(f + 12 * i + 8) + 1LL;
        if (nrm) fprintf(o, "f %lld//%lld %lld//%lld %lld//%lld\n", a, a, b, b, c, c);
        else fprintf(o, "f %lld %lld %lld\n", a, b, c);
    }
    if (fclose(o) != 0) { fprintf(stderr, "client: cannot write %s\n", path); return -1; }
    return 0;
}

/* Decode one message (parts after the topic). 0: a mesh (written) or heartbeat; 1: end of
 * stream; -1: rejected (the reason on stderr); -2: a system error. */
static int handle(zmq_msg_t *parts, int nparts, const char *outdir, header_t *h, uint64_t *next_seq, int *have_seq, long *missed) {
    const char *why = check_header(zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]), h);
    if (why) { fprintf(stderr, "client: rejected: %s\n", why); return -1; }
    size_t sizes[4];
    int nbuf = 0;
    if (h->kind == KIND_MESH) {
        sizes[nbuf++] = (size_t)h->nv * 12;
        sizes[nbuf++] = (size_t)h->nf * 12;
        if (h->flags & 1) sizes[nbuf++] = (size_t)h->nv * 12;
        if (h->flags & 2) sizes[nbuf++] = (size_t)h->nv * 3;
    }
    if (nparts != 1 + nbuf) { fprintf(stderr, "client: rejected: %d parts, header announces %d\n", nparts, 1 + nbuf); return -1; }
    for (int i = 0; i < nbuf; i++)
        if (zmq_msg_size(&parts[1 + i]) != sizes[i]) { fprintf(stderr, "client: rejected: buffer %d size\n", i); return -1; }
    /* CRC-32C: the header with bytes 92..95 read as zero, then every buffer in order */
    const uint8_t *hp = zmq_msg_data(&parts[0]);
    const uint8_t zero[4] = {0, 0, 0, 0};
    uint32_t crc = crc32c(0, hp, 92);
    crc = crc32c(crc, zero, 4);
    crc = crc32c(crc, hp + 96, zmq_msg_size(&parts[0]) - 96);
    for (int i = 0; i < nbuf; i++) crc = crc32c(crc, zmq_msg_data(&parts[1 + i]), sizes[i]);
    if (crc != h->checksum) { fprintf(stderr, "client: rejected: checksum %08x != header %08x\n", crc, h->checksum); return -1; }

    /* seq: a mesh or end takes the next number, a heartbeat carries the next one to be sent; the
     * numbers before it that did not arrive are lost (ZeroMQ keeps order on a connection) */
    if (*have_seq && h->seq > *next_seq) *missed += (long)(h->seq - *next_seq);
    *next_seq = h->kind == KIND_HEARTBEAT ? h->seq : h->seq + 1;
    *have_seq = 1;
    if (h->kind == KIND_HEARTBEAT) return 0;
    if (h->kind == KIND_END) {
        printf("end seq=%llu frames=%lld\n", (unsigned long long)h->seq, (long long)h->frame_index);
        return 1;
    }
    const uint8_t *v = zmq_msg_data(&parts[1]), *f = zmq_msg_data(&parts[2]);
    const uint8_t *nrm = (h->flags & 1) ? zmq_msg_data(&parts[3]) : NULL;
    const uint8_t *col = (h->flags & 2) ? zmq_msg_data(&parts[(h->flags & 1) ? 4 : 3]) : NULL;
    for (uint32_t i = 0; i < 3 * h->nv; i++) {
        if (!isfinite(f32(v + 4 * i)) || (nrm && !isfinite(f32(nrm + 4 * i)))) {
            fprintf(stderr, "client: rejected: non-finite vertex or normal\n");
            return -1;
        }
    }
    for (uint32_t i = 0; i < 3 * h->nf; i++) {
        int32_t idx = (int32_t)u32(f + 4 * i);
        if (idx < 0 || (uint32_t)idx >= h->nv) { fprintf(stderr, "client: rejected: face index %d\n", idx); return -1; }
    }
    if (write_obj(outdir, h, v, f, nrm, col) != 0) return -2;
    printf("mesh seq=%llu frame=%lld person=%d vertices=%u faces=%u crc=%08x\n", (unsigned long long)h->seq,
           (long long)h->frame_index, h->person_id, h->nv, h->nf, h->checksum);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: %s tcp://HOST:PORT OUTDIR [KEYDIR]\n", argv[0]);
        return 2;
    }
    crc_init();
    void *ctx = zmq_ctx_new();
    void *sub = zmq_socket(ctx, ZMQ_SUB);
    int64_t maxmsg = (int64_t)MAX_FACES * 12;
    zmq_setsockopt(sub, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    if (argc == 4) {
        char server[41], pub[41], sec[41], path[4096];
        snprintf(path, sizeof path, "%s/server.key", argv[3]);
        if (read_key(path, "public-key", server)) return 1;
        snprintf(path, sizeof path, "%s/client.key_secret", argv[3]);
        if (read_key(path, "public-key", pub) || read_key(path, "secret-key", sec)) return 1;
        /* Z85 text keys: 40 characters and the terminating NUL */
        if (zmq_setsockopt(sub, ZMQ_CURVE_SERVERKEY, server, 41) || zmq_setsockopt(sub, ZMQ_CURVE_PUBLICKEY, pub, 41) ||
            zmq_setsockopt(sub, ZMQ_CURVE_SECRETKEY, sec, 41)) {
            fprintf(stderr, "client: CURVE keys refused: %s\n", zmq_strerror(errno));
            return 1;
        }
    }
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, TOPIC, strlen(TOPIC));
    if (zmq_connect(sub, argv[1]) != 0) {
        fprintf(stderr, "client: cannot connect to %s: %s\n", argv[1], zmq_strerror(errno));
        return 1;
    }
    zmq_msg_t parts[MAX_PARTS + 1];
    header_t h;
    uint64_t next_seq = 0;
    int have_seq = 0, heard = 0, rc = 0;
    long received = 0, missed = 0, rejected = 0;
    for (;;) {
        zmq_pollitem_t item = {sub, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, heard ? LOST_AFTER_MS : -1) == 0) { rc = 3; break; }
        int n = 0, more = 1, too_many = 0;
        while (more) {  /* every part of one message, the topic first; parts past the last kept are dropped */
            zmq_msg_t extra, *m = n < MAX_PARTS + 1 ? &parts[n] : &extra;
            zmq_msg_init(m);
            if (zmq_msg_recv(m, sub, 0) < 0) { fprintf(stderr, "client: %s\n", zmq_strerror(errno)); return 1; }
            more = zmq_msg_more(m);
            if (m == &extra) { too_many = 1; zmq_msg_close(m); } else n++;
        }
        int result;
        if (too_many || n < 2 || zmq_msg_size(&parts[0]) != strlen(TOPIC) || memcmp(zmq_msg_data(&parts[0]), TOPIC, strlen(TOPIC))) {
            fprintf(stderr, "client: rejected: not a mesh stream message\n");
            result = -1;
        } else {
            result = handle(parts + 1, n - 1, argv[2], &h, &next_seq, &have_seq, &missed);
        }
        for (int i = 0; i < n; i++) zmq_msg_close(&parts[i]);
        if (result == -2) { rc = 1; break; }
        if (result == -1) { rejected++; continue; }
        heard = 1;
        if (result == 1) break;
        if (h.kind == KIND_MESH) received++;
    }
    printf("received %ld missed %ld rejected %ld\n", received, missed, rejected);
    zmq_close(sub);
    zmq_ctx_term(ctx);
    return rc;
}
