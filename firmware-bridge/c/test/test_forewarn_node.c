/*
 * Host unit tests of the reference encoder: make test (or test_forewarn_node VECTORS_DIR).
 * Checks the codecs against published examples, round-trips through a decoder written here, overflow
 * handling with canaries past the capacity, and that the JSON files in ../test-vectors are what tools/gen_vectors.c
 * writes today.
 */
#include "../forewarn_node.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const char *const fw_vector_files[];
int fw_vectors_render(const char *name, char *out, size_t cap, size_t *len);

static int failures = 0, checks = 0;

#define CHECK(cond)                                                                    \
    do {                                                                               \
        checks++;                                                                      \
        if (!(cond)) {                                                                 \
            failures++;                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);  \
        }                                                                              \
    } while (0)

static uint32_t lcg_state = 12345u;
static uint32_t lcg(void) {
    lcg_state = lcg_state * 1664525u + 1013904223u;
    return lcg_state >> 8;
}

static size_t unhex(const char *hex, uint8_t *out) {
    size_t n = 0;
    while (hex[0] && hex[1]) {
        unsigned v;
        sscanf(hex, "%2x", &v);
        out[n++] = (uint8_t)v;
        hex += 2;
    }
    return n;
}

/* A reference COBS decoder; returns the decoded length or (size_t)-1. */
static size_t cobs_decode(const uint8_t *in, size_t len, uint8_t *out) {
    size_t i = 0, o = 0;
    while (i < len) {
        uint8_t code = in[i++], k;
        if (code == 0) return (size_t)-1;
        for (k = 1; k < code; k++) {
            if (i >= len || in[i] == 0) return (size_t)-1;
            out[o++] = in[i++];
        }
        if (code != 0xFF && i < len) out[o++] = 0;
    }
    return o;
}

static void test_crc32(void) {
    const uint8_t *check = (const uint8_t *)"123456789";
    CHECK(fw_crc32(check, 9) == 0xCBF43926UL);
    CHECK(fw_crc32(check, 0) == 0);
    CHECK(fw_crc32_update(fw_crc32(check, 4), check + 4, 5) == 0xCBF43926UL);
    CHECK(fw_crc32((const uint8_t *)"The quick brown fox jumps over the lazy dog", 43) == 0x414FA339UL);
}

static void cobs_case(const uint8_t *in, size_t n, const char *expected_hex) {
    uint8_t out[600], exp[600];
    size_t m = 0, e = unhex(expected_hex, exp);
    CHECK(fw_cobs_encode(in, n, out, sizeof out, &m) == FW_OK);
    CHECK(m == e && memcmp(out, exp, e) == 0);
}

