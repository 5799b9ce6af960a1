/*
 * batch.h - the write batch representation, which is also the WAL record
 * payload (lsm/FORMAT.md "WAL record"):
 *
 *   [u64 LE first sequence][u32 LE count] then count entries:
 *   [u8 kind][varint key_len][key][varint val_len][value]   kind PUT
 *   [u8 kind][varint key_len][key]                           kind DELETE
 *   [u8 kind][varint start_len][start][varint end_len][end]  RANGE_DELETE
 *   [u8 kind][varint key_len][key][varint ref_len][ref]      BLOB
 *
 * Users write PUT, DELETE and RANGE_DELETE; the write path turns a PUT
 * whose value reaches the blob threshold into a BLOB entry whose value is
 * a reference into a blob file (blob/blob.h) before the WAL sees it.
 *
 * Entry i gets sequence number first + i.
 *
 * A record with first sequence 0 and count 0 is not a batch but a WAL
 * marker, followed by varint fields (lsm/FORMAT.md "WAL markers"):
 *   1 abandoned: the previous WAL's number and the length of its valid
 *     prefix; written first into a WAL opened after an append failed.
 */
#ifndef LSM_BATCH_H
#define LSM_BATCH_H

#include "lsm.h"
#include "util/slice.h"

#include <stdint.h>

#define BATCH_HEADER 12

enum wal_marker_tag {
	WAL_MARKER_ABANDONED = 1, /* varint prev WAL number, varint length */
};

struct lsm_batch {
	uint8_t *rep; /* header + entries */
	size_t len, cap;
	uint64_t user_bytes; /* keys + values, for statistics */
	uint32_t max_value;  /* largest PUT value, to spot blob candidates */
};

int batch_init(struct lsm_batch *b);
void batch_release(struct lsm_batch *b);
uint32_t batch_get_count(const uint8_t *rep);
void batch_set_seq(uint8_t *rep, uint64_t seq);
uint64_t batch_get_seq(const uint8_t *rep);
/* Appends one entry of any kind (the write path's BLOB entries); leaves
 * user_bytes alone. */
int batch_add_entry(struct lsm_batch *b, unsigned kind, struct slice key,
		    struct slice value);
/* Appends src's entries to dst (group commit). */
int batch_append(struct lsm_batch *dst, const struct lsm_batch *src);

/* Calls fn for each entry of a rep; checks every length. A bad rep is
 * corruption, reported against `what` at `off`. */
typedef int (*batch_fn)(void *ctx, uint64_t seq, unsigned kind,
			struct slice key, struct slice value);
int batch_iterate(const uint8_t *rep, size_t len, batch_fn fn, void *ctx,
		  const char *what, uint64_t off);

#endif
