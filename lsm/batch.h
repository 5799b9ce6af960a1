/*
 * batch.h - the write batch representation, which is also the WAL record
 * payload (lsm/FORMAT.md "WAL record"):
 *
 *   [u64 LE first sequence][u32 LE count] then count entries:
 *   [u8 kind][varint key_len][key][varint val_len][value]   kind PUT
 *   [u8 kind][varint key_len][key]                           kind DELETE
 *   [u8 kind][varint start_len][start][varint end_len][end]  RANGE_DELETE
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
};

int batch_init(struct lsm_batch *b);
void batch_release(struct lsm_batch *b);
uint32_t batch_get_count(const uint8_t *rep);
void batch_set_seq(uint8_t *rep, uint64_t seq);
uint64_t batch_get_seq(const uint8_t *rep);
/* Appends src's entries to dst (group commit). */
int batch_append(struct lsm_batch *dst, const struct lsm_batch *src);

/* Calls fn for each entry of a rep; checks every length. A bad rep is
 * corruption, reported against `what` at `off`. */
typedef int (*batch_fn)(void *ctx, uint64_t seq, unsigned kind,
			struct slice key, struct slice value);
int batch_iterate(const uint8_t *rep, size_t len, batch_fn fn, void *ctx,
		  const char *what, uint64_t off);

#endif
