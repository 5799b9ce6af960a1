/*
 * coding.h - explicit byte order for everything the engine writes.
 *
 * Fixed-width integers are little-endian on disk (put_fixed32/64) except
 * where a format says big-endian (put_be32/64, used where keys must sort by
 * number). Varints are LEB128: 7 bits a byte, low bits first, high bit set
 * on every byte but the last.
 *
 * Decoders take a cursor and an end pointer and never read past the end:
 * they return NULL on truncated or overlong input, which callers report as
 * corruption.
 */
#ifndef LSM_UTIL_CODING_H
#define LSM_UTIL_CODING_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline void put_fixed32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline void put_fixed64(uint8_t *p, uint64_t v)
{
	put_fixed32(p, (uint32_t)v);
	put_fixed32(p + 4, (uint32_t)(v >> 32));
}

static inline uint32_t get_fixed32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static inline uint64_t get_fixed64(const uint8_t *p)
{
	return (uint64_t)get_fixed32(p) | (uint64_t)get_fixed32(p + 4) << 32;
}

static inline void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline void put_be64(uint8_t *p, uint64_t v)
{
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
}

static inline uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline uint64_t get_be64(const uint8_t *p)
{
	return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

/* Writes v as a varint at p (room for 5 or 10 bytes); returns the end. */
static inline uint8_t *put_varint32(uint8_t *p, uint32_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

static inline uint8_t *put_varint64(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

static inline size_t varint_len(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

/* Reads a varint from [p, end); NULL if truncated or too long. */
static inline const uint8_t *get_varint32(const uint8_t *p, const uint8_t *end,
					  uint32_t *v)
{
	uint32_t r = 0;
	for (int shift = 0; shift <= 28 && p < end; shift += 7) {
		uint32_t b = *p++;
		if (shift == 28 && b > 0x0f)
			return NULL;
		r |= (b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = r;
			return p;
		}
	}
	return NULL;
}

static inline const uint8_t *get_varint64(const uint8_t *p, const uint8_t *end,
					  uint64_t *v)
{
	uint64_t r = 0;
	for (int shift = 0; shift <= 63 && p < end; shift += 7) {
		uint64_t b = *p++;
		if (shift == 63 && b > 1)
			return NULL;
		r |= (b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = r;
			return p;
		}
	}
	return NULL;
}

#endif
