/*
 * test_cache.c - the sharded LRU block cache: handles, LRU eviction,
 * pinning by references, erase/replace, capacity 0, usage accounting,
 * exactly-once deletion, and a multi-threaded stress (run under TSan).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "cache/cache.h"

/* Counts deletions per value id (values are small ints cast to pointers). */
struct del_log {
	_Atomic int n_deleted;
	_Atomic int per_id[4096];
};

static void count_deleter(void *value, void *ctx)
{
	struct del_log *log = ctx;
	atomic_fetch_add(&log->n_deleted, 1);
	atomic_fetch_add(&log->per_id[(uintptr_t)value], 1);
}

static struct del_log *del_log_new(void)
{
	struct del_log *log = calloc(1, sizeof(*log));
	assert_non_null(log);
	return log;
}

static void *V(uintptr_t id)
{
	return (void *)id;
}

static void ins(struct cache *c, uint64_t k, uintptr_t id, size_t charge,
		struct del_log *log)
{
	struct cache_handle *h =
		cache_insert(c, k, 0, V(id), charge, count_deleter, log);
	assert_non_null(h);
	cache_release(c, h);
}

static bool cached(struct cache *c, uint64_t k, uintptr_t *id)
{
	struct cache_handle *h = cache_lookup(c, k, 0);
	if (!h)
		return false;
	if (id)
		*id = (uintptr_t)cache_value(h);
	cache_release(c, h);
	return true;
}

static void test_insert_lookup_release(void **state)
{
	struct del_log *log = del_log_new();
	struct cache *c = cache_new(1000, 4);
	assert_non_null(c);
	assert_int_equal(cache_capacity(c), 1000);
	struct cache_handle *h =
		cache_insert(c, 7, 9, V(1), 10, count_deleter, log);
	assert_non_null(h);
	assert_ptr_equal(cache_value(h), V(1));
	struct cache_handle *h2 = cache_lookup(c, 7, 9);
	assert_ptr_equal(h2, h);
	assert_null(cache_lookup(c, 7, 8));
	assert_null(cache_lookup(c, 9, 7));
	assert_true(cache_hits(c) == 1);
	assert_true(cache_misses(c) == 2);
	cache_release(c, h);
	cache_release(c, h2);
	assert_int_equal(atomic_load(&log->n_deleted), 0);
	/* keys differing only in k1 or k2 are distinct */
	for (uint64_t i = 0; i < 50; i++) {
		ins(c, i, 100 + i, 1, log);
		struct cache_handle *x = cache_insert(
			c, 0, i + 1000, V(200 + i), 1, count_deleter, log);
		cache_release(c, x);
	}
	for (uint64_t i = 0; i < 50; i++) {
		uintptr_t id;
		assert_true(cached(c, i, &id));
		assert_int_equal(id, 100 + i);
		struct cache_handle *x = cache_lookup(c, 0, i + 1000);
		assert_non_null(x);
		assert_ptr_equal(cache_value(x), V(200 + i));
		cache_release(c, x);
	}
	assert_int_equal(cache_usage(c), 110);
	cache_free(c);
	assert_int_equal(atomic_load(&log->n_deleted), 101);
	for (int i = 0; i < 4096; i++)
		assert_true(atomic_load(&log->per_id[i]) <= 1);
	free(log);
}

static void test_lru_eviction_order(void **state)
{
	struct del_log *log = del_log_new();
	struct cache *c = cache_new(10, 0); /* one shard: exact LRU */
	for (uint64_t k = 1; k <= 10; k++)
		ins(c, k, k, 1, log);
	assert_int_equal(cache_usage(c), 10);
	/* touch 1..5: 6 is now the least recently used */
	for (uint64_t k = 1; k <= 5; k++)
		assert_true(cached(c, k, NULL));
	ins(c, 11, 11, 1, log);
	assert_false(cached(c, 6, NULL));
	assert_int_equal(atomic_load(&log->per_id[6]), 1);
	ins(c, 12, 12, 2, log); /* evicts 7 and 8 */
	assert_false(cached(c, 7, NULL));
	assert_false(cached(c, 8, NULL));
	assert_true(cached(c, 9, NULL));
	for (uint64_t k = 1; k <= 5; k++)
		assert_true(cached(c, k, NULL));
	assert_int_equal(cache_usage(c), 10);
	assert_int_equal(atomic_load(&log->n_deleted), 3);
	cache_free(c);
	assert_int_equal(atomic_load(&log->n_deleted), 12);
	free(log);
}

