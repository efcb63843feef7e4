/*
 * Forewarn sensor-node stream: reference encoder. See forewarn_node.h and docs/firmware-protocol.md.
 * Portable C99: no heap, no libc beyond string.h, no floating-point arithmetic, safe with a 16-bit int.
 */
#include "forewarn_node.h"

#include <string.h>

/* ---- CRC-32: nibble table (64 bytes of flash), reflected polynomial 0xEDB88320 ---------------------- */

static const uint32_t crc_nibble[16] = {
    0x00000000UL, 0x1DB71064UL, 0x3B6E20C8UL, 0x26D930ACUL, 0x76DC4190UL, 0x6B6B51F4UL, 0x4DB26158UL, 0x5005713CUL,
    0xEDB88320UL, 0xF00F9344UL, 0xD6D6A3E8UL, 0xCB61B38CUL, 0x9B64C2B0UL, 0x86D3D2D4UL, 0xA00AE278UL, 0xBDBDF21CUL};

uint32_t fw_crc32_update(uint32_t crc, const uint8_t *data, size_t len) {
    uint32_t c = ~crc;
    size_t i;
    for (i = 0; i < len; i++) {
        c ^= data[i];
        c = (c >> 4) ^ crc_nibble[c & 15u];
        c = (c >> 4) ^ crc_nibble[c & 15u];
    }
    return ~c;
}

uint32_t fw_crc32(const uint8_t *data, size_t len) { return fw_crc32_update(0, data, len); }

/* ---- COBS -------------------------------------------------------------------------------------------- */

fw_status fw_cobs_encode(const uint8_t *in, size_t len, uint8_t *out, size_t cap, size_t *out_len) {
    size_t code_at = 0, o = 1, i;
    uint8_t code = 1;
    if ((in == NULL && len > 0) || out == NULL || out_len == NULL) return FW_ERR_ARG;
    if (cap < 1) return FW_ERR_OVERFLOW;
    /* Each input byte is read before the output byte it produces is written, and the output never gets
     * ahead of the input by more than FW_COBS_HEADROOM(len): this is what makes in-place encoding safe. */
    for (i = 0; i < len; i++) {
        uint8_t b = in[i];
        if (o >= cap) return FW_ERR_OVERFLOW;
        if (b == 0) {
            out[code_at] = code;
            code_at = o++;
            code = 1;
            continue;
        }
        out[o++] = b;
        code++;
        if (code == 0xFF && i + 1 < len) {
            if (o >= cap) return FW_ERR_OVERFLOW;
            out[code_at] = code;
            code_at = o++;
            code = 1;
        }
    }
    out[code_at] = code;
    *out_len = o;
    return FW_OK;
}

/* ---- CBOR writer ------------------------------------------------------------------------------------- */

void fw_cbor_init(fw_cbor *w, uint8_t *buf, size_t cap) {
    w->buf = buf;
    w->cap = buf == NULL ? 0 : cap;
    w->len = 0;
    w->err = FW_OK;
}

static fw_status put(fw_cbor *w, const uint8_t *p, size_t n) {
    if (w->err != FW_OK) return w->err;
    if (n > w->cap - w->len) return w->err = FW_ERR_OVERFLOW;
    if (n > 0) memcpy(w->buf + w->len, p, n);
    w->len += n;
    return FW_OK;
}

static fw_status head(fw_cbor *w, uint8_t major, uint64_t arg) {
    uint8_t b[9];
    size_t n, i;
    uint8_t mt = (uint8_t)(major << 5);
    if (arg < 24u) {
        b[0] = (uint8_t)(mt | (uint8_t)arg);
        return put(w, b, 1);
    }
    if (arg <= 0xFFu) {
        b[0] = (uint8_t)(mt | 24u);
        n = 1;
    } else if (arg <= 0xFFFFu) {
        b[0] = (uint8_t)(mt | 25u);
        n = 2;
    } else if (arg <= 0xFFFFFFFFUL) {
        b[0] = (uint8_t)(mt | 26u);
        n = 4;
    } else {
        b[0] = (uint8_t)(mt | 27u);
        n = 8;
    }
    for (i = 0; i < n; i++) b[n - i] = (uint8_t)(arg >> (8u * i)); /* big-endian */
    return put(w, b, n + 1);
}

