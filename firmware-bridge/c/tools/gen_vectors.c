/*
 * Writes the shared test vectors, firmware-bridge/test-vectors/{crc32,cobs,cbor,frames}.json, from the C
 * encoder. The TypeScript tests check that the TypeScript codecs decode (and re-encode) them byte for byte;
 * the C test (test/test_forewarn_node.c, built with -DFW_VECTORS_NO_MAIN) checks that the committed files
 * are exactly what this program writes.
 *
 *     make vectors        (or: gen_vectors DIR)
 *
 * A host tool: it uses stdio, which the library does not.
 */
#include "../forewarn_node.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Also used by the C test (built with -DFW_VECTORS_NO_MAIN). */
extern const char *const fw_vector_files[];
int fw_vectors_render(const char *name, char *out, size_t cap, size_t *len);

typedef struct {
    char *p;
    size_t cap, len;
    int overflow;
} sb;

static void sbf(sb *s, const char *fmt, ...) {
    va_list ap;
    int n;
    if (s->overflow) return;
    va_start(ap, fmt);
    n = vsnprintf(s->p + s->len, s->cap - s->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= s->cap - s->len) {
        s->overflow = 1;
        return;
    }
    s->len += (size_t)n;
}

static void sb_hex(sb *s, const uint8_t *b, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) sbf(s, "%02x", b[i]);
}

/* ---- CRC-32 ------------------------------------------------------------------------------------------ */

static void render_crc32(sb *s) {
    static const char *const ascii[] = {"123456789", "", "a", "The quick brown fox jumps over the lazy dog"};
    uint8_t buf[256];
    size_t i;
    sbf(s, "{\n  \"description\": \"CRC-32 (IEEE 802.3 / zlib): reflected polynomial 0xEDB88320, init and final xor 0xFFFFFFFF\",\n  \"vectors\": [\n");
    for (i = 0; i < 4; i++) {
        size_t n = strlen(ascii[i]);
        sbf(s, "    { \"ascii\": \"%s\", \"inputHex\": \"", ascii[i]);
        sb_hex(s, (const uint8_t *)ascii[i], n);
        sbf(s, "\", \"crc32\": \"%08lx\" },\n", (unsigned long)fw_crc32((const uint8_t *)ascii[i], n));
    }
    memset(buf, 0, 32);
    sbf(s, "    { \"inputHex\": \"");
    sb_hex(s, buf, 32);
    sbf(s, "\", \"crc32\": \"%08lx\" },\n", (unsigned long)fw_crc32(buf, 32));
    for (i = 0; i < 256; i++) buf[i] = (uint8_t)i;
    sbf(s, "    { \"inputHex\": \"");
    sb_hex(s, buf, 256);
    sbf(s, "\", \"crc32\": \"%08lx\" }\n  ]\n}\n", (unsigned long)fw_crc32(buf, 256));
}

/* ---- COBS -------------------------------------------------------------------------------------------- */

static size_t cobs_input(int i, uint8_t *b, const char **id) {
    static const uint8_t paper[] = {0x45, 0x00, 0x00, 0x2C, 0x4C, 0x79, 0x00, 0x00, 0x40, 0x06, 0x4F, 0x37};
    size_t k;
    switch (i) {
    case 0: *id = "empty"; return 0;
    case 1: *id = "00"; b[0] = 0; return 1;
    case 2: *id = "00-00"; b[0] = 0; b[1] = 0; return 2;
    case 3: *id = "00-11-00"; b[0] = 0; b[1] = 0x11; b[2] = 0; return 3;
    case 4: *id = "11-22-00-33"; b[0] = 0x11; b[1] = 0x22; b[2] = 0; b[3] = 0x33; return 4;
    case 5: *id = "11-22-33-44"; b[0] = 0x11; b[1] = 0x22; b[2] = 0x33; b[3] = 0x44; return 4;
    case 6: *id = "11-00-00-00"; b[0] = 0x11; b[1] = 0; b[2] = 0; b[3] = 0; return 4;
    case 7: *id = "01..fe (254 bytes, no zero)"; for (k = 0; k < 254; k++) b[k] = (uint8_t)(k + 1); return 254;
    case 8: *id = "00 01..fe"; b[0] = 0; for (k = 0; k < 254; k++) b[k + 1] = (uint8_t)(k + 1); return 255;
    case 9: *id = "01..ff (255 bytes)"; for (k = 0; k < 255; k++) b[k] = (uint8_t)(k + 1); return 255;
    case 10: *id = "02..ff 00"; for (k = 0; k < 254; k++) b[k] = (uint8_t)(k + 2); b[254] = 0; return 255;
    case 11: *id = "03..ff 00 01"; for (k = 0; k < 253; k++) b[k] = (uint8_t)(k + 3); b[253] = 0; b[254] = 1; return 255;
    case 12: *id = "Cheshire-Baker IP header example"; memcpy(b, paper, sizeof paper); return sizeof paper;
    default: return (size_t)-1;
    }
}

