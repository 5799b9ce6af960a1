/*
 * backup_record.c - encoder and decoder of the backup record file
 * (docs/BACKUP-FORMAT.md, "Record").
 *
 * Why: the record is the only thing that says which SSTs and blob files
 * a backup needs and what their bytes must hash to, so it is
 * self-checking (a trailing XXH3-64 over everything) and decoded defensively:
 * every length and count is checked against the bytes that remain before it is
 * used, and any failure is reported through corrupt() with the offset.
 *
 * Invariants:
 *  1. brec_decode accepts exactly what brec_encode produces for a valid
 *     record: magic, version 1, no unknown incompatible feature, a valid
 *     identity and name, SST numbers strictly ascending, the blob file
 *     list present exactly when the BLOBS feature bit is set and then
 *     non-empty with numbers strictly ascending, 1..BK_META_MAX meta
 *     files with safe, unique names, content checksums that match, and no
 *     trailing bytes.
 *  2. A decoded record's metas[i].data point into the decoded buffer;
 *     nothing else borrows from it.
 *  3. A record without blob files is byte for byte what lsmfsctl wrote
 *     before blob files existed (feature bits 0), so older lsmfsctl
 *     versions keep reading it; one with blob files sets an incompatible
 *     feature bit, which they refuse by name instead of misreading.
 *
 * Thread safety: pure functions on caller-owned data.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "backup_int.h"

#define REC_MAGIC "LSMFSBAK"
#define REC_MAGIC_LEN 8
#define REC_VERSION 1u
/* Incompatible feature: a blob file list follows the SST list. */
#define REC_INCOMPAT_BLOBS 0x1u
#define REC_INCOMPAT_KNOWN REC_INCOMPAT_BLOBS

/* Fixed part: magic, version, incompat, compat, number, backup time,
 * snapshot id, seq and time, identity. */
#define REC_FIXED_LEN (8 + 4 + 4 + 4 + 8 + 8 + 8 + 8 + 8 + BK_IDENTITY_LEN)

static void put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_u32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

bool brec_valid_identity(const char *s, size_t len)
{
	if (len != BK_IDENTITY_LEN)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	}
	return true;
}

bool brec_valid_meta_name(const char *s, size_t len)
{
	uint64_t number;
	char tmp[BK_NAME_MAX + 1];

	if (len == 0 || len > BK_NAME_MAX)
		return false;
	if ((len == 1 && s[0] == '.') ||
	    (len == 2 && s[0] == '.' && s[1] == '.'))
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return false;
	}
	enum bk_kind kind;

	memcpy(tmp, s, len);
	tmp[len] = '\0';
	return !bfile_is_store_file_name(tmp, &kind, &number);
}