fw_status fw_cbor_uint(fw_cbor *w, uint64_t v) { return head(w, 0, v); }

fw_status fw_cbor_int(fw_cbor *w, int64_t v) {
    /* -1 - v, computed without overflow for INT64_MIN */
    return v < 0 ? head(w, 1, (uint64_t)(-(v + 1))) : head(w, 0, (uint64_t)v);
}

fw_status fw_cbor_bytes(fw_cbor *w, const uint8_t *data, size_t len) {
    if (data == NULL && len > 0) return w->err = FW_ERR_ARG;
    if (head(w, 2, len) != FW_OK) return w->err;
    return put(w, data, len);
}

fw_status fw_cbor_text(fw_cbor *w, const char *s, size_t len) {
    if (s == NULL && len > 0) return w->err = FW_ERR_ARG;
    if (head(w, 3, len) != FW_OK) return w->err;
    return put(w, (const uint8_t *)s, len);
}

fw_status fw_cbor_text_z(fw_cbor *w, const char *s) {
    if (s == NULL) return w->err = FW_ERR_ARG;
    return fw_cbor_text(w, s, strlen(s));
}

fw_status fw_cbor_array(fw_cbor *w, size_t n) { return head(w, 4, n); }
fw_status fw_cbor_map(fw_cbor *w, size_t n) { return head(w, 5, n); }
fw_status fw_cbor_tag(fw_cbor *w, uint64_t tag) { return head(w, 6, tag); }

fw_status fw_cbor_bool(fw_cbor *w, bool v) {
    uint8_t b = v ? 0xF5u : 0xF4u;
    return put(w, &b, 1);
}

fw_status fw_cbor_null(fw_cbor *w) {
    uint8_t b = 0xF6u;
    return put(w, &b, 1);
}

/* binary32 bits -> binary16 bits if the value is exactly representable; returns 0 if not, 1 if so. */
static int half_exact(uint32_t f, uint16_t *h) {
    uint16_t sign = (uint16_t)((f >> 16) & 0x8000u);
    uint32_t exp8 = (f >> 23) & 0xFFu;
    uint32_t mant = f & 0x7FFFFFUL;
    int32_t e;
    if (exp8 == 0xFFu) { /* infinity, or NaN (canonical quiet NaN) */
        *h = mant == 0 ? (uint16_t)(sign | 0x7C00u) : (uint16_t)0x7E00u;
        return 1;
    }
    if (exp8 == 0) { /* zero is exact; binary32 subnormals are far below the binary16 range */
        *h = sign;
        return mant == 0;
    }
    e = (int32_t)exp8 - 127;
    if (e >= -14 && e <= 15) { /* binary16 normal: 10 mantissa bits */
        if ((mant & 0x1FFFu) != 0) return 0;
        *h = (uint16_t)(sign | (uint16_t)((uint32_t)(e + 15) << 10) | (uint16_t)(mant >> 13));
        return 1;
    }
    if (e >= -24 && e < -14) { /* binary16 subnormal: value = m x 2^-24 */
        uint32_t full = mant | 0x800000UL;
        uint32_t shift = (uint32_t)(-1 - e); /* 14 ... 23 */
        if ((full & ((1UL << shift) - 1u)) != 0) return 0;
        *h = (uint16_t)(sign | (uint16_t)(full >> shift));
        return 1;
    }
    return 0;
}