static void test_cobs(void) {
    static const uint8_t paper[] = {0x45, 0x00, 0x00, 0x2C, 0x4C, 0x79, 0x00, 0x00, 0x40, 0x06, 0x4F, 0x37};
    static uint8_t in[1100], out[1200], dec[1100], buf[1200];
    size_t i, n, m, m2, trial;
    cobs_case(in, 0, "01");
    in[0] = 0;
    cobs_case(in, 1, "0101");
    in[1] = 0;
    cobs_case(in, 2, "010101");
    in[0] = 0x11; in[1] = 0x22; in[2] = 0x00; in[3] = 0x33;
    cobs_case(in, 4, "0311220233");
    cobs_case(paper, sizeof paper, "024501042c4c79010540064f37"); /* the Cheshire-Baker IP header example */
    /* 254 non-zero bytes: one 0xFF block and no trailing code byte */
    for (i = 0; i < 254; i++) in[i] = (uint8_t)(i + 1);
    CHECK(fw_cobs_encode(in, 254, out, sizeof out, &m) == FW_OK && m == 255 && out[0] == 0xFF);
    /* Round trips of random data with zeros in all sorts of places, in place and out of place. */
    for (trial = 0; trial < 2000; trial++) {
        n = lcg() % 1030;
        for (i = 0; i < n; i++) in[i] = (lcg() % 4 == 0) ? 0 : (uint8_t)(lcg() % 256);
        if (trial % 7 == 0)
            for (i = 0; i < n; i++) in[i] = (uint8_t)(1 + lcg() % 255); /* no zeros: longest runs */
        CHECK(fw_cobs_encode(in, n, out, sizeof out, &m) == FW_OK);
        CHECK(m <= FW_COBS_MAX_ENCODED(n));
        CHECK(memchr(out, 0, m) == NULL);
        CHECK(cobs_decode(out, m, dec) == n && memcmp(dec, in, n) == 0);
        memcpy(buf + FW_COBS_HEADROOM(n), in, n);
        CHECK(fw_cobs_encode(buf + FW_COBS_HEADROOM(n), n, buf, sizeof buf, &m2) == FW_OK);
        CHECK(m2 == m && memcmp(buf, out, m) == 0);
        /* Exactly enough room succeeds; one byte less fails without writing past the capacity. */
        memset(buf, 0xAA, sizeof buf);
        CHECK(fw_cobs_encode(in, n, buf, m, &m2) == FW_OK && m2 == m);
        memset(buf, 0xAA, sizeof buf);
        CHECK(fw_cobs_encode(in, n, buf, m - 1, &m2) == FW_ERR_OVERFLOW);
        CHECK(buf[m - 1] == 0xAA);
    }
    CHECK(fw_cobs_encode(NULL, 3, out, sizeof out, &m) == FW_ERR_ARG);
}

static void cbor_is(void (*write)(fw_cbor *), const char *hex) {
    uint8_t buf[64], exp[64];
    fw_cbor w;
    size_t e = unhex(hex, exp);
    fw_cbor_init(&w, buf, sizeof buf);
    write(&w);
    CHECK(w.err == FW_OK && w.len == e && memcmp(buf, exp, e) == 0);
}
static void w_uint_max(fw_cbor *w) { fw_cbor_uint(w, UINT64_MAX); }
static void w_neg_1000(fw_cbor *w) { fw_cbor_int(w, -1000); }
static void w_int64_min(fw_cbor *w) { fw_cbor_int(w, INT64_MIN); }
static void w_float_100000(fw_cbor *w) { fw_cbor_float(w, 100000.0f); }
static void w_float_1_5(fw_cbor *w) { fw_cbor_float(w, 1.5f); }
static void w_ietf(fw_cbor *w) { fw_cbor_text_z(w, "IETF"); }
static void w_map(fw_cbor *w) {
    fw_cbor_map(w, 2);
    fw_cbor_text_z(w, "a");
    fw_cbor_uint(w, 1);
    fw_cbor_text_z(w, "b");
    fw_cbor_array(w, 2);
    fw_cbor_uint(w, 2);
    fw_cbor_uint(w, 3);
}
static void w_decimal(fw_cbor *w) {
    fw_decimal d;
    d.mantissa = 27315;
    d.exponent = -2;
    fw_cbor_decimal(w, d);
}

static float half_to_float_bits(uint16_t h) {
    /* Exact value of a binary16 as a float, built from integers only. */
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1Fu, mant = h & 0x3FFu, bits;
    float f;
    if (exp == 0) {
        if (mant == 0) bits = sign;
        else {
            int e = -14;
            while (!(mant & 0x400u)) {
                mant <<= 1;
                e--;
            }
            bits = sign | ((uint32_t)(e + 127) << 23) | ((mant & 0x3FFu) << 13);
        }
    } else if (exp == 31) bits = sign | 0x7F800000UL | (mant << 13);
    else bits = sign | ((exp - 15u + 127u) << 23) | (mant << 13);
    memcpy(&f, &bits, sizeof f);
    return f;
}