static void render_cobs(sb *s) {
    uint8_t in[300], out[320];
    size_t n, m;
    const char *id = "";
    int i;
    sbf(s, "{\n  \"description\": \"COBS (Cheshire and Baker 1999), 0x00 delimiter not included\",\n  \"vectors\": [\n");
    for (i = 0; (n = cobs_input(i, in, &id)) != (size_t)-1; i++) {
        if (fw_cobs_encode(in, n, out, sizeof out, &m) != FW_OK) s->overflow = 1;
        sbf(s, "%s    { \"id\": \"%s\", \"decodedHex\": \"", i ? ",\n" : "", id);
        sb_hex(s, in, n);
        sbf(s, "\", \"encodedHex\": \"");
        sb_hex(s, out, m);
        sbf(s, "\" }");
    }
    sbf(s, "\n  ]\n}\n");
}

/* ---- CBOR -------------------------------------------------------------------------------------------- */

static float float_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static fw_decimal decimal(int64_t mantissa, int8_t exponent) {
    fw_decimal d;
    d.mantissa = mantissa;
    d.exponent = exponent;
    return d;
}

/* Writes CBOR vector i; sets its id, diagnostic notation and the JSON of the value a decoder yields.
 * JSON conventions: {"bigint": "..."} beyond 2^53, {"float": "NaN" | "Infinity" | "-Infinity" | "-0"},
 * {"bytes": hex}, {"int16": [...]}, {"map": [[key, value], ...]}. Returns 0 past the end. */