fw_status fw_cbor_float(fw_cbor *w, float v) {
    uint32_t f;
    uint16_t h;
    uint8_t b[5];
    memcpy(&f, &v, sizeof f);
    if (half_exact(f, &h)) {
        b[0] = 0xF9u;
        b[1] = (uint8_t)(h >> 8);
        b[2] = (uint8_t)h;
        return put(w, b, 3);
    }
    b[0] = 0xFAu;
    b[1] = (uint8_t)(f >> 24);
    b[2] = (uint8_t)(f >> 16);
    b[3] = (uint8_t)(f >> 8);
    b[4] = (uint8_t)f;
    return put(w, b, 5);
}

fw_status fw_cbor_decimal(fw_cbor *w, fw_decimal d) {
    if (d.exponent == 0) return fw_cbor_int(w, d.mantissa);
    fw_cbor_tag(w, 4);
    fw_cbor_array(w, 2);
    fw_cbor_int(w, d.exponent);
    return fw_cbor_int(w, d.mantissa);
}

fw_status fw_cbor_int16_array(fw_cbor *w, const int16_t *v, size_t n) {
    size_t i;
    if (v == NULL && n > 0) return w->err = FW_ERR_ARG;
    if (n > (SIZE_MAX - 16u) / 2u) return w->err = FW_ERR_OVERFLOW;
    fw_cbor_tag(w, 77);
    if (head(w, 2, (uint64_t)n * 2u) != FW_OK) return w->err;
    if (n * 2u > w->cap - w->len) return w->err = FW_ERR_OVERFLOW;
    for (i = 0; i < n; i++) {
        uint16_t u = (uint16_t)v[i];
        w->buf[w->len++] = (uint8_t)u;
        w->buf[w->len++] = (uint8_t)(u >> 8);
    }
    return FW_OK;
}

/* ---- Frames ------------------------------------------------------------------------------------------ */

#define HEADROOM FW_COBS_HEADROOM(FW_MAX_FRAME_BYTES)

fw_status fw_frame_begin(fw_frame *f, uint8_t *buf, size_t cap, uint8_t type, uint8_t seq) {
    size_t body_cap;
    if (f == NULL || buf == NULL) return FW_ERR_ARG;
    f->buf = buf;
    f->cap = cap;
    /* headroom | header | body | CRC | delimiter */
    if (cap < HEADROOM + FW_HEADER_BYTES + FW_CRC_BYTES + 1u + 1u) {
        fw_cbor_init(&f->body, NULL, 0);
        f->body.err = FW_ERR_OVERFLOW;
        return FW_ERR_OVERFLOW;
    }
    body_cap = cap - HEADROOM - FW_HEADER_BYTES - FW_CRC_BYTES - 1u;
    if (body_cap > FW_MAX_BODY_BYTES) body_cap = FW_MAX_BODY_BYTES;
    buf[HEADROOM] = FW_PROTOCOL_VERSION;
    buf[HEADROOM + 1u] = type;
    buf[HEADROOM + 2u] = seq;
    fw_cbor_init(&f->body, buf + HEADROOM + FW_HEADER_BYTES, body_cap);
    return FW_OK;
}

fw_status fw_frame_end(fw_frame *f, size_t *frame_len) {
    uint8_t *raw;
    size_t raw_len, enc_len;
    uint32_t crc;
    fw_status st;
    if (f == NULL || frame_len == NULL) return FW_ERR_ARG;
    if (f->body.err != FW_OK) return f->body.err;
    if (f->body.len == 0) return FW_ERR_ARG;
    raw = f->buf + HEADROOM;
    raw_len = FW_HEADER_BYTES + f->body.len;
    crc = fw_crc32(raw, raw_len);
    raw[raw_len++] = (uint8_t)crc;
    raw[raw_len++] = (uint8_t)(crc >> 8);
    raw[raw_len++] = (uint8_t)(crc >> 16);
    raw[raw_len++] = (uint8_t)(crc >> 24);
    st = fw_cobs_encode(raw, raw_len, f->buf, f->cap - 1u, &enc_len);
    if (st != FW_OK) return st;
    f->buf[enc_len] = 0x00;
    *frame_len = enc_len + 1u;
    return FW_OK;
}