static void test_cbor(void) {
    uint8_t buf[16];
    fw_cbor w;
    uint32_t h, trial;
    cbor_is(w_uint_max, "1bffffffffffffffff");
    cbor_is(w_neg_1000, "3903e7");
    cbor_is(w_int64_min, "3b7fffffffffffffff");
    cbor_is(w_float_100000, "fa47c35000");
    cbor_is(w_float_1_5, "f93e00");
    cbor_is(w_ietf, "6449455446");
    cbor_is(w_map, "a26161016162820203");
    cbor_is(w_decimal, "c48221196ab3");
    /* Every binary16 value (NaNs aside) comes back as that binary16. */
    for (h = 0; h < 0x10000u; h++) {
        if (((h >> 10) & 0x1Fu) == 31u && (h & 0x3FFu) != 0) continue;
        fw_cbor_init(&w, buf, sizeof buf);
        fw_cbor_float(&w, half_to_float_bits((uint16_t)h));
        CHECK(w.len == 3 && buf[0] == 0xF9 && buf[1] == (uint8_t)(h >> 8) && buf[2] == (uint8_t)h);
    }
    /* Random binary32 values: a binary16 encoding must be exact, a binary32 one the same bits. */
    for (trial = 0; trial < 200000u; trial++) {
        uint32_t bits = (lcg() << 8) ^ lcg(), back;
        float f;
        if (trial % 2) bits &= 0xC7FFE000UL; /* more values near the binary16 range */
        if (((bits >> 23) & 0xFFu) == 0xFFu) continue;
        memcpy(&f, &bits, sizeof f);
        fw_cbor_init(&w, buf, sizeof buf);
        fw_cbor_float(&w, f);
        if (buf[0] == 0xF9) {
            float g = half_to_float_bits((uint16_t)((buf[1] << 8) | buf[2]));
            memcpy(&back, &g, sizeof back);
            CHECK(w.len == 3 && back == bits);
        } else {
            back = ((uint32_t)buf[1] << 24) | ((uint32_t)buf[2] << 16) | ((uint32_t)buf[3] << 8) | buf[4];
            CHECK(w.len == 5 && buf[0] == 0xFA && back == bits);
        }
    }
    /* Sticky overflow, nothing written past the capacity. */
    memset(buf, 0xAA, sizeof buf);
    fw_cbor_init(&w, buf, 4);
    CHECK(fw_cbor_text_z(&w, "IETF") == FW_ERR_OVERFLOW);
    CHECK(fw_cbor_uint(&w, 1) == FW_ERR_OVERFLOW && w.len <= 4);
    CHECK(buf[4] == 0xAA);
    fw_cbor_init(&w, buf, 5);
    CHECK(fw_cbor_text_z(&w, "IETF") == FW_OK && w.len == 5);
}

/* Decodes a frame (with delimiter) written by the library and checks its structure; returns body length. */
static size_t check_frame(const uint8_t *frame, size_t len, uint8_t type, uint8_t seq, uint8_t *raw) {
    size_t n;
    uint32_t crc;
    CHECK(len >= 2 && frame[len - 1] == 0);
    CHECK(memchr(frame, 0, len - 1) == NULL);
    n = cobs_decode(frame, len - 1, raw);
    CHECK(n != (size_t)-1 && n >= 8 && n <= FW_MAX_FRAME_BYTES);
    if (n == (size_t)-1 || n < 8) return 0;
    CHECK(raw[0] == FW_PROTOCOL_VERSION && raw[1] == type && raw[2] == seq);
    crc = (uint32_t)raw[n - 4] | ((uint32_t)raw[n - 3] << 8) | ((uint32_t)raw[n - 2] << 16) | ((uint32_t)raw[n - 1] << 24);
    CHECK(crc == fw_crc32(raw, n - 4));
    return n - 7;
}