static int cbor_vector(int i, fw_cbor *w, const char **id, const char **diag, const char **value) {
    static const int16_t i16[] = {1, -2, 256, -32768, 32767};
    static const uint8_t b4[] = {1, 2, 3, 4};
#define V(ID, DIAG, VALUE) *id = ID; *diag = DIAG; *value = VALUE
    switch (i) {
    case 0: V("uint-0", "0", "0"); fw_cbor_uint(w, 0); break;
    case 1: V("uint-23", "23", "23"); fw_cbor_uint(w, 23); break;
    case 2: V("uint-24", "24", "24"); fw_cbor_uint(w, 24); break;
    case 3: V("uint-100", "100", "100"); fw_cbor_uint(w, 100); break;
    case 4: V("uint-1000", "1000", "1000"); fw_cbor_uint(w, 1000); break;
    case 5: V("uint-1000000", "1000000", "1000000"); fw_cbor_uint(w, 1000000UL); break;
    case 6: V("uint-1000000000000", "1000000000000", "1000000000000"); fw_cbor_uint(w, 1000000000000ULL); break;
    case 7: V("uint-max", "18446744073709551615", "{\"bigint\": \"18446744073709551615\"}"); fw_cbor_uint(w, UINT64_MAX); break;
    case 8: V("int-minus-1", "-1", "-1"); fw_cbor_int(w, -1); break;
    case 9: V("int-minus-10", "-10", "-10"); fw_cbor_int(w, -10); break;
    case 10: V("int-minus-100", "-100", "-100"); fw_cbor_int(w, -100); break;
    case 11: V("int-minus-1000", "-1000", "-1000"); fw_cbor_int(w, -1000); break;
    case 12: V("int64-min", "-9223372036854775808", "{\"bigint\": \"-9223372036854775808\"}"); fw_cbor_int(w, INT64_MIN); break;
    case 13: V("float-0", "0.0", "0"); fw_cbor_float(w, 0.0f); break;
    case 14: V("float-minus-0", "-0.0", "{\"float\": \"-0\"}"); fw_cbor_float(w, -0.0f); break;
    case 15: V("float-1", "1.0", "1"); fw_cbor_float(w, 1.0f); break;
    case 16: V("float-1.5", "1.5", "1.5"); fw_cbor_float(w, 1.5f); break;
    case 17: V("float-65504", "65504.0", "65504"); fw_cbor_float(w, 65504.0f); break;
    case 18: V("float-100000", "100000.0", "100000"); fw_cbor_float(w, 100000.0f); break;
    case 19: V("float-max32", "3.4028234663852886e+38", "3.4028234663852886e+38"); fw_cbor_float(w, 3.4028234663852886e+38f); break;
    case 20: V("float-half-subnormal", "5.960464477539063e-8", "5.960464477539063e-8"); fw_cbor_float(w, 5.960464477539063e-8f); break;
    case 21: V("float-half-min-normal", "0.00006103515625", "0.00006103515625"); fw_cbor_float(w, 0.00006103515625f); break;
    case 22: V("float-minus-4", "-4.0", "-4"); fw_cbor_float(w, -4.0f); break;
    case 23: V("float-0.1-single", "0.10000000149011612", "0.10000000149011612"); fw_cbor_float(w, 0.1f); break;
    case 24: V("float-infinity", "Infinity", "{\"float\": \"Infinity\"}"); fw_cbor_float(w, float_bits(0x7F800000UL)); break;
    case 25: V("float-nan", "NaN", "{\"float\": \"NaN\"}"); fw_cbor_float(w, float_bits(0x7FC00000UL)); break;
    case 26: V("float-minus-infinity", "-Infinity", "{\"float\": \"-Infinity\"}"); fw_cbor_float(w, float_bits(0xFF800000UL)); break;
    case 27: V("false", "false", "false"); fw_cbor_bool(w, false); break;
    case 28: V("true", "true", "true"); fw_cbor_bool(w, true); break;
    case 29: V("null", "null", "null"); fw_cbor_null(w); break;
    case 30: V("bytes-empty", "h''", "{\"bytes\": \"\"}"); fw_cbor_bytes(w, b4, 0); break;
    case 31: V("bytes-4", "h'01020304'", "{\"bytes\": \"01020304\"}"); fw_cbor_bytes(w, b4, 4); break;
    case 32: V("text-empty", "\\\"\\\"", "\"\""); fw_cbor_text_z(w, ""); break;
    case 33: V("text-IETF", "\\\"IETF\\\"", "\"IETF\""); fw_cbor_text_z(w, "IETF"); break;
    case 34: V("text-quote-backslash", "\\\"\\\\\\\"\\\\\\\\\\\"", "\"\\\"\\\\\""); fw_cbor_text_z(w, "\"\\"); break;
    case 35: V("text-u-umlaut", "\\\"\\u00fc\\\"", "\"\\u00fc\""); fw_cbor_text_z(w, "\xc3\xbc"); break;
    case 36: V("text-water", "\\\"\\u6c34\\\"", "\"\\u6c34\""); fw_cbor_text_z(w, "\xe6\xb0\xb4"); break;
    case 37: V("array-empty", "[]", "[]"); fw_cbor_array(w, 0); break;
    case 38: V("array-1-2-3", "[1, 2, 3]", "[1, 2, 3]"); fw_cbor_array(w, 3); fw_cbor_uint(w, 1); fw_cbor_uint(w, 2); fw_cbor_uint(w, 3); break;
    case 39:
        V("array-nested", "[1, [2, 3], [4, 5]]", "[1, [2, 3], [4, 5]]");
        fw_cbor_array(w, 3); fw_cbor_uint(w, 1);
        fw_cbor_array(w, 2); fw_cbor_uint(w, 2); fw_cbor_uint(w, 3);
        fw_cbor_array(w, 2); fw_cbor_uint(w, 4); fw_cbor_uint(w, 5);
        break;
    case 40: V("map-empty", "{}", "{\"map\": []}"); fw_cbor_map(w, 0); break;
    case 41: V("map-int", "{1: 2, 3: 4}", "{\"map\": [[1, 2], [3, 4]]}"); fw_cbor_map(w, 2); fw_cbor_uint(w, 1); fw_cbor_uint(w, 2); fw_cbor_uint(w, 3); fw_cbor_uint(w, 4); break;
    case 42:
        V("map-text", "{\\\"a\\\": 1, \\\"b\\\": [2, 3]}", "{\"map\": [[\"a\", 1], [\"b\", [2, 3]]]}");
        fw_cbor_map(w, 2); fw_cbor_text_z(w, "a"); fw_cbor_uint(w, 1);
        fw_cbor_text_z(w, "b"); fw_cbor_array(w, 2); fw_cbor_uint(w, 2); fw_cbor_uint(w, 3);
        break;
    case 43: V("decimal-273.15", "4([-2, 27315])", "273.15"); fw_cbor_decimal(w, decimal(27315, -2)); break;
    case 44: V("decimal-exponent-0", "5", "5"); fw_cbor_decimal(w, decimal(5, 0)); break;
    case 45: V("decimal-epoch-ms", "4([-3, 1700000000123])", "1700000000.123"); fw_cbor_decimal(w, decimal(1700000000123LL, -3)); break;
    case 46: V("int16-array", "77(h'0100feff00010080ff7f')", "{\"int16\": [1, -2, 256, -32768, 32767]}"); fw_cbor_int16_array(w, i16, 5); break;
    default: return 0;
    }
#undef V
    return 1;
}