/* ---- SenML ------------------------------------------------------------------------------------------- */

enum { L_BN = -2, L_BT = -3, L_N = 0, L_U = 1, L_V = 2, L_VS = 3, L_VB = 4, L_T = 6, L_VD = 8 };

fw_status fw_senml_record_write(fw_cbor *w, const fw_senml_record *r) {
    size_t n = 0;
    if (r == NULL) return w->err = FW_ERR_ARG;
    if ((r->kind == FW_SENML_STRING && r->string == NULL) || (r->kind == FW_SENML_DATA && r->data == NULL && r->data_len > 0) ||
        (int)r->kind < (int)FW_SENML_NONE || (int)r->kind > (int)FW_SENML_DATA)
        return w->err = FW_ERR_ARG;
    n += r->name != NULL;
    n += r->unit != NULL;
    n += r->kind != FW_SENML_NONE;
    n += r->has_time;
    n += r->base_name != NULL;
    n += r->has_base_time;
    fw_cbor_map(w, n);
    /* Deterministic order of the encoded keys: 0 ... 8, then -1, -2, -3 ... */
    if (r->name != NULL) {
        fw_cbor_int(w, L_N);
        fw_cbor_text_z(w, r->name);
    }
    if (r->unit != NULL) {
        fw_cbor_int(w, L_U);
        fw_cbor_text_z(w, r->unit);
    }
    switch (r->kind) {
    case FW_SENML_NUMBER:
        fw_cbor_int(w, L_V);
        fw_cbor_decimal(w, r->number);
        break;
    case FW_SENML_FLOAT:
        fw_cbor_int(w, L_V);
        fw_cbor_float(w, r->fnumber);
        break;
    case FW_SENML_STRING:
        fw_cbor_int(w, L_VS);
        fw_cbor_text_z(w, r->string);
        break;
    case FW_SENML_BOOL:
        fw_cbor_int(w, L_VB);
        fw_cbor_bool(w, r->boolean);
        break;
    default:
        break;
    }
    if (r->has_time) {
        fw_cbor_int(w, L_T);
        fw_cbor_decimal(w, r->time);
    }
    if (r->kind == FW_SENML_DATA) {
        fw_cbor_int(w, L_VD);
        fw_cbor_bytes(w, r->data, r->data_len);
    }
    if (r->base_name != NULL) {
        fw_cbor_int(w, L_BN);
        fw_cbor_text_z(w, r->base_name);
    }
    if (r->has_base_time) {
        fw_cbor_int(w, L_BT);
        fw_cbor_decimal(w, r->base_time);
    }
    return w->err;
}

static fw_status write_pack(uint8_t *buf, size_t cap, uint8_t type, uint8_t seq, const fw_senml_record *records, size_t n,
                            size_t *frame_len) {
    fw_frame f;
    fw_status st;
    size_t i;
    if (records == NULL || n == 0) return FW_ERR_ARG;
    st = fw_frame_begin(&f, buf, cap, type, seq);
    if (st != FW_OK) return st;
    fw_cbor_array(&f.body, n);
    for (i = 0; i < n; i++) fw_senml_record_write(&f.body, &records[i]);
    return fw_frame_end(&f, frame_len);
}

fw_status fw_write_senml(uint8_t *buf, size_t cap, uint8_t seq, const fw_senml_record *records, size_t n, size_t *frame_len) {
    return write_pack(buf, cap, FW_MSG_SENML, seq, records, n, frame_len);
}

