/*
 * Forewarn sensor-node stream: reference encoder for firmware (portable C99).
 *
 * Specification: docs/firmware-protocol.md. A frame on the wire is
 *
 *     COBS( version | type | seq | CBOR body | CRC-32 little-endian )  0x00
 *
 * This library writes frames; it never allocates, uses no libc beyond string.h (memcpy, memset, strlen),
 * no floating-point arithmetic (a float is only copied bit for bit), and works on caller-provided buffers.
 * Every writer returns FW_OK or a negative fw_status, never writes past the capacity it was given, and
 * leaves the buffer's contents unspecified on error.
 *
 * Typical use (one 1030-byte buffer per frame, built in place):
 *
 *     static uint8_t frame[FW_FRAME_BUFFER_BYTES];
 *     size_t len;
 *     if (fw_write_health(frame, sizeof frame, seq++, "urn:dev:mac:0024befffe804ff1:", NULL, &h, &len) == FW_OK)
 *         uart_write(frame, len);      (the frame, 0x00 delimiter included, starts at frame[0])
 */
#ifndef FOREWARN_NODE_H
#define FOREWARN_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Protocol constants --------------------------------------------------------------------------- */

#define FW_PROTOCOL_MAJOR 1u
#define FW_PROTOCOL_MINOR 0u
/** First byte of every frame: major version in the high nibble, minor in the low nibble. */
#define FW_PROTOCOL_VERSION ((uint8_t)((FW_PROTOCOL_MAJOR << 4) | FW_PROTOCOL_MINOR))

#define FW_MSG_SENML 0x01u  /**< SenML pack of measurements */
#define FW_MSG_HEALTH 0x02u /**< SenML pack: the node's health record */
#define FW_MSG_CHUNK 0x03u  /**< one chunk of a high-rate sample block */

#define FW_HEADER_BYTES 3u
#define FW_CRC_BYTES 4u
/** Largest frame before COBS: header + CBOR body + CRC. */
#define FW_MAX_FRAME_BYTES 1024u
#define FW_MAX_BODY_BYTES (FW_MAX_FRAME_BYTES - FW_HEADER_BYTES - FW_CRC_BYTES)

/** Largest COBS encoding of n bytes (no delimiter). */
#define FW_COBS_MAX_ENCODED(n) ((n) + 1u + (n) / 254u)
/** Bytes in front of the data that in-place COBS encoding needs. */
#define FW_COBS_HEADROOM(n) (1u + (n) / 254u)
/** A buffer that holds any frame built in place: headroom, frame, delimiter (1030 bytes). */
#define FW_FRAME_BUFFER_BYTES (FW_COBS_HEADROOM(FW_MAX_FRAME_BYTES) + FW_MAX_FRAME_BYTES + 1u)

/* Sample blocks: limits a receiver enforces. */
#define FW_MAX_CHUNKS_PER_BLOCK 1024u
#define FW_MAX_SAMPLES_PER_BLOCK 65536uL

typedef enum {
    FW_OK = 0,
    FW_ERR_OVERFLOW = -1, /**< the output does not fit the buffer (or the protocol's maximum frame) */
    FW_ERR_ARG = -2       /**< an argument is out of range (NULL pointer, index past the end, ...) */
} fw_status;

/* ---- CRC-32 (IEEE 802.3 / zlib; crc32("123456789") = 0xCBF43926) ----------------------------------- */

/** Continues a CRC: start with crc = 0; fw_crc32_update(fw_crc32(a), b) == fw_crc32(a ++ b). */
uint32_t fw_crc32_update(uint32_t crc, const uint8_t *data, size_t len);
uint32_t fw_crc32(const uint8_t *data, size_t len);

/* ---- COBS -------------------------------------------------------------------------------------------- */

/**
 * COBS-encodes in[0, len) into out (no delimiter), *out_len = encoded length. out and in must not overlap,
 * except that in-place encoding is allowed when out + FW_COBS_HEADROOM(len) <= in (the frame writers use it).
 */
fw_status fw_cobs_encode(const uint8_t *in, size_t len, uint8_t *out, size_t cap, size_t *out_len);

/* ---- CBOR writer (RFC 8949 subset) ------------------------------------------------------------------- */

/** A number as mantissa x 10^exponent: 23.45 = { 2345, -2 }. Written as a plain integer when exponent is 0,
 *  otherwise as a decimal fraction, tag 4 [exponent, mantissa]. */
typedef struct {
    int64_t mantissa;
    int8_t exponent;
} fw_decimal;

/** Sticky error: after the first failure every call is a no-op returning the same error. */
typedef struct {
    uint8_t *buf;
    size_t cap;
    size_t len;
    fw_status err;
} fw_cbor;