static void render_cbor(sb *s) {
    uint8_t buf[64];
    fw_cbor w;
    const char *id = "", *diag = "", *value = "";
    int i;
    sbf(s, "{\n  \"description\": \"CBOR items written by the C writer (values from RFC 8949 Appendix A where it has them)\",\n  \"vectors\": [\n");
    for (i = 0;; i++) {
        fw_cbor_init(&w, buf, sizeof buf);
        if (!cbor_vector(i, &w, &id, &diag, &value)) break;
        if (w.err != FW_OK) s->overflow = 1;
        sbf(s, "%s    { \"id\": \"%s\", \"diag\": \"%s\", \"hex\": \"", i ? ",\n" : "", id, diag);
        sb_hex(s, buf, w.len);
        sbf(s, "\", \"value\": %s }", value);
    }
    sbf(s, "\n  ]\n}\n");
}

/* ---- Frames ------------------------------------------------------------------------------------------ */

static void frame_entry(sb *s, int first, const char *id, const char *description, const char *input, uint8_t *buf, size_t len) {
    /* Decode our own COBS to show the payload (header + CBOR) and the CRC separately. */
    uint8_t raw[FW_MAX_FRAME_BYTES];
    size_t i = 0, o = 0;
    while (i + 1 < len) {
        uint8_t code = buf[i++], k;
        for (k = 1; k < code; k++) raw[o++] = buf[i++];
        if (code != 0xFF && i + 1 < len) raw[o++] = 0;
    }
    sbf(s, "%s    {\n      \"id\": \"%s\",\n      \"description\": \"%s\",\n      \"input\": %s,\n", first ? "" : ",\n", id, description, input);
    sbf(s, "      \"payloadHex\": \"");
    sb_hex(s, raw, o - 4);
    sbf(s, "\",\n      \"crc32Hex\": \"");
    sb_hex(s, raw + o - 4, 4);
    sbf(s, "\",\n      \"frameHex\": \"");
    sb_hex(s, buf, len);
    sbf(s, "\"\n    }");
}

#define NODE "urn:dev:mac:0024befffe804ff1:"