static void test_frames(void) {
    static uint8_t buf[FW_FRAME_BUFFER_BYTES + 64], raw[FW_FRAME_BUFFER_BYTES];
    static int16_t samples[4096];
    fw_health h;
    fw_block b;
    size_t len, full, cap, body;
    uint16_t k, count;
    fw_status st;

    CHECK(FW_FRAME_BUFFER_BYTES == 1030u);
    h.firmware_version = "2.0.0-rc1";
    h.uptime_s = 4000000000UL;
    h.reset_count = 70000;
    h.last_reset_cause = FW_RESET_BROWN_OUT;
    CHECK(fw_write_health(buf, sizeof buf, 9, "node-1:", NULL, &h, &full) == FW_OK);
    body = check_frame(buf, full, FW_MSG_HEALTH, 9, raw);
    CHECK(body > 0 && raw[3] == 0x84); /* a pack of four records */
    /* Every capacity below the frame's needs fails cleanly and leaves the canary past the capacity. */
    for (cap = 0; cap < full + 5; cap++) {
        memset(buf, 0xAA, sizeof buf);
        st = fw_write_health(buf, cap, 9, "node-1:", NULL, &h, &len);
        CHECK(buf[cap] == 0xAA);
        if (st == FW_OK) CHECK(len == full && len <= cap);
        else CHECK(st == FW_ERR_OVERFLOW);
    }
    CHECK(fw_write_health(buf, full + 5, 9, "node-1:", NULL, &h, &len) == FW_OK);

    for (k = 0; k < 4096; k++) samples[k] = (int16_t)((k * 7919) % 65536 - 32768);
    b.block_id = 42;
    b.name = "node-1:vib.z";
    b.unit = "m/s2";
    b.base_time.mantissa = 1700000000000LL;
    b.base_time.exponent = -3;
    b.period_s.mantissa = 100;
    b.period_s.exponent = -6;
    b.scale.mantissa = 1;
    b.scale.exponent = -3;
    b.samples = samples;
    b.sample_count = 4096;
    /* 400 samples per chunk: what docs/firmware-protocol.md recommends (fits names up to 64 bytes). */
    count = fw_block_chunk_count(4096, 400);
    CHECK(count == 11);
    for (k = 0; k < count; k++) {
        CHECK(fw_write_block_chunk(buf, sizeof buf, (uint8_t)k, &b, k, 400, &len) == FW_OK);
        body = check_frame(buf, len, FW_MSG_CHUNK, (uint8_t)k, raw);
        CHECK(body > (k + 1u < count ? 800u : 192u));
    }
    /* 500 samples (1000 bytes) plus the header do not fit the 1,017-byte body limit, however big the buffer. */
    CHECK(fw_write_block_chunk(buf, sizeof buf, 0, &b, 0, 500, &len) == FW_ERR_OVERFLOW);
    CHECK(fw_write_block_chunk(buf, sizeof buf, 0, &b, 11, 400, &len) == FW_ERR_ARG);
    CHECK(fw_write_block_chunk(buf, sizeof buf, 0, &b, 0, 0, &len) == FW_ERR_ARG);
    CHECK(fw_block_chunk_count(65537, 100) == 0 && fw_block_chunk_count(65536, 64) == 1024 && fw_block_chunk_count(65536, 63) == 0);
    b.name = NULL;
    CHECK(fw_write_block_chunk(buf, sizeof buf, 0, &b, 0, 400, &len) == FW_ERR_ARG);
}

static void test_vectors(const char *dir) {
    static char expected[1 << 20], actual[1 << 20];
    int i;
    for (i = 0; fw_vector_files[i] != NULL; i++) {
        char path[1024];
        size_t n, m = 0;
        FILE *f;
        snprintf(path, sizeof path, "%s/%s.json", dir, fw_vector_files[i]);
        f = fopen(path, "rb");
        CHECK(f != NULL);
        if (f == NULL) continue;
        n = fread(expected, 1, sizeof expected, f);
        fclose(f);
        CHECK(fw_vectors_render(fw_vector_files[i], actual, sizeof actual, &m) == 0);
        if (n != m || memcmp(expected, actual, n) != 0) {
            fprintf(stderr, "%s differs from what tools/gen_vectors.c writes: run make vectors and review the change\n", path);
            failures++;
        }
        checks++;
    }
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "../test-vectors";
    test_crc32();
    test_cobs();
    test_cbor();
    test_frames();
    test_vectors(dir);
    if (failures) {
        fprintf(stderr, "%d of %d checks failed\n", failures, checks);
        return 1;
    }
    printf("test_forewarn_node: all %d checks passed\n", checks);
    return 0;
}
