/*
 * bytes.h - little-endian field access on a buffer + position.
 *
 * Every parser in libbfrproto reads through a struct byte_reader so a
 * truncated PDU can never be read past its end: each get_* returns -EBADMSG
 * when the field does not fit and leaves both the reader and the output
 * untouched. Writers check capacity the same way and return -ENOSPC.
 */
#ifndef BFR_BYTES_H
#define BFR_BYTES_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct byte_reader {
	const uint8_t *buf;
	size_t len;
	size_t pos;
};

struct byte_writer {
	uint8_t *buf;
	size_t cap;
	size_t pos;
};

static inline void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
	put_le16(p, (uint16_t)v);
	put_le16(p + 2, (uint16_t)(v >> 16));
}

static inline uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)get_le16(p) | ((uint32_t)get_le16(p + 2) << 16);
}

static inline void reader_init(struct byte_reader *r, const uint8_t *buf, size_t len)
{
	r->buf = buf;
	r->len = len;
	r->pos = 0;
}

static inline size_t reader_remaining(const struct byte_reader *r)
{
	return r->len - r->pos;
}

static inline int reader_u8(struct byte_reader *r, uint8_t *out)
{
	if (reader_remaining(r) < 1)
		return -EBADMSG;
	*out = r->buf[r->pos++];
	return 0;
}

static inline int reader_le16(struct byte_reader *r, uint16_t *out)
{
	if (reader_remaining(r) < 2)
		return -EBADMSG;
	*out = get_le16(r->buf + r->pos);
	r->pos += 2;
	return 0;
}

static inline int reader_le32(struct byte_reader *r, uint32_t *out)
{
	if (reader_remaining(r) < 4)
		return -EBADMSG;
	*out = get_le32(r->buf + r->pos);
	r->pos += 4;
	return 0;
}

/* Points *out at the next n bytes without copying. */
static inline int reader_bytes(struct byte_reader *r, size_t n, const uint8_t **out)
{
	if (reader_remaining(r) < n)
		return -EBADMSG;
	*out = r->buf + r->pos;
	r->pos += n;
	return 0;
}

static inline void writer_init(struct byte_writer *w, uint8_t *buf, size_t cap)
{
	w->buf = buf;
	w->cap = cap;
	w->pos = 0;
}

static inline int writer_u8(struct byte_writer *w, uint8_t v)
{
	if (w->cap - w->pos < 1)
		return -ENOSPC;
	w->buf[w->pos++] = v;
	return 0;
}

static inline int writer_le16(struct byte_writer *w, uint16_t v)
{
	if (w->cap - w->pos < 2)
		return -ENOSPC;
	put_le16(w->buf + w->pos, v);
	w->pos += 2;
	return 0;
}

static inline int writer_le32(struct byte_writer *w, uint32_t v)
{
	if (w->cap - w->pos < 4)
		return -ENOSPC;
	put_le32(w->buf + w->pos, v);
	w->pos += 4;
	return 0;
}

static inline int writer_bytes(struct byte_writer *w, const void *src, size_t n)
{
	if (w->cap - w->pos < n)
		return -ENOSPC;
	if (n)
		memcpy(w->buf + w->pos, src, n);
	w->pos += n;
	return 0;
}

#endif