const struct bk_sst *brec_find(const struct bk_record *r, enum bk_kind kind,
			       uint64_t number)
{
	size_t lo = 0, hi;
	const struct bk_sst *list = brec_files(r, kind, &hi);

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (list[mid].number == number)
			return &list[mid];
		if (list[mid].number < number)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Byte layout: docs/BACKUP-FORMAT.md "Record". */
int brec_encode(const struct bk_record *r, uint8_t **out, size_t *out_len,
		struct bk_err *e)
{
	size_t name_len = strlen(r->name), len, off = 0;
	uint8_t *p;

	if (name_len == 0 || name_len > BK_NAME_MAX)
		return bk_fail(e, -EINVAL, "bad backup name length %zu",
			       name_len);
	if (!brec_valid_identity(r->identity, strlen(r->identity)))
		return bk_fail(e, -EINVAL, "bad store identity '%s'",
			       r->identity);
	if (r->n_metas == 0 || r->n_metas > BK_META_MAX)
		return bk_fail(e, -EINVAL,
			       "%zu checkpoint files besides the "
			       "SSTs (1..%d allowed)",
			       r->n_metas, BK_META_MAX);
	len = REC_FIXED_LEN + 2 + name_len + 4 + 24 * r->n_ssts + 4 + 8;
	if (r->n_blobs)
		len += 4 + 24 * r->n_blobs;
	for (size_t i = 0; i < r->n_metas; i++) {
		const struct bk_meta *m = &r->metas[i];

		if (!brec_valid_meta_name(m->name, strlen(m->name)))
			return bk_fail(e, -EINVAL,
				       "unexpected checkpoint file '%s'",
				       m->name);
		len += 2 + strlen(m->name) + 8 + 8 + m->size;
	}
	for (size_t i = 1; i < r->n_ssts; i++) {
		if (r->ssts[i].number <= r->ssts[i - 1].number)
			return bk_fail(e, -EINVAL, "SST list not sorted");
	}
	for (size_t i = 1; i < r->n_blobs; i++) {
		if (r->blobs[i].number <= r->blobs[i - 1].number)
			return bk_fail(e, -EINVAL, "blob file list not sorted");
	}
	if (len > BK_RECORD_MAX)
		return bk_fail(e, -EFBIG, "backup record would be %zu bytes",
			       len);
	p = malloc(len);
	if (!p)
		return bk_fail(e, -ENOMEM, "out of memory");
	memcpy(p, REC_MAGIC, REC_MAGIC_LEN);
	off = REC_MAGIC_LEN;
	put_u32(p + off, REC_VERSION);
	/* invariant 3: no blob files, no feature bit */
	put_u32(p + off + 4, r->n_blobs ? REC_INCOMPAT_BLOBS : 0);
	put_u32(p + off + 8, 0); /* compatible features */
	off += 12;
	put_u64(p + off, r->number);
	put_u64(p + off + 8, (uint64_t)r->backup_ns);
	put_u64(p + off + 16, r->snap_id);
	put_u64(p + off + 24, r->snap_seq);
	put_u64(p + off + 32, (uint64_t)r->snap_ns);
	off += 40;
	memcpy(p + off, r->identity, BK_IDENTITY_LEN);
	off += BK_IDENTITY_LEN;
	put_u16(p + off, (uint16_t)name_len);
	memcpy(p + off + 2, r->name, name_len);
	off += 2 + name_len;
	put_u32(p + off, (uint32_t)r->n_ssts);
	off += 4;
	for (size_t i = 0; i < r->n_ssts; i++) {
		put_u64(p + off, r->ssts[i].number);
		put_u64(p + off + 8, r->ssts[i].size);
		put_u64(p + off + 16, r->ssts[i].xxh);
		off += 24;
	}
	if (r->n_blobs) {
		put_u32(p + off, (uint32_t)r->n_blobs);
		off += 4;
		for (size_t i = 0; i < r->n_blobs; i++) {
			put_u64(p + off, r->blobs[i].number);
			put_u64(p + off + 8, r->blobs[i].size);
			put_u64(p + off + 16, r->blobs[i].xxh);
			off += 24;
		}
	}
	put_u32(p + off, (uint32_t)r->n_metas);
	off += 4;
	for (size_t i = 0; i < r->n_metas; i++) {
		const struct bk_meta *m = &r->metas[i];
		size_t nl = strlen(m->name);

		put_u16(p + off, (uint16_t)nl);
		memcpy(p + off + 2, m->name, nl);
		off += 2 + nl;
		put_u64(p + off, m->size);
		put_u64(p + off + 8, m->xxh);
		off += 16;
		if (m->size)
			memcpy(p + off, m->data, m->size);
		off += m->size;
	}
	put_u64(p + off, XXH3_64bits(p, off));
	off += 8;
	*out = p;
	*out_len = off;
	return 0;
}

/* The one place decoding failures are reported: a breakpoint here sees
 * every corrupt record. */
static int corrupt(struct bk_err *e, const char *file, size_t off,
		   const char *what)
{
	return bk_fail(e, BK_E_CORRUPT,
		       "%s: damaged backup record: offset "
		       "%zu: %s",
		       file, off, what);
}

int brec_decode(const uint8_t *p, size_t len, const char *file,
		struct bk_record *r, struct bk_err *e)
{
	struct bk_record d;
	size_t off, body;
	uint32_t version, incompat, n;
	uint16_t nl;
	int rc;

	memset(&d, 0, sizeof(d));
	if (len < REC_FIXED_LEN + 2 + 4 + 4 + 8)
		return corrupt(e, file, 0, "file too short");
	if (memcmp(p, REC_MAGIC, REC_MAGIC_LEN) != 0)
		return corrupt(e, file, 0, "bad magic");
	body = len - 8;
	if (XXH3_64bits(p, body) != get_u64(p + body))
		return corrupt(e, file, body, "checksum mismatch");
	version = get_u32(p + 8);
	incompat = get_u32(p + 12);
	if (version != REC_VERSION)
		return bk_fail(e, BK_E_FORMAT,
			       "%s: backup record version %u "
			       "is not supported (this lsmfsctl reads %u)",
			       file, version, REC_VERSION);
	if (incompat & ~REC_INCOMPAT_KNOWN)
		return bk_fail(e, BK_E_FORMAT,
			       "%s: backup record uses unknown "
			       "incompatible features 0x%x",
			       file, incompat & ~REC_INCOMPAT_KNOWN);
	off = 20;
	d.number = get_u64(p + off);
	d.backup_ns = (int64_t)get_u64(p + off + 8);
	d.snap_id = get_u64(p + off + 16);
	d.snap_seq = get_u64(p + off + 24);
	d.snap_ns = (int64_t)get_u64(p + off + 32);
	off += 40;
	if (!brec_valid_identity((const char *)p + off, BK_IDENTITY_LEN))
		return corrupt(e, file, off, "bad store identity");
	memcpy(d.identity, p + off, BK_IDENTITY_LEN);
	d.identity[BK_IDENTITY_LEN] = '\0';
	off += BK_IDENTITY_LEN;
	nl = get_u16(p + off);
	off += 2;
	if (nl == 0 || nl > BK_NAME_MAX || nl > body - off)
		return corrupt(e, file, off - 2, "bad name length");
	if (memchr(p + off, '\0', nl))
		return corrupt(e, file, off, "NUL in the name");
	memcpy(d.name, p + off, nl);
	d.name[nl] = '\0';
	off += nl;
	if (body - off < 4)
		return corrupt(e, file, off, "truncated SST count");
	n = get_u32(p + off);
	off += 4;
	if (n > (body - off) / 24)
		return corrupt(e, file, off - 4, "SST count past the end");
	d.n_ssts = n;
	d.ssts = calloc(n ? n : 1, sizeof(*d.ssts));
	if (!d.ssts)
		return bk_fail(e, -ENOMEM, "out of memory");
	for (uint32_t i = 0; i < n; i++) {
		d.ssts[i].number = get_u64(p + off);
		d.ssts[i].size = get_u64(p + off + 8);
		d.ssts[i].xxh = get_u64(p + off + 16);
		if (i && d.ssts[i].number <= d.ssts[i - 1].number) {
			rc = corrupt(e, file, off, "SST numbers not ascending");
			goto out_free;
		}
		off += 24;
	}
	if (incompat & REC_INCOMPAT_BLOBS) {
		if (body - off < 4) {
			rc = corrupt(e, file, off, "truncated blob file count");
			goto out_free;
		}
		n = get_u32(p + off);
		off += 4;
		if (n == 0 || n > (body - off) / 24) {
			rc = corrupt(e, file, off - 4, "bad blob file count");
			goto out_free;
		}
		d.n_blobs = n;
		d.blobs = calloc(n, sizeof(*d.blobs));
		if (!d.blobs) {
			rc = bk_fail(e, -ENOMEM, "out of memory");
			goto out_free;
		}
		for (uint32_t i = 0; i < n; i++) {
			d.blobs[i].number = get_u64(p + off);
			d.blobs[i].size = get_u64(p + off + 8);
			d.blobs[i].xxh = get_u64(p + off + 16);
			if (i && d.blobs[i].number <= d.blobs[i - 1].number) {
				rc = corrupt(e, file, off,
					     "blob file numbers not ascending");
				goto out_free;
			}
			off += 24;
		}
	}
	if (body - off < 4) {
		rc = corrupt(e, file, off, "truncated meta file count");
		goto out_free;
	}
	n = get_u32(p + off);
	off += 4;
	if (n == 0 || n > BK_META_MAX) {
		rc = corrupt(e, file, off - 4, "bad meta file count");
		goto out_free;
	}
	d.metas = calloc(n, sizeof(*d.metas));
	if (!d.metas) {
		rc = bk_fail(e, -ENOMEM, "out of memory");
		goto out_free;
	}
	d.n_metas = n;
	for (uint32_t i = 0; i < n; i++) {
		struct bk_meta *m = &d.metas[i];

		if (body - off < 2) {
			rc = corrupt(e, file, off, "truncated meta file");
			goto out_free;
		}
		nl = get_u16(p + off);
		off += 2;
		if (nl > body - off ||
		    !brec_valid_meta_name((const char *)p + off, nl)) {
			rc = corrupt(e, file, off, "bad meta file name");
			goto out_free;
		}
		memcpy(m->name, p + off, nl);
		m->name[nl] = '\0';
		off += nl;
		for (uint32_t j = 0; j < i; j++) {
			if (!strcmp(d.metas[j].name, m->name)) {
				rc = corrupt(e, file, off,
					     "meta file named twice");
				goto out_free;
			}
		}
		if (body - off < 16) {
			rc = corrupt(e, file, off, "truncated meta file");
			goto out_free;
		}
		m->size = get_u64(p + off);
		m->xxh = get_u64(p + off + 8);
		off += 16;
		if (m->size > body - off) {
			rc = corrupt(e, file, off - 16,
				     "meta file size past the end");
			goto out_free;
		}
		m->data = p + off;
		if (XXH3_64bits(m->data, m->size) != m->xxh) {
			rc = corrupt(e, file, off,
				     "meta file checksum mismatch");
			goto out_free;
		}
		off += m->size;
	}
	if (off != body) {
		rc = corrupt(e, file, off, "trailing bytes");
		goto out_free;
	}
	d.buf_len = len;
	*r = d;
	return 0;
out_free:
	free(d.ssts);
	free(d.blobs);
	free(d.metas);
	return rc;
}

void brec_release(struct bk_record *r)
{
	free(r->ssts);
	free(r->blobs);
	free(r->metas);
	free(r->buf);
	memset(r, 0, sizeof(*r));
}