static void test_referenced_survive_pressure(void **state)
{
	struct del_log *log = del_log_new();
	struct cache *c = cache_new(4, 0);
	struct cache_handle *pinned[3];
	for (uint64_t k = 0; k < 3; k++) {
		pinned[k] = cache_insert(c, k, 0, V(k), 1, count_deleter, log);
		assert_non_null(pinned[k]);
	}
	for (uint64_t k = 100; k < 300; k++)
		ins(c, k, k, 1, log);
	/* only one unpinned slot: everything else got evicted */
	for (uint64_t k = 0; k < 3; k++) {
		assert_ptr_equal(cache_value(pinned[k]), V(k));
		assert_int_equal(atomic_load(&log->per_id[k]), 0);
		assert_true(cached(c, k, NULL));
	}
	assert_true(cached(c, 299, NULL));
	assert_false(cached(c, 298, NULL));
	assert_int_equal(cache_usage(c), 4);
	/* an entry bigger than the capacity lives while referenced */
	struct cache_handle *big =
		cache_insert(c, 500, 0, V(500), 100, count_deleter, log);
	assert_int_equal(cache_usage(c), 103); /* 299 made room: evicted */
	assert_int_equal(atomic_load(&log->per_id[299]), 1);
	assert_true(cached(c, 500, NULL));
	cache_release(c, big);
	assert_int_equal(atomic_load(&log->per_id[500]), 1);
	assert_false(cached(c, 500, NULL));
	for (uint64_t k = 0; k < 3; k++)
		cache_release(c, pinned[k]);
	assert_int_equal(cache_usage(c), 3);
	assert_int_equal(atomic_load(&log->n_deleted), 200 + 1);
	cache_free(c);
	assert_int_equal(atomic_load(&log->n_deleted), 3 + 200 + 1);
	free(log);
}

static void test_erase_while_referenced(void **state)
{
	struct del_log *log = del_log_new();
	struct cache *c = cache_new(100, 2);
	struct cache_handle *h =
		cache_insert(c, 1, 2, V(1), 5, count_deleter, log);
	struct cache_handle *h2 = cache_lookup(c, 1, 2);
	cache_erase(c, 1, 2);
	assert_null(cache_lookup(c, 1, 2));
	assert_int_equal(cache_usage(c), 0);
	assert_int_equal(atomic_load(&log->n_deleted), 0);
	assert_ptr_equal(cache_value(h), V(1));
	cache_release(c, h);
	assert_int_equal(atomic_load(&log->n_deleted), 0);
	cache_release(c, h2);
	assert_int_equal(atomic_load(&log->per_id[1]), 1);
	/* erase of an unreferenced entry deletes at once; absent is a no-op */
	ins(c, 3, 3, 5, log);
	cache_erase(c, 3, 0);
	assert_int_equal(atomic_load(&log->per_id[3]), 1);
	cache_erase(c, 3, 0);
	cache_erase(c, 77, 77);
	assert_int_equal(cache_usage(c), 0);
	cache_free(c);
	assert_int_equal(atomic_load(&log->n_deleted), 2);
	free(log);
}

static void test_replace(void **state)
{
	struct del_log *log = del_log_new();
	struct cache *c = cache_new(100, 4);
	struct cache_handle *old =
		cache_insert(c, 5, 5, V(1), 10, count_deleter, log);
	struct cache_handle *neu =
		cache_insert(c, 5, 5, V(2), 20, count_deleter, log);
	assert_int_equal(cache_usage(c), 20);
	struct cache_handle *h = cache_lookup(c, 5, 5);
	assert_ptr_equal(cache_value(h), V(2));
	assert_ptr_equal(cache_value(old), V(1));
	cache_release(c, h);
	assert_int_equal(atomic_load(&log->n_deleted), 0);
	cache_release(c, old);
	assert_int_equal(atomic_load(&log->per_id[1]), 1);
	cache_release(c, neu);
	/* replacing an unreferenced entry deletes the old value at once */
	h = cache_insert(c, 5, 5, V(3), 7, count_deleter, log);
	assert_int_equal(atomic_load(&log->per_id[2]), 1);
	assert_int_equal(cache_usage(c), 7);
	cache_release(c, h);
	h = cache_lookup(c, 5, 5);
	assert_ptr_equal(cache_value(h), V(3));
	cache_release(c, h);
	assert_false(cached(c, 5, NULL)); /* (5, 0) is another key */
	cache_free(c);
	assert_int_equal(atomic_load(&log->per_id[3]), 1);
	assert_int_equal(atomic_load(&log->n_deleted), 3);
	free(log);
}

