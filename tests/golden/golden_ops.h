/*
 * golden_ops.h - the fixed sequence of writes behind tests/golden/store-v1.
 *
 * make_golden.c applies these operations to a new store; test_golden.c
 * checks the committed files against them. The committed files were made
 * from exactly this sequence: NEVER change it (a new sequence needs a new
 * golden store, e.g. store-v2, made by a new generator version).
 *
 * Operation i (0-based) gets sequence number i + 1: each phase is a run of
 * single writes and batches, applied in order, one thread.
 *  Phase A (session 1, lz4 data blocks), then lsm_flush -> the lz4 SST.
 *  Phase B (session 2, zstd data blocks), then lsm_flush -> the zstd SST.
 *  Phase C (session 2), left in the WAL by lsm_close.
 */
#ifndef TESTS_GOLDEN_GOLDEN_OPS_H
#define TESTS_GOLDEN_GOLDEN_OPS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

enum golden_kind { G_DEL = 0, G_PUT = 1, G_RANGE_DEL = 2 };

struct golden_op {
	int phase;     /* 'A', 'B' or 'C' */
	int batch;     /* ops with the same nonzero batch id: one lsm_write */
	unsigned kind; /* enum golden_kind (= internal key kinds) */
	uint8_t key[16];
	size_t key_len;
	uint8_t val[80]; /* value, or the exclusive end of a range delete */
	size_t val_len;
};

#define GOLDEN_MAX_OPS 96
#define GOLDEN_BLOCK_SIZE 256 /* small: several data blocks per SST */

/* A compressible value: "<tag>-<n>-" repeated to `len` bytes. */
static inline size_t golden_value(uint8_t *out, char tag, int n, size_t len)
{
	char unit[16];
	int ul = snprintf(unit, sizeof(unit), "%c-%03d-", tag, n);
	for (size_t i = 0; i < len; i++)
		out[i] = (uint8_t)unit[i % (size_t)ul];
	return len;
}

static inline void golden_op_set(struct golden_op *op, int phase, int batch,
				 unsigned kind, const void *key, size_t key_len,
				 const void *val, size_t val_len)
{
	memset(op, 0, sizeof(*op));
	op->phase = phase;
	op->batch = batch;
	op->kind = kind;
	memcpy(op->key, key, key_len);
	op->key_len = key_len;
	if (val_len)
		memcpy(op->val, val, val_len);
	op->val_len = val_len;
}

static inline void golden_put_n(struct golden_op *op, int phase, int batch,
				int n, char tag, size_t vlen)
{
	char k[16];
	uint8_t v[80];
	int kl = snprintf(k, sizeof(k), "key%03d", n);
	golden_value(v, tag, n, vlen);
	golden_op_set(op, phase, batch, G_PUT, k, (size_t)kl, v, vlen);
}

static inline void golden_del_n(struct golden_op *op, int phase, int batch,
				int n)
{
	char k[16];
	int kl = snprintf(k, sizeof(k), "key%03d", n);
	golden_op_set(op, phase, batch, G_DEL, k, (size_t)kl, NULL, 0);
}

static inline void golden_rdel_n(struct golden_op *op, int phase, int batch,
				 int from, int to)
{
	char s[16], e[16];
	int sl = snprintf(s, sizeof(s), "key%03d", from);
	int el = snprintf(e, sizeof(e), "key%03d", to);
	golden_op_set(op, phase, batch, G_RANGE_DEL, s, (size_t)sl, e,
		      (size_t)el);
}

/* Fills ops[GOLDEN_MAX_OPS]; returns the number of operations. */
static inline size_t golden_ops(struct golden_op *ops)
{
	static const uint8_t bin_key[6] = {0x00, 0x01, 'b', 'i', 'n', 0xff};
	uint8_t all[64];
	size_t n = 0;
	int i;

	/* Phase A: seqs 1..48. */
	for (i = 0; i < 40; i++)
		golden_put_n(&ops[n++], 'A', 0, i, 'A', 48);
	golden_del_n(&ops[n++], 'A', 0, 10);
	golden_del_n(&ops[n++], 'A', 0, 11);
	golden_del_n(&ops[n++], 'A', 0, 12);
	golden_del_n(&ops[n++], 'A', 0, 100); /* never written */
	golden_rdel_n(&ops[n++], 'A', 0, 20, 25);
	golden_put_n(&ops[n++], 'A', 0, 22, 'R', 30); /* above the range */
	for (i = 0; i < 64; i++)
		all[i] = (uint8_t)(i * 4 + 3);
	golden_op_set(&ops[n++], 'A', 0, G_PUT, bin_key, sizeof(bin_key), all,
		      sizeof(all));
	golden_op_set(&ops[n++], 'A', 0, G_PUT, "key-empty", 9, NULL, 0);

	/* Phase B: seqs 49..80. */
	for (i = 30; i < 40; i++)
		golden_put_n(&ops[n++], 'B', 1, i, 'B', 40); /* one batch */
	golden_rdel_n(&ops[n++], 'B', 0, 0, 5); /* over the lz4 SST */
	golden_del_n(&ops[n++], 'B', 0, 35);
	for (i = 200; i < 220; i++)
		golden_put_n(&ops[n++], 'B', 0, i, 'B', 40);

	/* Phase C: seqs 81..86, WAL only. */
	golden_put_n(&ops[n++], 'C', 0, 1, 'C', 20);
	golden_put_n(&ops[n++], 'C', 2, 300, 'C', 20); /* one batch */
	golden_del_n(&ops[n++], 'C', 2, 31);
	golden_rdel_n(&ops[n++], 'C', 2, 205, 210);
	golden_put_n(&ops[n++], 'C', 0, 39, 'C', 20);
	golden_del_n(&ops[n++], 'C', 0, 200);
	return n;
}

#endif