void fw_cbor_init(fw_cbor *w, uint8_t *buf, size_t cap);
fw_status fw_cbor_uint(fw_cbor *w, uint64_t v);
fw_status fw_cbor_int(fw_cbor *w, int64_t v);
fw_status fw_cbor_bytes(fw_cbor *w, const uint8_t *data, size_t len);
/** Text must be UTF-8 (the library does not check). */
fw_status fw_cbor_text(fw_cbor *w, const char *s, size_t len);
fw_status fw_cbor_text_z(fw_cbor *w, const char *s);
fw_status fw_cbor_array(fw_cbor *w, size_t n);
fw_status fw_cbor_map(fw_cbor *w, size_t n);
fw_status fw_cbor_tag(fw_cbor *w, uint64_t tag);
fw_status fw_cbor_bool(fw_cbor *w, bool v);
fw_status fw_cbor_null(fw_cbor *w);
/** A float in its shortest exact form: binary16 if exact, else binary32 (NaN as 0xf97e00). */
fw_status fw_cbor_float(fw_cbor *w, float v);
fw_status fw_cbor_decimal(fw_cbor *w, fw_decimal d);
/** RFC 8746 typed array, tag 77 (sint16, little-endian) around a byte string; portable on any endianness. */
fw_status fw_cbor_int16_array(fw_cbor *w, const int16_t *v, size_t n);

/* ---- Frames ------------------------------------------------------------------------------------------ */

/**
 * Builds one frame in place in buf: fw_frame_begin, write the body with the fw_cbor in f->body, then
 * fw_frame_end, which appends the CRC, COBS-encodes and adds the 0x00 delimiter. The frame then starts at
 * buf[0], *frame_len bytes long. cap >= FW_FRAME_BUFFER_BYTES holds any frame.
 */
typedef struct {
    uint8_t *buf;
    size_t cap;
    fw_cbor body;
} fw_frame;

fw_status fw_frame_begin(fw_frame *f, uint8_t *buf, size_t cap, uint8_t type, uint8_t seq);
fw_status fw_frame_end(fw_frame *f, size_t *frame_len);

/* ---- SenML (RFC 8428, CBOR labels) ------------------------------------------------------------------- */

typedef enum {
    FW_SENML_NONE = 0, /**< no value (only valid with a sum, which this writer does not emit) */
    FW_SENML_NUMBER,   /**< v as a decimal (integer or tag 4) */
    FW_SENML_FLOAT,    /**< v as a float */
    FW_SENML_STRING,   /**< vs */
    FW_SENML_BOOL,     /**< vb */
    FW_SENML_DATA      /**< vd */
} fw_senml_kind;

typedef struct {
    const char *base_name; /**< bn, or NULL */
    bool has_base_time;
    fw_decimal base_time;  /**< bt, seconds */
    const char *name;      /**< n, or NULL */
    const char *unit;      /**< u, or NULL */
    fw_senml_kind kind;
    fw_decimal number;
    float fnumber;
    const char *string;
    bool boolean;
    const uint8_t *data;
    size_t data_len;
    bool has_time;
    fw_decimal time;       /**< t, seconds; below 2^28 relative to the time of sending (negative: past) */
} fw_senml_record;

/** One record as a CBOR map, keys in deterministic order (n u v vs vb t vd bn bt). */
fw_status fw_senml_record_write(fw_cbor *w, const fw_senml_record *r);
/** A FW_MSG_SENML frame holding a pack of n records (1 <= n). */
fw_status fw_write_senml(uint8_t *buf, size_t cap, uint8_t seq, const fw_senml_record *records, size_t n, size_t *frame_len);

/* ---- Health record ----------------------------------------------------------------------------------- */

typedef enum {
    FW_RESET_UNKNOWN = 0,
    FW_RESET_POWER_ON = 1,
    FW_RESET_BROWN_OUT = 2,
    FW_RESET_WATCHDOG = 3,
    FW_RESET_SOFTWARE = 4,
    FW_RESET_EXTERNAL_PIN = 5
} fw_reset_cause;

typedef struct {
    const char *firmware_version;
    uint32_t uptime_s;
    uint32_t reset_count;
    fw_reset_cause last_reset_cause;
} fw_health;

/** A FW_MSG_HEALTH frame: records fw (vs), uptime (s), resets, reset_cause under base_name; base_time optional. */
fw_status fw_write_health(uint8_t *buf, size_t cap, uint8_t seq, const char *base_name, const fw_decimal *base_time,
                          const fw_health *h, size_t *frame_len);

/* ---- Chunked sample blocks --------------------------------------------------------------------------- */

typedef struct {
    uint16_t block_id;      /**< increments per block, wraps at 65535 */
    const char *name;       /**< full SenML name, e.g. "urn:dev:mac:0024befffe804ff1:vib.x" */
    const char *unit;       /**< SenML unit, e.g. "m/s2" */
    fw_decimal base_time;   /**< time of sample 0, seconds (SenML time rules) */
    fw_decimal period_s;    /**< seconds between samples: 100 us = { 100, -6 } */
    fw_decimal scale;       /**< physical value = raw x scale */
    const int16_t *samples;
    uint32_t sample_count;  /**< 1 ... FW_MAX_SAMPLES_PER_BLOCK */
} fw_block;

/** Chunks needed for sample_count samples at samples_per_chunk (0 on bad arguments). */
uint16_t fw_block_chunk_count(uint32_t sample_count, uint16_t samples_per_chunk);
/** The FW_MSG_CHUNK frame of chunk `index`; chunk 0 also carries the block header. */
fw_status fw_write_block_chunk(uint8_t *buf, size_t cap, uint8_t seq, const fw_block *b, uint16_t index,
                               uint16_t samples_per_chunk, size_t *frame_len);

#ifdef __cplusplus
}
#endif

#endif /* FOREWARN_NODE_H */