static void render_frames(sb *s) {
    static uint8_t buf[FW_FRAME_BUFFER_BYTES];
    static int16_t samples[300];
    size_t len;
    fw_status st = FW_OK;
    static char input[4096];
    int k;

    sbf(s, "{\n  \"description\": \"Frames written by the C encoder: input, payload (header + CBOR body), CRC-32 (little-endian), COBS frame with its 0x00 delimiter\",\n  \"vectors\": [\n");

    { /* health */
        fw_health h;
        h.firmware_version = "1.4.2";
        h.uptime_s = 86400;
        h.reset_count = 3;
        h.last_reset_cause = FW_RESET_WATCHDOG;
        st |= fw_write_health(buf, sizeof buf, 0, NODE, NULL, &h, &len);
        frame_entry(s, 1, "health", "Health record: firmware 1.4.2, up 1 day, 3 resets, last by the watchdog",
                    "{ \"seq\": 0, \"baseName\": \"" NODE "\", \"firmwareVersion\": \"1.4.2\", \"uptimeS\": 86400, \"resetCount\": 3, \"resetCause\": 3 }",
                    buf, len);
    }
    { /* measurements with absolute base time */
        fw_senml_record r[2];
        memset(r, 0, sizeof r);
        r[0].base_name = NODE;
        r[0].has_base_time = true;
        r[0].base_time.mantissa = 1700000000LL;
        r[0].name = "temp";
        r[0].unit = "Cel";
        r[0].kind = FW_SENML_NUMBER;
        r[0].number.mantissa = 4215;
        r[0].number.exponent = -2;
        r[1].name = "current";
        r[1].unit = "A";
        r[1].kind = FW_SENML_NUMBER;
        r[1].number.mantissa = 12500;
        r[1].number.exponent = -3;
        r[1].has_time = true;
        r[1].time.mantissa = 5;
        r[1].time.exponent = -1;
        st |= fw_write_senml(buf, sizeof buf, 1, r, 2, &len);
        frame_entry(s, 0, "senml-temperature-current", "Temperature 42.15 Cel and current 12.5 A (0.5 s later), absolute base time 1700000000 s",
                    "{ \"seq\": 1, \"records\": [ { \"bn\": \"" NODE "\", \"bt\": [1700000000, 0], \"n\": \"temp\", \"u\": \"Cel\", \"v\": [4215, -2] },"
                    " { \"n\": \"current\", \"u\": \"A\", \"v\": [12500, -3], \"t\": [5, -1] } ] }",
                    buf, len);
    }
    { /* relative time, float, bool and string values */
        fw_senml_record r[3];
        memset(r, 0, sizeof r);
        r[0].base_name = NODE;
        r[0].name = "temp";
        r[0].unit = "Cel";
        r[0].kind = FW_SENML_FLOAT;
        r[0].fnumber = 21.5f;
        r[0].has_time = true;
        r[0].time.mantissa = -2;
        r[1].name = "current";
        r[1].unit = "A";
        r[1].kind = FW_SENML_FLOAT;
        r[1].fnumber = 0.1f;
        r[2].name = "motor_on";
        r[2].kind = FW_SENML_BOOL;
        r[2].boolean = true;
        st |= fw_write_senml(buf, sizeof buf, 2, r, 3, &len);
        frame_entry(s, 0, "senml-relative-float-bool", "No clock: relative times (t = -2 s: two seconds before sending), float values, a boolean",
                    "{ \"seq\": 2, \"records\": [ { \"bn\": \"" NODE "\", \"n\": \"temp\", \"u\": \"Cel\", \"vf\": 21.5, \"t\": [-2, 0] },"
                    " { \"n\": \"current\", \"u\": \"A\", \"vf\": 0.10000000149011612 }, { \"n\": \"motor_on\", \"vb\": true } ] }",
                    buf, len);
    }
    { /* a 20-sample block in 3 chunks of 8 */
        fw_block b;
        for (k = 0; k < 20; k++) samples[k] = (int16_t)(k * 1000 - 9000);
        b.block_id = 7;
        b.name = NODE "vib.x";
        b.unit = "m/s2";
        b.base_time.mantissa = 1700000000250LL;
        b.base_time.exponent = -3;
        b.period_s.mantissa = 100;
        b.period_s.exponent = -6;
        b.scale.mantissa = 2;
        b.scale.exponent = -3;
        b.samples = samples;
        b.sample_count = 20;
        for (k = 0; k < 3; k++) {
            char id[32], desc[160];
            st |= fw_write_block_chunk(buf, sizeof buf, (uint8_t)(3 + k), &b, (uint16_t)k, 8, &len);
            snprintf(id, sizeof id, "chunk-%d-of-3", k);
            snprintf(desc, sizeof desc, "Chunk %d of block 7: 20 samples at 10 kHz (period 100 us), scale 0.002 m/s2 per count, 8 samples per chunk%s",
                     k, k == 0 ? "; chunk 0 carries the header" : "");
            snprintf(input, sizeof input,
                     "{ \"seq\": %d, \"blockId\": 7, \"name\": \"" NODE "vib.x\", \"unit\": \"m/s2\", \"time\": [1700000000250, -3], "
                     "\"period\": [100, -6], \"scale\": [2, -3], \"samples\": [-9000, -8000, -7000, -6000, -5000, -4000, -3000, -2000, -1000, 0, "
                     "1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10000], \"chunkIndex\": %d, \"samplesPerChunk\": 8 }",
                     3 + k, k);
            frame_entry(s, 0, id, desc, input, buf, len);
        }
    }
    { /* one 300-sample chunk with long zero-free runs: COBS 0xFF blocks */
        fw_block b;
        int o;
        for (k = 0; k < 300; k++) samples[k] = (int16_t)(((k % 120) + 1) * 0x0101);
        b.block_id = 65535;
        b.name = NODE "vib.y";
        b.unit = "m/s2";
        b.base_time.mantissa = -1;
        b.base_time.exponent = 0;
        b.period_s.mantissa = 390625;
        b.period_s.exponent = -10;
        b.scale.mantissa = 1;
        b.scale.exponent = 0;
        b.samples = samples;
        b.sample_count = 300;
        st |= fw_write_block_chunk(buf, sizeof buf, 255, &b, 0, 300, &len);
        o = snprintf(input, sizeof input, "{ \"seq\": 255, \"blockId\": 65535, \"name\": \"" NODE "vib.y\", \"unit\": \"m/s2\", \"time\": [-1, 0], "
                     "\"period\": [390625, -10], \"scale\": [1, 0], \"chunkIndex\": 0, \"samplesPerChunk\": 300, \"samples\": [");
        for (k = 0; k < 300 && o > 0 && (size_t)o < sizeof input; k++)
            o += snprintf(input + o, sizeof input - (size_t)o, "%s%d", k ? ", " : "", samples[k]);
        if (o < 0 || (size_t)o + 3 > sizeof input) s->overflow = 1;
        else memcpy(input + o, "] }", 4);
        frame_entry(s, 0, "chunk-long-run", "A 300-sample block in one chunk at 25.6 kHz (period 39.0625 us), relative base time -1 s; 600 zero-free sample bytes make COBS emit 0xFF blocks",
                    input, buf, len);
    }
    if (st != FW_OK) s->overflow = 1;
    sbf(s, "\n  ]\n}\n");
}