fw_status fw_write_health(uint8_t *buf, size_t cap, uint8_t seq, const char *base_name, const fw_decimal *base_time,
                          const fw_health *h, size_t *frame_len) {
    fw_senml_record r[4];
    if (h == NULL || h->firmware_version == NULL) return FW_ERR_ARG;
    memset(r, 0, sizeof r);
    r[0].base_name = base_name;
    if (base_time != NULL) {
        r[0].has_base_time = true;
        r[0].base_time = *base_time;
    }
    r[0].name = "fw";
    r[0].kind = FW_SENML_STRING;
    r[0].string = h->firmware_version;
    r[1].name = "uptime";
    r[1].unit = "s";
    r[1].kind = FW_SENML_NUMBER;
    r[1].number.mantissa = (int64_t)h->uptime_s;
    r[2].name = "resets";
    r[2].kind = FW_SENML_NUMBER;
    r[2].number.mantissa = (int64_t)h->reset_count;
    r[3].name = "reset_cause";
    r[3].kind = FW_SENML_NUMBER;
    r[3].number.mantissa = (int64_t)h->last_reset_cause;
    return write_pack(buf, cap, FW_MSG_HEALTH, seq, r, 4, frame_len);
}

/* ---- Chunked sample blocks --------------------------------------------------------------------------- */

enum { K_BLOCK = 0, K_INDEX = 1, K_COUNT = 2, K_SAMPLES = 3, K_NAME = 4, K_UNIT = 5, K_TIME = 6, K_PERIOD = 7, K_SCALE = 8, K_TOTAL = 9 };

uint16_t fw_block_chunk_count(uint32_t sample_count, uint16_t samples_per_chunk) {
    uint32_t n;
    if (samples_per_chunk == 0 || sample_count == 0 || sample_count > FW_MAX_SAMPLES_PER_BLOCK) return 0;
    n = (sample_count + samples_per_chunk - 1u) / samples_per_chunk;
    return n > FW_MAX_CHUNKS_PER_BLOCK ? 0 : (uint16_t)n;
}

fw_status fw_write_block_chunk(uint8_t *buf, size_t cap, uint8_t seq, const fw_block *b, uint16_t index,
                               uint16_t samples_per_chunk, size_t *frame_len) {
    fw_frame f;
    fw_status st;
    uint16_t count;
    uint32_t first, n;
    if (b == NULL || b->samples == NULL || b->name == NULL || b->unit == NULL) return FW_ERR_ARG;
    count = fw_block_chunk_count(b->sample_count, samples_per_chunk);
    if (count == 0 || index >= count) return FW_ERR_ARG;
    first = (uint32_t)index * samples_per_chunk;
    n = b->sample_count - first;
    if (n > samples_per_chunk) n = samples_per_chunk;
    st = fw_frame_begin(&f, buf, cap, FW_MSG_CHUNK, seq);
    if (st != FW_OK) return st;
    fw_cbor_map(&f.body, index == 0 ? 10u : 4u);
    fw_cbor_uint(&f.body, K_BLOCK);
    fw_cbor_uint(&f.body, b->block_id);
    fw_cbor_uint(&f.body, K_INDEX);
    fw_cbor_uint(&f.body, index);
    fw_cbor_uint(&f.body, K_COUNT);
    fw_cbor_uint(&f.body, count);
    fw_cbor_uint(&f.body, K_SAMPLES);
    fw_cbor_int16_array(&f.body, b->samples + first, n);
    if (index == 0) {
        fw_cbor_uint(&f.body, K_NAME);
        fw_cbor_text_z(&f.body, b->name);
        fw_cbor_uint(&f.body, K_UNIT);
        fw_cbor_text_z(&f.body, b->unit);
        fw_cbor_uint(&f.body, K_TIME);
        fw_cbor_decimal(&f.body, b->base_time);
        fw_cbor_uint(&f.body, K_PERIOD);
        fw_cbor_decimal(&f.body, b->period_s);
        fw_cbor_uint(&f.body, K_SCALE);
        fw_cbor_decimal(&f.body, b->scale);
        fw_cbor_uint(&f.body, K_TOTAL);
        fw_cbor_uint(&f.body, b->sample_count);
    }
    return fw_frame_end(&f, frame_len);
}