static void test_capacity_zero(void **state)
{
	struct del_log *log = del_log_new();
	struct cache *c = cache_new(0, 4);
	assert_int_equal(cache_capacity(c), 0);
	struct cache_handle *h =
		cache_insert(c, 1, 1, V(1), 10, count_deleter, log);
	assert_non_null(h);
	assert_ptr_equal(cache_value(h), V(1));
	assert_null(cache_lookup(c, 1, 1));
	assert_int_equal(cache_usage(c), 0);
	cache_release(c, h);
	assert_int_equal(atomic_load(&log->per_id[1]), 1);
	ins(c, 2, 2, 0, log);
	assert_int_equal(atomic_load(&log->per_id[2]), 1);
	assert_true(cache_misses(c) == 1);
	cache_free(c);
	assert_int_equal(atomic_load(&log->n_deleted), 2);
	free(log);
}

static void test_usage_accounting(void **state)
{
	struct del_log *log = del_log_new();
	struct cache *c = cache_new(1 << 20, 4);
	size_t want = 0;
	for (uint64_t k = 0; k < 1000; k++) {
		ins(c, k, k, k + 1, log);
		want += k + 1;
	}
	assert_int_equal(cache_usage(c), want);
	for (uint64_t k = 0; k < 1000; k += 2) {
		cache_erase(c, k, 0);
		want -= k + 1;
	}
	assert_int_equal(cache_usage(c), want);
	/* replace with a different charge */
	ins(c, 1, 2000, 50, log);
	want += 50 - 2;
	assert_int_equal(cache_usage(c), want);
	/* capacity shrink by pressure: usage never exceeds capacity for
	 * unreferenced entries (capacity split across 16 shards, rounded up) */
	struct cache *small = cache_new(160, 4);
	for (uint64_t k = 0; k < 2000; k++)
		ins(small, k, 3000, 3, log);
	assert_true(cache_usage(small) <= 160);
	assert_true(cache_usage(small) > 0);
	cache_free(small);
	cache_free(c);
	assert_int_equal(atomic_load(&log->n_deleted), 1000 + 1 + 2000);
	free(log);
}

/* ---- 4-thread stress ---- */

struct stress_val {
	uint64_t key;
	uint64_t check;
	_Atomic int *live;
};

static void stress_deleter(void *value, void *ctx)
{
	struct stress_val *v = value;
	assert_true(v->check == ~v->key);
	atomic_fetch_sub(v->live, 1);
	free(v);
}

struct stress_arg {
	struct cache *c;
	_Atomic int *live;
	unsigned seed;
	int ops;
	int errors;
};

static void *stress_thread(void *p)
{
	struct stress_arg *a = p;
	unsigned s = a->seed;
	struct cache_handle *held[8] = {0};
	for (int i = 0; i < a->ops; i++) {
		uint64_t k = (uint64_t)(rand_r(&s) % 512);
		int op = rand_r(&s) % 100;
		if (op < 55) {
			struct cache_handle *h = cache_lookup(a->c, k, 1);
			if (h) {
				struct stress_val *v = cache_value(h);
				if (v->key != k || v->check != ~k)
					a->errors++;
				int slot = rand_r(&s) % 8;
				if (held[slot])
					cache_release(a->c, held[slot]);
				held[slot] = h;
			}
		} else if (op < 90) {
			struct stress_val *v = malloc(sizeof(*v));
			v->key = k;
			v->check = ~k;
			v->live = a->live;
			atomic_fetch_add(a->live, 1);
			struct cache_handle *h = cache_insert(
				a->c, k, 1, v, 1 + k % 7, stress_deleter, NULL);
			if (!h) {
				a->errors++;
				continue;
			}
			cache_release(a->c, h);
		} else {
			cache_erase(a->c, k, 1);
		}
	}
	for (int i = 0; i < 8; i++)
		if (held[i])
			cache_release(a->c, held[i]);
	return NULL;
}

static void test_stress_4_threads(void **state)
{
	_Atomic int live = 0;
	struct cache *c = cache_new(600, 2);
	pthread_t th[4];
	struct stress_arg args[4];
	for (int i = 0; i < 4; i++) {
		args[i] = (struct stress_arg){c, &live, 1234u + (unsigned)i,
					      200000, 0};
		assert_int_equal(
			pthread_create(&th[i], NULL, stress_thread, &args[i]),
			0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(args[i].errors, 0);
	}
	assert_true(cache_usage(c) <= 600);
	assert_true(cache_hits(c) + cache_misses(c) > 0);
	cache_free(c);
	assert_int_equal(atomic_load(&live), 0); /* each deleted exactly once */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_insert_lookup_release),
		cmocka_unit_test(test_lru_eviction_order),
		cmocka_unit_test(test_referenced_survive_pressure),
		cmocka_unit_test(test_erase_while_referenced),
		cmocka_unit_test(test_replace),
		cmocka_unit_test(test_capacity_zero),
		cmocka_unit_test(test_usage_accounting),
		cmocka_unit_test(test_stress_4_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