/* ---- Files ------------------------------------------------------------------------------------------- */

const char *const fw_vector_files[] = {"crc32", "cobs", "cbor", "frames", NULL};

int fw_vectors_render(const char *name, char *out, size_t cap, size_t *len) {
    sb s;
    s.p = out;
    s.cap = cap;
    s.len = 0;
    s.overflow = 0;
    if (strcmp(name, "crc32") == 0) render_crc32(&s);
    else if (strcmp(name, "cobs") == 0) render_cobs(&s);
    else if (strcmp(name, "cbor") == 0) render_cbor(&s);
    else if (strcmp(name, "frames") == 0) render_frames(&s);
    else return -1;
    *len = s.len;
    return s.overflow ? -1 : 0;
}

#ifndef FW_VECTORS_NO_MAIN
int main(int argc, char **argv) {
    static char text[1 << 20];
    const char *dir = argc > 1 ? argv[1] : "../test-vectors";
    int i;
    for (i = 0; fw_vector_files[i] != NULL; i++) {
        char path[1024];
        size_t len;
        FILE *f;
        if (fw_vectors_render(fw_vector_files[i], text, sizeof text, &len) != 0) {
            fprintf(stderr, "gen_vectors: rendering %s failed\n", fw_vector_files[i]);
            return 1;
        }
        snprintf(path, sizeof path, "%s/%s.json", dir, fw_vector_files[i]);
        f = fopen(path, "wb");
        if (f == NULL || fwrite(text, 1, len, f) != len || fclose(f) != 0) {
            fprintf(stderr, "gen_vectors: cannot write %s\n", path);
            return 1;
        }
        printf("wrote %s (%lu bytes)\n", path, (unsigned long)len);
    }
    return 0;
}
#endif
